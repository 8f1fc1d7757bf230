"""JSON Schemas (draft 2020-12) of the records and events in DESIGN.md.

    validator("metric_record").validate(obj)      # raises jsonschema.ValidationError
    validator("composite_anomaly").iter_errors(detail)

Schemas reference each other by file name ($ref "metric_record.schema.json#/..."),
resolved from this directory.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_NAMES = ("metric_record", "event_record", "composite_anomaly", "partner_health", "dead_letter_record")


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _registry():
    from referencing import Registry, Resource

    resources = []
    for name in SCHEMA_NAMES:
        schema = load_schema(name)
        resource = Resource.from_contents(schema)
        resources.append((f"{name}.schema.json", resource))
        resources.append((schema["$id"], resource))
    return Registry().with_resources(resources)


def validator(name: str):
    """A Draft202012Validator for `name` (without the .schema.json suffix), with format checks."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name), registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)
