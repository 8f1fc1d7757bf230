"""Kinesis into PyFlink through boto3 — source (b) of DESIGN.md, for runs without the connector JAR.

Topology (all unbounded, all checkpointable):

    datagen ticks (1 row / poll interval, parallelism 1)
      → ShardFanOut (parallelism 1): ListShards every `shard_discovery_interval_ms`,
        one element per lineage group per tick: (group_key, shards of the group as JSON)
      → key_by(group_key)
      → KinesisGroupReader (KeyedProcessFunction, parallelism = env's):
        ValueState = the group's shard positions (sequence numbers, finished flags);
        each tick = one GetRecords per readable shard of the group (connectors.kinesis.poller),
        unless the group's last poll leaves the tick nothing to do (_skipped_tick)
      → Row(payload, partition_key, shard_id, sequence_number, arrival_ms, watermark_floor_ms)
        + side output INVALID_ENCODING_TAG: dead-letter JSON for non-UTF-8 Data

Why lineage groups and not one key per shard: after a split, the children must
not be read before the parent is drained (or a key's records would interleave
and a window could see a record twice after a restart). A parent and its
children share one key, so one keyed-state value orders them. The group key is
the root shard id plus a salt chosen so that the groups spread over the
subtasks (see `spread_group_key`); it depends only on the root shard id and the
max parallelism, so restoring with a different parallelism keeps the state.

Checkpoints: positions are updated in the same `process_element` call that emits
the records, so a checkpoint barrier sees either both or neither; restoring a
checkpoint resumes each shard after its last emitted sequence number.

Watermarks and idle shards (for the Table built on this stream): the watermark is
derived from the payloads' event time (`kinesis_payload_table`), per subtask, and
downstream operators take the minimum over subtasks, so a subtask whose shards lag
holds the watermark back for everyone. A subtask that emits nothing (an idle shard,
or a subtask that owns no group) would hold it back for ever, so
`kinesis_payload_table` sets `table.exec.source.idle-timeout` (default here 5 s) and
such subtasks are excluded after the timeout. *Idle* must mean caught up, not
stalled: a reader whose group has records waiting (a throttled or lagging shard, or
a split whose children it has not seen yet) but emitted none this tick emits a
keep-alive row (no payload, event time epoch 0: it never moves the watermark),
which the Table drops right after the watermark assigner. Without it, a stall of a
few seconds (throttling backoff, the wait for a split's children) marked the
subtask idle, the other subtasks moved the watermark on, and every record the
stalled group then read was late. When *every* shard is idle, no watermark moves
and the last windows fire only when new records arrive (same as the official
connector without a watermark-emitting heartbeat). Within a subtask, each row's
`watermark_floor_ms` (the smallest event time reached by its shards that still
have records waiting; 0 when none lags) holds the watermark back for a lagging
shard while a faster one runs ahead (`aligned_watermark_expr`).

Splits: when a shard ends before the fan-out's ListShards has shown its children,
the group's reader lists the shards itself (at most once a second) so the children
are read at once rather than up to `shard_discovery_interval_ms` later.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from pyflink.common import Row, Types
from pyflink.datastream import (
    DataStream,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.state import ValueStateDescriptor

from connectors.flink_runtime import tick_stream
from connectors.kinesis.poller import (
    MAX_RECORDS_PER_GET,
    EventTimeAlignment,
    PollerMetrics,
    ShardInfo,
    ShardPosition,
    StartPosition,
    StreamReader,
    group_by_lineage,
    list_shards,
    positions_from_text,
    positions_to_text,
    reader_client,
)

log = logging.getLogger(__name__)

KINESIS_ROW_FIELDS = ["payload", "partition_key", "shard_id", "sequence_number", "arrival_ms",
                      "watermark_floor_ms"]
KINESIS_ROW_TYPE = Types.ROW_NAMED(
    KINESIS_ROW_FIELDS,
    [Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG()],
)
# Dead-letter JSON (connectors.deadletter.records) for records whose Data is not UTF-8.
INVALID_ENCODING_TAG = OutputTag("kinesis-invalid-encoding", Types.STRING())

DEFAULT_MAX_PARALLELISM = 128
DEFAULT_IDLE_TIMEOUT = "5 s"
# How often a group whose shard ended without known children lists the shards itself, and
# how long it holds the watermark for those children (a merge's child may belong to another
# group; ListShards can lag a split by a moment).
OWN_DISCOVERY_INTERVAL_S = 1.0
CHILDREN_WAIT_S = 30.0
READER_ATTEMPTS_PER_POLL = 4


def keepalive_row(group_key: str, watermark_floor_ms: int = 0) -> Row:
    """A row without payload: keeps a stalled reader's subtask from being marked idle. Its event
    time is the sentinel epoch 0 (sql/parse/event_time.sql), so it never moves the watermark;
    `kinesis_payload_table` drops it right after the watermark assigner."""
    return Row(None, None, group_key, None, int(time.time() * 1000), watermark_floor_ms)


# --------------------------------------------------------------------------- key spreading
# Flink sends key k to subtask keyGroup(k) * parallelism // maxParallelism, with
# keyGroup(k) = murmur(k.hashCode()) % maxParallelism. PyFlink's key_by keys on a
# one-field Row holding the key (KeyByKeySelector), whose hashCode (RowUtils.
# deepHashCodeRow: 31 * kind byte + deepHashCodeArray([Arrays.deepHashCode([s])]))
# is 62 + String.hashCode for RowKind INSERT. Checked against a mini-cluster run. Reproducing that here lets us pick keys that land on
# distinct subtasks instead of leaving it to chance with two or three groups.

def _to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _java_string_hash(text: str) -> int:
    result = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        result = (31 * result + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return _to_int32(result)


def _rotl32(value: int, shift: int) -> int:
    value &= 0xFFFFFFFF
    return ((value << shift) | (value >> (32 - shift))) & 0xFFFFFFFF


def _flink_murmur(code: int) -> int:
    # org.apache.flink.util.MathUtils.murmurHash(int)
    code = (code * 0xCC9E2D51) & 0xFFFFFFFF
    code = _rotl32(code, 15)
    code = (code * 0x1B873593) & 0xFFFFFFFF
    code = _rotl32(code, 13)
    code = (code * 5 + 0xE6546B64) & 0xFFFFFFFF
    code ^= 4
    code ^= code >> 16
    code = (code * 0x85EBCA6B) & 0xFFFFFFFF
    code ^= code >> 13
    code = (code * 0xC2B2AE35) & 0xFFFFFFFF
    code ^= code >> 16
    signed = _to_int32(code)
    if signed >= 0:
        return signed
    return -signed if signed != -(1 << 31) else 0


def key_group_of(key: str, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> int:
    row_hash = _to_int32(62 + _java_string_hash(key))
    return _flink_murmur(row_hash) % max_parallelism


def subtask_of(key: str, parallelism: int, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> int:
    return key_group_of(key, max_parallelism) * parallelism // max_parallelism


def _bit_reversed_fraction(index: int) -> float:
    # 0, 1/2, 1/4, 3/4, 1/8, ...: any first n values are spread evenly over [0, 1).
    fraction, weight = 0.0, 0.5
    while index:
        if index & 1:
            fraction += weight
        index >>= 1
        weight /= 2
    return fraction


def spread_group_key(root_shard_id: str, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> str:
    """Key for a lineage group: `<root>#<salt>`, landing near a key group that depends
    only on the root's shard number, so shards 0..n-1 spread over any parallelism."""
    try:
        number = int(root_shard_id.rsplit("-", 1)[-1])
    except ValueError:
        number = abs(_java_string_hash(root_shard_id))
    span = max(1, max_parallelism // 16)
    target = int(_bit_reversed_fraction(number) * max_parallelism)
    for salt in range(100_000):
        key = f"{root_shard_id}#{salt}"
        if target <= key_group_of(key, max_parallelism) < target + span:
            return key
    return f"{root_shard_id}#0"


# --------------------------------------------------------------------------- operators


class ShardFanOut(ProcessFunction):
    """Tick → one (group_key, shards JSON, discovery wall ms) per lineage group. Runs at parallelism 1 so
    ListShards is called once per discovery interval for the whole job."""

    def __init__(self, stream_name: str, endpoint_url: str | None, region: str | None,
                 shard_discovery_interval_ms: int, max_parallelism: int) -> None:
        self.stream_name = stream_name
        self.endpoint_url = endpoint_url
        self.region = region
        self.shard_discovery_interval_ms = shard_discovery_interval_ms
        self.max_parallelism = max_parallelism

    def open(self, runtime_context: RuntimeContext) -> None:
        from connectors.aws import make_client

        self._client = make_client("kinesis", endpoint_url=self.endpoint_url, region=self.region,
                                   max_attempts=3)
        self._groups: list[tuple[str, str]] = []
        self._discovered_at = 0.0
        self._discovered_at_ms = 0
        metrics = runtime_context.get_metrics_group().add_group("kinesis")
        self._discoveries = metrics.counter("shardDiscoveries")
        self._discovery_failures = metrics.counter("shardDiscoveryFailures")
        self._failing_since: float | None = None    # monotonic time of the current streak's first failure
        self._failure_logged_at = 0.0

    #: While ListShards keeps failing, the failure is logged again at most this often.
    FAILURE_LOG_INTERVAL_S = 60.0

    def _discover(self) -> None:
        try:
            shards = list_shards(self._client, self.stream_name)
        except Exception as exc:  # keep the last known shards; try again next interval
            self._discovery_failures.inc()
            # A wrong stream name or an unreachable endpoint must not look like a quiet stream.
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            if now - self._failure_logged_at >= self.FAILURE_LOG_INTERVAL_S:
                self._failure_logged_at = now
                log.warning("Kinesis source: cannot list the shards of stream %r at %s for %.0f s (%s: %s); "
                            "nothing is read from it meanwhile; trying again every %d ms",
                            self.stream_name, self.endpoint_url or "the default AWS endpoint",
                            now - self._failing_since, type(exc).__name__, exc, self.shard_discovery_interval_ms)
            return
        if self._failing_since is not None:
            log.warning("Kinesis source: the shards of stream %r are listed again after %.0f s of failures",
                        self.stream_name, time.monotonic() - self._failing_since)
            self._failing_since, self._failure_logged_at = None, 0.0
        self._discoveries.inc()
        self._discovered_at_ms = int(time.time() * 1000)
        self._groups = [
            (spread_group_key(root, self.max_parallelism),
             json.dumps([s.to_json() for s in members], separators=(",", ":")))
            for root, members in group_by_lineage(shards).items()
        ]

    def process_element(self, value: Any, ctx: ProcessFunction.Context):
        now = time.monotonic()
        if not self._groups or (now - self._discovered_at) * 1000 >= self.shard_discovery_interval_ms:
            self._discovered_at = now
            self._discover()
        # The tick's wall time rides along: KinesisGroupReader drops a tick a poll has already answered.
        tick_ms = int(time.time() * 1000)
        for group_key, shards_json in self._groups:
            yield Row(group_key, shards_json, self._discovered_at_ms, tick_ms)


class KinesisGroupReader(KeyedProcessFunction):
    """Reads one lineage group per key; its positions live in keyed ValueState."""

    def __init__(self, stream_name: str, endpoint_url: str | None, region: str | None,
                 start_position: str, max_records_per_poll: int, dead_letter_source: str,
                 poll_interval_ms: int = 0, alignment_dir: str | None = None,
                 alignment_max_ahead_ms: int = 0) -> None:
        self.stream_name = stream_name
        self.endpoint_url = endpoint_url
        self.region = region
        self.start_position = start_position
        self.max_records_per_poll = max_records_per_poll
        self.dead_letter_source = dead_letter_source
        self.poll_interval_ms = poll_interval_ms
        self.alignment_dir = alignment_dir
        self.alignment_max_ahead_ms = alignment_max_ahead_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        # A 10,000-record GetRecords can take seconds on a loaded local endpoint; a read
        # timeout would only make the server do the same work again.
        self._client = reader_client(endpoint_url=self.endpoint_url, region=self.region,
                                     max_attempts=1, max_pool_connections=4, read_timeout_s=30)
        self._positions = runtime_context.get_state(
            ValueStateDescriptor("kinesis-shard-positions", Types.STRING())
        )
        # In-memory readers keep shard iterators between ticks; the text they were
        # last synced with detects a state restore (then the reader is rebuilt).
        self._readers: dict[str, tuple[StreamReader, str | None]] = {}
        self._metrics = PollerMetrics()
        self._reported = PollerMetrics()
        # key -> its last poll: wall ms when it began, monotonic time when it ended, whether it
        # read nothing (_skipped_tick).
        self._last_poll: dict[str, tuple[int, float, bool]] = {}
        group = runtime_context.get_metrics_group().add_group("kinesis")
        self._counters = {
            name: group.counter(name)
            for name in ("recordsRead", "throttles", "iteratorRefreshes", "invalidEncoding",
                         "shardsFinished", "transientErrors", "pacedPolls", "keepalives",
                         "childDiscoveries", "answeredTicks", "groupsRetired")
        }
        # key -> EventTimeAlignment (one progress file per lineage group).
        self._alignments: dict[str, EventTimeAlignment] = {}
        self._paced_reported = 0
        # Own ListShards when a shard of the group ends before the fan-out has seen its
        # children: key -> (wall ms of that ListShards, the group's shards then).
        self._own_shards: dict[str, tuple[int, list[ShardInfo]]] = {}
        self._own_discovery_at: dict[str, float] = {}
        # Shards some listed shard names as parent (a merge's child may sit in another group).
        self._have_children: set[str] = set()
        # key -> monotonic time since which a finished shard of the group has had no known child.
        self._awaiting_children_since: dict[str, float] = {}
        self._awaited_parents: dict[str, list[str]] = {}
        # Groups the fan-out no longer lists (_retire_unlisted_groups): key -> the discovery (wall ms)
        # of its last tick; the newest discovery seen here, and the tick that first carried it (None
        # once the groups behind it are retired).
        self._group_discovery: dict[str, int] = {}
        self._newest_discovery: tuple[int, int | None] = (0, None)

    def _reader_for(self, key: str) -> StreamReader:
        stored = self._positions.value()
        cached = self._readers.get(key)
        if cached is not None and cached[1] == stored:
            return cached[0]
        reader = StreamReader(
            self._client,
            self.stream_name,
            StartPosition.parse(self.start_position),
            positions=positions_from_text(stored),
            max_records_per_call=self.max_records_per_poll,
            # At most ~1.5 s of backoff inside one call (0.1 s doubling, equal jitter): a
            # throttled shard is polled again on a later tick, and in between the reader emits
            # keep-alive rows (a subtask silent for the idle timeout would be marked idle).
            max_attempts_per_poll=READER_ATTEMPTS_PER_POLL,
            metrics=self._metrics,
        )
        self._readers[key] = (reader, stored)
        return reader

    def _skipped_tick(self, key: str, tick_ms: int) -> bool:
        """Whether the group's last poll leaves this tick nothing to do, so it is dropped without a
        GetRecords.

        Ticks come at a fixed rate, so while polls are slower than the interval (a loaded
        machine, a slow endpoint, a downstream that holds the records back) they queue in front
        of this operator. Two cases:

        * the last poll read nothing: the group is caught up, and the queued ticks would fire a
          burst of empty GetRecords (AWS allows 5 per second per shard). Dropped: a tick made
          before that poll began, or in its first millisecond (it answered it), and any tick
          within half an interval of its end. Half, not a whole interval: the next tick is made
          an interval after the one that polled, so it comes less than an interval after the
          poll ended, and dropping it too polled every other tick (with a 1 s interval, every
          1.9 s: connectors/kinesis/README.md, "The poll cadence");
        * the last poll began more than a poll interval after the tick was made: it answered the
          tick (metric `answeredTicks`). What it left unread (its records limit, a throttled or
          paced shard) is read by the next tick, so the queue drains at once and a slow reader
          still polls back to back: the ticks made during a poll are not answered by it. The
          tick's time is the fan-out's clock and the poll's the reader's; the one-interval
          margin keeps a skew smaller than the interval from dropping a tick made after the
          poll began. Measured in `make run`: connectors/kinesis/README.md, "Ticks".

        So after an empty poll, a tick made after it began polls once half an interval has passed
        since it ended; after any other, only ticks made an interval or more before it began are
        dropped. The empty-poll rule compares the fan-out's clock with the reader's without a
        margin: a reader clock S ms ahead delays a caught-up poll by up to S ms (both read one host
        clock in the local mini-cluster this reader is for).

        Caught up, a group polls about once a second, not every interval: Flink's datagen source
        emits a second's worth of ticks at once and then sleeps to the next second (measured in a
        mini-cluster job, thread mode, 200 ms interval: 5 ticks within 1 ms, once a second), and a
        burst's ticks are all made before the poll of its first one began.
        """
        last = self._last_poll.get(key)
        if last is None:
            return False
        since_ms = (time.monotonic() - last[1]) * 1000
        began_ms, _, read_nothing = last
        if read_nothing:
            return since_ms < self.poll_interval_ms / 2 or tick_ms <= began_ms
        if since_ms >= self.poll_interval_ms:
            return False
        if tick_ms + self.poll_interval_ms <= began_ms:
            self._counters["answeredTicks"].inc()
            return True
        return False

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):
        key = value[0]
        self._retire_unlisted_groups(key, value[2], value[3])
        if self._skipped_tick(key, value[3]):
            return
        began_ms = int(time.time() * 1000)
        read = yield from self._poll(key, value)
        self._last_poll[key] = (began_ms, time.monotonic(), not read)

    def _poll(self, key: str, value: Row):
        reader = self._reader_for(key)
        own = self._own_shards.get(key)
        if own is not None and own[0] >= value[2]:
            reader.set_shards(own[1])  # newer than the fan-out's list: it has the children
        else:
            reader.set_shards(ShardInfo.from_json(s) for s in json.loads(value[1]))
        alignment = self._alignment_for(key)
        if alignment is None:
            records = reader.poll_once()
        else:
            records = reader.poll_once(
                lambda sid: alignment.may_poll(sid, reader.shard_event_ms, reader.shard_active),
                lambda sid, first_ms: alignment.event_limit_ms(sid, reader.shard_event_ms, reader.shard_active,
                                                                first_ms))
            alignment.publish(reader.shard_event_ms, {
                sid: active and not reader.positions.get(sid, ShardPosition(sid)).finished
                for sid, active in reader.shard_active.items()})
        self._awaited_parents[key] = self._parents_awaiting_children(key, reader)
        floor = self._watermark_floor_ms()
        for record in records:
            if record.encoding_valid:
                yield Row(record.payload, record.partition_key, record.shard_id,
                          record.sequence_number, record.arrival_ms, floor)
            else:
                from connectors.deadletter.records import dead_letter_json

                yield INVALID_ENCODING_TAG, dead_letter_json(
                    "INVALID_ENCODING",
                    f"Kinesis record {record.shard_id}/{record.sequence_number} is not UTF-8",
                    self.dead_letter_source,
                    record.payload,
                )
        if not records and (reader.has_unread_backlog() or self._awaited_parents[key]):
            # Stalled, not caught up: keep this subtask from being marked idle (see the module
            # docstring); the row's floor still holds the watermark at the lagging shard.
            self._counters["keepalives"].inc()
            yield keepalive_row(key, floor)
        text = positions_to_text(reader.positions)
        if text != self._readers[key][1]:
            self._positions.update(text)
            self._readers[key] = (reader, text)
        self._report_metrics()
        return bool(records)

    def _retire_unlisted_groups(self, key: str, discovery_ms: int, tick_ms: int) -> None:
        """Forget the in-memory readers of groups the fan-out's ListShards no longer lists.

        A family gets another key once retention trims its root from ListShards
        (connectors/kinesis/README.md, "Known limit"), and the fan-out stops ticking the old key.
        Its reader stayed here, and ``_watermark_floor_ms`` kept its last lagging time for ever:
        a shard it last saw throttled or behind held this subtask's watermark, and so every
        window of the job, until a restart. The fan-out sends each tick to every group at once,
        so by a later tick than the one that first carried a discovery, every group of it on this
        subtask has had a tick of it: a group still behind that discovery is not listed. Its
        positions stay in its keyed state (a few hundred bytes per retired family); a tick that
        comes for it after all rebuilds its reader from them. A newer discovery's first tick is
        such a later tick too (with ``shard.discovery.interval.ms`` at or under the poll interval
        every tick carries a new discovery, and no group was ever retired).
        """
        self._group_discovery[key] = discovery_ms
        newest, first_tick = self._newest_discovery
        if discovery_ms > newest:
            self._newest_discovery = (discovery_ms, tick_ms)
            if first_tick is not None and tick_ms > first_tick:
                self._retire_older_than(newest)
            return
        if first_tick is None or tick_ms <= first_tick:
            return
        self._newest_discovery = (newest, None)
        self._retire_older_than(newest)

    def _retire_older_than(self, discovery_ms: int) -> None:
        for old in [k for k, seen in self._group_discovery.items() if seen < discovery_ms]:
            if old in self._alignments:
                # pacedPolls is reported as the sum over the alignments kept: count this one's first
                self._report_metrics()
                self._paced_reported -= self._alignments[old].paced
            for table in (self._group_discovery, self._readers, self._last_poll, self._own_shards,
                          self._own_discovery_at, self._awaiting_children_since, self._awaited_parents,
                          self._alignments):
                table.pop(old, None)
            self._counters["groupsRetired"].inc()

    def _parents_awaiting_children(self, key: str, reader: StreamReader) -> list[str]:
        """Shards of this group that have ended while their children are not known yet (for at
        most CHILDREN_WAIT_S): the group still has records to come, from where they ended."""
        def orphans_now() -> list[str]:
            return [s for s in reader.finished_without_children() if s not in self._have_children]

        orphans = orphans_now()
        if orphans and time.monotonic() - self._own_discovery_at.get(key, 0.0) >= OWN_DISCOVERY_INTERVAL_S:
            self._discover_group(key, reader)
            orphans = orphans_now()
        if not orphans:
            self._awaiting_children_since.pop(key, None)
            return []
        since = self._awaiting_children_since.setdefault(key, time.monotonic())
        return orphans if time.monotonic() - since < CHILDREN_WAIT_S else []

    def _watermark_floor_ms(self) -> int:
        """Per-shard watermarking for this subtask: the smallest event time reached by any of its
        shards (every group it reads) that still has records waiting; 0 when none lags.

        The Table's watermark is computed per subtask from the rows' event time, so without
        this one fast shard moves it past a throttled or backlogged sibling on the same
        subtask, and all of the sibling's records come out late. With it, the watermark
        is min(event time, floor) - delay, as Flink's own sources do per split."""
        floors = [reader.lagging_event_ms(self._awaited_parents.get(key, ()))
                  for key, (reader, _) in self._readers.items()]
        floors = [f for f in floors if f is not None]
        return min(floors) if floors else 0

    def _discover_group(self, key: str, reader: StreamReader) -> None:
        """ListShards now (not at the fan-out's next interval): a split's children are read as
        soon as their parent ends, not up to `shard_discovery_interval_ms` later."""
        self._own_discovery_at[key] = time.monotonic()
        try:
            shards = list_shards(self._client, self.stream_name)
        except Exception:  # the fan-out's next discovery still comes; try again later
            self._counters["transientErrors"].inc()
            return
        self._counters["childDiscoveries"].inc()
        self._have_children.update(p for shard in shards for p in shard.parents)
        members = group_by_lineage(shards).get(key.rsplit("#", 1)[0])
        if members:
            self._own_shards[key] = (int(time.time() * 1000), members)
            reader.set_shards(members)

    def _alignment_for(self, key: str) -> EventTimeAlignment | None:
        if not self.alignment_dir or self.alignment_max_ahead_ms <= 0:
            return None
        alignment = self._alignments.get(key)
        if alignment is None:
            try:
                alignment = EventTimeAlignment(self.alignment_dir, key, self.alignment_max_ahead_ms)
            except OSError:
                return None
            self._alignments[key] = alignment
        return alignment

    def _report_metrics(self) -> None:
        paced = sum(a.paced for a in self._alignments.values())
        if paced > self._paced_reported:
            self._counters["pacedPolls"].inc(paced - self._paced_reported)
            self._paced_reported = paced
        pairs = (("recordsRead", "records_read"), ("throttles", "throttles"),
                 ("iteratorRefreshes", "iterator_refreshes"), ("invalidEncoding", "invalid_encoding"),
                 ("shardsFinished", "shards_finished"), ("transientErrors", "transient_errors"))
        for counter_name, field_name in pairs:
            delta = getattr(self._metrics, field_name) - getattr(self._reported, field_name)
            if delta:
                self._counters[counter_name].inc(delta)
                setattr(self._reported, field_name, getattr(self._metrics, field_name))


