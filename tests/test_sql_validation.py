"""sql/parse/metrics.sql and events.sql on their own: one small bounded Flink job, no AWS.

Every fuzz category of flink_jobs/reliability/fuzz.py (several records each) and
hand-written edge cases go through the real templates (the archive source DDL with
the job's event-time expression, then the parse view); each row must come out
with a reason code the fuzz generator accepts, valid rows with none. No watermark
passes any record here (all share one timestamp), so the lateness checks belong
to tests/test_reliability_job.py.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

from flink_jobs.config import JobConfig
from flink_jobs.main import Settings, _common_params, _event_time_expr, render_sql
from flink_jobs.reliability.fuzz import FUZZ_ID_PATTERN, FuzzGenerator, iso_ms

pytestmark = [pytest.mark.flink, pytest.mark.timeout(1800)]

TS = (int(time.time()) - 3600) * 1000 // 1000 * 1000  # an hour ago, whole second


def _m(**kw):
    body = {"editor_id": "e-1", "metric": "rpm", "value": 1.5, "timestamp": TS}
    body.update(kw)
    return json.dumps({k: v for k, v in body.items() if v is not ...}, separators=(",", ":"))


def _e(**kw):
    body = {"event_type": "config_change", "timestamp": TS, "editor_id": "e-1", "details": {"a": 1}}
    body.update(kw)
    return json.dumps({k: v for k, v in body.items() if v is not ...}, separators=(",", ":"))


VALID = '{"editor_id":"e-1","metric":"rpm","value":1.5,"timestamp":%d}' % TS
# (payload, expected reason code or None)
METRIC_CASES = [
    (VALID, None),
    # payload times the boto3 Kinesis reader parses itself before the SQL: each used to fail it
    (_m(timestamp="\u00b2"), "INVALID_TIMESTAMP"),
    (_m(timestamp="9" * 5000), "INVALID_TIMESTAMP"),
    (VALID[:-1] + ',"dimensions":' + "[" * 5000 + "]" * 5000 + "}", "INVALID_JSON"),
    (_m(timestamp=iso_ms(TS)), None),
    (_m(timestamp=iso_ms(TS).replace("Z", "+00:00")), None),
    (_m(timestamp=iso_ms(TS)[:19] + "+02:00"), None),
    ("  " + VALID + "  ", None),
    ("\t \t" + VALID + "\t", None),      # JSON's whitespace: a leading tab was INVALID_JSON (LTRIM: spaces only)
    ("\t[" + VALID + "]", "INVALID_JSON"),
    (_m(value=3), None),
    (_m(metric="fill_rate", value=0), None),
    (_m(partner="p-1", dimensions={"site": "mobile", "country": "FR"}), None),
    (_m(dimensions={}), None),
    (_m(dimensions={"note": 'with "quotes" and \\ and }'}), None),
    (_m(unknown_extra_field={"ignored": True}), None),
    (_m(editor_id="\u00e9diteur"), None),
    # strict JSON: Flink's parser alone accepts all of these
    (VALID + "}", "INVALID_JSON"),
    (VALID + " trailing garbage", "INVALID_JSON"),
    (VALID + VALID, "INVALID_JSON"),
    # two records joined by a comma: read as the first one until the document's wrap had an object in it
    (VALID + "," + VALID, "INVALID_JSON"),
    (VALID + ",5", "INVALID_JSON"),
    (VALID + "}," + VALID, "INVALID_JSON"),
    ("[" + VALID + "]", "INVALID_JSON"),
    (VALID[:-5], "INVALID_JSON"),
    # bytes that are not UTF-8: format 'raw' decodes them to U+FFFD; they were accepted until 2026-12-05
    (b'{"editor_id":"e-\xff","metric":"rpm","value":1.5,"timestamp":%d}' % TS, "INVALID_ENCODING"),
    (b'{"editor_id":"e-1","metric":"rpm","value":1.5,"timestamp":%d,"dimensions":{"site":"\xc3("}}' % TS,
     "INVALID_ENCODING"),
    (VALID.replace('"e-1"', '"e-literal-\ufffd"'), None),   # U+FFFD itself, as valid UTF-8: nothing was lost
    # an unpaired surrogate escape (ASCII bytes; sql/parse/unpaired_surrogate.sql): accepted with '?' before
    (_m(editor_id="e-\ud800x"), "INVALID_ENCODING"),            # json.dumps writes the escape "\ud800"
    (_m(editor_id="\udc00"), "INVALID_ENCODING"),               # a low surrogate alone
    (_m(partner="p-\ude00\ud83d"), "INVALID_ENCODING"),        # a pair in the wrong order
    (_m(editor_id="e-\U0001f600"), None),                      # a pair, escaped: a character outside the BMP
    (_m(editor_id="e-\\ud800"), None),                        # a backslash, then "ud800": plain text
    (_m(editor_id="e-\ud800\\\udc00"), "INVALID_ENCODING"),     # an escaped backslash parts the two halves
    (_m(editor_id="e-\u00e9", dimensions={"k": "\ud800"}), "INVALID_ENCODING"),   # anywhere in the payload
    (_m(dimensions={"k": "\U0001f600" * 5000}), None),         # 60 KB of escaped pairs: no regex recursion
    (_m(dimensions={"k": "\U0001f600" * 5000 + "\udc00"}), "INVALID_ENCODING"),
    # JSON types
    (_m(editor_id=1234567), "WRONG_TYPE"),
    (_m(editor_id=["e-1"]), "WRONG_TYPE"),
    (_m(editor_id=""), "WRONG_TYPE"),
    (_m(value=""), "WRONG_TYPE"),
    (_m(value="12,5"), "WRONG_TYPE"),
    (_m(value="1.5"), "WRONG_TYPE"),
    (_m(value=[1.5]), "WRONG_TYPE"),
    (_m(value={"v": 1.5}), "WRONG_TYPE"),
    (_m(value=True), "WRONG_TYPE"),
    (_m(dimensions="site=a"), "WRONG_TYPE"),
    (_m(dimensions=["a", "b"]), "WRONG_TYPE"),
    (_m(dimensions={"site": 7}), "WRONG_TYPE"),
    (_m(dimensions={"site": {"x": "y"}}), "WRONG_TYPE"),
    (_m(dimensions={"site": "a", "n": ["x"]}), "WRONG_TYPE"),
    (_m(dimensions=[{"site": "a"}]), "WRONG_TYPE"),
    (_m(value=None), "MISSING_FIELD"),
    (_m(editor_id=...), "MISSING_FIELD"),
    # partner: optional; null is an editor-level sample, anything but a non-empty string is refused
    # (an object or array used to come out as NULL, its sample averaged into the editor's own)
    (_m(partner=None), None),
    (_m(partner={"id": "p-1"}), "WRONG_TYPE"),
    (_m(partner=["p-1"]), "WRONG_TYPE"),
    (_m(partner=42), "WRONG_TYPE"),
    (_m(partner=""), "WRONG_TYPE"),
    # timestamps
    (_m(timestamp="2026/11/01 10:00:00"), "INVALID_TIMESTAMP"),
    (_m(timestamp=iso_ms(TS).replace("T", " ")[:19]), "INVALID_TIMESTAMP"),
    (_m(timestamp=iso_ms(TS)[:-1]), "INVALID_TIMESTAMP"),
    (_m(timestamp="1.7e12"), "INVALID_TIMESTAMP"),
    (_m(timestamp=TS + 0.5), "INVALID_TIMESTAMP"),
    (_m(timestamp=0), "INVALID_TIMESTAMP"),
    (_m(timestamp=-1000), "INVALID_TIMESTAMP"),
    (_m(timestamp="1969-12-31T23:59:59Z"), "INVALID_TIMESTAMP"),
    (_m(timestamp=4102444800000), "FUTURE_TIMESTAMP"),
    (_m(timestamp="2099-01-01T00:00:00Z"), "FUTURE_TIMESTAMP"),
    (_m(timestamp=iso_ms(TS).replace(".000Z", ".1234567891Z")), "INVALID_TIMESTAMP"),  # 10 fraction digits
    (_m(timestamp=iso_ms(TS).replace("Z", "+2")), "INVALID_TIMESTAMP"),
    # integer-like texts Flink's TRY_CAST(.. AS BIGINT) reads but the contract does not: their
    # dead letters carried that time and moved the watermark (see the test on the sentinel below)
    (_m(timestamp="+%d" % TS), "INVALID_TIMESTAMP"),
    (_m(timestamp=" %d" % TS), "INVALID_TIMESTAMP"),
    (_m(timestamp="%d " % TS), "INVALID_TIMESTAMP"),
    (_m(timestamp="%d.0" % TS), "INVALID_TIMESTAMP"),
    (_m(timestamp="%d" % TS), None),                  # the same digits as a JSON string: the contract's integer
]


def _iso_at(ms: int, offset_minutes: int, fraction: str = "", *, sep: str = "T", colon: bool = True,
            seconds: bool = True) -> str:
    """The instant ``ms`` written as local time at ``offset_minutes`` east of UTC (ISO-8601)."""
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    local = dt.datetime.fromtimestamp(ms // 1000, zone)
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M" + (":%S" if seconds else "")) + fraction
    if offset_minutes == 0:
        return text + "Z"
    sign, minutes = ("+" if offset_minutes > 0 else "-"), abs(offset_minutes)
    return text + f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


TS_MINUTE = TS // 60_000 * 60_000
# (payload, the instant its timestamp names, in epoch ms): the event time must be that instant
# whatever the offset and fraction are written with (Flink's two-argument TO_TIMESTAMP_LTZ
# dropped the offset, and read only three fraction digits).
INSTANT_CASES = [
    (_m(metric="impressions", timestamp=_iso_at(TS, 330)), TS),
    (_m(metric="impressions", timestamp=_iso_at(TS, -300, ".5")), TS + 500),
    (_m(metric="impressions", timestamp=_iso_at(TS, 0, ".123456")), TS + 123),
    (_m(metric="impressions", timestamp=_iso_at(TS, 120, ".123456789", sep=" ", colon=False)), TS + 123),
    (_m(metric="impressions", timestamp=_iso_at(TS_MINUTE, -570, seconds=False)), TS_MINUTE),
    (_m(metric="impressions", timestamp=TS + 7), TS + 7),
    (_e(event_type="deployment", timestamp=_iso_at(TS, 60, ".04")), TS + 40),
]
EVENT_CASES = [
    (_e(), None),
    (_e(severity=9, event_type="security_finding"), None),
    (_e(timestamp=iso_ms(TS)), None),
    (_e(severity=[9]), "WRONG_TYPE"),
    (_e(severity="high"), "WRONG_TYPE"),
    (_e(severity=11, event_type="security_finding"), "OUT_OF_RANGE_VALUE"),
    (_e(severity=-1, event_type="security_finding"), "OUT_OF_RANGE_VALUE"),
    (_e(severity=11), None),               # 0-10 scores findings; another event's own scale is kept
    (_e(severity=-3, event_type="deployment"), None),
    (_e(severity=7).replace('"severity":7', '"severity":1e400'), "NON_FINITE_VALUE"),        # any event type
    (_e(severity=7, event_type="security_finding").replace('"severity":7', '"severity":-1e400'), "NON_FINITE_VALUE"),
    (_e(editor_id=42), "WRONG_TYPE"),
    (_e(editor_id=""), "WRONG_TYPE"),
    (_e(partner=""), "WRONG_TYPE"),
    (_e(partner=None), None),
    (_e(details=None), None),
    (_e(details="oops"), "WRONG_TYPE"),   # scalars used to be read as no details at all
    (_e(details=42), "WRONG_TYPE"),
    (_e(details=True), "WRONG_TYPE"),
    (_e(details=["a"]), "WRONG_TYPE"),
    (_e() + "}", "INVALID_JSON"),
    ("\t" + _e(), None),
    (_e() + " x", "INVALID_JSON"),
    (b'{"event_type":"config_change","timestamp":%d,"editor_id":"e-\xff"}' % TS, "INVALID_ENCODING"),
    (_e(editor_id="e-\ud800"), "INVALID_ENCODING"),
    (_e(partner="p-\udfff"), "INVALID_ENCODING"),
    (_e(details={"who": "\ud800"}), "INVALID_ENCODING"),
    (_e(details={"k\udbff": 1}), "INVALID_ENCODING"),            # in a key too: details reach Python whole
    (_e(details={"who": "\U0001f600 \\ud800"}), None),
    (_e() + "," + _e(), "INVALID_JSON"),
    (_e(timestamp=0), "INVALID_TIMESTAMP"),
    (_e(timestamp="2026/11/01 10:00:00"), "INVALID_TIMESTAMP"),
    (_e(timestamp=TS + 0.5), "INVALID_TIMESTAMP"),
    (_e(timestamp="+%d" % TS), "INVALID_TIMESTAMP"),
    (_e(timestamp=4102444800000), "FUTURE_TIMESTAMP"),
    (_e(event_type=...), "MISSING_FIELD"),
    (_e(event_type="rollback"), "UNKNOWN_EVENT_TYPE"),
    # the partner operator's finding type (udfs.decisions.PARTNER_FINDING) cannot come from the stream
    (_e(event_type="partner_health", partner="p-1"), "UNKNOWN_EVENT_TYPE"),
]

SKIP_CATEGORIES = {"oversized"}  # 64 KiB - 1 MiB lines: covered by the job tests


def _fuzz_cases():
    gen = FuzzGenerator(seed=11)
    cases = []
    for category in list(gen.categories) + ["valid_edge"]:
        if category in SKIP_CATEGORIES:
            continue
        for _ in range(25):
            rec = gen.make(category, TS)
            # late/past records: no watermark here, so LATE_RECORD shows up as valid
            codes = {None if c == "LATE_RECORD" else c for c in rec.accepted_codes} or {None}
            cases.append((rec.stream, rec.payload, codes, category, rec.fuzz_id if rec.traceable else None))
    return cases


def _write_lines(path, payloads):
    path.mkdir(parents=True)
    with open(path / "part-0.jsonl", "wb") as f:
        for p in payloads:
            f.write((p if isinstance(p, bytes) else p.encode()) + b"\n")


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """One job: (stream, line number) -> reason_code for every case."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    fuzz = _fuzz_cases()
    instants = [p for p, _ in INSTANT_CASES]
    metric_lines = ([p for p, _ in METRIC_CASES] + [p for p in instants if '"metric"' in p]
                    + [p for s, p, _, _, _ in fuzz if s == "metrics"])
    event_lines = ([p for p, _ in EVENT_CASES] + [p for p in instants if '"event_type"' in p]
                   + [p for s, p, _, _, _ in fuzz if s == "events"])
    root = tmp_path_factory.mktemp("sqlval")
    s = Settings.from_config(JobConfig.load(overrides=[], environ={}))
    common = _common_params(s)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.get_config().set("table.local-time-zone", "UTC")  # as the job sets it
    for kind, lines in (("metrics", metric_lines), ("events", event_lines)):
        _write_lines(root / kind, lines)
        t_env.execute_sql(render_sql("sources/archive_jsonl.sql", table_name=f"{kind}_raw",
                                     event_time_expr=_event_time_expr(s), path=str(root / kind), **common))
    t_env.create_temporary_view("m", t_env.sql_query(render_sql(
        "parse/metrics.sql", source_table="metrics_raw", max_metric_value=s.max_metric_value, **common)))
    t_env.create_temporary_view("e", t_env.sql_query(render_sql(
        "parse/events.sql", source_table="events_raw", events_lookback_s=s.events_lookback_s, **common)))
    got = {"metrics": {}, "events": {}, "event_time": {}}
    epoch_ms = "CAST(UNIX_TIMESTAMP(DATE_FORMAT(event_time, 'yyyy-MM-dd HH:mm:ss')) AS BIGINT) * 1000 + " \
               "CAST(DATE_FORMAT(event_time, 'SSS') AS BIGINT)"
    with t_env.execute_sql(f"SELECT 'metrics', payload, reason_code, {epoch_ms} FROM m UNION ALL "
                           f"SELECT 'events', payload, reason_code, {epoch_ms} FROM e").collect() as rows:
        for kind, payload, code, event_ms in rows:
            got[kind].setdefault(payload, []).append(code)
            got["event_time"][payload] = event_ms
            # by fuzz id too: Java and Python decode invalid UTF-8 differently
            for fid in set(FUZZ_ID_PATTERN.findall(payload)):
                got[kind].setdefault(fid, []).append(code)
    return got, fuzz


