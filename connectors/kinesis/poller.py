"""Reading a Kinesis stream with boto3, shard by shard — the Flink-free core.

The PyFlink wiring (`flink_source.py`) keeps `ShardPosition`s in keyed state and
calls `StreamReader.poll_once` on every tick; everything that decides *what* to
read lives here so it can be tested against a real (moto) server without Flink.

Guarantees, per shard:
  * records come out in sequence-number order, each once: the next GetRecords
    always continues after the last *emitted* sequence number (AFTER_SEQUENCE_NUMBER
    when an iterator has to be re-acquired: after a restart, or after
    ExpiredIteratorException);
  * a child shard (split or merge) is read only after every parent that this
    reader owns is fully consumed, so the records of one partition key stay in
    order across a resharding and none is read twice;
  * throttling (ProvisionedThroughputExceededException, LimitExceeded, 5xx,
    connection errors) backs off exponentially with jitter and a cap; a poll that
    stays throttled returns no records (the caller polls again on the next tick)
    and never raises, so the job does not fail on a busy stream.

Payloads are decoded as UTF-8 text and not parsed: parsing and validation belong
to the SQL layer, which routes bad JSON to the dead-letter output with a reason.
Bytes that are not UTF-8 are passed on with `encoding_valid=False` (payload with
replacement characters) so the caller can dead-letter them as INVALID_ENCODING.
"""
from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from connectors.event_time import MAX_AHEAD_MS, payload_timestamp_ms
from connectors.retry import equal_jitter_delay, is_permanent_sdk_error

log = logging.getLogger(__name__)

# GetRecords returns at most 10,000 records (and 10 MiB) per call.
MAX_RECORDS_PER_GET = 10_000
#: A batch's event time (`StreamReader.shard_event_ms`) is the median payload time of at most this
#: many of its records, spread evenly over it: parsing every payload of a 10,000-record batch in
#: Python took about a quarter of the reader's CPU (connectors/kinesis/README.md).
EVENT_TIME_SAMPLE = 101

THROTTLING_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "KMSThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
EXPIRED_ITERATOR_ERROR_CODES = frozenset({"ExpiredIteratorException"})
# How far before its LATEST iterator a shard's position says it started (ShardPosition.latest_since_ms):
# the host's clock may run ahead of the service's arrival timestamps. Too early costs at most this many
# seconds of records put before the start being read after a restore; too late would lose records.
LATEST_CLOCK_MARGIN_MS = 5_000


# --------------------------------------------------------------------------- start position


@dataclass(frozen=True)
class StartPosition:
    """Where a shard is read from when no sequence number is stored for it.

    kind: TRIM_HORIZON (oldest record kept), LATEST (only records put after the
    iterator is taken) or AT_TIMESTAMP (first record at/after `timestamp_ms`).
    """

    kind: str = "TRIM_HORIZON"
    timestamp_ms: int | None = None

    KINDS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"start position must be one of {self.KINDS}, got {self.kind!r}")
        if self.kind == "AT_TIMESTAMP" and self.timestamp_ms is None:
            raise ValueError("AT_TIMESTAMP needs timestamp_ms")

    @classmethod
    def parse(cls, text: "str | StartPosition") -> "StartPosition":
        """'TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP:<epoch ms>' or 'AT_TIMESTAMP:<ISO-8601>'."""
        if isinstance(text, StartPosition):
            return text
        kind, _, argument = text.strip().partition(":")
        kind = kind.upper()
        if kind != "AT_TIMESTAMP":
            return cls(kind)
        argument = argument.strip()
        if argument.lstrip("-").isdigit():
            return cls(kind, int(argument))
        parsed = _dt.datetime.fromisoformat(argument.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"AT_TIMESTAMP needs a zone: {argument!r}")
        return cls(kind, int(parsed.timestamp() * 1000))

    def iterator_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"ShardIteratorType": self.kind}
        if self.kind == "AT_TIMESTAMP":
            arguments["Timestamp"] = _dt.datetime.fromtimestamp(
                self.timestamp_ms / 1000.0, tz=_dt.timezone.utc
            )
        return arguments


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class ShardInfo:
    """What ListShards says about a shard (lineage and whether it is closed)."""

    shard_id: str
    parent_shard_id: str | None = None
    adjacent_parent_shard_id: str | None = None
    starting_hash_key: str = "0"
    # Set once the shard is closed (split/merge); no record is ever added after it.
    ending_sequence_number: str | None = None

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(p for p in (self.parent_shard_id, self.adjacent_parent_shard_id) if p)

    @classmethod
    def from_api(cls, shard: dict[str, Any]) -> "ShardInfo":
        return cls(
            shard_id=shard["ShardId"],
            parent_shard_id=shard.get("ParentShardId"),
            adjacent_parent_shard_id=shard.get("AdjacentParentShardId"),
            starting_hash_key=shard.get("HashKeyRange", {}).get("StartingHashKey", "0"),
            ending_sequence_number=shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ShardInfo":
        return cls(**data)


@dataclass
class ShardPosition:
    """The part of a shard's reading that must survive a restart (Flink keyed state)."""

    shard_id: str
    last_sequence_number: str | None = None  # last record handed downstream
    finished: bool = False  # closed and read to its end
    # An iterator was taken while the shard was open: the reader has followed it since, so
    # whatever its children hold came after what it read (see `StreamReader.start_of`).
    followed_open: bool = False
    # When a LATEST iterator was first taken (epoch ms, less LATEST_CLOCK_MARGIN_MS): while no
    # record has been emitted, an iterator taken again (a restore, an expired iterator) starts
    # AT_TIMESTAMP here. A fresh LATEST would skip whatever was put in between: after a restore,
    # every record put since the checkpoint on a shard that had not yet had one.
    latest_since_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"s": self.last_sequence_number, "f": self.finished}
        if self.followed_open:
            data["o"] = True
        if self.latest_since_ms is not None and self.last_sequence_number is None:
            data["t"] = self.latest_since_ms
        return data

    @classmethod
    def from_json(cls, shard_id: str, data: dict[str, Any]) -> "ShardPosition":
        return cls(shard_id, data.get("s"), bool(data.get("f")), bool(data.get("o")), data.get("t"))


