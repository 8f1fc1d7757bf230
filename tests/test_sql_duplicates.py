"""sql/parse/duplicates.sql on its own: small bounded Flink jobs, no AWS.

The parse templates run as in the job (archive source DDL with the job's event-time
expression, then flink_jobs.main.parse_metrics / parse_events); each case is a list
of lines, and the reason codes that come out are compared per payload. The identity is
the exact payload: only a byte-identical copy of an accepted record is a duplicate.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from flink_jobs.config import JobConfig
from flink_jobs.main import (METRIC_COUNTED, METRIC_PARSED_COLUMNS, Settings, _common_params, _event_time_expr,
                             mark_late, parse_events, parse_metrics, render_sql, window_sql)

pytestmark = [pytest.mark.flink, pytest.mark.timeout(900)]

TS = (int(time.time()) - 3600) * 1000  # an hour ago: neither future nor behind any watermark here


def _m(ts=TS, **kw):
    body = {"editor_id": "e-1", "metric": "rpm", "value": 1.5, "timestamp": ts, **kw}
    return json.dumps(body, separators=(",", ":"))


def _e(**kw):
    body = {"event_type": "config_change", "timestamp": TS, "editor_id": "e-1", "details": {"a": 1}, **kw}
    return json.dumps(body, separators=(",", ":"))


COPIED = _m(partner="p-1")
# (payload, how many times it is sent, expected codes in order of arrival)
METRIC_CASES = [
    (COPIED, 3, [None, "DUPLICATE_RECORD", "DUPLICATE_RECORD"]),
    # same editor, metric and partner, another timestamp: another sample
    (_m(ts=TS + 10_000, partner="p-1"), 1, [None]),
    # same instant, another value or other dimensions: another sample, not a copy
    (_m(partner="p-1", value=2.5), 1, [None]),
    (_m(partner="p-1", dimensions={"site": "mobile"}), 1, [None]),
    # the same fields serialized differently is not byte-identical: accepted (documented limit)
    (json.dumps(json.loads(COPIED)), 1, [None]),
    # invalid copies keep their own reason code; they were never counted
    ("not json", 2, ["INVALID_JSON", "INVALID_JSON"]),
    (_m(value="1.5"), 2, ["WRONG_TYPE", "WRONG_TYPE"]),
    # a too-far-future record is refused each time, never a duplicate of itself
    (_m(ts=4102444800000), 2, ["FUTURE_TIMESTAMP", "FUTURE_TIMESTAMP"]),
]
EVENT_CASES = [
    (_e(), 2, [None, "DUPLICATE_RECORD"]),
    (_e(details={"a": 2}), 1, [None]),
    (_e(event_type="rollback"), 2, ["UNKNOWN_EVENT_TYPE", "UNKNOWN_EVENT_TYPE"]),
]


def _settings(*overrides):
    return Settings.from_config(JobConfig.load(overrides=list(overrides), environ={}))


def _write_lines(path, payloads):
    path.mkdir(parents=True)
    (path / "part-0.jsonl").write_text("".join(p + "\n" for p in payloads))


def _pipeline(root, s, metric_lines, event_lines):
    """A streaming TableEnvironment with the job's metrics/events parse + duplicate marking as views m and e."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    common = _common_params(s)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "2")  # the copies must meet across the hash exchange
    for kind, lines in (("metrics", metric_lines), ("events", event_lines)):
        _write_lines(root / kind, lines)
        t_env.execute_sql(render_sql("sources/archive_jsonl.sql", table_name=f"{kind}_raw",
                                     event_time_expr=_event_time_expr(s), path=str(root / kind), **common))
    # the parse and duplicate marking calls of flink_jobs.main.build_pipeline (lateness is not tested here)
    t_env.create_temporary_view("m", parse_metrics(t_env, s, "metrics_raw"))
    t_env.create_temporary_view("e", parse_events(t_env, s, "events_raw"))
    return t_env


def _codes(t_env) -> dict[tuple[str, str], list]:
    got: dict[tuple[str, str], list] = {}
    with t_env.execute_sql("SELECT 'metrics', payload, reason_code FROM m UNION ALL "
                           "SELECT 'events', payload, reason_code FROM e").collect() as rows:
        for kind, payload, code in rows:
            got.setdefault((kind, payload), []).append(code)
    return got


def _lines(cases):
    return [payload for payload, copies, _ in cases for _ in range(copies)]


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    s = _settings()
    t_env = _pipeline(tmp_path_factory.mktemp("dups"), s, _lines(METRIC_CASES), _lines(EVENT_CASES))
    return _codes(t_env), t_env


@pytest.mark.parametrize("kind,cases", [("metrics", METRIC_CASES), ("events", EVENT_CASES)])
def test_later_copies_of_an_accepted_record_are_duplicates_and_nothing_else_is(marked, kind, cases):
    got, _ = marked
    # Copies of one payload share a key, hence a subtask, so they keep their arrival order.
    wrong = [(p[:90], want, got.get((kind, p))) for p, _, want in cases if got.get((kind, p)) != want]
    assert not wrong, wrong


