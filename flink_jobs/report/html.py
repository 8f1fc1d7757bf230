"""The run report: one self-contained HTML page (PNG plots embedded as base64) plus the JSON summary.

Plots:
- metric series for a few affected editors (one incident of each type), each
  with a trailing baseline band computed here from the archive (median of the
  previous 12 windows +- 3 x 1.4826 x MAD, the same kind of editor-own baseline
  the job keeps), the labeled incident shaded, the job's alerts marked, and
  the job's own baseline / band drawn at the windows it alerted on;
- a timeline of every labeled incident against the alerts on the same editors
  and partners;
- the confusion matrix of labeled type x predicted type (with MISSED);
- the time-to-detect histogram (in windows).
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from connectors.archive import METRICS, iter_archive
from connectors.replay.kinesis import event_time_ms
from flink_jobs.evaluate import incomplete_banner, workflow_line
from flink_jobs.evaluation.scoring import iso, load_labels, parse_time

#: The metric that shows each problem type best.
SIGNATURE_METRIC = {
    "DEMAND_ISSUE": "fill_rate", "LATENCY_ISSUE": "bid_latency_ms", "PRICING_ISSUE": "rpm",
    "CONFIGURATION_ISSUE": "error_rate", "INFRASTRUCTURE_ISSUE": "cache_hit_rate", "SECURITY_ISSUE": "impressions",
}
#: The composite anomalies listed with their summaries (a day of the default scenario sends ~70).
MAX_ALERTS_LISTED = 200
TYPE_COLORS = {
    "DEMAND_ISSUE": "#1f77b4", "LATENCY_ISSUE": "#ff7f0e", "PRICING_ISSUE": "#2ca02c",
    "CONFIGURATION_ISSUE": "#d62728", "INFRASTRUCTURE_ISSUE": "#9467bd", "SECURITY_ISSUE": "#8c564b",
    "UNKNOWN": "#7f7f7f",
}


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _matplotlib().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)


def window_means(archive, editors: set[str], window_s: float) -> dict[tuple[str, str], dict[int, float]]:
    """Mean of each editor-level metric per window, for the given editors (partner samples left out)."""
    sums: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    for item in iter_archive(archive, METRICS):
        r = item.record
        if not isinstance(r, dict) or r.get("editor_id") not in editors or "partner" in r:
            continue
        ms = event_time_ms(r)
        value = r.get("value")
        if ms is None or not isinstance(value, (int, float)):
            continue
        cell = sums[(r["editor_id"], r.get("metric"))][int(ms // 1000 // window_s)]
        cell[0] += value
        cell[1] += 1
    return {key: {w: s / n for w, (s, n) in cells.items()} for key, cells in sums.items()}


def trailing_band(series: dict[int, float], history: int = 12, k: float = 3.0):
    windows = sorted(series)
    base, low, high = [], [], []
    for i, w in enumerate(windows):
        past = [series[x] for x in windows[max(0, i - history):i]]
        if len(past) < 4:
            base.append(np.nan), low.append(np.nan), high.append(np.nan)
            continue
        median = float(np.median(past))
        spread = 1.4826 * float(np.median(np.abs(np.array(past) - median))) or abs(median) * 0.02
        base.append(median), low.append(median - k * spread), high.append(median + k * spread)
    return windows, np.array(base), np.array(low), np.array(high)


def _affected_editors(label: dict) -> list[str]:
    """The editors a label is about: its editor, or a partner incident's optional ``editors``."""
    return [label["editor_id"]] if label.get("editor_id") else list(label.get("editors") or [])


def _pick_showcase(outcomes: list[dict], labels: dict[str, dict], limit: int = 6) -> list[dict]:
    """One incident per problem type (detected ones first), for the series plots; a partner
    incident that names no editor has no editor series to show."""
    chosen, seen = [], set()
    for outcome in sorted(outcomes, key=lambda o: (not o["detected"], o["start"])):
        label = labels[str(outcome["incident_id"])]
        if outcome["problem_type"] in seen or not _affected_editors(label):
            continue
        seen.add(outcome["problem_type"])
        chosen.append(label)
    return chosen[:limit]


