"""Generate a scenario into an archive directory: metrics, events, labels and the scenario itself.

    OUT/metrics/year=.../hour=HH/part-00000.parquet   (or .jsonl.gz)
    OUT/events/year=.../hour=HH/part-00000.parquet
    OUT/labels.jsonl        one labeled incident per line
    OUT/scenario.json       the scenario, editor profiles (quiet ones, surges, trends), counts

Deterministic: every random draw comes from generators seeded by
``Scenario.seed`` (one independent stream per purpose and per editor), and the
files carry no wall-clock time, so the same scenario gives byte-identical files.

The output folder must be empty (or not exist): the archive writer numbers new
parts after the ones it finds (part-00001 beside an earlier part-00000) while
labels.jsonl and scenario.json are rewritten, so a second scenario written over
a first would replay two days' traffic against one day's labels. ``overwrite``
removes an earlier scenario's files first (only those: metrics/, events/,
labels.jsonl, scenario.json); anything else in the folder is still refused.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from connectors.archive import ArchiveWriter, PARQUET

from .incidents import Incident, background_events, incident_events, label, schedule_incidents
from .scenario import DEMAND_ISSUE, EDITOR_PROBLEM_TYPES, Scenario
from .traffic import ALL_METRICS, minute_grid, sample_editor
from .world import Editor, build_world


def iso_ms(epoch_ms: int) -> str:
    t = datetime.fromtimestamp(epoch_ms / 1000.0, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass
class Simulation:
    scenario: Scenario
    editors: list[Editor]
    partners: list[str]
    incidents: list[Incident]
    labels: list[dict]


def _streams(seed: int) -> dict[str, np.random.SeedSequence]:
    root = np.random.SeedSequence(seed)
    world, schedule, events, traffic = root.spawn(4)
    return {"world": world, "schedule": schedule, "events": events, "traffic": traffic}


def plan(scenario: Scenario) -> Simulation:
    """Who, which partners, which incidents when -- without generating the traffic."""
    seeds = _streams(scenario.seed)
    editors, partners, outage_partners = build_world(scenario, np.random.default_rng(seeds["world"]))
    incidents = schedule_incidents(scenario, editors, outage_partners, np.random.default_rng(seeds["schedule"]))
    labels = [label(i, scenario.start_epoch_s) for i in incidents]
    return Simulation(scenario, editors, partners, incidents, labels)


def _event_records(sim: Simulation) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rng = np.random.default_rng(_streams(sim.scenario.seed)["events"])
    timed: list[tuple[float, dict]] = []
    for incident in sim.incidents:
        timed.extend(incident_events(incident, sim.scenario.start_epoch_s, rng))
    timed.extend(background_events(sim.scenario, sim.editors, rng))
    timed = [(t, r) for t, r in timed if 0.0 <= t < sim.scenario.duration_s]
    event_ms = np.array([round((sim.scenario.start_epoch_s + t) * 1000.0) for t, _ in timed], dtype=np.int64)
    arrival_ms = event_ms + np.round(rng.uniform(0.5, 10.0, len(timed)) * 1000.0).astype(np.int64)
    records = []
    for ms, (_, body) in zip(event_ms, timed):
        record = {"event_type": body["event_type"], "timestamp": iso_ms(int(ms))}
        record.update({k: v for k, v in body.items() if k != "event_type"})
        records.append(record)
    return event_ms, arrival_ms, records


#: What generate writes directly under its output folder.
SCENARIO_FILES = ("metrics", "events", "labels.jsonl", "scenario.json")


class OutputFolderNotEmpty(ValueError):
    """The output folder holds files; generating into it would mix them with the new scenario."""


def prepare_output(out: str | Path, overwrite: bool = False) -> Path:
    """Check (and with ``overwrite`` clear) the folder a scenario is about to be written to."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderNotEmpty(f"{out} is a file, not a folder to write a scenario into")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return out
    ours = [name for name in present if name in SCENARIO_FILES]
    others = [name for name in present if name not in SCENARIO_FILES]
    if overwrite and not others:
        for name in ours:
            path = out / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        return out
    what = (f"an earlier scenario ({', '.join(ours)})" if ours and not others
            else f"files that are not a scenario's ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''})")
    advice = ("pass --overwrite to replace it, or choose an empty folder" if ours and not others
              else "choose an empty folder (--overwrite only replaces an earlier scenario, it removes nothing else)")
    raise OutputFolderNotEmpty(
        f"{out} holds {what}: a new scenario written there would add its parts beside the old ones "
        f"under one labels file; {advice}")


