"""Action group tool: configuration changes of an editor (and its floor price) from SSM history."""
from __future__ import annotations

import datetime as dt
from typing import Any

from action_group import aws_client, dispatch, parameter_history, require_id, require_int


def get_recent_changes(args: dict[str, Any]) -> dict[str, Any]:
    editor_id = require_id(args, "editor_id")
    hours = require_int(args, "hours", 1, 720, default=24)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    ssm = aws_client("ssm")
    prefix = f"/adops/editors/{editor_id}/"
    names: list[str] = []
    kwargs: dict[str, Any] = {"Path": prefix, "Recursive": True}
    while True:
        page = ssm.get_parameters_by_path(**kwargs)
        names.extend(p["Name"] for p in page["Parameters"])
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
    return {"editor_id": editor_id, "since": since.isoformat(), "changes": changes}


ROUTES = {("GET", "/editors/{editor_id}/changes"): get_recent_changes}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