def _shown_editor(label: dict, means, metrics: list[str]) -> str:
    """The first affected editor with samples of these metrics (a partner outage may name editors
    the archive has no data of); the first one when none has."""
    editors = _affected_editors(label)
    return next((e for e in editors if any(means.get((e, m)) for m in metrics)), editors[0])


def series_figure(label: dict, means, alerts: list[dict], window_s: float):
    plt = _matplotlib()
    metrics = [SIGNATURE_METRIC.get(label["problem_type"], "rpm"), "rpm" if label["problem_type"] != "PRICING_ISSUE"
               else "fill_rate"]
    editor = _shown_editor(label, means, metrics)
    empty: list[str] = []
    start, end = parse_time(label["start"]), parse_time(label["end"])
    lo_w, hi_w = int((start - 4 * 3600) // window_s), int((end + 2 * 3600) // window_s)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 2.6 * len(metrics)), sharex=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        series = {w: v for w, v in means.get((editor, metric), {}).items() if lo_w - 12 <= w <= hi_w}
        if not series:
            empty.append(metric)
            ax.text(0.5, 0.5, f"{editor} {metric}: no samples", ha="center", va="center", transform=ax.transAxes)
            continue
        windows, base, low, high = trailing_band(series)
        keep = [i for i, w in enumerate(windows) if w >= lo_w]
        x = [_dt((windows[i] + 1) * window_s) for i in keep]
        ax.fill_between(x, low[keep], high[keep], color="#cfe2f3", label="trailing baseline band (report)")
        ax.plot(x, base[keep], color="#6fa8dc", lw=1, label="trailing median")
        ax.plot(x, [series[windows[i]] for i in keep], color="black", lw=1.2, label=f"{metric} (window mean)")
        ax.axvspan(_dt(start), _dt(end), color="#f4cccc", alpha=0.6, label=f"labeled {label['problem_type']}")
        for alert in alerts:
            if alert.get("editor_id") != editor:
                continue
            we = parse_time(alert["window_end"])
            if not (lo_w * window_s <= we <= (hi_w + 1) * window_s):
                continue
            color = TYPE_COLORS.get(alert.get("problem_type"), "#7f7f7f")
            ax.axvline(_dt(we), color=color, lw=0.8, alpha=0.7)
            m = (alert.get("metrics") or {}).get(metric)
            if m and m.get("baseline") is not None:
                ax.errorbar([_dt(we)], [m["baseline"]], yerr=[[m["baseline"] - (m.get("lower") or m["baseline"])],
                                                                [(m.get("upper") or m["baseline"]) - m["baseline"]]],
                            fmt="o", color=color, ms=3, capsize=2)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_title(f"{label['incident_id']}: {label['problem_type']} on {editor}"
                    f"{' (partner ' + label['partner'] + ')' if label.get('partner') else ''} -- "
                    "vertical lines: the job's alerts (colour = type), dots: the job's baseline/band")
    drawn = next((ax for ax in np.atleast_1d(axes) if ax.get_legend_handles_labels()[0]), None)
    if drawn is not None:       # a panel without samples has nothing to name
        drawn.legend(loc="upper left", fontsize=7, ncol=2)
    return fig


def timeline_figure(labels: list[dict], alerts: list[dict], window_s: float):
    plt = _matplotlib()
    rows: list[str] = []
    for label in labels:
        entities = ([label["editor_id"]] if label["scope"] == "editor"
                    else [f"partner:{label['partner']}", *(label.get("editors") or [])])
        for entity in entities:
            if entity not in rows:
                rows.append(entity)
    for alert in alerts:
        entity = alert.get("editor_id") or f"partner:{alert.get('partner')}"
        if entity not in rows:
            rows.append(entity)
    rows.sort(key=lambda r: (r.startswith("partner:"), r))
    index = {r: i for i, r in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.22 * len(rows) + 1)))
    for label in labels:
        entity = label["editor_id"] if label["scope"] == "editor" else f"partner:{label['partner']}"
        start, end = parse_time(label["start"]), parse_time(label["end"])
        ax.barh(index[entity], (end - start) / 86400.0, left=_dt(start), height=0.8,
                color=TYPE_COLORS.get(label["problem_type"]), alpha=0.35, edgecolor="none")
        for editor in (label.get("editors") or []) if label["scope"] == "partner" else []:
            # the editors a partner outage hurts: a lighter bar on their rows
            ax.barh(index[editor], (end - start) / 86400.0, left=_dt(start), height=0.5,
                    color=TYPE_COLORS.get(label["problem_type"]), alpha=0.18, edgecolor="none")
    for alert in alerts:
        entity = alert.get("editor_id") or f"partner:{alert.get('partner')}"
        ax.plot([_dt(parse_time(alert["window_end"]))], [index[entity]], marker="|", ms=7,
                color=TYPE_COLORS.get(alert.get("problem_type"), "#7f7f7f"))
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=6)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in TYPE_COLORS.values()]
    ax.legend(handles, list(TYPE_COLORS), fontsize=6, loc="lower right", ncol=2)
    ax.set_title("labeled incidents (bars; light: editors of a partner outage) vs the job's alerts "
                 "(ticks at window end); colour = problem type")
    return fig


