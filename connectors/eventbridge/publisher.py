"""PutEvents with batching, bounded retries and an overflow path — Flink-free.

Batching: at most 10 entries and 256 KiB per PutEvents request, entry size
computed the way EventBridge does (`entry_size`). An entry too big on its own is
never sent; it overflows at once with reason OVERSIZED_ENTRY.

Retries: throttling, 5xx and every botocore error on the way (a connection refused,
reset or closed without an answer, a timeout; `connectors.retry.is_permanent_sdk_error`)
fail the whole request; a 200 with FailedEntryCount > 0 fails some entries. Either way
only the entries not yet accepted are re-sent, after an equal-jitter exponential
backoff, until `max_attempts` or `deadline_s` is reached. With the defaults (15
attempts, 0.25 s doubling to an 8 s cap, equal jitter) the waits alone add up to at
least ~40 s, so a 30 s outage of the endpoint is ridden out; the 90 s deadline bounds
the worst case. Entries whose per-entry error is permanent (validation,
malformed detail, access denied) are not retried, nor is a request refused for
good (access denied, missing bus) or one botocore cannot send at all (its
parameters, missing credentials, region: a configuration error): those entries
overflow at once, with the error as reason.

Overflow: when an entry cannot be delivered, `on_overflow(entry, reason)` is
called (the Flink sink turns it into a DELIVERY_FAILED dead letter).

Deduplication key: PutEvents has no client-supplied id (EventBridge assigns a
new EventId per attempt), so a retried or replayed entry can arrive twice. Every
entry carries its deterministic id (incident_id / check_id / finding_id) in the
detail; downstream deduplicates on (detail-type, that id). See `dedup_key`. It is not
put in `Resources`: PutEvents documents that field as ARNs of AWS resources, and an id
is not one (a non-ARN there may be refused by the service; moto accepts anything).
"""
from __future__ import annotations

from connectors.batching import PUT_EVENTS_MAX_BYTES, PUT_EVENTS_MAX_ENTRIES, limited_batches
from connectors.retry import equal_jitter_delay, is_permanent_sdk_error

import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


# Detail fields that carry the deterministic id, in the order they are looked up.
ID_FIELDS = ("incident_id", "check_id", "finding_id")

# Per-entry error codes that no retry will fix: the API's list of non-retryable ones
# (PutEventsResultEntry.ErrorCode in botocore's model), and two more that cannot heal either.
PERMANENT_ENTRY_ERRORS = frozenset(
    {"AccessDeniedException", "InvalidAccountIdException", "InvalidArgument", "MalformedDetail",
     "RedactionFailure", "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException",
     "ValidationException", "ResourceNotFoundException"}
)
# Whole-request error codes that no retry will fix (everything else is retried).
PERMANENT_REQUEST_ERRORS = frozenset(
    {"ValidationException", "AccessDeniedException", "ResourceNotFoundException",
     "UnrecognizedClientException", "InvalidSignatureException", "NotAuthorizedForSourceException"}
)

OverflowHandler = Callable[[dict[str, Any], str], None]


def entry_size(entry: dict[str, Any]) -> int:
    """Size EventBridge counts toward the 256 KiB request limit (AWS docs,
    'Calculating PutEvents event entry size'): 14 bytes if Time is set, plus the
    UTF-8 bytes of Source, DetailType, Detail and every Resources element."""
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        if entry.get(name):
            size += len(entry[name].encode("utf-8"))
    for resource in entry.get("Resources") or ():
        size += len(resource.encode("utf-8"))
    return size


def entry_id(entry: dict[str, Any]) -> str | None:
    """The deterministic id an entry carries (from its Detail), or None."""
    try:
        detail = json.loads(entry.get("Detail") or "{}")
    except ValueError:
        return None
    for name in ID_FIELDS:
        if isinstance(detail, dict) and detail.get(name):
            return str(detail[name])
    return None


def dedup_key(event: dict[str, Any]) -> tuple[str, str | None]:
    """Downstream dedup key of a delivered event as a rule target sees it
    (keys 'detail-type' and 'detail'): (detail-type, incident_id|check_id|finding_id)."""
    detail = event.get("detail") or {}
    for name in ID_FIELDS:
        if detail.get(name):
            return event.get("detail-type", ""), str(detail[name])
    return event.get("detail-type", ""), None


