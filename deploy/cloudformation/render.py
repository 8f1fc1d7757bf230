"""Render the CloudFormation templates into deployable JSON.

Texts that live in their own files are referenced from the templates by a
string, so each lives once and the source templates stay valid for cfn-lint:

- ``"@asl:<relative path>"``: a Step Functions definition (deploy/stepfunctions/
  *.asl.json), used as ``DefinitionString: !Sub ["@asl:...", {variables}]``;
- ``"@json:<relative path>[#key]"``: a JSON document (or one key of it),
  serialised compactly, e.g. an action group's OpenAPI schema;
- ``"@text:<relative path>#key"``: a string field of a JSON file, e.g. an
  agent's instruction in deploy/bedrock/agents/*.json.

Rendering replaces each reference, so the rendered template is self-contained
and the same file goes to the embedded endpoint and to AWS:

    python -m deploy.cloudformation.render core --out build/cloudformation/core.json
    aws cloudformation deploy --template-file build/cloudformation/core.json ...
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

TEMPLATES_DIR = Path(__file__).resolve().parent
REFERENCE_PREFIXES = ("@asl:", "@json:", "@text:")


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags into long form."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resolve_reference(reference: str, base_dir: Path) -> str:
    """The text a ``@asl:`` / ``@json:`` / ``@text:`` reference stands for."""
    kind, _, target = reference.partition(":")
    path_part, _, key = target.partition("#")
    document = json.loads((base_dir / path_part).resolve().read_text())
    if key:
        document = document[key]
    if kind == "@text":
        if not isinstance(document, str):
            raise ValueError(f"{reference}: @text needs a string field")
        return document
    # Re-serialise compactly: validates the JSON and keeps the template small.
    return json.dumps(document, separators=(",", ":"))


def _inline_references(node: Any, base_dir: Path) -> Any:
    if isinstance(node, dict):
        return {k: _inline_references(v, base_dir) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_references(v, base_dir) for v in node]
    if isinstance(node, str) and node.startswith(REFERENCE_PREFIXES):
        return resolve_reference(node, base_dir)
    return node


def render(name_or_path: str | Path) -> dict[str, Any]:
    """Template as a dict with every file reference inlined."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TEMPLATES_DIR / f"{name_or_path}.yaml"
    return _inline_references(load_template(path), path.parent)


def render_json(name_or_path: str | Path) -> str:
    return json.dumps(render(name_or_path), indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cloudformation.render")
    parser.add_argument("template", help="core, cloud-only, or a path to a template")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = render_json(args.template)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
