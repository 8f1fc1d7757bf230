"""Action group tool: pause (or resume) a demand partner; the status is an SSM parameter the ad server reads."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from action_group import ToolError, aws_client, dispatch, optional_str, require_id, require_int

MAX_PAUSE_MINUTES = 24 * 60


def _set_status(partner: str, status: dict[str, Any], description: str) -> int:
    ssm = aws_client("ssm")
    return ssm.put_parameter(Name=f"/adops/partners/{partner}/status", Value=json.dumps(status),
                             Type="String", Overwrite=True, Description=description[:1024])["Version"]


def pause_demand_partner(args: dict[str, Any]) -> dict[str, Any]:
    partner = require_id(args, "partner")
    minutes = require_int(args, "duration_minutes", 5, MAX_PAUSE_MINUTES, default=60)
    reason = optional_str(args, "reason")
    if not reason:
        raise ToolError(400, "'reason' is required: say which incident justifies pausing revenue")
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
    status = {"status": "PAUSED", "until": until.isoformat(), "reason": reason}
    version = _set_status(partner, status, f"paused: {reason}")
    return {"partner": partner, **status, "version": version}


def resume_demand_partner(args: dict[str, Any]) -> dict[str, Any]:
    partner = require_id(args, "partner")
    reason = optional_str(args, "reason") or "resumed by the incident agent"
    status = {"status": "ACTIVE", "reason": reason}
    version = _set_status(partner, status, f"resumed: {reason}")
    return {"partner": partner, **status, "version": version}


ROUTES = {
    ("POST", "/partners/{partner}/pause"): pause_demand_partner,
    ("POST", "/partners/{partner}/resume"): resume_demand_partner,
}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
