"""Bedrock agent action-group plumbing shared by every tool Lambda.

Bedrock calls the Lambda with the operation the model chose from the OpenAPI
schema (apiPath, httpMethod) and its arguments (``parameters`` for path/query,
``requestBody`` for the body), and expects the answer wrapped in a fixed
envelope. Validation errors become HTTP 400 answers the model can read and
correct, instead of exceptions that end the agent's turn.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from typing import Any, Callable

# Whole-string patterns (fullmatch: `$` would let a trailing newline through). No ":" in an id:
# it goes into SSM parameter names, where ":" selects a version.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
PARAM_KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


#: Bedrock Agents take at most 25 KB from an action group's Lambda; an answer over it fails the
#: agent's tool call. The body travels as a JSON string inside the answer (every quote and backslash
#: escaped again), so it is measured as sent (:func:`body_bytes`) and kept under this, leaving room
#: for the envelope: a tool fits its own answer (a coarser period, the oldest entries left out, said
#: so in the answer), and :func:`dispatch` answers 502 rather than send one that does not fit. Until
#: 2026-12-07 nothing was cut: ten metrics every 5 minutes were 65,902 bytes whole for 4 hours and
#: 406,292 for a day (18,003 and 18,106 now).
MAX_BODY_BYTES = 23_000


def body_bytes(body: Any) -> int:
    """The size of ``body`` as the answer carries it: a JSON string of its JSON."""
    return len(json.dumps(json.dumps(body, default=str)).encode("utf-8"))


def keep_newest(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``body`` with the oldest entries of its lists ``keys`` (each newest first) left out, from the
    longest list, until it fits :data:`MAX_BODY_BYTES`, ``body["omitted"]`` included, which counts
    them per list.

    >>> body = keep_newest({"changes": [{"n": i, "pad": 'say "x"' * 130} for i in range(60)], "other": []},
    ...                    ("changes", "other"))
    >>> len(body["changes"]), body["changes"][0]["n"], body["omitted"], body_bytes(body) <= MAX_BODY_BYTES
    (13, 0, {'changes': 47}, True)
    """
    omitted = {key: 0 for key in keys}
    # A first cut by each entry's own size (a whole list measured again per entry would be quadratic),
    # then entry by entry, measured whole, until the answer fits with its count of the omitted.
    size = body_bytes(body) + 40 * len(keys)
    while size > MAX_BODY_BYTES and any(body[key] for key in keys):
        longest = max(keys, key=lambda k: len(body[k]))
        size -= body_bytes(body[longest].pop()) - 2 + 1
        omitted[longest] += 1
    while True:
        if any(omitted.values()):
            body["omitted"] = {key: n for key, n in omitted.items() if n}
        if body_bytes(body) <= MAX_BODY_BYTES or not any(body[key] for key in keys):
            return body
        longest = max(keys, key=lambda k: len(body[k]))
        body[longest].pop()
        omitted[longest] += 1


class ToolError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def arguments(event: dict[str, Any]) -> dict[str, Any]:
    """Path/query parameters and JSON body properties as one dict (values as sent: strings)."""
    args: dict[str, Any] = {}
    for p in event.get("parameters") or []:
        args[p["name"]] = p.get("value")
    body = (event.get("requestBody") or {}).get("content", {}).get("application/json", {})
    for p in body.get("properties") or []:
        args[p["name"]] = p.get("value")
    return args