# --------------------------------------------------------------------------- public wiring


def kinesis_payload_stream(
    env: StreamExecutionEnvironment,
    stream_name: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    start_position: str = "TRIM_HORIZON",
    poll_interval_ms: int = 200,
    max_records_per_poll: int = MAX_RECORDS_PER_GET,
    shard_discovery_interval_ms: int = 10_000,
    dead_letter_source: str = "metrics",
    max_parallelism: int = DEFAULT_MAX_PARALLELISM,
    name: str | None = None,
    alignment_max_ahead_ms: int = 0,
    alignment_dir: str | None = None,
) -> DataStream:
    """DataStream of Row(payload STRING, partition_key STRING, shard_id STRING,
    sequence_number STRING, arrival_ms BIGINT, watermark_floor_ms BIGINT) read from
    `stream_name` (KINESIS_ROW_TYPE; keep-alive rows have no payload: `keepalive_row`).

    Records whose Data is not UTF-8 go to the side output `INVALID_ENCODING_TAG` as
    dead-letter JSON (reason INVALID_ENCODING, source `dead_letter_source`):
    `kinesis_invalid_encoding_stream(returned_stream)`.

    start_position: TRIM_HORIZON | LATEST | AT_TIMESTAMP:<epoch ms or ISO-8601>; used only for
    shards without a stored sequence number (a restored job resumes from its state).
    On AWS keep poll_interval_ms >= 200 (5 GetRecords/s per shard).

    alignment_max_ahead_ms > 0 paces the shards by event time (payload `timestamp`): a
    shard is not polled while it is more than this ahead of the slowest shard that still
    has a backlog (`poller.EventTimeAlignment`; the readers share progress through files
    under `alignment_dir`, default a fresh directory per job build under the temp dir).
    """
    StartPosition.parse(start_position)  # fail at job build time, not in a worker
    name = name or f"kinesis-{stream_name}"
    if alignment_max_ahead_ms > 0 and not alignment_dir:
        alignment_dir = default_alignment_dir(stream_name)
    ticks = tick_stream(env, poll_interval_ms, name)
    groups = (
        ticks.process(
            ShardFanOut(stream_name, endpoint_url, region, shard_discovery_interval_ms,
                        max_parallelism),
            output_type=Types.ROW([Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG()]),
        )
        .name(f"{name}-shard-discovery")
        .set_parallelism(1)
    )
    records = (
        groups.key_by(lambda row: row[0], key_type=Types.STRING())
        .process(
            KinesisGroupReader(stream_name, endpoint_url, region, start_position,
                               max_records_per_poll, dead_letter_source, poll_interval_ms,
                               alignment_dir, alignment_max_ahead_ms),
            output_type=KINESIS_ROW_TYPE,
        )
        .name(f"{name}-get-records")
        .uid(f"{name}-get-records")
    )
    records.set_max_parallelism(max_parallelism)
    return records