def confusion_figure(report: dict):
    plt = _matplotlib()
    truth = sorted(report["confusion"])
    predicted = [t for t in report["confusion_labels"] if t != "MISSED"]
    predicted = sorted(set(predicted) | set(truth)) + ["MISSED"]
    matrix = np.array([[report["confusion"][t].get(p, 0) for p in predicted] for t in truth])
    fig, ax = plt.subplots(figsize=(1.2 * len(predicted) + 2, 0.6 * len(truth) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(truth)):
        for j in range(len(predicted)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(predicted)))
    ax.set_xticklabels([p.replace("_ISSUE", "") for p in predicted], rotation=30, ha="right")
    ax.set_yticks(range(len(truth)))
    ax.set_yticklabels([t.replace("_ISSUE", "") for t in truth])
    ax.set_xlabel("predicted (majority of matching alerts)")
    ax.set_ylabel("labeled")
    ax.set_title("confusion matrix per problem type")
    return fig


def ttd_figure(report: dict, window_s: float):
    plt = _matplotlib()
    values = [v / window_s for v in report["time_to_detect"]["seconds"]["values"]]
    fig, ax = plt.subplots(figsize=(6, 3))
    if values:
        bins = np.arange(0, max(values) + 0.5, 0.25)
        ax.hist(values, bins=bins if len(bins) > 1 else 4, color="#6fa8dc", edgecolor="white")
        ax.axvline(np.median(values), color="black", ls="--", lw=1, label=f"median {np.median(values):.2f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no incident was detected", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("time to detect, in windows of %g s of event time\n"
                  "(the first detecting alert's window end - the incident start)" % window_s)
    ax.set_ylabel("incidents")
    ax.yaxis.get_major_locator().set_params(integer=True)     # a count of incidents
    ax.set_title("time-to-detect distribution")
    return fig


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def composites_and_alert_points(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """The composites' details, and what the plots draw for every alerting event.

    >>> check = {"detail-type": "Partner Health Check", "detail": {"check_id": "c", "partner": "p",
    ...          "partner_status": "DEGRADED", "window_end": "2026-11-02T00:05:00Z"}}
    >>> composites_and_alert_points([check, check])
    ([], [{'partner': 'p', 'window_end': '2026-11-02T00:05:00Z', 'problem_type': 'DEMAND_ISSUE'}])
    """
    # Each event once, as the scorer counts them: a redelivery carries the same id
    # (incident_id, check_id or finding_id; scoring.alert_from_event).
    details, alert_points, seen = [], [], set()
    for e in events:
        d = e.get("detail", {})
        kind = e.get("detail-type")
        if kind == "Composite Anomaly Detected":
            key = d.get("incident_id")
        elif kind == "Partner Health Check" and d.get("partner_status") in ("DEGRADED", "UNHEALTHY"):
            key = d.get("check_id")
        elif kind == "Security Incident Detected":
            key = d.get("finding_id")
        else:
            continue
        if (kind, key) in seen:
            continue
        seen.add((kind, key))
        if kind == "Composite Anomaly Detected":
            details.append(d)
            alert_points.append(dict(d, problem_type=d.get("problem_type")))
        elif kind == "Partner Health Check":
            alert_points.append({"partner": d.get("partner"), "window_end": d["window_end"],
                                 "problem_type": "DEMAND_ISSUE"})
        else:
            alert_points.append({"editor_id": d.get("editor_id"), "partner": d.get("partner"),
                                 "window_end": d["detected_at"], "problem_type": "SECURITY_ISSUE"})
    return details, alert_points


def write_report(report: dict, archive, labels_path, out_html, *, title: str = "AdOps anomaly detection run") -> Path:
    """Render ``report`` (from flink_jobs.evaluate.evaluate) into a self-contained HTML page."""
    window_s = float(report.get("window_seconds", 300.0))
    load_labels(labels_path)           # checked like the scorer's (file:line), before any plot
    labels = [json.loads(l) for l in Path(labels_path).read_text().splitlines() if l.strip()]
    # The outcomes name incidents by the text of their id (an integer id is valid).
    by_id = {str(l["incident_id"]): l for l in labels}
    details, alert_points = composites_and_alert_points(report.get("events", []))

    showcase = _pick_showcase(report["outcomes"], by_id)
    editors = {e for l in showcase for e in _affected_editors(l)}
    means = window_means(archive, editors, window_s)
    images = [("Metric series of affected editors", _png(series_figure(l, means, alert_points, window_s)))
              for l in showcase]
    images.insert(0, ("Detected incidents against ground truth", _png(timeline_figure(labels, alert_points, window_s))))
    images.append(("Confusion matrix", _png(confusion_figure(report))))
    images.append(("Time to detect", _png(ttd_figure(report, window_s))))

    ttd = report["time_to_detect"]["windows"]
    headline = [
        ["incidents", report["incidents"]], ["detected", report["detected"]],
        ["false-alarm episodes (alerts)", f"{report['false_alarm_episodes']} ({report['false_alarm_alerts']})"],
        ["precision / recall / F1", f"{report['precision']} / {report['recall']} / {report['f1']}"],
        ["problem-type accuracy", report["type_accuracy"]],
        ["time to detect, windows of event time (median / p90 / max)",
         f"{ttd['median']} / {ttd['p90']} / {ttd['max']}"],
        ["false-alarm episodes per editor-day", report["false_alarm_episodes_per_editor_day"]],
    ]
    if report.get("warmup_end"):
        w = report["including_warmup"]
        headline.append([f"counting the {report['warmup_false_alarm_alerts']} alerts of the warm-up "
                         f"(before {report['warmup_end']}) too",
                         f"precision {w['precision']}, F1 {w['f1']}, "
                         f"{w['false_alarm_episodes_per_editor_day']} false-alarm episodes per editor-day"])
    if report.get("quiet_editors"):
        headline.append(["alerts on incident-free editors during their surges",
                         report["quiet_editors"]["alerts_during_quiet_stretches"]])
    run = report.get("run", {})
    lag = run.get("job_lag_s") or {}
    if lag.get("events"):
        # The time to detect above is event time; this is how late the results came in wall time.
        behind = run.get("replay_behind_schedule_s") or {}
        headline.append(["the job's lag: a result on the bus after the replay put its window's end, "
                         "wall-clock seconds (median / max)",
                         f"{lag['median']} / {lag['max']}"
                         + (f" (the replay itself behind its schedule: {behind['median']} / {behind['max']})"
                            if behind.get("events") else "")])
    per_type = [[t, v["incidents"], v["detected"], v["recall"], v["type_accuracy"], v["median_time_to_detect_windows"]]
                for t, v in report["per_type"].items()]
    outcomes = [[o["incident_id"], o["problem_type"], o["entity"], o["start"], o["end"], o["detected"],
                 o["predicted_type"], o["matched_alerts"],
                 None if o.get("time_to_detect_s") is None else iso(parse_time(o["start"]) + o["time_to_detect_s"]),
                 None if o.get("time_to_detect_s") is None else round(o["time_to_detect_s"]),
                 None if o["time_to_detect_windows"] is None else round(o["time_to_detect_windows"], 2)]
                for o in report["outcomes"]]
    # What an AdOps engineer reads: each composite's own one-line explanation (which metrics,
    # against what baseline, the likely cause, the revenue at risk), in window order.
    in_window_order = sorted(details, key=lambda d: (str(d.get("window_start")), str(d.get("editor_id"))))
    sent = [[d.get("window_start"), d.get("editor_id"), d.get("problem_type"), d.get("severity"),
             d.get("revenue_at_risk"), d.get("summary")] for d in in_window_order[:MAX_ALERTS_LISTED]]
    false_alarms = [[f["entity"] if "entity" in f else (f.get("editor_id") or f.get("partner")), f["kind"],
                     f["problem_type"], datetime.fromtimestamp(f["window_start_s"], tz=timezone.utc).isoformat(),
                     f["episode_alerts"], when]
                    for when, key in (("after the warm-up", "false_alarms"), ("in the warm-up", "warmup_false_alarms"))
                    for f in (report.get(key) or [])][:40]
    banner = incomplete_banner(report)
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        *([f"<p class=warn><strong>{html.escape(banner)}</strong></p>"] if banner else []),
        f"<p>Archive <code>{html.escape(str(archive))}</code>, labels <code>{html.escape(str(labels_path))}</code>. "
        f"Replay: {html.escape(json.dumps(run.get('replay', {}).get('records', {})))} records in "
        f"{run.get('replay', {}).get('seconds')} s; bus events received: {run.get('bus_events_received')}.</p>",
        *([f"<p>Incident workflow: {html.escape(workflow_line(run['incident_workflow']))}.</p>"]
          if run.get("incident_workflow") else []),
        "<h2>Summary</h2>", _table(headline, ["figure", "value"]),
        f"<p class=note>Matching rule: {html.escape(report['matching_rule'])}.</p>",
        "<h2>Per problem type</h2>",
        _table(per_type, ["type", "incidents", "detected", "recall", "type accuracy", "median TTD (windows)"]),
    ]
    for caption, data in images:
        parts.append(f"<h2>{html.escape(caption)}</h2><img src='data:image/png;base64,{data}'>")
    parts += ["<h2>Incidents</h2>", _table(outcomes, ["incident", "type", "editor / partner", "start", "end",
                                                       "detected", "predicted", "alerts",
                                                       "first detection (its window end)", "TTD (s)",
                                                       "TTD (windows)"]),
              "<h2>False alarms (episodes, first 40; those of the warm-up are not in the figures)</h2>",
              _table(false_alarms, ["entity", "kind", "type", "first window", "alerts in episode", "when"]),
              f"<h2>Composite anomalies as sent ({len(sent)} of {len(details)}, in window order)</h2>",
              _table(sent, ["window start", "editor", "type", "severity", "revenue at risk", "summary"])]
    style = ("body{font-family:sans-serif;max-width:1150px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
             "font-size:13px}img{max-width:100%}.note{color:#555;font-size:13px}"
             ".warn{background:#fce8e6;border:1px solid #d93025;padding:0.6em}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(page, encoding="utf-8")
    return out_html
