"""Action group tool: change an editor's floor price (USD CPM), bounded per call.

Guardrails an agent cannot talk its way around: absolute bounds, and at most
MAX_CHANGE_PCT change per call unless the current floor is unset.
"""
from __future__ import annotations

import os
from typing import Any

from action_group import ToolError, aws_client, dispatch, optional_str, require_bool, require_id, require_number

MIN_FLOOR, MAX_FLOOR = 0.01, 50.0
FLOOR_PRICE_KEY = "floor_price"
MAX_CHANGE_PCT = float(os.environ.get("MAX_FLOOR_CHANGE_PCT", "30"))


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
        current: float | None = float(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        current = None
    if current is not None and current > 0:
        change_pct = abs(new_floor - current) / current * 100
        if change_pct > MAX_CHANGE_PCT:
            raise ToolError(422, f"change of {change_pct:.1f}% exceeds the {MAX_CHANGE_PCT:.0f}% limit per call "
                                 f"(current {current}, requested {new_floor}); ask a human or step gradually")
    result = {"editor_id": editor_id, "previous_floor_cpm": current, "new_floor_cpm": new_floor, "dry_run": dry_run}
    if not dry_run:
        put = ssm.put_parameter(Name=name, Value=str(new_floor), Type="String", Overwrite=True,
                                Description=reason[:1024])
        result["version"] = put["Version"]
    return result


ROUTES = {("POST", "/editors/{editor_id}/floor-price"): adjust_floor_price}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
