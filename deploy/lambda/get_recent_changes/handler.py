"""Action group tool: configuration changes of an editor (and its floor price) from SSM history, and every
demand partner's status changes (pauses and resumes, pause_demand_partner): a pause is not the editor's own
configuration, but it is an action an agent may have taken for this editor's incident, and the orchestrator
checks with this tool whether earlier actions of an episode still hold."""
from __future__ import annotations

import datetime as dt
from typing import Any

from action_group import aws_client, dispatch, keep_newest, parameter_history, require_id, require_int


PARTNERS_PREFIX = "/adops/partners/"
PARTNER_STATUS_SUFFIX = "/status"


def get_recent_changes(args: dict[str, Any]) -> dict[str, Any]:
    editor_id = require_id(args, "editor_id")
    hours = require_int(args, "hours", 1, 720, default=24)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    ssm = aws_client("ssm")
    partner_changes = []
    for change in _changes(ssm, PARTNERS_PREFIX, since, suffix=PARTNER_STATUS_SUFFIX):
        partner = change.pop("parameter")[:-len(PARTNER_STATUS_SUFFIX)]
        partner_changes.append({"partner": partner, **change})
    # Within the size an agent takes (action_group.MAX_BODY_BYTES): the newest changes, and how many
    # older ones were left out.
    return keep_newest({"editor_id": editor_id, "since": since.isoformat(),
                        "changes": _changes(ssm, f"/adops/editors/{editor_id}/", since),
                        "partner_status_changes": partner_changes}, ("changes", "partner_status_changes"))


def _changes(ssm: Any, prefix: str, since: dt.datetime, suffix: str = "") -> list[dict[str, Any]]:
    """Every version since ``since`` of the parameters under ``prefix`` (whose names end with ``suffix``),
    newest first, each with the value before it."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"Path": prefix, "Recursive": True}
    while True:
        page = ssm.get_parameters_by_path(**kwargs)
        names.extend(p["Name"] for p in page["Parameters"] if p["Name"].endswith(suffix))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    changes = []
    for name in names:
        versions = parameter_history(ssm, name)
        for previous, current in zip([None, *versions], versions):
            if current["LastModifiedDate"] < since:
                continue
            changes.append({
                "parameter": name[len(prefix):], "version": current["Version"],
                "changed_at": current["LastModifiedDate"].isoformat(),
                "changed_by": current.get("LastModifiedUser"), "description": current.get("Description"),
                "old_value": previous["Value"] if previous else None, "new_value": current["Value"],
            })
    # Newest first; two changes within one timestamp tick are ordered by version.
    changes.sort(key=lambda c: (c["changed_at"], c["version"]), reverse=True)
    return changes


ROUTES = {("GET", "/editors/{editor_id}/changes"): get_recent_changes}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
