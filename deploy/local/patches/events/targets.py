"""EventBridge rule targets moto 5.2.5 does not deliver to: Step Functions and SNS (and SQS
targets with input settings, which moto delivers without them).

moto's ``Rule.send_to_targets`` handles SQS, CloudWatch Logs, archives, buses and
API destinations and raises NotImplementedError for anything else, which turns
the caller's PutEvents into an HTTP 500. We wrap it: targets moto knows are
passed to the original method untouched (on a shallow copy of the rule holding
only those targets, so concurrent PutEvents never see a half-edited rule), and
the others are delivered here with the target's Input / InputPath /
InputTransformer applied as AWS applies them, to replayed events too. An SQS target
with any of those is delivered here as well: moto applies only an InputTransformer
to SQS, and none to a replayed event.

Like AWS, a failing delivery never fails PutEvents: the error is logged (AWS
would retry and then use the target's dead-letter queue).

Asynchronous delivery, as on AWS: PutEvents returns once the events are accepted,
and the rules' targets are invoked afterwards. moto delivers inside the PutEvents
request, so every matching rule's targets (an SQS send, an SNS publish, a Step
Functions execution that really runs its ASL here) made the caller wait: measured
on this endpoint with the core stack, ~7 ms per entry that only the catch-all rule
matches and ~35 ms per CRITICAL composite (350 ms for a batch of 10), which made
the job's sink queue its flushes behind a slow PutEvents. Deliveries now run on
one background thread in arrival order (so a queue or archive sees events in the
order they were put); `wait_for_deliveries()` blocks until it has caught up.
"""
from __future__ import annotations

import copy
import json
import logging
import queue
import threading
from typing import Any, Callable

from ..sns.publish import publish as sns_publish
from ..sqs.send_message import send_message as sqs_send_message
from ..stepfunctions.start_execution import start_execution as sfn_start_execution

log = logging.getLogger("deploy.local.events")

# service name in the target ARN -> (account, region, arn, payload) -> delivery id
EXTRA_TARGET_DELIVERERS: dict[str, Callable[[str, str, str, Any], str]] = {
    "states": sfn_start_execution,
    "sns": sns_publish,
}

# Kept so tests and `status` can tell what was delivered where (bounded).
delivery_log: list[dict[str, Any]] = []
_DELIVERY_LOG_MAX = 1000

# (deliver, rule snapshot, event, transform_input) in PutEvents order; one worker drains it.
_pending: "queue.Queue[tuple[Callable[..., None], Any, Any, bool]]" = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def _drain() -> None:
    while True:
        deliver, rule, event, transform_input = _pending.get()
        try:
            deliver(rule, event, transform_input)
        except Exception:  # noqa: BLE001 - AWS never fails PutEvents for a target, nor stops delivering
            log.exception("delivery of rule %s failed", getattr(rule, "name", "?"))
        finally:
            _pending.task_done()


def _enqueue(deliver: Callable[..., None], rule: Any, event: Any, transform_input: bool) -> None:
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_drain, name="eventbridge-target-delivery", daemon=True)
            _worker.start()
    _pending.put((deliver, rule, event, transform_input))


def wait_for_deliveries(timeout_s: float = 30.0) -> bool:
    """Block until every accepted event has been handed to its targets (True), or timeout_s."""
    done = threading.Event()
    threading.Thread(target=lambda: (_pending.join(), done.set()), daemon=True).start()
    return done.wait(timeout_s)


def _record(entry: dict[str, Any]) -> None:
    delivery_log.append(entry)
    del delivery_log[:-_DELIVERY_LOG_MAX]


def _service_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


# The event as AWS hands it to a target without an input setting (moto's default template
# leaves out "account" and keeps "time" as epoch seconds).
_ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


_INPUT_SETTINGS = ("Input", "InputPath", "InputTransformer")


def _delivered_here(target: dict[str, Any]) -> bool:
    """Step Functions and SNS targets, and SQS targets with input settings: moto applies only an
    InputTransformer to SQS, and not to replayed events (sqs/send_message.py)."""
    service = _service_of(target["Arn"])
    return service in EXTRA_TARGET_DELIVERERS or (
        service == "sqs" and any(key in target for key in _INPUT_SETTINGS))


def _iso_time(value: Any) -> Any:
    # moto keeps "time" as epoch seconds internally; AWS sends ISO-8601 (moto's
    # SQS delivery converts the same way).
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp

        return iso_8601_datetime_without_milliseconds(utcfromtimestamp(float(value)))
    return value


def _payload_for_target(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """The body EventBridge sends to a target: its Input, InputPath or InputTransformer applied to
    the event with its ``time`` in ISO-8601 as on AWS (``$.time`` and ``<time>`` give the ISO text;
    moto's own ``ingestion-time`` stays epoch seconds), else the event's envelope. Replayed events
    too: AWS applies a target's input to them as to any."""
    from moto.events.utils import EventTemplateParser

    aws_event = dict(event, time=_iso_time(event.get("time")))
    if "Input" in target:
        return json.loads(target["Input"])
    envelope = {key: aws_event.get(key) for key in _ENVELOPE_KEYS}
    if "replay-name" in aws_event:
        envelope["replay-name"] = aws_event["replay-name"]     # a replayed event says so, on AWS too
    if "InputPath" in target:
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(envelope)
        return matches[0].value if matches else None
    transformer = target.get("InputTransformer")
    if not transformer:
        return envelope
    return EventTemplateParser.parse(
        input_template=transformer.get("InputTemplate"),
        input_paths_map=transformer.get("InputPathsMap", {}),
        event=aws_event,
    )


def apply() -> None:
    from moto.events.models import Rule

    if getattr(Rule.send_to_targets, "_adops_patched", False):
        return
    original_send_to_targets = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
        # A snapshot of the rule as it is now (a later PutTargets must not change where an
        # already accepted event goes); delivered after PutEvents has answered.
        rule = copy.copy(self)
        rule.targets = list(self.targets)
        _enqueue(deliver, rule, copy.deepcopy(original_event), transform_input)

    def deliver(self: Rule, original_event: Any, transform_input: bool) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        native = [t for t in self.targets if not _delivered_here(t)]
        extra = [t for t in self.targets if _delivered_here(t)]
        for target in native:
            # moto's own targets, one call each (it applies their input itself; its loop stops at
            # the first target that raises). On AWS each target is independent.
            view = copy.copy(self)
            view.targets = [target]
            try:
                original_send_to_targets(view, original_event, transform_input)
                _record({"rule": self.name, "target": target["Arn"], "ok": True})
            except Exception as exc:  # noqa: BLE001 - AWS never fails PutEvents for a target
                log.exception("delivery of rule %s to %s failed", self.name, target["Arn"])
                _record({"rule": self.name, "target": target["Arn"], "ok": False, "error": repr(exc)})
        for target in extra:
            arn = target["Arn"]
            service = _service_of(arn)
            try:
                payload = _payload_for_target(target, original_event)
                if service == "sqs":
                    group_id = target.get("SqsParameters", {}).get("MessageGroupId")
                    delivery_id = sqs_send_message(arn, payload, group_id)
                else:
                    delivery_id = EXTRA_TARGET_DELIVERERS[service](
                        self.account_id, self.region_name, arn, payload
                    )
                record = {"rule": self.name, "target": arn, "ok": True, "id": delivery_id}
            except Exception as exc:  # noqa: BLE001 - AWS never fails PutEvents for a target
                log.exception("delivery of rule %s to %s failed", self.name, arn)
                record = {"rule": self.name, "target": arn, "ok": False, "error": repr(exc)}
            _record(record)

    send_to_targets._adops_patched = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
