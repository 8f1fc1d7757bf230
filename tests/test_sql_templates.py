"""sql/ templates render from config: every placeholder filled, quotes escaped, fragments kept (no Flink job)."""
import re
from pathlib import Path

import pytest

from flink_jobs.config import JobConfig
from flink_jobs.main import (SQL_DIR, Raw, Settings, _common_params, _event_time_expr, render_sql,
                             split_statements, sql_interval, window_sql)

PLACEHOLDER = re.compile(r"\$\{[A-Za-z_]+\}")


def settings(*overrides):
    return Settings.from_config(JobConfig.load(overrides=list(overrides), environ={}))


def test_every_template_is_listed_and_starts_with_a_comment_saying_why():
    files = sorted(SQL_DIR.rglob("*.sql"))
    assert {f.relative_to(SQL_DIR).as_posix() for f in files} >= {
        "sources/kinesis_official.sql", "sources/archive_jsonl.sql", "sources/datagen_metrics.sql",
        "parse/metrics.sql", "parse/events.sql", "parse/event_time.sql",
        "windows/editor_windows.sql", "windows/partner_editor_windows.sql",
        "windows/partner_windows.sql", "sinks/dead_letters.sql"}
    for f in files:
        text = f.read_text()
        assert text.lstrip().startswith("--"), f"{f.name} should start with a comment saying why"


def test_missing_parameter_is_an_error():
    with pytest.raises(KeyError, match=r"no value for placeholder \$\{valid_table\}"):
        render_sql("windows/editor_windows.sql", window_interval=sql_interval(300), metric_aggregates=Raw("x"))


def test_values_are_quote_escaped_but_fragments_are_not():
    s = settings()
    sql = render_sql("sources/archive_jsonl.sql", table_name="metrics_raw", event_time_expr=_event_time_expr(s),
                     path="/data/it's/archive", **_common_params(s))
    assert "'path' = '/data/it''s/archive'" in sql
    assert "JSON_VALUE(payload, '$.timestamp')" in sql       # JSON paths are not placeholders
    assert not PLACEHOLDER.search(sql)
    assert "WATERMARK FOR event_time AS LEAST(event_time, CURRENT_TIMESTAMP) - INTERVAL '0 00:00:30' DAY TO SECOND" in sql


def test_window_and_watermark_come_from_config():
    s = settings("processing.window.size.s=60", "processing.watermark.delay.s=5",
                 "processing.max.future.s=120", "processing.max.payload.bytes=1000")
    editor, partner_editor, partner = (window_sql(s, name) for name in ("editor", "partner_editor", "partner"))
    for sql in (editor, partner_editor, partner):
        assert "INTERVAL '0 00:01:00' DAY TO SECOND" in sql and not PLACEHOLDER.search(sql)
    assert "GROUP BY editor_id, window_start, window_end, window_time" in editor
    # per-editor partner series, then every editor of a partner's window in one row
    assert "GROUP BY partner, editor_id, window_start, window_end, window_time" in partner_editor
    assert "TABLE partner_editor_windows, DESCRIPTOR(editor_window_time)" in partner
    assert "JSON_ARRAYAGG(JSON_ARRAY(editor_id, rpm__avg, rpm__n, fill_rate__avg" in partner
    assert "win_rate__avg, win_rate__n NULL ON NULL))" in partner   # a metric without samples keeps its place
    et = _event_time_expr(s)
    assert isinstance(et, Raw) and "TIMESTAMPADD(SECOND, 120, CURRENT_TIMESTAMP)" in et and "<= 1000" in et
    assert "--" not in et  # comments stripped: the fragment is embedded in a column definition


class _RecordingTableEnv:
    """What create_sources calls on a table environment for the official Kinesis source, recorded."""

    def __init__(self):
        self.statements = []

    def execute_sql(self, statement):
        self.statements.append(statement)

    def sql_query(self, query):      # the connector check plans a query: here nothing is missing
        class Planned:
            def explain(self):
                return ""
        return Planned()