def make_entry(
    bus_name: str,
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    *,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A PutEvents entry whose identity is the detail's deterministic id.

    event_id defaults to detail[incident_id|check_id|finding_id] (it must exist: it is the
    downstream dedup key); no `Resources` (module docstring).
    """
    if event_id is None:
        event_id = next((str(detail[n]) for n in ID_FIELDS if detail.get(n)), None)
    if not event_id:
        raise ValueError(f"detail has none of {ID_FIELDS}: cannot build a deduplicable entry")
    return {
        "EventBusName": bus_name,
        "Source": source,
        "DetailType": detail_type,
        "Detail": json.dumps(detail, separators=(",", ":"), sort_keys=True, ensure_ascii=False),
    }


def batches(entries: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """Consecutive, order-keeping batches within 10 entries / 256 KiB. Callers drop
    entries bigger than the limit before (they can never be sent)."""
    return limited_batches(entries, max_items=PUT_EVENTS_MAX_ENTRIES, max_bytes=PUT_EVENTS_MAX_BYTES,
                           size_of=entry_size)


@dataclass
class PublisherCounters:
    sent: int = 0  # entries accepted by EventBridge
    requests: int = 0  # PutEvents calls made
    retried: int = 0  # entries re-sent (each re-send counts)
    throttled_requests: int = 0  # whole-request throttling/5xx/connection failures (retried)
    partial_failures: int = 0  # entries rejected inside a 200 response
    failed_over: int = 0  # entries handed to on_overflow

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class DeliveryResult:
    delivered: list[dict[str, Any]] = field(default_factory=list)
    overflowed: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def _log_overflow(entry: dict[str, Any], reason: str) -> None:
    log.error("EventBridge entry %s not delivered: %s", entry_id(entry), reason)


class EventBridgePublisher:
    """Delivers PutEvents entries; see the module docstring for limits and retry policy.

    `client` is a boto3 "events" client (connectors.aws.make_client("events")),
    best built with max_attempts=1 so this class is the only retry loop.
    """

    def __init__(
        self,
        bus_name: str,
        client: Any,
        max_attempts: int = 15,
        base_backoff_s: float = 0.25,
        max_backoff_s: float = 8.0,
        on_overflow: OverflowHandler | None = None,
        *,
        deadline_s: float = 90.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.bus_name = bus_name
        self.client = client
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_overflow = on_overflow or _log_overflow
        self.deadline_s = deadline_s
        self.counters = PublisherCounters()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    def backoff_delay(self, attempt: int) -> float:
        """Equal jitter: wait in [d/2, d], d = min(cap, base * 2**attempt)."""
        return equal_jitter_delay(attempt, self.base_backoff_s, self.max_backoff_s, self._rng)

    def _with_bus(self, entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("EventBusName"):
            return entry
        return {**entry, "EventBusName": self.bus_name}

    def publish(self, entries: Sequence[dict[str, Any]]) -> DeliveryResult:
        """Deliver `entries` in order-keeping batches; returns what was delivered and
        what overflowed. Never raises for delivery problems."""
        result = DeliveryResult()
        sendable = []
        for entry in entries:
            entry = self._with_bus(entry)
            if entry_size(entry) > PUT_EVENTS_MAX_BYTES:
                self._overflow(entry, f"OVERSIZED_ENTRY: {entry_size(entry)} bytes > {PUT_EVENTS_MAX_BYTES}",
                               result)
            else:
                sendable.append(entry)
        for batch in batches(sendable):
            self._deliver_batch(batch, result)
        return result

    def _overflow(self, entry: dict[str, Any], reason: str, result: DeliveryResult) -> None:
        self.counters.failed_over += 1
        result.overflowed.append((entry, reason))
        try:
            self.on_overflow(entry, reason)
        except Exception:  # the overflow path must not lose the rest of the batch
            log.exception("on_overflow failed for %s", entry_id(entry))

    def _deliver_batch(self, batch: list[dict[str, Any]], result: DeliveryResult) -> None:
        pending = list(batch)
        started = self._clock()
        last_error = "no attempt made"
        for attempt in range(self.max_attempts):
            if attempt:
                self.counters.retried += len(pending)
            self.counters.requests += 1
            try:
                response = self.client.put_events(Entries=pending)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                last_error = f"{code or status}: {exc.response.get('Error', {}).get('Message', '')}"
                if code in PERMANENT_REQUEST_ERRORS and status < 500:
                    break
                self.counters.throttled_requests += 1
            except BotoCoreError as exc:
                # No answer (connection refused / reset / closed, timeout): retried. A request
                # botocore will not send (parameters, credentials, region) is refused every time.
                last_error = f"{type(exc).__name__}: {exc}"
                if is_permanent_sdk_error(exc):
                    last_error += " (a configuration error: not retried)"
                    break
                self.counters.throttled_requests += 1
            else:
                pending, last_error = self._accept(pending, response, result)
                if not pending:
                    return
            if attempt + 1 >= self.max_attempts:
                break
            delay = self.backoff_delay(attempt)
            if self._clock() - started + delay > self.deadline_s:
                last_error += f" (deadline {self.deadline_s}s reached)"
                break
            self._sleep(delay)
        for entry in pending:
            self._overflow(entry, f"DELIVERY_FAILED after {attempt + 1} attempts: {last_error}", result)

    def _accept(
        self, pending: list[dict[str, Any]], response: dict[str, Any], result: DeliveryResult
    ) -> tuple[list[dict[str, Any]], str]:
        """Split a 200 response into delivered, permanently failed and retryable entries."""
        outcomes = response.get("Entries") or []
        if len(outcomes) != len(pending):
            # Cannot tell which entries were accepted; re-send all (dedup by id downstream).
            return pending, f"response had {len(outcomes)} results for {len(pending)} entries"
        retry: list[dict[str, Any]] = []
        last_error = ""
        for entry, outcome in zip(pending, outcomes):
            code = outcome.get("ErrorCode")
            if not code:
                self.counters.sent += 1
                result.delivered.append(entry)
                continue
            self.counters.partial_failures += 1
            last_error = f"{code}: {outcome.get('ErrorMessage', '')}"
            if code in PERMANENT_ENTRY_ERRORS:
                self._overflow(entry, f"DELIVERY_FAILED (permanent) {last_error}", result)
            else:
                retry.append(entry)
        return retry, last_error