def _code(got, kind, payload):
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    codes = got[kind].get(text)
    assert codes, f"row not found: {text[:120]!r}"
    return codes[0]


def test_hand_written_metric_cases(parsed):
    got, _ = parsed
    wrong = [(p[:100], want, _code(got, "metrics", p)) for p, want in METRIC_CASES
             if _code(got, "metrics", p) != want]
    assert not wrong, wrong


def test_hand_written_event_cases(parsed):
    got, _ = parsed
    wrong = [(p[:100], want, _code(got, "events", p)) for p, want in EVENT_CASES if _code(got, "events", p) != want]
    assert not wrong, wrong


def test_iso_timestamps_name_the_same_instant_whatever_their_offset_and_fraction(parsed):
    got, _ = parsed
    for payload, expected_ms in INSTANT_CASES:
        kind = "metrics" if '"metric"' in payload else "events"
        assert _code(got, kind, payload) is None, payload
    assert [got["event_time"][p] for p, _ in INSTANT_CASES] == [ms for _, ms in INSTANT_CASES]


def test_a_record_with_a_timestamp_the_parse_refuses_gets_the_sentinel_event_time(parsed):
    """sql/parse/event_time.sql gives the sentinel epoch 0 to a timestamp it cannot use, so that the
    record can never move the watermark. The integer branch read whatever Flink's TRY_CAST(.. AS
    BIGINT) reads: "+<ms>", "<ms>.5" (a JSON number with a fraction), "<ms> " -- texts the parse calls
    INVALID_TIMESTAMP (sql/parse/timestamp_reason.sql), so those dead letters carried a time, and a
    bogus record moved the watermark. Every row refused for its timestamp, fuzz rows included,
    must have the sentinel (or, for a time before the epoch that Flink read, that earlier time:
    neither can move a watermark)."""
    got, _ = parsed
    refused = [(kind, payload) for kind in ("metrics", "events") for payload, codes in got[kind].items()
               if codes[0] in ("INVALID_TIMESTAMP", "FUTURE_TIMESTAMP") and payload in got["event_time"]]
    assert len(refused) > 20, refused
    moved = [(kind, payload[:100], got["event_time"][payload]) for kind, payload in refused
             if got["event_time"][payload] > 0]
    assert not moved, moved