def test_kinesis_official_ddl_uses_properties():
    """Rendered through create_sources, as the job does, so each table must get its own stream's
    ARN, the region and the start position from the properties (upper-cased from any case)."""
    from flink_jobs.main import create_sources

    metrics_arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/metrics-x"
    events_arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/events-y"
    cfg = JobConfig.load(overrides=["kinesis.region=eu-west-1", "kinesis.start.position=trim_horizon",
                                    f"kinesis.metrics.stream.arn={metrics_arn}",
                                    f"kinesis.events.stream.arn={events_arn}"], environ={})
    t_env = _RecordingTableEnv()
    assert create_sources(t_env, None, cfg, Settings.from_config(cfg), "kinesis") == ("metrics_raw", "events_raw")
    ddl = {re.search(r"CREATE TEMPORARY TABLE (\w+)", sql).group(1): sql for sql in t_env.statements}
    assert set(ddl) == {"metrics_raw", "events_raw"} and len(t_env.statements) == 2
    for table, arn, other in (("metrics_raw", metrics_arn, events_arn), ("events_raw", events_arn, metrics_arn)):
        sql = ddl[table]
        for option in ("'connector' = 'kinesis'", f"'stream.arn' = '{arn}'", "'aws.region' = 'eu-west-1'",
                       "'source.init.position' = 'TRIM_HORIZON'", "'format' = 'raw'"):
            assert option in sql, (table, option)
        assert other not in sql and not PLACEHOLDER.search(sql)


def test_datagen_template_splits_into_one_statement_with_rate():
    s = settings()
    sql = render_sql("sources/datagen_metrics.sql", table_name="metrics_raw", rows_per_second=250000,
                     number_of_rows=1000, editors=10, partners=3, partners_per_editor_minus_one=1,
                     start_epoch_ms=0, ms_per_row=5,
                     **_common_params(s))
    stmts = split_statements(sql)
    assert len(stmts) == 1 and "'rows-per-second' = '250000'" in stmts[0]
    assert not PLACEHOLDER.search(sql)


def test_parse_and_dead_letter_templates_render():
    s = settings()
    parse = render_sql("parse/metrics.sql", source_table="metrics_raw", max_metric_value=1e9, **_common_params(s))
    for code in ("OVERSIZED_RECORD", "INVALID_JSON", "MISSING_FIELD", "WRONG_TYPE", "UNKNOWN_METRIC",
                 "NON_FINITE_VALUE", "OUT_OF_RANGE_VALUE", "INVALID_TIMESTAMP", "FUTURE_TIMESTAMP"):
        assert f"'{code}'" in parse
    assert "CURRENT_WATERMARK(event_time)" in parse
    # ... and again after the duplicate marking's exchange (sql/parse/late.sql), on top of the parse's
    late = render_sql("parse/late.sql", marked_table="metrics_marked", columns=Raw("payload, event_time"))
    assert "reason_code IS NULL AND (is_late OR (event_time <= CURRENT_WATERMARK(event_time)) IS TRUE) AS is_late" \
        in late
    assert "RETURNING" not in re.sub(r"--.*", "", parse), "JSON_VALUE ... RETURNING can fail the job"
    dl = render_sql("sinks/dead_letters.sql", parsed_table="metrics_parsed", source_name="metrics",
                    **_common_params(s))
    assert "'LATE_RECORD'" in dl and "'source' VALUE 'metrics'" in dl and "SUBSTRING(payload FROM 1 FOR 65536)" in dl
    assert "ABSENT ON NULL" in dl  # the optional keys are left out, not null (the schema refuses null)


@pytest.mark.parametrize("seconds, text", [(30, "0 00:00:30"), (300, "0 00:05:00"), (90061, "1 01:01:01")])
def test_sql_interval(seconds, text):
    assert sql_interval(seconds) == f"INTERVAL '{text}' DAY TO SECOND"