def default_alignment_dir(stream_name: str) -> str:
    """A directory for one job build's pacing files (fresh per build: a restored or
    relaunched job does not read an earlier run's progress)."""
    import os
    import tempfile
    import uuid

    return os.path.join(tempfile.gettempdir(), "adops-kinesis-alignment",
                        f"{stream_name}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


_INTERVAL_UNITS_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}


def watermark_delay_ms(watermark_expr: str) -> int | None:
    """The delay of `event_time - INTERVAL ...` (Flink's forms: 'n' SECOND|MINUTE|HOUR|DAY,
    'd hh:mm:ss' DAY TO SECOND), or None when the expression is something else."""
    import re

    match = re.search(r"INTERVAL\s+'([^']+)'\s+([A-Z]+)(\s+TO\s+SECOND)?", watermark_expr.upper())
    if not match:
        return None
    value, unit, to_second = match.group(1).strip(), match.group(2), match.group(3)
    try:
        if to_second and unit == "DAY":
            days, _, clock = value.partition(" ")
            h, m, sec = (clock or "0:0:0").split(":")
            return int((int(days) * 86400 + int(h) * 3600 + int(m) * 60 + float(sec)) * 1000)
        return int(float(value) * _INTERVAL_UNITS_MS[unit])
    except (KeyError, ValueError):
        return None


