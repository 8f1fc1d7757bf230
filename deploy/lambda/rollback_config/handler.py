"""Action group tool: roll an editor's configuration key back to an earlier SSM parameter version.

The rollback is itself a new version (SSM keeps history), so it can be rolled back too, but
only by naming the version: without ``to_version`` a rollback goes to the version before the
current one, and when the current one is itself a rollback that would undo it. Bedrock may
retry a call, and a retried default rollback must not put the bad value back.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from action_group import (FLOOR_PRICE_KEY, PARAM_KEY_PATTERN, ToolError, aws_client, check_floor_change, dispatch,
                          optional_str, parameter_history, recent_floors, require_id, require_int, stored_floor)

ROLLBACK_MARK = "rollback to v"


def rollback_config(args: dict[str, Any]) -> dict[str, Any]:
    editor_id = require_id(args, "editor_id")
    key = args.get("config_key")
    if not isinstance(key, str) or not PARAM_KEY_PATTERN.fullmatch(key):
        raise ToolError(400, f"'config_key' is required: letters, digits and _.- (max 128), got {key!r}")
    reason = optional_str(args, "reason") or "rollback requested by the incident agent"
    ssm = aws_client("ssm")
    name = f"/adops/editors/{editor_id}/config/{key}"
    try:
        current = ssm.get_parameter(Name=name)["Parameter"]
    except ssm.exceptions.ParameterNotFound:
        raise ToolError(404, f"no configuration '{key}' for editor {editor_id}") from None
    _refuse_secure_string(current, key)
    history = parameter_history(ssm, name)
    if args.get("to_version") in (None, ""):
        target_version = current["Version"] - 1
        newest = history[-1]          # the current version: get_parameter found it
        if (newest.get("Description") or "").startswith(ROLLBACK_MARK):
            raise ToolError(409, f"'{key}' version {current['Version']} is itself a rollback "
                                 f"({newest['Description'][:120]!r}, {newest['LastModifiedDate']}): rolling "
                                 "back again would undo it. If the problem persists, name the version to restore "
                                 "with 'to_version' (getRecentChanges lists them)")
    else:
        target_version = require_int(args, "to_version", 1, current["Version"])
    if target_version < 1:
        raise ToolError(409, f"'{key}' has only one version; there is nothing to roll back to")
    if target_version == current["Version"]:
        raise ToolError(409, f"'{key}' is already at version {target_version}")
    try:
        target = ssm.get_parameter(Name=f"{name}:{target_version}")["Parameter"]
    except (ssm.exceptions.ParameterVersionNotFound, ssm.exceptions.ParameterNotFound):
        raise ToolError(404, f"'{key}' has no version {target_version}") from None
    _refuse_secure_string(target, key)      # a parameter's type can change from one version to the next
    already = f"'{key}' already has the value of version {target_version} ({target['Value'][:200]!r})"
    if key == FLOOR_PRICE_KEY:      # the floor price keeps adjust_floor_price's guardrails
        current_floor = stored_floor(current["Value"])
        try:
            target_floor = stored_floor(target["Value"])
        except ToolError:
            raise ToolError(409, f"version {target_version} of the floor price holds {target['Value'][:200]!r}, "
                                 "not a positive number: name another version") from None
        if target_floor == current_floor:          # "1" and "1.0" are the same floor
            raise ToolError(409, already)
        check_floor_change(current_floor, target_floor, recent_floors(history, dt.datetime.now(dt.timezone.utc)))
    elif target["Value"] == current["Value"]:
        raise ToolError(409, already)
    put = ssm.put_parameter(
        Name=name, Value=target["Value"], Type=current["Type"], Overwrite=True,
        Description=f"{ROLLBACK_MARK}{target_version}: {reason}"[:1024],
    )
    return {"editor_id": editor_id, "config_key": key, "rolled_back_from_version": current["Version"],
            "restored_version": target_version, "new_version": put["Version"],
            "old_value": current["Value"], "value": target["Value"]}


def _refuse_secure_string(version: dict[str, Any], key: str) -> None:
    # Read without decryption a SecureString's value is ciphertext; written back, it would become the setting.
    if version["Type"] == "SecureString":
        raise ToolError(422, f"'{key}' version {version['Version']} is a SecureString, which this tool does not "
                             "decrypt: a human must roll it back (set needs_human=true)")


ROUTES = {("POST", "/editors/{editor_id}/config/{config_key}/rollback"): rollback_config}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
