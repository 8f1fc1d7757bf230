"""Action group tool: pause (or resume) a demand partner; the status is an SSM parameter the ad server reads."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from action_group import (ToolError, aws_client, dispatch, in_effect_since, optional_str, parameter_history,
                          require_id, require_int)

MAX_PAUSE_MINUTES = 24 * 60
#: agents may keep a partner paused MAX_PAUSE_MINUTES in all within any window this long
PAUSE_WINDOW = dt.timedelta(hours=48)


def _status_name(partner: str) -> str:
    return f"/adops/partners/{partner}/status"


def _set_status(ssm: Any, partner: str, status: dict[str, Any], description: str) -> int:
    # ensure_ascii=False: a 500-character reason stays 500 characters (escaped, an emoji takes 12,
    # and the value can pass SSM's 4,096)
    return ssm.put_parameter(Name=_status_name(partner), Value=json.dumps(status, ensure_ascii=False),
                             Type="String", Overwrite=True, Description=description[:1024])["Version"]


def _aware(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def paused_minutes(history: list[dict[str, Any]], now: dt.datetime) -> float:
    """Minutes the partner was paused during the PAUSE_WINDOW before ``now``, from its status
    parameter's versions: a PAUSED version counts from when it was written until its ``until``,
    the next version, or now, whichever comes first. A version that is not a status this tool
    writes counts as no pause."""
    cutoff = now - PAUSE_WINDOW
    versions = in_effect_since(history, cutoff, "the partner's status")
    total = 0.0
    for version, following in zip(versions, [*versions[1:], None]):
        try:
            status = json.loads(version["Value"])
            if not isinstance(status, dict) or status.get("status") != "PAUSED":
                continue
            end = _aware(status["until"])
        except (ValueError, TypeError, KeyError):
            continue
        if following is not None:
            end = min(end, following["LastModifiedDate"])
        begin = max(version["LastModifiedDate"], cutoff)
        total += max(0.0, (min(end, now) - begin).total_seconds() / 60)
    return total


def pause_demand_partner(args: dict[str, Any]) -> dict[str, Any]:
    partner = require_id(args, "partner")
    minutes = require_int(args, "duration_minutes", 5, MAX_PAUSE_MINUTES, default=60)
    reason = optional_str(args, "reason")
    if not reason:
        raise ToolError(400, "'reason' is required: say which incident justifies pausing revenue")
    now = dt.datetime.now(dt.timezone.utc)
    # A pause again (while paused, as one ends, or after a resume) adds to the time already paused:
    # agents may keep a partner off MAX_PAUSE_MINUTES in any PAUSE_WINDOW, not a day at every call.
    ssm = aws_client("ssm")
    try:
        history = parameter_history(ssm, _status_name(partner))
    except ssm.exceptions.ParameterNotFound:
        history = []
    already = paused_minutes(history, now)
    if already + minutes > MAX_PAUSE_MINUTES:
        raise ToolError(409, f"partner {partner} has been paused {already:.0f} minutes in the last "
                             f"{PAUSE_WINDOW.total_seconds() / 3600:.0f} h: {minutes} more would exceed the "
                             f"{MAX_PAUSE_MINUTES} minutes agents may pause it in that time; a human has to decide"
                             + (f" (at most {MAX_PAUSE_MINUTES - already:.0f} minutes now)"
                                if already < MAX_PAUSE_MINUTES - 5 else ""))
    until = now + dt.timedelta(minutes=minutes)
    status = {"status": "PAUSED", "until": until.isoformat(), "reason": reason}
    version = _set_status(ssm, partner, status, f"paused: {reason}")
    return {"partner": partner, **status, "paused_minutes_before": round(already, 1), "version": version}


def resume_demand_partner(args: dict[str, Any]) -> dict[str, Any]:
    partner = require_id(args, "partner")
    reason = optional_str(args, "reason") or "resumed by the incident agent"
    status = {"status": "ACTIVE", "reason": reason}
    version = _set_status(aws_client("ssm"), partner, status, f"resumed: {reason}")
    return {"partner": partner, **status, "version": version}


ROUTES = {
    ("POST", "/partners/{partner}/pause"): pause_demand_partner,
    ("POST", "/partners/{partner}/resume"): resume_demand_partner,
}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
