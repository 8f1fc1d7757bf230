"""sql/windows/*.sql against the offline replay's windows, on one small bounded Flink job (no AWS).

The multi-day detection figures come from flink_jobs/evaluation/offline.py, whose
``read_windows`` mirrors the job's windows in Python. Here the job's own SQL (archive
source, parse, duplicate marking, then the editor and partner-editor windows, as
flink_jobs.main.build_pipeline wires them) runs over records chosen for the rules the two
must share, and every closed window must have the same mean and count in both:

* an editor's own total (e.g. ``revenue``) goes to its editor window, and the per-partner
  breakdown of it to the partner windows only: averaged together they would mix a part
  with the whole (sql/windows/editor_windows.sql's WHERE);
* metrics that exist per partner only (``bid_rate``, ``win_rate``, ``partner_timeouts``) go
  to both: the editor's window averages them over its partners;
* a partner sample of any other metric (here ``fill_rate``) goes to the partner window only.
"""
from __future__ import annotations

import json
import time
from datetime import timezone

import pytest

from detectors.classifier import METRICS
from flink_jobs.config import JobConfig
from flink_jobs.evaluation.offline import JobParameters, read_windows
from flink_jobs.main import (METRIC_COUNTED, METRIC_PARSED_COLUMNS, Settings, _common_params, _event_time_expr,
                             mark_late, metric_columns, parse_metrics, render_sql, window_sql)

pytestmark = [pytest.mark.flink, pytest.mark.timeout(900)]

WINDOW_MS = 300_000
# Two hours ago, on a window boundary: neither a future timestamp nor behind the watermark.
T0 = (int(time.time() * 1000) - 7_200_000) // WINDOW_MS * WINDOW_MS


def _m(editor, ms, metric, value, **kw):
    return {"editor_id": editor, "metric": metric, "value": value, "timestamp": T0 + ms, **kw}


# In event-time order (nothing late), no two byte-identical (nothing is a duplicate).
RECORDS = [
    _m("e-1", 10_000, "revenue", 10.0), _m("e-1", 10_000, "revenue", 6.0, partner="p-1"),
    _m("e-1", 10_000, "revenue", 4.0, partner="p-2"),
    _m("e-1", 20_000, "bid_rate", 0.4, partner="p-1"), _m("e-1", 20_000, "bid_rate", 0.8, partner="p-2"),
    _m("e-1", 30_000, "fill_rate", 0.5, partner="p-1"), _m("e-1", 40_000, "fill_rate", 0.9),
    _m("e-2", 50_000, "rpm", 2.0), _m("e-2", 60_000, "rpm", 3.0),
    # dead-lettered by the parse, in no window of either (the offline replay windowed them until 2026-12-07)
    _m("e-2", 61_000, "rpm", -50.0), _m("e-2", 62_000, "fill_rate", 1.7), _m("e-2", 63_000, "ctr", 0.1),
    _m("e-2", 64_000, "rpm", 9.0, dimensions={"n": 1}), _m("e-2", 65_000, "impressions", 2e9),
    _m("e-2", 70_000, "win_rate", 0.25, partner="p-1", dimensions={"site": "mobile"}),
    _m("e-1", 310_000, "revenue", 12.0), _m("e-1", 320_000, "revenue", 7.0, partner="p-1"),
    _m("e-1", 330_000, "partner_timeouts", 3.0, partner="p-2"),
    # Late enough to close the windows above in the offline replay (its last watermark is this minus 30 s).
    _m("e-2", 1_000_000, "rpm", 2.5),
]


def _sql_windows(root) -> dict:
    """(kind, scope, metric, editor) -> [(window end ms, mean, count)], as read_windows keys its series."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    s = Settings.from_config(JobConfig.load(environ={}))
    common = _common_params(s)
    (root / "metrics").mkdir()
    (root / "metrics" / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "2")
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.execute_sql(render_sql("sources/archive_jsonl.sql", table_name="metrics_raw",
                                 event_time_expr=_event_time_expr(s), path=str(root / "metrics"), **common))
    t_env.create_temporary_view("metrics_marked", parse_metrics(t_env, s, "metrics_raw"))
    # Without the job's DataStream round trip (a TableEnvironment has none): the second late test may
    # be planned before the exchange here, which a bounded archive without idle subtasks does not notice.
    t_env.create_temporary_view("metrics_parsed", mark_late(t_env, "metrics_marked", METRIC_PARSED_COLUMNS))
    t_env.create_temporary_view("metrics_valid",
                                t_env.sql_query(f"SELECT * FROM metrics_parsed WHERE {METRIC_COUNTED}"))
    series: dict = {}
    queries = {  # the window time as UTC wall time: a TIMESTAMP_LTZ does not cross to Python in collect()
        "editor": f"SELECT editor_id AS scope_id, CAST(NULL AS STRING) AS editor, {metric_columns()}, "
                  f"CAST(window_time AS TIMESTAMP(3)) AS window_time FROM ({window_sql(s, 'editor')})",
        "partner": f"SELECT partner AS scope_id, editor_id AS editor, {metric_columns()}, "
                   f"CAST(editor_window_time AS TIMESTAMP(3)) AS window_time FROM ({window_sql(s, 'partner_editor')})",
    }
    for kind, query in queries.items():
        table = t_env.sql_query(query)
        names = table.get_resolved_schema().get_column_names()
        with table.execute().collect() as rows:
            for row in rows:
                by_name = dict(zip(names, row))
                scope, editor = by_name["scope_id"], by_name["editor"]
                # window_time = window end - 1 ms
                end = int(by_name["window_time"].replace(tzinfo=timezone.utc).timestamp() * 1000) + 1
                for metric in METRICS:
                    count = by_name.get(f"{metric}__n")
                    if count:
                        series.setdefault((kind, scope, metric, editor), []).append(
                            (end, by_name[f"{metric}__avg"], count))
    return {key: sorted(windows) for key, windows in series.items()}


def test_the_jobs_windows_are_the_offline_replays(tmp_path):
    sql = _sql_windows(tmp_path)
    offline = read_windows(tmp_path, JobParameters()).series     # the same archive file
    assert offline, "the offline replay read no windows"
    closed_until = max(end for windows in offline.values() for end, _, _ in windows)
    job = {key: [w for w in windows if w[0] <= closed_until] for key, windows in sql.items()}
    job = {key: windows for key, windows in job.items() if windows}
    assert job.keys() == offline.keys(), {"job only": sorted(job.keys() - offline.keys()),
                                          "offline only": sorted(offline.keys() - job.keys())}
    for key, windows in offline.items():
        assert [(end, pytest.approx(mean), n) for end, mean, n in windows] == job[key], key
    # The rules themselves, on the windows of T0 (end T0 + 5 min):
    first = lambda key: next(w[1:] for w in offline[key] if w[0] == T0 + WINDOW_MS)
    assert first(("editor", "e-1", "revenue", None)) == (10.0, 1)              # the total only
    assert first(("partner", "p-1", "revenue", "e-1")) == (6.0, 1)
    assert first(("editor", "e-1", "bid_rate", None)) == (pytest.approx(0.6), 2)   # over its partners
    assert first(("editor", "e-1", "fill_rate", None)) == (0.9, 1)             # its own sample only
    assert first(("partner", "p-1", "fill_rate", "e-1")) == (0.5, 1)