def aligned_watermark_expr(watermark_expr: str) -> str:
    """`<time> - INTERVAL ...` made per-shard, where `<time>` is `event_time` or an expression of it
    (the job's is `LEAST(event_time, CURRENT_TIMESTAMP)`, sql/parse/watermark.sql): the watermark
    never passes the floor the reader puts on each row (`watermark_floor_ms`, the slowest lagging
    shard of its subtask). Another form of expression is kept as it is (no per-shard alignment).

    >>> aligned_watermark_expr("LEAST(event_time, CURRENT_TIMESTAMP) - INTERVAL '30' SECOND")
    "LEAST(LEAST(event_time, CURRENT_TIMESTAMP), CASE WHEN watermark_floor_ms > 0 THEN TO_TIMESTAMP_LTZ(watermark_floor_ms, 3) ELSE LEAST(event_time, CURRENT_TIMESTAMP) END) - INTERVAL '30' SECOND"
    """
    import re

    match = re.fullmatch(r"\s*(.*?\bevent_time\b.*?)\s*-\s*(INTERVAL\s+.*)", watermark_expr,
                         flags=re.IGNORECASE | re.DOTALL)
    if watermark_delay_ms(watermark_expr) is None or not match:
        return watermark_expr
    time_expr, delay = match.group(1), match.group(2).strip()
    return (f"LEAST({time_expr}, CASE WHEN watermark_floor_ms > 0 THEN TO_TIMESTAMP_LTZ(watermark_floor_ms, 3) "
            f"ELSE {time_expr} END) - {delay}")


