"""Structural validation of Amazon States Language documents (no AWS call).

Checks what makes a definition fail CreateStateMachine or get stuck at run time:
StartAt names a state; every state has a known Type; every Next / Default /
Choices[].Next / Catch[].Next names a state in the same scope; non-terminal
states have exactly one of Next / End; Choice states have rules; every state is
reachable from StartAt; Parallel branches and Map processors are valid
sub-machines; placeholders left for Fn::Sub are reported if unresolved.

    python -m deploy.stepfunctions.validate deploy/stepfunctions/*.asl.json
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

STATE_TYPES = {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}
TERMINAL_TYPES = {"Succeed", "Fail"}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")


def _targets(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, target name) for every transition out of a state."""
    found = []
    if "Next" in state:
        found.append(("Next", state["Next"]))
    if "Default" in state:
        found.append(("Default", state["Default"]))
    for i, rule in enumerate(state.get("Choices", [])):
        if "Next" in rule:
            found.append((f"Choices[{i}].Next", rule["Next"]))
    for i, catcher in enumerate(state.get("Catch", [])):
        found.append((f"Catch[{i}].Next", catcher.get("Next")))
    return found


def validate_machine(doc: Any, scope: str = "$") -> list[str]:
    errors: list[str] = []
    if not isinstance(doc, dict):
        return [f"{scope}: a state machine must be an object"]
    states = doc.get("States")
    if not isinstance(states, dict) or not states:
        return [f"{scope}: States must be a non-empty object"]
    start = doc.get("StartAt")
    if start not in states:
        errors.append(f"{scope}: StartAt {start!r} is not a state")
    for name, state in states.items():
        where = f"{scope}.States.{name}"
        if not isinstance(state, dict):
            errors.append(f"{where}: must be an object")
            continue
        kind = state.get("Type")
        if kind not in STATE_TYPES:
            errors.append(f"{where}: unknown Type {kind!r}")
            continue
        for label, target in _targets(state):
            if target not in states:
                errors.append(f"{where}.{label}: {target!r} is not a state in this scope")
        has_next, has_end = "Next" in state, state.get("End") is True
        if kind in TERMINAL_TYPES:
            if has_next or "End" in state:
                errors.append(f"{where}: {kind} states cannot have Next or End")
        elif kind == "Choice":
            if has_next or "End" in state:
                errors.append(f"{where}: Choice states use Choices/Default, not Next/End")
            if not state.get("Choices"):
                errors.append(f"{where}: Choice needs at least one rule in Choices")
            for i, rule in enumerate(state.get("Choices", [])):
                if "Next" not in rule:
                    errors.append(f"{where}.Choices[{i}]: a rule needs Next")
        elif has_next == has_end:
            errors.append(f"{where}: exactly one of Next or End is required")
        if kind == "Task" and not isinstance(state.get("Resource"), str):
            errors.append(f"{where}: Task needs a Resource string")
        if kind == "Wait" and sum(k in state for k in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")) != 1:
            errors.append(f"{where}: Wait needs exactly one of Seconds/Timestamp/SecondsPath/TimestampPath")
        if kind == "Parallel":
            branches = state.get("Branches")
            if not branches:
                errors.append(f"{where}: Parallel needs Branches")
            for i, branch in enumerate(branches or []):
                errors.extend(validate_machine(branch, f"{where}.Branches[{i}]"))
        if kind == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor is None:
                errors.append(f"{where}: Map needs ItemProcessor")
            else:
                errors.extend(validate_machine(processor, f"{where}.ItemProcessor"))
    if start in states:
        reachable, frontier = set(), [start]
        while frontier:
            name = frontier.pop()
            if name in reachable or name not in states or not isinstance(states[name], dict):
                continue
            reachable.add(name)
            frontier.extend(t for _, t in _targets(states[name]))
        for name in states:
            if name not in reachable:
                errors.append(f"{scope}.States.{name}: not reachable from StartAt")
    return errors


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def validate_file(path: Path, substitutions: dict[str, str] | None = None) -> list[str]:
    text = path.read_text()
    if substitutions is not None:
        missing = placeholders(text) - set(substitutions)
        if missing:
            return [f"{path.name}: placeholders without a value: {sorted(missing)}"]
        text = PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [f"{path.name}: not JSON: {exc}"]
    return [f"{path.name}: {e}" for e in validate_machine(doc)]


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    errors = [e for p in paths for e in validate_file(p)]
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print(f"{len(paths)} ASL document(s) valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