def positions_to_text(positions: dict[str, ShardPosition]) -> str:
    return json.dumps({sid: p.to_json() for sid, p in sorted(positions.items())}, separators=(",", ":"))


def positions_from_text(text: str | None) -> dict[str, ShardPosition]:
    if not text:
        return {}
    return {sid: ShardPosition.from_json(sid, data) for sid, data in json.loads(text).items()}


class KinesisRecord(NamedTuple):
    """One record as read (a named tuple: made once per record, and cheaper to make than a frozen dataclass)."""

    payload: str
    partition_key: str
    shard_id: str
    sequence_number: str
    arrival_ms: int
    # False when Data was not valid UTF-8; payload then holds replacement characters.
    encoding_valid: bool = True


@dataclass
class PollerMetrics:
    records_read: int = 0
    get_records_calls: int = 0
    throttles: int = 0
    iterator_refreshes: int = 0
    transient_errors: int = 0
    invalid_encoding: int = 0
    shards_finished: int = 0
    empty_polls: int = 0
    seconds_in_get_records: float = 0.0
    seconds_backing_off: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- backoff


@dataclass
class ExponentialBackoff:
    """Equal-jitter exponential backoff (connectors.retry): attempt n waits in [d/2, d], d = min(cap, base * 2**n)."""

    base_s: float = 0.1
    cap_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return equal_jitter_delay(attempt, self.base_s, self.cap_s, self.rng)


# --------------------------------------------------------------------------- the reader's client


def reader_client(*, endpoint_url: str | None = None, region: str | None = None, **options: Any) -> Any:
    """The boto3 Kinesis client a reader polls with: raw timestamps (connectors.aws), and GetRecords'
    records parsed by `_parse_records_before_botocore`. `options` go to `connectors.aws.make_client`."""
    from connectors.aws import make_client

    return parse_records_before_botocore(
        make_client("kinesis", endpoint_url=endpoint_url, region=region, raw_timestamps=True, **options))


def parse_records_before_botocore(client: Any) -> Any:
    """`client` (a Kinesis client made with raw timestamps: the hook leaves them as sent, as botocore then
    does), its GetRecords records parsed by `_parse_records_before_botocore`."""
    members = frozenset(client.meta.service_model.shape_for("Record").members)
    client.meta.events.register("before-parse.kinesis.GetRecords",
                                functools.partial(_parse_records_before_botocore, members))
    return client