def require_id(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ToolError(400, f"'{name}' is required: letters, digits and _.- (max 128), got {value!r}")
    return value


def optional_str(args: dict[str, Any], name: str, max_len: int = 500) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ToolError(400, f"'{name}' must be a string of at most {max_len} characters")
    return value


def require_number(args: dict[str, Any], name: str, low: float, high: float, default: float | None = None) -> float:
    raw = args.get(name)
    if raw is None or raw == "":
        if default is not None:
            return default
        raise ToolError(400, f"'{name}' is required (a number between {low} and {high})")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ToolError(400, f"'{name}' must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ToolError(400, f"'{name}' must be between {low} and {high}, got {value}")
    return value


def require_int(args: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int:
    value = require_number(args, name, low, high, None if default is None else float(default))
    if value != int(value):
        raise ToolError(400, f"'{name}' must be a whole number, got {value}")
    return int(value)


def require_bool(args: dict[str, Any], name: str, default: bool) -> bool:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("true", "false"):
        return str(raw).lower() == "true"
    raise ToolError(400, f"'{name}' must be true or false, got {raw!r}")


#: The floor price, a configuration key (config/floor_price): adjust_floor_price sets it,
#: rollback_config can restore it, and both keep to the same guardrails.
FLOOR_PRICE_KEY = "floor_price"
MIN_FLOOR, MAX_FLOOR = 0.01, 50.0
MAX_FLOOR_CHANGE_PCT = float(os.environ.get("MAX_FLOOR_CHANGE_PCT", "30"))
#: Steps within the per-call limit must not add up: a new floor may be at most this far from every
#: floor in effect during the last day, however many calls led there.
MAX_FLOOR_DAILY_CHANGE_PCT = float(os.environ.get("MAX_FLOOR_DAILY_CHANGE_PCT", "50"))
_PCT_SLACK = 1e-9     # 1.3 vs 1.0 computes as 30.000000000000004 %: a change of exactly the limit is allowed


def stored_floor(value: str) -> float:
    """A floor price as read from the parameter store. One that is not a positive finite number
    is a 409 that says so (not a 502 "AWS call failed", and not a pass: a NaN would compare false
    with every limit): a human has to fix the parameter."""
    try:
        floor = float(value)
    except ValueError:
        raise ToolError(409, f"the stored floor price {value!r} is not a number; fix the parameter first") from None
    if not math.isfinite(floor) or floor <= 0:
        raise ToolError(409, f"the stored floor price {value!r} is not a positive number; fix the parameter first")
    return floor


def _change_pct(old: float, new: float) -> float:
    return abs(new - old) / old * 100


def check_floor_change(current: float | None, new_floor: float, recent: list[float] = ()) -> None:
    """Refuse a floor outside [MIN_FLOOR, MAX_FLOOR], a change of more than MAX_FLOOR_CHANGE_PCT
    from the current floor, or one more than MAX_FLOOR_DAILY_CHANGE_PCT away from any floor in
    ``recent`` (:func:`recent_floors`), whichever tool asks. An agent adjusts a floor a human set:
    with none stored (``current`` None) it is refused."""
    if not MIN_FLOOR <= new_floor <= MAX_FLOOR:
        raise ToolError(422, f"floor {new_floor} is outside {MIN_FLOOR}..{MAX_FLOOR} USD CPM")
    if current is None:
        raise ToolError(409, "no floor price is stored for this editor: an agent adjusts a floor a human set; "
                             "ask a human to set the first one")
    change_pct = _change_pct(current, new_floor)
    if change_pct > MAX_FLOOR_CHANGE_PCT + _PCT_SLACK:
        raise ToolError(422, f"change of {change_pct:.1f}% exceeds the {MAX_FLOOR_CHANGE_PCT:.0f}% limit per call "
                             f"(current {current}, requested {new_floor}); ask a human or step gradually")
    for floor in recent:
        if _change_pct(floor, new_floor) > MAX_FLOOR_DAILY_CHANGE_PCT + _PCT_SLACK:
            raise ToolError(422, f"the floor was {floor} within the last day: {new_floor} is "
                                 f"{_change_pct(floor, new_floor):.1f}% away from it, more than the "
                                 f"{MAX_FLOOR_DAILY_CHANGE_PCT:.0f}% agents may move it in a day; ask a human")


def parameter_history(ssm: Any, name: str) -> list[dict[str, Any]]:
    """Every version of an SSM parameter that SSM still keeps, oldest first (GetParameterHistory, all pages)."""
    versions: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Name": name, "WithDecryption": False}
    while True:
        page = ssm.get_parameter_history(**kwargs)
        versions.extend(page["Parameters"])
        if not page.get("NextToken"):
            return sorted(versions, key=lambda v: v["Version"])
        kwargs["NextToken"] = page["NextToken"]


def in_effect_since(history: list[dict[str, Any]], cutoff: Any, what: str) -> list[dict[str, Any]]:
    """The versions in effect at some time after ``cutoff``: the one in effect at it, and every later
    one. A 409 when SSM no longer keeps the versions that far back (it keeps the last 100)."""
    before = [v for v in history if v["LastModifiedDate"] <= cutoff]
    if history and not before and history[0]["Version"] > 1:     # SSM dropped the oldest versions
        raise ToolError(409, f"the history of {what} no longer reaches back to {cutoff.isoformat()} "
                             "(SSM keeps a parameter's last 100 versions); ask a human")
    return before[-1:] + [v for v in history if v["LastModifiedDate"] > cutoff]


def recent_floors(history: list[dict[str, Any]], now: Any) -> list[float]:
    """Every floor in effect during the 24 h before ``now`` (values that are not a positive number,
    which a human has since fixed, are left out)."""
    floors = []
    for version in in_effect_since(history, now - dt.timedelta(hours=24), "the floor price"):
        try:
            floors.append(stored_floor(version["Value"]))
        except ToolError:
            continue
    return floors


def response(event: dict[str, Any], status: int, body: Any) -> dict[str, Any]:
    return {
        "messageVersion": "1.0",
        "response": {
            "actionGroup": event.get("actionGroup", ""),
            "apiPath": event.get("apiPath", ""),
            "httpMethod": event.get("httpMethod", ""),
            "httpStatusCode": status,
            "responseBody": {"application/json": {"body": json.dumps(body, default=str)}},
        },
        "sessionAttributes": event.get("sessionAttributes") or {},
        "promptSessionAttributes": event.get("promptSessionAttributes") or {},
    }


def dispatch(event: dict[str, Any], routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]]) -> dict[str, Any]:
    """Run the route for (httpMethod, apiPath); map ToolError to its status, AWS errors to 502."""
    key = (str(event.get("httpMethod", "")).upper(), event.get("apiPath", ""))
    route = routes.get(key)
    if route is None:
        known = ", ".join(f"{m} {p}" for m, p in routes)
        return response(event, 404, {"error": f"unknown operation {key[0]} {key[1]}; this tool serves: {known}"})
    try:
        answer = route(arguments(event))
        size = body_bytes(answer)
        if size > MAX_BODY_BYTES:
            return response(event, 502, {"error": f"the answer is {size:,} bytes, more than the {MAX_BODY_BYTES:,} "
                                                  "an agent's tool call takes: ask for a shorter span"})
        return response(event, 200, answer)
    except ToolError as exc:
        return response(event, exc.status, {"error": exc.message})
    except Exception as exc:  # botocore ClientError and friends: tell the agent, don't crash its turn
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        return response(event, 502, {"error": f"AWS call failed: {code}: {exc}"})


def aws_client(service: str):
    """boto3 client honouring AWS_ENDPOINT_URL (the local endpoint) like the rest of the project."""
    import boto3

    return boto3.client(service, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