def test_every_fuzz_category_gets_an_accepted_code(parsed):
    got, fuzz = parsed
    wrong = []
    for stream, payload, codes, category, fid in fuzz:
        text = payload.decode("utf-8", errors="replace")
        if stream == "metrics" and text.strip() == "":
            continue  # a blank line: the filesystem source may not emit it as a row
        code = _code(got, stream, fid or payload)
        if code not in codes:
            wrong.append((category, text[:100], code, sorted(map(str, codes))))
    assert not wrong, wrong


def test_no_returning_clause():
    for name in ("parse/metrics.sql", "parse/events.sql", "parse/event_time.sql"):
        sql = re.sub(r"--.*", "", render_sql(name, **{**_common_params(Settings.from_config(
            JobConfig.load(overrides=[], environ={}))), "source_table": "t", "max_metric_value": 1e9,
            "events_lookback_s": 1800}))
        assert "RETURNING" not in sql


def test_a_record_ahead_of_the_wall_clock_does_not_move_the_watermark_past_it():
    """The job's watermark expression (sql/parse/watermark.sql, substituted into every source DDL).
    A record up to processing.max.future.s ahead of processing time is valid; before the cap, one
    moved the watermark that far past now, and every on-time record after it was LATE_RECORD for
    minutes. Here every row is ahead of the wall clock by up to 299 s: the watermark must stay at
    least the delay behind the processing time of each row."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = Settings.from_config(JobConfig.load(overrides=["processing.max.future.s=300"], environ={}))
    common = _common_params(settings)
    assert "CURRENT_TIMESTAMP" in common["watermark_expr"]
    for template in ("sources/archive_jsonl.sql", "sources/kinesis_official.sql", "sources/datagen_metrics.sql"):
        assert "${watermark_expr}" in (Path(__file__).parent.parent / "sql" / template).read_text()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE ahead (n BIGINT, "
        "event_time AS TIMESTAMPADD(SECOND, CAST(n AS INT), CURRENT_TIMESTAMP), "
        f"WATERMARK FOR event_time AS {common['watermark_expr']}) WITH ('connector' = 'datagen', "
        "'number-of-rows' = '300', 'rows-per-second' = '150', 'fields.n.kind' = 'sequence', "
        "'fields.n.start' = '0', 'fields.n.end' = '299')")
    rows = [(r[0], r[1], r[2]) for r in t_env.execute_sql(
        "SELECT n, CAST(UNIX_TIMESTAMP(CAST(CURRENT_WATERMARK(event_time) AS STRING)) AS BIGINT), "
        "UNIX_TIMESTAMP(CAST(CURRENT_TIMESTAMP AS STRING)) FROM ahead").collect()]
    watermarked = [(n, wm, now) for n, wm, now in rows if wm is not None]
    assert len(watermarked) > 100, rows[:5]          # watermarks did pass during the two seconds
    delay_s = settings.watermark_delay_s
    assert all(wm <= now - delay_s + 1 for _, wm, now in watermarked), watermarked[-3:]