def test_the_plan_is_insert_only_and_parses_each_record_once(marked):
    """One OverAggregate, no retraction anywhere, and the parse CASE is not duplicated by the marking."""
    from pyflink.table.explain_detail import ExplainDetail

    _, t_env = marked
    s = _settings()
    plain = t_env.sql_query(render_sql("parse/metrics.sql", source_table="metrics_raw",
                                       max_metric_value=s.max_metric_value, **_common_params(s)))
    marked_plan = t_env.sql_query("SELECT * FROM m").explain(ExplainDetail.CHANGELOG_MODE)
    plain_plan = plain.explain(ExplainDetail.CHANGELOG_MODE)
    physical = marked_plan.split("== Optimized Physical Plan ==")[1].split("== Optimized Execution Plan ==")[0]
    assert physical.count("OverAggregate(") == 1
    modes = set(re.findall(r"changelogMode=\[([A-Z,]+)\]", physical))
    assert modes == {"I"}, modes
    assert "orderBy=[$" in physical and "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" in physical

    def parse_cost(plan):  # JSON parses in the optimized plan: each reference re-parses the payload
        body = plan.split("== Optimized Physical Plan ==")[1].split("== Optimized Execution Plan ==")[0]
        return body.count("JSON_QUERY(") + body.count("JSON_VALUE(")

    assert parse_cost(marked_plan) == parse_cost(plain_plan)


def test_retention_zero_disables_the_marking(tmp_path):
    s = _settings("processing.dedup.retention.s=0")
    t_env = _pipeline(tmp_path, s, [COPIED, COPIED], [_e(), _e()])
    assert "OverAggregate" not in t_env.sql_query("SELECT * FROM m").explain()
    got = _codes(t_env)
    assert got[("metrics", COPIED)] == [None, None]
    assert got[("events", _e())] == [None, None]


def _slow_copies_codes(s, ttl: str, copies: int = 3) -> list:
    """The same valid payload `copies` times, one per second (datagen), through the metrics marking."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    common = _common_params(s)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE metrics_raw (seq BIGINT, payload AS '{COPIED}', "
        # a computed column cannot reference another: the event time is the payload's, TS
        f"event_time AS TO_TIMESTAMP_LTZ({TS}, 3), WATERMARK FOR event_time AS event_time - {common['watermark_interval']}) "
        f"WITH ('connector' = 'datagen', 'rows-per-second' = '1', 'fields.seq.kind' = 'sequence', "
        f"'fields.seq.start' = '1', 'fields.seq.end' = '{copies}')")
    table = parse_metrics(t_env, s, "metrics_raw")
    # The property (its default, 300) is what sets the counter's TTL ...
    assert t_env.get_config().get("table.exec.state.ttl", None) == "300 s"
    # ... in whole seconds; a sub-second TTL keeps this test short.
    t_env.get_config().set("table.exec.state.ttl", ttl)
    t_env.create_temporary_view("m", table)
    with t_env.execute_sql("SELECT reason_code FROM m").collect() as rows:
        return [r[0] for r in rows]


def test_a_copy_after_the_retention_is_accepted_again():
    """The counter is keyed state with a TTL: copies one second apart are duplicates under a
    60 s retention and first copies again under a 200 ms one (state expired in between)."""
    s = _settings()
    assert _slow_copies_codes(s, "60 s") == [None, "DUPLICATE_RECORD", "DUPLICATE_RECORD"]
    assert _slow_copies_codes(s, "200 ms") == [None, None, None]


def test_the_retention_does_not_expire_window_state():
    """table.exec.state.ttl is job-wide: the window aggregation must not lose rows to it. Three
    different valid samples of one window, one per second, under a 200 ms TTL: all three counted."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    s = _settings()
    common = _common_params(s)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE metrics_raw (seq BIGINT, payload AS JSON_OBJECT('editor_id' VALUE 'e-1', "
        f"'metric' VALUE 'rpm', 'value' VALUE CAST(seq AS DOUBLE), 'timestamp' VALUE {TS}), "
        f"event_time AS TO_TIMESTAMP_LTZ({TS}, 3), WATERMARK FOR event_time AS event_time - {common['watermark_interval']}) "
        "WITH ('connector' = 'datagen', 'rows-per-second' = '1', 'fields.seq.kind' = 'sequence', "
        "'fields.seq.start' = '1', 'fields.seq.end' = '3')")
    marked = parse_metrics(t_env, s, "metrics_raw")
    t_env.get_config().set("table.exec.state.ttl", "200 ms")
    t_env.create_temporary_view("metrics_marked", marked)
    # Without the job's DataStream round trip (a TableEnvironment has none); one subtask, no idleness:
    # the late test's place does not matter here.
    t_env.create_temporary_view("metrics_parsed", mark_late(t_env, "metrics_marked", METRIC_PARSED_COLUMNS))
    t_env.create_temporary_view("metrics_valid",
                                t_env.sql_query(f"SELECT * FROM metrics_parsed WHERE {METRIC_COUNTED}"))
    windows = window_sql(s, "editor")   # reads the view metrics_valid
    with t_env.execute_sql(f"SELECT rpm__n, rpm__avg, fill_rate__n, fill_rate__avg FROM ({windows})").collect() as rows:
        assert [tuple(r) for r in rows] == [(3, 2.0, 0, None)]