def _parse_records_before_botocore(record_members: frozenset, response_dict: dict[str, Any],
                                   customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore's `before-parse` hook for GetRecords: the records of a successful answer are read here
    and taken out of the body that botocore then parses (`NextShardIterator`, `MillisBehindLatest`,
    `ChildShards`); botocore adds `customized_response_dict` to its result.

    Why: botocore walks every field of every record through its generic shape parser, which was about
    half of the reader's CPU per record (a profile of 100,000 records; connectors/kinesis/README.md).
    Here a record is its JSON object with `Data` base64-decoded to bytes: what botocore makes of it
    with raw timestamps (tests/test_kinesis_source.py compares the two on the same answers). Where
    botocore would make something else of the body, it is left to botocore whole: an error answer,
    a body that is not UTF-8 JSON with a list of records, and a record with a member the model does
    not know or a null one (botocore leaves those out)."""
    if response_dict.get("status_code") != 200:
        return
    try:
        body = json.loads(response_dict["body"].decode("utf-8"))
        records = body.pop("Records")
        for record in records:
            if not record.keys() <= record_members or None in record.values():
                return
            record["Data"] = base64.b64decode(record["Data"])
    except Exception:  # noqa: BLE001 - whatever it is, botocore parses (or rejects) the body as it would have
        return
    customized_response_dict["Records"] = records
    response_dict["body"] = json.dumps(body).encode()


# --------------------------------------------------------------------------- helpers


def decode_payload(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def _arrival_ms(record: dict[str, Any]) -> int:
    arrival = record.get("ApproximateArrivalTimestamp")
    if isinstance(arrival, (int, float)):  # raw epoch seconds (connectors.aws raw_timestamps: the reader's client)
        return int(arrival * 1000)
    if isinstance(arrival, _dt.datetime):
        return int(arrival.timestamp() * 1000)
    if isinstance(arrival, str):
        try:
            return int(float(arrival) * 1000)
        except ValueError:
            return int(_dt.datetime.fromisoformat(arrival.replace("Z", "+00:00")).timestamp() * 1000)
    return int(time.time() * 1000)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_throttling(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in THROTTLING_ERROR_CODES or status >= 500
    return False


def list_shards(client: Any, stream_name: str, *, page_size: int = 1000) -> list[ShardInfo]:
    """Every shard ListShards reports (open and closed-but-retained), following NextToken."""
    shards: list[ShardInfo] = []
    request: dict[str, Any] = {"StreamName": stream_name, "MaxResults": page_size}
    while True:
        response = _list_shards_page(client, stream_name, request)
        shards.extend(ShardInfo.from_api(s) for s in response.get("Shards", []))
        token = response.get("NextToken")
        if not token:
            return shards
        # With NextToken, AWS refuses StreamName (InvalidArgumentException).
        request = {"NextToken": token, "MaxResults": page_size}


def _list_shards_page(client: Any, stream_name: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return client.list_shards(**request)
    except ClientError as exc:
        # moto 5.2.5 does the opposite of AWS: it needs StreamName next to NextToken
        # (the token checksums it) and answers InvalidToken without. Retry its way.
        if "NextToken" in request and error_code(exc) == "InvalidToken":
            return client.list_shards(StreamName=stream_name, **request)
        raise


def lineage_root(shard_id: str, shards_by_id: dict[str, ShardInfo]) -> str:
    """Follow ParentShardId up to the oldest ancestor still listed.

    Splits keep a whole family under one root, so one Flink key owns a parent and
    its children and can order them. (A merge child is filed under its
    ParentShardId's root; see `StreamReader.readable_shards` for its adjacent parent.)
    """
    seen = set()
    current = shard_id
    while True:
        seen.add(current)
        parent = shards_by_id[current].parent_shard_id
        if not parent or parent not in shards_by_id or parent in seen:
            return current
        current = parent


def group_by_lineage(shards: Iterable[ShardInfo]) -> dict[str, list[ShardInfo]]:
    by_id = {s.shard_id: s for s in shards}
    groups: dict[str, list[ShardInfo]] = {}
    for shard in by_id.values():
        groups.setdefault(lineage_root(shard.shard_id, by_id), []).append(shard)
    for members in groups.values():
        members.sort(key=lambda s: s.shard_id)
    return dict(sorted(groups.items()))


# --------------------------------------------------------------------------- one shard


@dataclass
class PollResult:
    records: list[KinesisRecord]
    finished: bool
    millis_behind_latest: int | None = None
    throttled: bool = False


class ShardPoller:
    """Reads one shard with GetRecords, continuing after `position.last_sequence_number`.

    The shard iterator lives only in memory (iterators expire after 5 minutes and
    are not meant to be stored); the sequence number in `position` is the durable
    resume point, updated only for records actually returned by `poll`.
    """

    def __init__(
        self,
        client: Any,
        stream_name: str,
        shard: ShardInfo,
        position: ShardPosition,
        start_position: StartPosition,
        *,
        max_records_per_call: int = MAX_RECORDS_PER_GET,
        max_attempts_per_poll: int = 6,
        backoff: ExponentialBackoff | None = None,
        metrics: PollerMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= max_records_per_call <= MAX_RECORDS_PER_GET:
            raise ValueError(f"max_records_per_call must be in 1..{MAX_RECORDS_PER_GET}")
        self.client = client
        self.stream_name = stream_name
        self.shard = shard
        self.position = position
        self.start_position = start_position
        self.max_records_per_call = max_records_per_call
        self.max_attempts_per_poll = max_attempts_per_poll
        self.backoff = backoff or ExponentialBackoff()
        self.metrics = metrics or PollerMetrics()
        self._sleep = sleep
        self._iterator: str | None = None

    def update_shard_info(self, shard: ShardInfo) -> None:
        """Newer ListShards result (e.g. the shard has since been closed)."""
        self.shard = shard

    def _acquire_iterator(self) -> str:
        arguments: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": self.shard.shard_id}
        if self.position.last_sequence_number is not None:
            arguments.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=self.position.last_sequence_number,
            )
        elif self.position.latest_since_ms is not None:
            arguments.update(StartPosition("AT_TIMESTAMP", self.position.latest_since_ms).iterator_arguments())
        else:
            if self.start_position.kind == "LATEST":
                self.position.latest_since_ms = int(time.time() * 1000) - LATEST_CLOCK_MARGIN_MS
            arguments.update(self.start_position.iterator_arguments())
        iterator = self.client.get_shard_iterator(**arguments)["ShardIterator"]
        if self.shard.ending_sequence_number is None:
            self.position.followed_open = True
        return iterator

    def _read_to_closed_end(self) -> bool:
        """A closed shard whose last record has been emitted (the service may still hand out iterators)."""
        end = self.shard.ending_sequence_number
        last = self.position.last_sequence_number
        return end is not None and last is not None and int(last) >= int(end)

    def _trimmed_away(self) -> bool:
        """Whether the stream answers ListShards without this shard (retention trimmed it). Until
        2026-12-07 any "not found" finished a closed shard, so a parent being drained when the
        endpoint was briefly missing lost its unread records. Any error asking is a no."""
        try:
            return all(s.shard_id != self.shard.shard_id for s in list_shards(self.client, self.stream_name))
        except (ClientError, BotoCoreError) as exc:
            log.debug("shard %s: ListShards after ResourceNotFound: %s", self.shard.shard_id, exc)
            return False

    def poll(self) -> PollResult:
        """One GetRecords (plus retries); never raises for throttling or expired iterators."""
        if self.position.finished:
            return PollResult([], True)
        if self._read_to_closed_end():
            return self._finish()
        for attempt in range(self.max_attempts_per_poll):
            try:
                if self._iterator is None:
                    self._iterator = self._acquire_iterator()
                started = time.perf_counter()
                self.metrics.get_records_calls += 1
                try:
                    response = self.client.get_records(
                        ShardIterator=self._iterator, Limit=self.max_records_per_call
                    )
                finally:
                    self.metrics.seconds_in_get_records += time.perf_counter() - started
            except ClientError as exc:
                if error_code(exc) in EXPIRED_ITERATOR_ERROR_CODES:
                    # Re-acquire from the last emitted sequence number: nothing skipped,
                    # nothing re-emitted. No wait needed, the next call is a fresh iterator.
                    self.metrics.iterator_refreshes += 1
                    self._iterator = None
                    continue
                if error_code(exc) == "ResourceNotFoundException":
                    if self.shard.ending_sequence_number is not None and self._trimmed_away():
                        # A closed shard trimmed away by retention: nothing left to read.
                        return self._finish()
                    # An open shard is never trimmed, and a closed one the stream still lists is
                    # not gone: the stream is missing for now (an endpoint restarting with its
                    # state). Finishing would lose all it still holds -- for a closed parent being
                    # drained, its unread tail, and the finished flag is checkpointed -- so keep
                    # the position and try again, backing off. (A stream deleted and re-created is
                    # another stream, whose sequence numbers the position does not name: start the
                    # job on it without --restore; connectors/kinesis/README.md.)
                    self.metrics.transient_errors += 1
                    self._iterator = None
                    self._back_off(attempt, exc, count_throttle=False)
                    continue
                if not is_throttling(exc):
                    raise
                self._back_off(attempt, exc)
                continue
            except BotoCoreError as exc:
                # No answer: a connection refused, reset or closed without one (ConnectionClosedError,
                # which failed the task until 2026-12-06), a timeout. A request botocore cannot send at
                # all (parameters, credentials, region) fails the same way every time: raised.
                if is_permanent_sdk_error(exc):
                    raise
                self.metrics.transient_errors += 1
                # The iterator may or may not have been consumed server-side; an iterator
                # stays valid for reuse, so keep it (GetRecords is a pure read).
                self._back_off(attempt, exc, count_throttle=False)
                continue
            return self._accept(response)
        return PollResult([], False, throttled=True)

    def _back_off(self, attempt: int, exc: BaseException, *, count_throttle: bool = True) -> None:
        if count_throttle:
            self.metrics.throttles += 1
        delay = self.backoff.delay(attempt)
        log.debug("shard %s: %s, backing off %.3fs", self.shard.shard_id, exc, delay)
        self.metrics.seconds_backing_off += delay
        self._sleep(delay)

    def _accept(self, response: dict[str, Any]) -> PollResult:
        raw_records = response.get("Records", [])
        records = []
        for raw in raw_records:
            payload, valid = decode_payload(raw["Data"])
            if not valid:
                self.metrics.invalid_encoding += 1
            records.append(
                KinesisRecord(
                    payload=payload,
                    partition_key=raw["PartitionKey"],
                    shard_id=self.shard.shard_id,
                    sequence_number=raw["SequenceNumber"],
                    arrival_ms=_arrival_ms(raw),
                    encoding_valid=valid,
                )
            )
        if records:
            self.position.last_sequence_number = records[-1].sequence_number
            self.metrics.records_read += len(records)
        else:
            self.metrics.empty_polls += 1
        self._iterator = response.get("NextShardIterator")
        behind = response.get("MillisBehindLatest")
        if self._iterator is None or self._read_to_closed_end():
            result = self._finish()
            return PollResult(records, True, behind)
        if (
            not records
            and self.shard.ending_sequence_number is not None
            and self.position.last_sequence_number is None
            and behind == 0
        ):
            # Closed shard that never held a record we could read (e.g. split right
            # after creation, or LATEST on a closed shard).
            self._finish()
            return PollResult(records, True, behind)
        return PollResult(records, False, behind)

    def _finish(self) -> PollResult:
        if not self.position.finished:
            self.position.finished = True
            self.metrics.shards_finished += 1
        self._iterator = None
        return PollResult([], True)


# --------------------------------------------------------------------------- a set of shards


# The floor of a lagging shard whose event time is not known yet: the smallest time the job's
# watermark takes as a floor (0 means none), so the subtask's watermark does not move.
UNKNOWN_LAG_FLOOR_MS = 1


class StreamReader:
    """Reads a set of shards of one stream (the whole stream, or one lineage group).

    `positions` is the durable part (sequence numbers + finished flags); pass the
    restored dict back in after a restart and reading resumes where it stopped.
    """

    def __init__(
        self,
        client: Any,
        stream_name: str,
        start_position: StartPosition | str = "TRIM_HORIZON",
        *,
        positions: dict[str, ShardPosition] | None = None,
        max_records_per_call: int = MAX_RECORDS_PER_GET,
        max_attempts_per_poll: int = 6,
        backoff: ExponentialBackoff | None = None,
        metrics: PollerMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.start_position = StartPosition.parse(start_position)
        self.positions: dict[str, ShardPosition] = dict(positions or {})
        self.max_records_per_call = max_records_per_call
        self.max_attempts_per_poll = max_attempts_per_poll
        self.backoff = backoff or ExponentialBackoff()
        self.metrics = metrics or PollerMetrics()
        self._sleep = sleep
        self.shards: dict[str, ShardInfo] = {}
        self._pollers: dict[str, ShardPoller] = {}
        # Event-time pacing (in memory; rebuilt from the records after a restore).
        self.shard_event_ms: dict[str, int] = {}
        self.shard_active: dict[str, bool] = {}
        # Shards whose last poll gave up on throttling / transient errors (records are waiting).
        self.throttled_shards: set[str] = set()

    # -- discovery
    def discover(self) -> list[ShardInfo]:
        """ListShards (paginated) and adopt the result as the set of shards to read."""
        shards = list_shards(self.client, self.stream_name)
        self.set_shards(shards)
        return shards

    def set_shards(self, shards: Iterable[ShardInfo]) -> None:
        """Adopt a shard list discovered elsewhere (the Flink fan-out does ListShards once for all keys)."""
        self.shards = {s.shard_id: s for s in shards}
        for shard_id, poller in self._pollers.items():
            if shard_id in self.shards:
                poller.update_shard_info(self.shards[shard_id])

    def _parent_done(self, parent_id: str) -> bool:
        if parent_id not in self.shards:
            # Not ours (a merge's adjacent parent in another lineage group) or trimmed
            # by retention; nothing this reader could wait for.
            return True
        position = self.positions.get(parent_id)
        return position is not None and position.finished

    def readable_shards(self) -> list[str]:
        """Shards not yet finished whose parents (known to this reader) are all finished."""
        return [
            shard_id
            for shard_id, shard in sorted(self.shards.items())
            if not self.positions.get(shard_id, ShardPosition(shard_id)).finished
            and all(self._parent_done(p) for p in shard.parents)
        ]

    def start_of(self, shard_id: str) -> StartPosition:
        """Where a shard with no stored sequence number starts.

        The configured start position applies to the shards the reader finds. A child of a
        shard the reader has followed (read records from, or held an iterator on while it
        was open) starts at TRIM_HORIZON instead: its records all came after the parent's,
        which were read, so a LATEST (or AT_TIMESTAMP) iterator taken only once the parent
        is drained would skip whatever was put into the child in between (as the Flink
        Kinesis connector does, shards found after the start are read from their
        beginning). A child of a parent this reader never followed, such as a split
        older than a LATEST start, keeps the configured position.
        """
        for parent_id in self.shards[shard_id].parents:
            parent = self.positions.get(parent_id)
            if parent is not None and (parent.last_sequence_number is not None or parent.followed_open):
                return StartPosition("TRIM_HORIZON")
        return self.start_position

    def _poller(self, shard_id: str) -> ShardPoller:
        poller = self._pollers.get(shard_id)
        if poller is None:
            position = self.positions.setdefault(shard_id, ShardPosition(shard_id))
            poller = ShardPoller(
                self.client,
                self.stream_name,
                self.shards[shard_id],
                position,
                self.start_of(shard_id),
                max_records_per_call=self.max_records_per_call,
                max_attempts_per_poll=self.max_attempts_per_poll,
                backoff=self.backoff,
                metrics=self.metrics,
                sleep=self._sleep,
            )
            self._pollers[shard_id] = poller
        return poller

    # -- reading
    def poll_once(self, may_poll: Callable[[str], bool] | None = None,
                  event_limit_ms: Callable[[str, int | None], int | None] | None = None,
                  ) -> list[KinesisRecord]:
        """One GetRecords on every readable shard. A shard that finishes during this
        call unblocks its children, which are read from the next call on.

        may_poll(shard_id) -> False skips the shard this time (event-time pacing,
        `EventTimeAlignment`); `shard_event_ms` / `shard_active` are kept up to date
        for it: the largest payload event time emitted per shard, and whether the shard
        still has a backlog (its last poll returned records and was not at the tip).

        event_limit_ms(shard_id, first_ms) -> L (first_ms: the batch's first payload time
        when the shard has none yet, else None): records after the first one whose payload time is
        beyond L are not emitted this time; the shard's position stays at the last emitted
        record and the next poll re-reads the rest (a fresh AFTER_SEQUENCE_NUMBER
        iterator), so a large GetRecords batch cannot run far ahead either."""
        records: list[KinesisRecord] = []
        for shard_id in self.readable_shards():
            if may_poll is not None and not may_poll(shard_id):
                continue
            if shard_id not in self.shard_event_ms:
                # A split's / merge's child starts where its parents ended (its first records
                # follow theirs), so it lags exactly as much as they did until it has a batch.
                inherited = [self.shard_event_ms[p] for p in self.shards[shard_id].parents
                             if p in self.shard_event_ms]
                if inherited:
                    self.shard_event_ms[shard_id] = min(inherited)
            poller = self._poller(shard_id)
            previous = poller.position.last_sequence_number
            result = poller.poll()
            if result.throttled:
                self.throttled_shards.add(shard_id)
            else:
                self.throttled_shards.discard(shard_id)
            limit = None
            if event_limit_ms is not None and result.records:
                first_ms = None
                if shard_id not in self.shard_event_ms:
                    first_ms = next((t for t in map(payload_event_time_ms, (r.payload for r in result.records))
                                     if t is not None), None)
                limit = event_limit_ms(shard_id, first_ms)
            # A LATEST iterator cannot be re-acquired at a record it already passed.
            if limit is not None and previous is None and poller.start_position.kind == "LATEST":
                limit = None
            if limit is not None and not result.finished:
                kept = _records_up_to(result.records, limit)
                if len(kept) < len(result.records):
                    if not kept:
                        # The shard's next record is beyond the limit: nothing to emit, but
                        # its progress is that record's time (else two shards waiting on
                        # each other's stale times could both stop).
                        next_ms = payload_event_time_ms(result.records[0].payload)
                        if next_ms is not None:
                            self.shard_event_ms[shard_id] = max(next_ms, self.shard_event_ms.get(shard_id, next_ms))
                    dropped = len(result.records) - len(kept)
                    poller.position.last_sequence_number = kept[-1].sequence_number if kept else previous
                    poller._iterator = None  # re-read after the last emitted record
                    self.metrics.records_read -= dropped
                    self.shard_active[shard_id] = True
                    records.extend(kept)
                    self._note_event_times(shard_id, kept)
                    continue
            records.extend(result.records)
            self._note_event_times(shard_id, result.records)
            # Backlog left: a full batch, or MillisBehindLatest > 0 (a local endpoint may report 0
            # while records remain: it measures put-time distance). Kinesis also answers an empty
            # page while behind, stepping over a stretch of the shard with no records: still behind.
            behind = result.millis_behind_latest
            self.shard_active[shard_id] = not result.finished and (
                (behind is not None and behind > 0)
                or (bool(result.records) and (len(result.records) >= poller.max_records_per_call or behind is None)))
            if result.finished:
                self._pollers.pop(shard_id, None)
        return records

    def _lagging_shards(self) -> set[str]:
        """After `poll_once`: readable shards with records known to be waiting (the last poll gave
        up on throttling / transient errors, or returned a full batch or MillisBehindLatest > 0)."""
        return {s for s in self.readable_shards() if self.shard_active.get(s) or s in self.throttled_shards}

    def has_unread_backlog(self) -> bool:
        return bool(self._lagging_shards())

    def lagging_event_ms(self, also: Iterable[str] = ()) -> int | None:
        """After `poll_once`: the smallest event time reached (`shard_event_ms`) by a readable
        shard that still has records waiting (throttled, or a backlog), and by the shards in
        `also` (e.g. finished parents whose children are not known yet); None when none is
        lagging. What a per-shard watermark needs: the records still to come from those
        shards are not older than this (up to the in-shard disorder the watermark delay covers)."""
        lagging = self._lagging_shards()
        if any(s not in self.shard_event_ms for s in lagging):
            # Records are waiting on a shard whose time is not known yet (throttled before its first
            # batch: at the first start, or after a restore, which keeps positions, not times). They
            # may be older than anything read: hold the watermark until the shard's time is known.
            return UNKNOWN_LAG_FLOOR_MS
        times = [self.shard_event_ms[s] for s in lagging | set(also) if s in self.shard_event_ms]
        return min(times) if times else None

    def finished_without_children(self) -> list[str]:
        """Finished (closed, read to the end) shards none of whose children this reader knows yet:
        after a split or merge, ListShards may not have shown the children when the parent ends."""
        parents = {p for shard in self.shards.values() for p in shard.parents}
        return sorted(shard_id for shard_id in self.shards
                      if self.positions.get(shard_id, ShardPosition(shard_id)).finished and shard_id not in parents)

    def _note_event_times(self, shard_id: str, records: list[KinesisRecord]) -> None:
        if not records:
            return
        # The batch's median payload time (of an even sample, EVENT_TIME_SAMPLE): one absurd (fuzzed)
        # timestamp must not make a shard look far ahead and pace it to a halt.
        sample = records[::-(-len(records) // EVENT_TIME_SAMPLE)]
        times = sorted(t for t in map(payload_event_time_ms, (r.payload for r in sample)) if t is not None)
        if times:
            middle = times[(len(times) - 1) // 2]
            self.shard_event_ms[shard_id] = max(middle, self.shard_event_ms.get(shard_id, middle))

    def read_available(self, *, max_polls: int = 1000) -> list[KinesisRecord]:
        """Poll until a full round returns nothing (tests and bounded reads)."""
        records: list[KinesisRecord] = []
        for _ in range(max_polls):
            batch = self.poll_once()
            if not batch and not self._has_newly_readable():
                return records
            records.extend(batch)
        return records

    def _has_newly_readable(self) -> bool:
        return any(sid not in self._pollers for sid in self.readable_shards())

    def positions_text(self) -> str:
        return positions_to_text(self.positions)


# --------------------------------------------------------------------------- event-time pacing


def payload_event_time_ms(payload: str) -> int | None:
    """The payload's `timestamp` in epoch ms by the job's rule (connectors.event_time), or None.

    Only for the per-shard watermark floor and pacing; the SQL layer computes the authoritative event time and
    validates. Never raises: a payload the job dead-letters must not fail the reader (and, restored
    to the position before it, fail it again). Absurd values (more than a day in the future) are
    ignored, so a single bad record cannot pace a shard to a halt."""
    ms = payload_timestamp_ms(payload)
    if ms is None or ms > time.time() * 1000 + MAX_AHEAD_MS:
        return None
    return ms


class EventTimeAlignment:
    """Per-shard event-time pacing across the readers of one stream (one per lineage group,
    on different subtasks): a shard is not polled while its emitted event time is more than
    `max_ahead_ms` ahead of the slowest shard that still has a backlog.

    The readers share their progress through a small directory (one JSON file per reader,
    replaced atomically): {shard_id: [event_ms, active]} plus the wall time of the write.
    A shard holds the others back only while it is *active* (its last poll returned
    records and was not at the stream's tip) and its reader wrote within `stale_after_ms`;
    idle, caught-up, finished shards and vanished readers never hold anyone back. The
    directory is local, so this works wherever the readers share a file system (the local
    mini-cluster that source (b) is for); without one, pacing silently degrades to none.
    """

    def __init__(self, directory: str, owner: str, max_ahead_ms: int, *, stale_after_ms: int = 30_000,
                 refresh_ms: int = 100, clock: Callable[[], float] = time.time) -> None:
        import os

        self.directory = directory
        self.owner = owner
        self.max_ahead_ms = int(max_ahead_ms)
        self.stale_after_ms = stale_after_ms
        self.refresh_ms = refresh_ms
        self._clock = clock
        self._os = os
        os.makedirs(directory, exist_ok=True)
        self._path = os.path.join(directory, _safe_name(owner) + ".json")
        self._others: dict[str, tuple[int, bool]] = {}
        self._read_at = -1.0
        self.paced = 0  # polls skipped because the shard was ahead

    def publish(self, shard_event_ms: dict[str, int], shard_active: dict[str, bool]) -> None:
        state = {sid: [shard_event_ms.get(sid), bool(shard_active.get(sid))]
                 for sid in set(shard_event_ms) | set(shard_active)}
        text = json.dumps({"at": int(self._clock() * 1000), "shards": state}, separators=(",", ":"))
        tmp = f"{self._path}.{self._os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
            self._os.replace(tmp, self._path)
        except OSError as exc:  # pacing is an optimisation of lateness, never a failure
            log.debug("alignment: cannot write %s: %s", self._path, exc)

    def _read_others(self) -> dict[str, tuple[int, bool]]:
        now_ms = self._clock() * 1000
        if self._read_at >= 0 and now_ms - self._read_at < self.refresh_ms:
            return self._others
        self._read_at = now_ms
        others: dict[str, tuple[int, bool]] = {}
        try:
            names = self._os.listdir(self.directory)
        except OSError:
            names = []
        for name in names:
            path = self._os.path.join(self.directory, name)
            if not name.endswith(".json") or path == self._path:
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if now_ms - data.get("at", 0) > self.stale_after_ms:
                continue
            for sid, (event_ms, active) in data.get("shards", {}).items():
                if event_ms is not None:
                    others[sid] = (int(event_ms), bool(active))
        self._others = others
        return others

    def floor_ms(self, shard_event_ms: dict[str, int], shard_active: dict[str, bool],
                 exclude: str | None = None) -> int | None:
        """Event time of the slowest active shard other than `exclude` (this reader's
        shards and the other readers'), or None when there is none."""
        times = [t for sid, (t, active) in self._read_others().items()
                 if active and sid not in shard_event_ms and sid != exclude]
        times += [t for sid, t in shard_event_ms.items() if shard_active.get(sid) and sid != exclude]
        return min(times) if times else None

    def event_limit_ms(self, shard_id: str, shard_event_ms: dict[str, int],
                       shard_active: dict[str, bool], first_ms: int | None = None) -> int | None:
        """Newest payload time `shard_id` may emit now (None: no limit). A shard's first
        batch (first_ms = its first record's time) also stays within max_ahead_ms of its
        own start, so the readers' first polls, made before any progress is shared, do not
        run apart either."""
        if self.max_ahead_ms <= 0:
            return None
        floor = self.floor_ms(shard_event_ms, shard_active, exclude=shard_id)
        limits = [] if floor is None else [floor + self.max_ahead_ms]
        if first_ms is not None:
            limits.append(first_ms + self.max_ahead_ms)
        return min(limits) if limits else None

    def may_poll(self, shard_id: str, shard_event_ms: dict[str, int], shard_active: dict[str, bool]) -> bool:
        own = shard_event_ms.get(shard_id)
        limit = self.event_limit_ms(shard_id, shard_event_ms, shard_active)
        if own is None or limit is None or own <= limit:
            return True
        self.paced += 1
        return False


def _records_up_to(records: list[KinesisRecord], limit_ms: int) -> list[KinesisRecord]:
    for index, record in enumerate(records):
        event_ms = payload_event_time_ms(record.payload)
        if event_ms is not None and event_ms > limit_ms:
            return records[:index]
    return records


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
