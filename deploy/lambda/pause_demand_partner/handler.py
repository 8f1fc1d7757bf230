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


def _pause_began(partner: str, now: dt.datetime) -> dt.datetime | None:
    """When the partner's current pause began; None when it is not paused now."""
    ssm = aws_client("ssm")
    try:
        parameter = ssm.get_parameter(Name=f"/adops/partners/{partner}/status")["Parameter"]
    except ssm.exceptions.ParameterNotFound:
        return None
    try:
        status = json.loads(parameter["Value"])
        until = dt.datetime.fromisoformat(status["until"]) if status.get("status") == "PAUSED" else None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ToolError(409, f"the stored status of partner {partner} is not one this tool wrote "
                             f"({parameter['Value'][:200]!r}); a human has to look at it") from None
    if until is None or until <= now:
        return None
    return dt.datetime.fromisoformat(status["since"]) if status.get("since") else parameter["LastModifiedDate"]


def pause_demand_partner(args: dict[str, Any]) -> dict[str, Any]:
    partner = require_id(args, "partner")
    minutes = require_int(args, "duration_minutes", 5, MAX_PAUSE_MINUTES, default=60)
    reason = optional_str(args, "reason")
    if not reason:
        raise ToolError(400, "'reason' is required: say which incident justifies pausing revenue")
    now = dt.datetime.now(dt.timezone.utc)
    until = now + dt.timedelta(minutes=minutes)
    # A pause again while paused extends the same pause: it may not last longer than
    # MAX_PAUSE_MINUTES in all (one call a day would otherwise keep a partner off for good).
    since = _pause_began(partner, now) or now
    if until > since + dt.timedelta(minutes=MAX_PAUSE_MINUTES):
        raise ToolError(409, f"partner {partner} has been paused since {since.isoformat()}: pausing it until "
                             f"{until.isoformat()} would make the pause longer than {MAX_PAUSE_MINUTES} minutes "
                             "in all; a human has to decide on a longer one")
    status = {"status": "PAUSED", "since": since.isoformat(), "until": until.isoformat(), "reason": reason}
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
