"""The harness's scenarios (see ``flink_jobs.reliability.__main__``); each returns measured figures."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from deploy.local.endpoint import start_endpoint
from flink_jobs.reliability.fault_proxy import KINESIS_GET_RECORDS, PUT_EVENTS, FaultProxy
from flink_jobs.reliability.fuzz import mix
from flink_jobs.reliability.harness import (
    END_PROBES, Feeder, JobProcess, OutputWatcher, StreamPair, client, fresh_dir, fuzz_match, incident_summary,
    probe, simulated_traffic, wait_until_stable, with_probes,
)

log = logging.getLogger("flink_jobs.reliability")

# Every run but "backlog" feeds its records while the job runs, at FEED_RATE records/s (the
# 9 simulated hours in ~70 s), like live producers, and uses the same job settings, so runs
# differ only by the fault under test.
#
# WATERMARK_DELAY_S: the boto3 Kinesis source has no per-shard watermark (defect D1 in the
# report, measured by the "backlog" scenario with the default 30 s): when it catches up a
# backlog, shards drift apart in event time and the lagging shard's records go to the late
# output. A restored job always catches up the records since its last checkpoint, so with
# 30 s the restart comparison would measure D1 rather than the restore. 600 s absorbs the
# drift of a few seconds of catch-up; "backlog" shows what it costs without.
FEED_RATE = 300
CONTROL_PROBE_BASE = 900_000  # probe numbers outside any run's sequence
WATERMARK_DELAY_S = 600
JOB_SETTINGS = ["job.parallelism=2", "job.checkpoint.interval.ms=3000", "kinesis.start.position=TRIM_HORIZON",
                "kinesis.max.records.per.get=100", "kinesis.poll.interval.ms=200", "deadletter.sink=file",
                f"processing.watermark.delay.s={WATERMARK_DELAY_S}"]
RUN_TIMEOUT_S = 420
# sink_faults: after the fault schedule, the job is killed only once the entries accepted by
# the endpoint plus the DELIVERY_FAILED dead letters have not grown for SINK_DRAIN_QUIET_S.
# Longer than the publisher's 8 s backoff cap (a retry loop in its longest wait shows no
# progress for that long); bounded by the publisher's 90 s deadline per batch plus the quiet
# period, after which every entry the sink holds is delivered or dead-lettered.
SINK_DRAIN_QUIET_S = 20.0
SINK_DRAIN_MAX_S = 90.0 + SINK_DRAIN_QUIET_S + 10.0
PHASE_MIN_S = 2.0  # sink_faults: shortest throttling / partial-failure phase


class Harness:
    def __init__(self, workdir: Path, *, editors: int, hours: float, seed: int, partners: int = 4):
        from connectors.simulator.generator import generate
        from connectors.simulator.scenario import Scenario
        from deploy.local.stack import deploy_core_stack

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        sim_dir = fresh_dir(workdir / "simulation")
        scenario = Scenario(editors=editors, partners=partners, hours=hours, seed=seed,
                            editor_cadence_s=(90.0, 210.0), partner_cadence_s=(240.0, 540.0))
        self.simulation = generate(scenario, sim_dir, fmt="jsonl")
        self.traffic = simulated_traffic(sim_dir)
        self.seed = seed
        self.endpoint = start_endpoint(log_dir=workdir / "aws")
        self.stack = deploy_core_stack(self.endpoint.url)  # LOCAL_PARAMETERS, as make run
        self.queue_url = self.stack["observation_queues"]["all-adops-events"]
        self.sqs = client("sqs", self.endpoint.url)
        self.proxy = FaultProxy(self.endpoint.url, seed=seed).start()
        self.reference: dict | None = None
        self._control_probes = 0

    def close(self):
        self._kill_leftovers("close")
        self.proxy.stop()
        self.endpoint.stop()

    @staticmethod
    def _kill_leftovers(step: str) -> None:
        killed = JobProcess.kill_leftovers()
        if killed:
            log.warning("%s: killed %d job(s) left running (the step raised before its own kill)", step, killed)

    # -- one run ------------------------------------------------------------------------
    def _overrides(self, run_dir: Path, streams: StreamPair, *, kinesis_url: str, eventbridge_url: str,
                   settings: list[str] = JOB_SETTINGS):
        return settings + [
            f"job.checkpoint.dir={run_dir / 'checkpoints'}",
            f"kinesis.endpoint.url={kinesis_url}",
            f"kinesis.metrics.stream.name={streams.metrics}",
            f"kinesis.events.stream.name={streams.events}",
            f"eventbridge.endpoint.url={eventbridge_url}",
            f"eventbridge.bus.name={self.stack['bus_name']}",
            f"deadletter.path={run_dir / 'dead-letters'}",
            f"deadletter.late.path={run_dir / 'late'}",
        ]

    def _prepare(self, name: str, traffic, *, preload: bool = False):
        run_dir = fresh_dir(self.workdir / name)
        streams = StreamPair(self.endpoint.url, name.replace("_", "-"))
        probed, n_probes = with_probes(name.replace("_", "-"), traffic)
        if preload:
            put_started = time.monotonic()
            streams.put(probed)
            log.info("%s: put %d records in %.1fs", name, len(probed), time.monotonic() - put_started)
        # Whatever an earlier run left in the catch-all queue is not this run's.
        OutputWatcher("-", run_dir / "none", run_dir / "none", self.sqs, self.queue_url).poll()
        watcher = OutputWatcher(name.replace("_", "-"), run_dir / "dead-letters", run_dir / "late", self.sqs,
                                self.queue_url)
        return run_dir, streams, probed, n_probes, watcher

    def _wait_consuming(self, job: JobProcess, streams: StreamPair, watcher: OutputWatcher) -> float:
        """Put a control probe and wait until the job dead-letters it: the job is reading.

        Feeding before that would pile up a backlog while the mini-cluster starts (up to a
        minute on a loaded box), and catching up a backlog is D1 again. Returns the wait."""
        started = time.monotonic()
        self._control_probes += 1
        n = CONTROL_PROBE_BASE + self._control_probes
        streams.put([probe(watcher.run, n)])
        if not watcher.wait_for_probes([n], RUN_TIMEOUT_S, alive=job.alive):
            raise RuntimeError(f"{watcher.run}: the job did not start reading within {RUN_TIMEOUT_S}s; "
                               f"see {job.log_path}")
        return time.monotonic() - started

    def _feed(self, job: JobProcess, streams: StreamPair, records, watcher: OutputWatcher) -> Feeder:
        self._wait_consuming(job, streams, watcher)
        feeder = Feeder(streams, records, FEED_RATE)
        feeder.start()
        return feeder

    def _finish(self, name, job: JobProcess, watcher: OutputWatcher, n_probes: int, started: float,
                feeder: Feeder | None = None, before_kill: Callable[[], None] | None = None) -> dict:
        """Wait until the job has read everything (all probes), let outputs settle, kill the job.

        ``before_kill`` runs once every probe is seen, before the outputs settle: a scenario
        whose fault outlives the input (sink_faults) waits there for the sink to drain."""
        completed = watcher.wait_for_probes(range(n_probes), RUN_TIMEOUT_S, alive=job.alive)
        if feeder is not None:
            feeder.stop_event.set()
            feeder.gate.set()
            if feeder.error is not None:
                raise RuntimeError(f"{name}: feeding failed: {feeder.error}") from feeder.error
        processed_s = time.monotonic() - started
        if before_kill is not None:
            before_kill()
        watcher.settle()
        exited_by_itself = not job.alive()
        killed_s = time.monotonic() - started
        job.kill_hard()
        # Kept for forensics: which window an event that differs between runs belongs to.
        with open(job.log_path.parent / "events.jsonl", "w") as handle:
            for event in watcher.out.events:
                handle.write(json.dumps(event) + "\n")
        failures = job.failures()
        failures["exited_before_stop"] = int(exited_by_itself)
        seen = set(watcher.out.probe_first_seen) & set(range(n_probes))
        incidents = incident_summary(watcher.out.events)
        log.info("%s: completed=%s in %.1fs, %d events, failures %s", name, completed, processed_s,
                 len(watcher.out.events), failures)
        return {
            "completed": completed,
            "seconds_to_process": round(processed_s, 1),
            "job_killed_at_s": round(killed_s, 1),
            "job_failures": failures,
            "job_state_transitions_seen": job.state_transitions_seen(),
            "probes": {"put": n_probes, "seen": len(seen), "missing": sorted(set(range(n_probes)) - seen)[:20],
                       "seen_twice": sum(1 for n, c in watcher.out.probe_copies.items() if c > 1 and n < n_probes)},
            "incidents": incidents,
            "dead_letters": len(watcher.out.dead_letters),
            "late_records": len(watcher.out.late),
            "dead_letter_reasons": dict(Counter(d.get("reason_code") for d in watcher.out.dead_letters)),
        }

    def _compare(self, result: dict, ignore=lambda key: False) -> dict:
        ref = {k for k in self.reference["incidents"]["keys"] if not ignore(k)}
        got = {k for k in result["incidents"]["keys"] if not ignore(k)}
        return {"identical_to_clean": ref == got, "compared": len(ref), "missing_count": len(ref - got),
                "extra_count": len(got - ref), "missing_vs_clean": sorted(map(str, ref - got))[:25],
                "extra_vs_clean": sorted(map(str, got - ref))[:25],
                **compare_episodes(self.reference["incidents"], result["incidents"], ignore)}

    def _sim_letters(self, letters: list[dict]) -> Counter:
        """Dead letters whose raw payload is one of the simulator's valid records, by reason."""
        valid_raw = {r.payload.decode() for r in self.traffic}
        return Counter(d.get("reason_code") for d in letters if d.get("raw") in valid_raw)

    # -- scenarios ----------------------------------------------------------------------
    def clean(self) -> dict:
        run_dir, streams, probed, n_probes, watcher = self._prepare("clean", self.traffic)
        started = time.monotonic()
        job = JobProcess(run_dir, self._overrides(run_dir, streams, kinesis_url=self.endpoint.url,
                                                  eventbridge_url=self.endpoint.url))
        feeder = self._feed(job, streams, probed, watcher)
        result = self._finish("clean", job, watcher, n_probes, started, feeder)
        result["valid_records_dead_lettered"] = dict(self._sim_letters(watcher.out.dead_letters))
        result["valid_records_late"] = dict(self._sim_letters(watcher.out.late))
        self.reference = result
        return result

    def backlog(self) -> dict:
        """The whole traffic put before the job starts, default watermark delay: a catch-up read."""
        run_dir, streams, _, n_probes, watcher = self._prepare("backlog", self.traffic, preload=True)
        settings = [o for o in JOB_SETTINGS if not o.startswith("processing.watermark.delay.s=")]
        started = time.monotonic()
        job = JobProcess(run_dir, self._overrides(run_dir, streams, kinesis_url=self.endpoint.url,
                                                  eventbridge_url=self.endpoint.url, settings=settings))
        result = self._finish("backlog", job, watcher, n_probes, started)
        late = self._sim_letters(watcher.out.late).get("LATE_RECORD", 0)
        result.update({
            "watermark_delay_s": 30,
            "valid_records": len(self.traffic),
            "valid_records_routed_late": late,
            "valid_records_routed_late_share": round(late / len(self.traffic), 4),
            "late_by_editor": dict(Counter(_editor(d) for d in watcher.out.late).most_common()),
            "comparison": self._compare(result),
        })
        return result

    def fuzz(self, bad_records: int) -> dict:
        # Late records: 20 to 60 minutes behind the watermark the newest record sets (newest minus
        # the watermark delay), so none of them can be on time by a hair. The margin is wide
        # because the source keeps per-shard watermarks: while one shard lags, the watermark
        # stays behind the newest record by that shard's lag too, and at this feed's ~460x
        # compressed time a lag of 0.35 s of wall time is 163 s of event time (measured: a
        # record 2.7 min beyond the delay was, correctly, still on time and counted).
        late_by_ms = ((WATERMARK_DELAY_S + 1200) * 1000, (WATERMARK_DELAY_S + 3600) * 1000)
        mixed = mix(self.traffic, bad_records, seed=self.seed, n_late=300, late_by_ms=late_by_ms,
                    n_out_of_order=200, n_valid_edge=200)
        fuzz = [r.fuzz for r in mixed if r.fuzz is not None]
        run_dir, streams, probed, n_probes, watcher = self._prepare("fuzz", mixed)
        started = time.monotonic()
        job = JobProcess(run_dir, self._overrides(run_dir, streams, kinesis_url=self.endpoint.url,
                                                  eventbridge_url=self.endpoint.url))
        feeder = self._feed(job, streams, probed, watcher)
        result = self._finish("fuzz", job, watcher, n_probes, started, feeder)
        out = watcher.out
        refused = {r.fuzz.fuzz_id for r in streams.refused}
        bad = [f for f in fuzz if f.is_bad and f.category not in ("late",) and f.fuzz_id not in refused]
        late = [f for f in fuzz if f.category == "late"]
        must_pass = [f for f in fuzz if not f.is_bad]
        in_dl = fuzz_match(bad, out.dead_letters + out.late)
        per_category: dict[str, dict] = {}
        for f in bad:
            c = per_category.setdefault(f.category, {"tried": 0, "dead_lettered": 0, "expected_code": 0,
                                                     "accepted_code": 0, "codes": Counter()})
            c["tried"] += 1
            codes = in_dl.get(f.fuzz_id)
            if codes:
                c["dead_lettered"] += 1
                c["codes"][codes[0]] += 1
                c["expected_code"] += codes[0] == f.reason_code
                c["accepted_code"] += codes[0] in f.accepted_codes
        for c in per_category.values():
            c["codes"] = dict(c["codes"])
        late_found = fuzz_match(late, out.late)
        wrongly_rejected = fuzz_match(must_pass, out.dead_letters + out.late)
        sim_letters = self._sim_letters(out.dead_letters)
        clean_sim_letters = Counter(self.reference.get("valid_records_dead_lettered", {}))
        n_dup = sum(1 for f in fuzz if f.category == "duplicate")
        # A valid record is lost if the fuzzed run dead-letters it for anything but being one of the
        # injected duplicates (and the clean run did not dead-letter it too).
        extra_sim = {code: n - clean_sim_letters.get(code, 0) for code, n in sim_letters.items()}
        lost_valid = sum(max(0, n) for code, n in extra_sim.items() if code != "DUPLICATE_RECORD")
        lost_valid += max(0, extra_sim.get("DUPLICATE_RECORD", 0) - n_dup)
        # Routed late (out of every window) while the clean run counted them: lost to the windows too.
        lost_valid += max(0, self._sim_letters(out.late).get("LATE_RECORD", 0)
                          - self.reference.get("valid_records_late", {}).get("LATE_RECORD", 0))
        fuzz_owned = lambda key: key[1] is not None and "fz-" in str(key[1])  # noqa: E731
        result.update({
            "bad_records_tried": len(bad) + len(refused),
            "bad_records_put": len(bad),
            "bad_records_refused_by_kinesis_over_1MiB": len(refused),
            "bad_records_dead_lettered": len(in_dl),
            "bad_records_missing_from_dead_letters": len(bad) - len(in_dl),
            "bad_records_with_expected_code": sum(c["expected_code"] for c in per_category.values()),
            "bad_records_with_accepted_code": sum(c["accepted_code"] for c in per_category.values()),
            "per_category": per_category,
            "missing_examples": [f.payload[:160].decode("utf-8", "replace") for f in bad
                                 if f.fuzz_id not in in_dl][:12],
            "late_records_injected": len(late),
            "late_records_in_late_output": len(late_found),
            "valid_edge_or_out_of_order_tried": len(must_pass),
            "valid_edge_or_out_of_order_rejected": len(wrongly_rejected),
            "valid_edge_rejected_examples": [f.payload[:160].decode() for f in must_pass
                                             if f.fuzz_id in wrongly_rejected][:5],
            "duplicates_injected": n_dup,
            "valid_records_lost": lost_valid,
            "comparison": self._compare(result),
            "comparison_excluding_fuzz_keys": self._compare(result, ignore=fuzz_owned),
        })
        return result

    def restart(self, mode: str, *, restore_parallelism: int | None = None) -> dict:
        """Stop mid-stream (``mode`` "savepoint": a savepoint; "kill": kill -9) and restore.

        With ``restore_parallelism``, the restored job runs at that parallelism instead of
        JOB_SETTINGS' 2, as after Managed Flink's autoscaling: Flink then redistributes the
        keyed state (the Kinesis positions, windows, duplicate marking, models) by key group.
        """
        name = f"restart_{mode}" if restore_parallelism is None else "restart_rescale"
        run_dir, streams, probed, n_probes, watcher = self._prepare(name, self.traffic)
        started = time.monotonic()
        overrides = self._overrides(run_dir, streams, kinesis_url=self.endpoint.url, eventbridge_url=self.endpoint.url)
        restored_overrides = overrides if restore_parallelism is None else [*overrides, f"job.parallelism={restore_parallelism}"]
        first = JobProcess(run_dir, overrides, tag="job-1")
        feeder = self._feed(first, streams, probed, watcher)
        target = int((n_probes - END_PROBES) * 0.45)
        reached = watcher.wait_for_probes(range(target), RUN_TIMEOUT_S, alive=first.alive)
        # A kill before the first completed checkpoint leaves nothing to restore from (measured:
        # the first checkpoint can take ~a minute on a loaded 2-core box), so wait for one.
        checkpoint_wait_started = time.monotonic()
        while mode == "kill" and not list((run_dir / "checkpoints").glob("*/chk-*/_metadata")):
            if time.monotonic() - checkpoint_wait_started > RUN_TIMEOUT_S or not first.alive():
                break
            time.sleep(0.5)
        checkpoint_wait_s = time.monotonic() - checkpoint_wait_started
        seen_before = set(watcher.out.probe_first_seen)
        # Producers pause while the job is down, so the restored job catches up only what it
        # replays from its checkpoint (a longer backlog is D1, measured by "backlog").
        feeder.gate.clear()
        stop_at = time.monotonic()
        savepoint = None
        if mode == "savepoint":
            savepoint = first.stop_with_savepoint()
        else:
            first.kill_hard()
        stop_took = time.monotonic() - stop_at
        watcher.poll()
        second = JobProcess(run_dir, restored_overrides, restore="latest", tag="job-2")
        relaunch_at = time.monotonic()
        # Recovered = the restored job has re-read what it replays from its checkpoint and reads
        # a record put after the relaunch.
        self._wait_consuming(second, streams, watcher)
        recovered_at = time.monotonic()
        feeder.gate.set()
        result = self._finish(name, second, watcher, n_probes, started, feeder)
        after = [t for n, t in watcher.out.probe_first_seen.items() if n not in seen_before]
        first_fail = first.failures()
        result.update({
            "stopped_after_probe": max((n for n in seen_before if n < CONTROL_PROBE_BASE), default=None),
            "reached_mid_stream": reached,
            "waited_for_first_checkpoint_s": round(checkpoint_wait_s, 1),
            "savepoint": savepoint,
            "parallelism": {"before": job_parallelism_of(overrides), "after": job_parallelism_of(restored_overrides)},
            "stop_seconds": round(stop_took, 1),
            "recovery_seconds_from_stop": round(recovered_at - stop_at, 1),
            "recovery_seconds_from_relaunch": round(recovered_at - relaunch_at, 1),
            "first_output_after_stop_s": round(min(after) - stop_at, 1) if after else None,
            "restored_from": _restored_from(second.log_path),
            "first_job_failures": first_fail,
            "first_job_state_transitions_seen": first.state_transitions_seen(),
            "comparison": self._compare(result),
            "probe_gap": bool(result["probes"]["missing"]),
            "records_replayed_after_restore": sum(c - 1 for c in watcher.out.probe_copies.values()),
        })
        return result

    def sink_faults(self, outage_s: float) -> dict:
        """EventBridge throttling, then partial failures, then an outage, while the job runs.

        Times in ``timeline`` and ``phases`` are seconds since the job was launched; the sink's
        own receipts (``eventbridge.latency.log.path``) say when each entry was delivered."""
        run_dir, streams, probed, n_probes, watcher = self._prepare("sink_faults", self.traffic)
        receipts_path = run_dir / "sink-receipts" / "receipts.jsonl"
        started, started_wall = time.monotonic(), time.time()
        since_start = lambda: round(time.monotonic() - started, 2)  # noqa: E731
        job = JobProcess(run_dir, self._overrides(run_dir, streams, kinesis_url=self.endpoint.url,
                                                  eventbridge_url=self.proxy.url)
                         + [f"eventbridge.latency.log.path={receipts_path}"])
        feeder = self._feed(job, streams, probed, watcher)
        self.proxy.clear()
        self.proxy.reset_counters()
        phases: dict = {}
        timeline: dict = {"feeding_started_s": since_start()}

        def delivered():
            return self.proxy.counters()["delivered_entries"].get(PUT_EVENTS, 0)

        # The schedule follows the sink's progress, not the clock alone: with a fast job every
        # event was out before a 10 s + 10 s + outage schedule reached the outage (measured: 0
        # events pending when it began), so each fault must meet events still to deliver.
        # Throttling lasts until a quarter of the clean run's entries have been accepted (2-10 s),
        # partial failures until half have (2-10 s); then the outage, whatever is left waiting.
        # "Pending" = the clean run's id count minus the entries the endpoint has accepted so far
        # (a re-sent copy counts as accepted too, so it can only understate what is pending).
        expected = len(self.reference["incidents"]["keys"])

        def phase(label, seconds, arm, until_delivered=None):
            before, injected_before = delivered(), dict(self.proxy.counters()["injected"])
            started_s = since_start()
            rule = arm()
            if until_delivered is None:
                time.sleep(seconds)
            else:
                time.sleep(PHASE_MIN_S)
                phase_deadline = time.monotonic() + seconds - PHASE_MIN_S
                while delivered() < until_delivered and time.monotonic() < phase_deadline:
                    time.sleep(0.1)
            if rule is not None:
                self.proxy.clear(PUT_EVENTS)
            else:
                self.proxy.wait_outage_over(seconds + 5)
            injected = {k: v - injected_before.get(k, 0) for k, v in self.proxy.counters()["injected"].items()}
            phases[label] = {"seconds": seconds, "started_s": started_s, "ended_s": since_start(),
                             "entries_pending_at_start": max(0, expected - before),
                             "entries_delivered_during": delivered() - before,
                             "faults_injected": {k: v for k, v in injected.items() if v}}

        def schedule():
            # Wait for the job to start delivering, then one fault after the other.
            deadline = time.monotonic() + 120
            while delivered() == 0 and time.monotonic() < deadline and job.alive():
                time.sleep(0.5)
            timeline["first_delivery_seen_s"] = since_start()
            phase("throttling", 10, lambda: self.proxy.set_mode(PUT_EVENTS, "throttle", rate=0.5),
                  until_delivered=expected // 4)
            phase("partial_failures", 10, lambda: self.proxy.set_mode(PUT_EVENTS, "partial_failure", rate=0.6,
                                                                       failed_fraction=0.5),
                  until_delivered=expected // 2)
            phase("outage", outage_s, lambda: self.proxy.outage(outage_s, style="refuse"))
            phases["after_faults_delivered_before_settle"] = delivered()
            timeline["schedule_over_s"] = since_start()

        def delivered_or_dead_lettered():
            watcher.poll()
            return delivered(), sum(1 for d in watcher.out.dead_letters if d.get("reason_code") == "DELIVERY_FAILED")

        drain: dict = {}

        def drain_sink():
            # The probes travel the dead-letter path, not the sink: seeing them all says nothing
            # about what the sink still holds. Killing the job then (the old order) cut off the
            # outage and lost whatever sat in the sink's retry loop. So: let the schedule end,
            # then wait until the sink has delivered or dead-lettered everything it holds.
            thread.join(timeout=120 + 20 + outage_s + 15)
            timeline["drain_started_s"] = since_start()
            drain.update(wait_until_stable(delivered_or_dead_lettered, SINK_DRAIN_QUIET_S, SINK_DRAIN_MAX_S))
            timeline["drain_ended_s"] = since_start()

        thread = threading.Thread(target=schedule, daemon=True, name="sink-fault-schedule")
        thread.start()
        result = self._finish("sink_faults", job, watcher, n_probes, started, feeder, before_kill=drain_sink)
        timeline["all_probes_seen_s"] = result["seconds_to_process"]
        timeline["job_killed_s"] = result["job_killed_at_s"]
        timeline["schedule_running_at_kill"] = "schedule_over_s" not in timeline
        thread.join(timeout=outage_s + 60)
        self.proxy.clear()
        counters = self.proxy.counters()
        delivery_failed = [d for d in watcher.out.dead_letters if d.get("reason_code") == "DELIVERY_FAILED"]
        overflowed = {_overflowed_key(d) for d in delivery_failed}
        receipts = _sink_receipts(receipts_path, started_wall)
        outage_end_s = (phases.get("outage") or {}).get("ended_s")
        delivery_times = [r["delivered_s"] for r in receipts]
        comparison = self._compare(result)
        reference_keys, got_keys = self.reference["incidents"]["keys"], result["incidents"]["keys"]
        not_on_bus = reference_keys - got_keys
        result.update({
            "phases": phases,
            "timeline": timeline,
            "sink_drain": {"quiet_s": SINK_DRAIN_QUIET_S, "max_s": SINK_DRAIN_MAX_S, "stable": drain.get("stable"),
                           "waited_s": drain.get("waited_s"),
                           "last_growth_after_drain_start_s": drain.get("last_change_s")},
            "outage_over_before_kill": outage_end_s is not None and outage_end_s <= timeline["job_killed_s"],
            "sink_receipts": len(receipts),
            "sink_receipts_after_outage_end": (sum(1 for t in delivery_times if t > outage_end_s)
                                               if outage_end_s is not None else None),
            "last_delivery_s": max(delivery_times, default=None),
            "last_delivery_after_outage_end_s": (round(max(delivery_times) - outage_end_s, 2)
                                                 if delivery_times and outage_end_s is not None else None),
            "proxy_counters": counters,
            "events_delivered_total": counters["delivered_entries"].get(PUT_EVENTS, 0),
            "overflowed_to_dead_letters": len(delivery_failed),
            "overflowed_ids": sorted(map(str, overflowed)),
            # Dead-lettered yet on the bus: accepted by the endpoint, but the sink never saw the
            # answer (a connection cut mid-request), retried and gave up. A copy, not a loss.
            "overflowed_also_on_bus": sorted(map(str, overflowed & got_keys)),
            # Reference events neither on the bus nor dead-lettered when the job was killed:
            # still in the sink (buffer or retry loop), or never produced by this run.
            "pending_at_kill": sorted(map(str, not_on_bus - overflowed)),
            "comparison": comparison,
        })
        return result

    def source_faults(self) -> dict:
        run_dir, streams, probed, n_probes, watcher = self._prepare("source_faults", self.traffic)
        self.proxy.clear()
        self.proxy.reset_counters()
        self.proxy.set_mode(KINESIS_GET_RECORDS, "expired_iterator", rate=0.1)
        self.proxy.set_mode(KINESIS_GET_RECORDS, "throughput_exceeded", rate=0.2)
        started = time.monotonic()
        job = JobProcess(run_dir, self._overrides(run_dir, streams, kinesis_url=self.proxy.url,
                                                  eventbridge_url=self.endpoint.url))
        feeder = self._feed(job, streams, probed, watcher)
        watcher.wait_for_probes(range((n_probes - END_PROBES) // 2), RUN_TIMEOUT_S, alive=job.alive)
        split = {s: streams.split_all_shards(s) for s in (streams.metrics, streams.events)}
        split_at = time.monotonic() - started
        result = self._finish("source_faults", job, watcher, n_probes, started, feeder)
        counters = self.proxy.counters()
        self.proxy.clear()
        sim_dups = self._sim_letters(watcher.out.dead_letters).get("DUPLICATE_RECORD", 0)
        result.update({
            "split_shards": split,
            "split_at_seconds": round(split_at, 1),
            "faults_injected": counters["injected"],
            "probe_gap": bool(result["probes"]["missing"]),
            "records_read_twice_probes": result["probes"]["seen_twice"],
            "valid_records_flagged_duplicate": sim_dups,
            "comparison": self._compare(result),
        })
        return result

    # -- all ------------------------------------------------------------------------------
    def run_all(self, *, bad_records: int, outage_s: float, only: set[str], rescale_to: int = 3) -> dict:
        figures: dict = {"simulation": {k: self.simulation[k] for k in ("records", "incidents", "incidents_by_type")},
                         "job_settings": JOB_SETTINGS}
        wanted = lambda name: not only or name in only  # noqa: E731
        try:
            figures["clean"] = self.clean()
        finally:
            self._kill_leftovers("clean")
        steps = [("backlog", self.backlog), ("fuzz", lambda: self.fuzz(bad_records)), ("restart_savepoint", lambda: self.restart("savepoint")),
                 ("restart_kill", lambda: self.restart("kill")),
                 ("restart_rescale", lambda: self.restart("savepoint", restore_parallelism=rescale_to)),
                 ("sink_faults", lambda: self.sink_faults(outage_s)),
                 ("source_faults", self.source_faults)]
        for name, step in steps:
            if wanted(name):
                try:
                    figures[name] = step()
                except Exception as exc:  # one broken scenario must not hide the others' figures
                    log.exception("%s failed", name)
                    figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
                finally:
                    self._kill_leftovers(name)
        figures["summary"] = summarize(figures)
        for section in figures.values():
            if isinstance(section, dict) and isinstance(section.get("incidents"), dict):
                inc = section["incidents"]
                inc["ids"] = sorted(str(k) for k in inc.pop("keys"))
                inc["conflicting_ids"] = [str(k) for k in inc["conflicting_ids"]]
                inc["episodes"] = len(inc.get("episodes") or {})
        return figures


def compare_episodes(reference: dict, result: dict, ignore=lambda key: False) -> dict:
    """Whether the composites both runs sent carry the same episode blocks, and the partner checks the same
    outage blocks (incident_summary's "episodes").

    >>> ref = {"episodes": {("C", "inc-1"): {"episode_id": "inc-1", "composites": 1}}}
    >>> compare_episodes(ref, {"episodes": {("C", "inc-1"): {"episode_id": "inc-1", "composites": 1}}})
    {'episodes_identical_to_clean': True, 'episodes_compared': 1, 'episodes_differing': []}
    >>> other = {"episodes": {("C", "inc-1"): {"episode_id": "inc-0", "composites": 2}}}
    >>> compare_episodes(ref, other)["episodes_differing"]
    ["('C', 'inc-1')"]
    """
    ref, got = reference.get("episodes") or {}, result.get("episodes") or {}
    common = [k for k in ref if k in got and not ignore(k)]
    differing = sorted(str(k) for k in common if ref[k] != got[k])
    return {"episodes_identical_to_clean": not differing, "episodes_compared": len(common),
            "episodes_differing": differing[:25]}


def _editor(letter: dict) -> str | None:
    import json as _json

    try:
        record = _json.loads(letter.get("raw", ""))
    except ValueError:
        return None
    return record.get("editor_id") if isinstance(record, dict) else None


def _overflowed_key(letter: dict) -> tuple[str, str | None]:
    """(detail-type, id) of a DELIVERY_FAILED dead letter, the key incidents are compared on.

    raw is the PutEvents entry (retries exhausted) or the sink's input row (not sendable)."""
    from connectors.eventbridge.publisher import entry_id

    try:
        raw = json.loads(letter.get("raw", ""))
    except ValueError:
        return "", None
    if "Detail" in raw:
        return raw.get("DetailType", ""), entry_id(raw)
    return raw.get("detail_type", ""), entry_id({"Detail": raw.get("detail")})


def _sink_receipts(path: Path, started_wall: float) -> list[dict]:
    """The sink's receipts (one file per subtask), times in seconds since ``started_wall``."""
    out = []
    for part in sorted(path.parent.glob(path.name + ".*")):
        for line in part.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out.append({"id": r["id"], "delivered_s": round(r["delivered_at_ms"] / 1000 - started_wall, 2),
                            "flush_started_s": round(r["flush_started_ms"] / 1000 - started_wall, 2)})
    return out


def job_parallelism_of(overrides: list[str]) -> int:
    """The job.parallelism the last of ``overrides`` sets (flink_jobs.config: the last one wins).

    >>> job_parallelism_of([*JOB_SETTINGS, "job.parallelism=3"]), job_parallelism_of(JOB_SETTINGS)
    (3, 2)
    """
    return int([o for o in overrides if o.startswith("job.parallelism=")][-1].split("=", 1)[1])


def _restored_from(log_path: Path) -> str | None:
    import json as _json

    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith('{"job_id"'):
            return _json.loads(line).get("restored_from")
    return None


def summarize(f: dict) -> dict:
    def get(section, *path):
        node = f.get(section) or {}
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        return node

    def failures(section):
        fs = get(section, "job_failures") or {}
        extra = get(section, "first_job_failures") or {}
        return sum(fs.values()) + sum(extra.values()) if fs else None

    def transitions_seen(section):
        # Job state transitions read from Flink's log: > 0 shows the failure counts could see one.
        return sum(get(section, key) or 0 for key in ("job_state_transitions_seen", "first_job_state_transitions_seen"))

    runs = ["clean", "backlog", "fuzz", "restart_savepoint", "restart_kill", "restart_rescale", "sink_faults",
            "source_faults"]

    def restart(section):
        return {"identical_to_clean": get(section, "comparison", "identical_to_clean"),
                "episodes_identical_to_clean": get(section, "comparison", "episodes_identical_to_clean"),
                "probe_gap": get(section, "probe_gap"),
                "recovery_seconds_from_stop": get(section, "recovery_seconds_from_stop")}

    return {
        "backlog_valid_records_routed_late_share": get("backlog", "valid_records_routed_late_share"),
        "bad_records_tried": get("fuzz", "bad_records_tried"),
        "bad_records_missing_from_dead_letters": get("fuzz", "bad_records_missing_from_dead_letters"),
        "job_failures": {r: failures(r) for r in runs if r in f},
        "job_state_transitions_read_from_flink_log": {r: transitions_seen(r) for r in runs if r in f},
        "valid_records_lost": get("fuzz", "valid_records_lost"),
        "late_records_in_late_output": [get("fuzz", "late_records_in_late_output"),
                                        get("fuzz", "late_records_injected")],
        "fuzz_incidents_identical_to_clean": get("fuzz", "comparison", "identical_to_clean"),
        "fuzz_incidents_identical_excluding_fuzz_keys": get("fuzz", "comparison_excluding_fuzz_keys",
                                                            "identical_to_clean"),
        "fuzz_episodes_identical_excluding_fuzz_keys": get("fuzz", "comparison_excluding_fuzz_keys",
                                                           "episodes_identical_to_clean"),
        "duplicate_incidents_after_dedup": {r: len(get(r, "incidents", "conflicting_ids") or [])
                                            for r in runs if isinstance(get(r, "incidents"), dict)},
        "duplicate_copies_before_dedup": {r: get(r, "incidents", "duplicate_copies") for r in runs
                                          if isinstance(get(r, "incidents"), dict)},
        "restart_savepoint": restart("restart_savepoint"),
        "restart_kill": restart("restart_kill"),
        "restart_rescale": {**restart("restart_rescale"), "parallelism": get("restart_rescale", "parallelism")},
        "sink_faults": {"identical_to_clean": get("sink_faults", "comparison", "identical_to_clean"),
                        "episodes_identical_to_clean": get("sink_faults", "comparison", "episodes_identical_to_clean"),
                        "events_pending_at_phase_start": {k: v.get("entries_pending_at_start")
                                                          for k, v in (get("sink_faults", "phases") or {}).items()
                                                          if isinstance(v, dict)},
                        "events_delivered_per_phase": {k: v.get("entries_delivered_during")
                                                       for k, v in (get("sink_faults", "phases") or {}).items()
                                                       if isinstance(v, dict)},
                        "overflowed_to_dead_letters": get("sink_faults", "overflowed_to_dead_letters"),
                        "overflowed_also_on_bus": len(get("sink_faults", "overflowed_also_on_bus") or []),
                        "pending_at_kill": len(get("sink_faults", "pending_at_kill") or []),
                        "outage_over_before_kill": get("sink_faults", "outage_over_before_kill"),
                        "last_delivery_after_outage_end_s": get("sink_faults", "last_delivery_after_outage_end_s")},
        "source_faults": {"identical_to_clean": get("source_faults", "comparison", "identical_to_clean"),
                          "episodes_identical_to_clean": get("source_faults", "comparison",
                                                             "episodes_identical_to_clean"),
                          "probe_gap": get("source_faults", "probe_gap"),
                          "read_twice": get("source_faults", "records_read_twice_probes"),
                          "valid_records_flagged_duplicate": get("source_faults", "valid_records_flagged_duplicate")},
    }