def generate(scenario: Scenario, out: str | Path, fmt: str = PARQUET, progress=None, *,
             overwrite: bool = False) -> dict:
    """Write the scenario's archive, labels and description under ``out``; returns the summary.

    ``out`` must be empty or absent; with ``overwrite`` an earlier scenario there is removed first
    (:func:`prepare_output`)."""
    out = prepare_output(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    sim = plan(scenario)
    traffic_seeds = _streams(scenario.seed)["traffic"].spawn(len(sim.editors))

    parts = []
    for index, (editor, seed) in enumerate(zip(sim.editors, traffic_seeds)):
        rng = np.random.default_rng(seed)
        # The per-partner revenue split draws from its own child stream (the editor's other
        # series do not depend on it).
        grid = minute_grid(scenario, editor, sim.incidents, rng, np.random.default_rng(seed.spawn(1)[0]))
        columns = sample_editor(scenario, editor, sim.partners, grid, rng)
        parts.append((index, columns))
        if progress:
            progress(index + 1, len(sim.editors))
    editor_index = np.concatenate([np.full(c.event_ms.size, i, dtype=np.int32) for i, c in parts])
    event_ms = np.concatenate([c.event_ms for _, c in parts])
    arrival_ms = np.concatenate([c.arrival_ms for _, c in parts])
    metric = np.concatenate([c.metric for _, c in parts])
    partner = np.concatenate([c.partner for _, c in parts])
    value = np.concatenate([c.value for _, c in parts])
    order = np.lexsort((value, event_ms, partner, metric, editor_index, arrival_ms))

    ev_ms, ev_arrival_ms, ev_records = _event_records(sim)
    ev_order = np.lexsort((np.arange(len(ev_records)), ev_ms, ev_arrival_ms)) if ev_records else np.array([], int)

    site = {e.editor_id: {"site": f"{e.editor_id}.example.com", "env": "prod"} if e.with_dimensions else None
            for e in sim.editors}
    partner_dimensions = {"adapter": "prebid"}
    writer = ArchiveWriter(out, fmt=fmt)
    current_hour = None
    j = 0
    for i in order:
        arrival = int(arrival_ms[i])
        while j < len(ev_order) and int(ev_arrival_ms[ev_order[j]]) <= arrival:
            writer.add(ev_records[ev_order[j]], ev_arrival_ms[ev_order[j]] / 1000.0, kind="events")
            j += 1
        hour = arrival // 3_600_000
        if hour != current_hour:
            writer.flush()      # records arrive in order: an hour that is over is never reopened
            current_hour = hour
        editor = sim.editors[int(editor_index[i])]
        ms = int(event_ms[i])
        record: dict = {"editor_id": editor.editor_id, "metric": ALL_METRICS[int(metric[i])],
                        "value": float(value[i]),
                        "timestamp": ms if editor.timestamp_style == "epoch_ms" else iso_ms(ms)}
        if partner[i] >= 0:
            record["partner"] = sim.partners[int(partner[i])]
            record["dimensions"] = dict(partner_dimensions)
        elif site[editor.editor_id] is not None:
            record["dimensions"] = dict(site[editor.editor_id])
        writer.add(record, arrival / 1000.0, kind="metrics")
    while j < len(ev_order):
        writer.add(ev_records[ev_order[j]], ev_arrival_ms[ev_order[j]] / 1000.0, kind="events")
        j += 1
    writer.close()

    with open(out / "labels.jsonl", "w", encoding="utf-8") as handle:
        for line in sim.labels:
            handle.write(json.dumps(line, sort_keys=False) + "\n")
    summary = {
        "scenario": scenario.to_dict(),
        "records": dict(writer.record_counts),
        "incidents": len(sim.labels),
        "incidents_by_type": _count(l["problem_type"] for l in sim.labels),
        # The types the schedule found no room for (editors x hours between the warm-up and the
        # cool-down too few): "every type at least once" holds only where the scenario has room.
        "incident_types_not_placed": [t for t in (DEMAND_ISSUE, *EDITOR_PROBLEM_TYPES)
                                      if t not in {l["problem_type"] for l in sim.labels}],
        "partners": sim.partners,
        "editors": [e.summary() for e in sim.editors],
        "quiet_editors": [e.editor_id for e in sim.editors if e.quiet],
        "format": fmt,
    }
    (out / "scenario.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items()))