def kinesis_invalid_encoding_stream(payload_stream: DataStream) -> DataStream:
    """Dead-letter JSON strings (reason INVALID_ENCODING) of a `kinesis_payload_stream` result."""
    return payload_stream.get_side_output(INVALID_ENCODING_TAG)


def kinesis_payload_table(
    t_env: Any,
    env: StreamExecutionEnvironment,
    stream_name: str,
    *,
    event_time_expr: str,
    watermark_expr: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    start_position: str = "TRIM_HORIZON",
    poll_interval_ms: int = 200,
    max_records_per_poll: int = MAX_RECORDS_PER_GET,
    shard_discovery_interval_ms: int = 10_000,
    idle_timeout: str | None = DEFAULT_IDLE_TIMEOUT,
    dead_letter_source: str = "metrics",
    on_invalid_encoding: Callable[[DataStream], Any] | None = None,
    alignment_max_ahead_ms: int | None = 0,
    alignment_dir: str | None = None,
) -> Any:
    """Table(payload, partition_key, shard_id, sequence_number, arrival_ms, event_time) with
    a watermark, read from Kinesis — what `metrics_raw` / `events_raw` are built on.

    event_time_expr: SQL over the columns above, typed TIMESTAMP_LTZ(3), e.g.
      "TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(payload, '$.timestamp') AS BIGINT), 3)"
    watermark_expr:  e.g. "event_time - INTERVAL '30' SECOND"
    idle_timeout:    sets `table.exec.source.idle-timeout` on t_env (None leaves it alone) so
                     subtasks without records stop holding the watermark back.
    on_invalid_encoding: receives the DataStream of INVALID_ENCODING dead-letter JSON strings
                     (e.g. a dead-letter sink attach function); without it they are dropped
                     after being counted in the `invalidEncoding` metric.
    alignment_max_ahead_ms: event-time pacing of the shards (see `kinesis_payload_stream`);
                     None = half the delay of `watermark_expr` (15 s if it cannot be read),
                     0 = off (the default for now: in the reliability harness's backlog run it
                     kept the shards within the bound but made the catch-up ~4x slower, and
                     other late records remained — see connectors/kinesis/README.md). A shard more than this ahead of the slowest one with a backlog
                     waits, so catching up a backlog does not push the slow shard's records
                     behind the watermark.
    """
    if alignment_max_ahead_ms is None:
        delay = watermark_delay_ms(watermark_expr)
        alignment_max_ahead_ms = delay // 2 if delay else 15_000
    from pyflink.table import Schema

    stream = kinesis_payload_stream(
        env,
        stream_name,
        endpoint_url=endpoint_url,
        region=region,
        start_position=start_position,
        poll_interval_ms=poll_interval_ms,
        max_records_per_poll=max_records_per_poll,
        shard_discovery_interval_ms=shard_discovery_interval_ms,
        dead_letter_source=dead_letter_source,
        alignment_max_ahead_ms=alignment_max_ahead_ms,
        alignment_dir=alignment_dir,
    )
    if on_invalid_encoding is not None:
        on_invalid_encoding(kinesis_invalid_encoding_stream(stream))
    if idle_timeout:
        t_env.get_config().set("table.exec.source.idle-timeout", idle_timeout)
    schema = (
        Schema.new_builder()
        .column("payload", "STRING")
        .column("partition_key", "STRING")
        .column("shard_id", "STRING")
        .column("sequence_number", "STRING")
        .column("arrival_ms", "BIGINT")
        .column("watermark_floor_ms", "BIGINT")
        .column_by_expression("event_time", event_time_expr)
        .watermark("event_time", aligned_watermark_expr(watermark_expr))
        .build()
    )
    from pyflink.table.expressions import col

    # Keep-alive rows (no payload) have done their job at the watermark assigner.
    return t_env.from_data_stream(stream, schema).where(col("payload").is_not_null)
