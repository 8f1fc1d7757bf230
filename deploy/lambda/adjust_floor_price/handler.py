"""Action group tool: change an editor's floor price (USD CPM), bounded per call and per day.

Guardrails an agent cannot talk its way around (action_group.check_floor_change, which
rollback_config applies to the floor price too): absolute bounds; at most MAX_FLOOR_CHANGE_PCT
per call; at most MAX_FLOOR_DAILY_CHANGE_PCT away from every floor in effect during the last day,
however many calls; and only a floor a human set (none stored: refused). Setting the current
value again writes nothing (SSM keeps 100 versions: repeated writes would push the day's out).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from action_group import (FLOOR_PRICE_KEY, MAX_FLOOR, MIN_FLOOR, aws_client, check_floor_change, dispatch,
                          optional_str, parameter_history, recent_floors, require_bool, require_id, require_number,
                          stored_floor)


def adjust_floor_price(args: dict[str, Any]) -> dict[str, Any]:
    editor_id = require_id(args, "editor_id")
    new_floor = round(require_number(args, "new_floor_cpm", MIN_FLOOR, MAX_FLOOR), 4)
    dry_run = require_bool(args, "dry_run", default=False)
    reason = optional_str(args, "reason") or "adjusted by the incident agent"
    ssm = aws_client("ssm")
    # Under the editor's config/, so getRecentChanges lists it and rollback_config restores it
    # like any configuration key (config_key "floor_price").
    name = f"/adops/editors/{editor_id}/config/{FLOOR_PRICE_KEY}"
    try:
        current: float | None = stored_floor(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        current = None
    recent = recent_floors(parameter_history(ssm, name), dt.datetime.now(dt.timezone.utc)) \
        if current is not None else []
    check_floor_change(current, new_floor, recent)
    result = {"editor_id": editor_id, "previous_floor_cpm": current, "new_floor_cpm": new_floor, "dry_run": dry_run}
    if new_floor == current:
        result["unchanged"] = True      # nothing written (module docstring)
    elif not dry_run:
        put = ssm.put_parameter(Name=name, Value=str(new_floor), Type="String", Overwrite=True,
                                Description=reason[:1024])
        result["version"] = put["Version"]
    return result


ROUTES = {("POST", "/editors/{editor_id}/floor-price"): adjust_floor_price}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
