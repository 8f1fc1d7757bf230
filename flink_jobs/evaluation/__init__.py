"""Evaluation of the whole path against labeled incidents: matching and scoring without Flink.

    from flink_jobs.evaluation import alerts_from_events, load_labels, score
    report = score(load_labels("labels.jsonl"), alerts_from_events(observed_events), window_s=300,
                   editor_days=50.0)

``flink_jobs.evaluate`` runs an archive through Kinesis, the job and EventBridge
and calls this; the rules are in :mod:`flink_jobs.evaluation.scoring`.
"""
from .scoring import (Alert, Incident, alert_from_event, alerts_from_events, load_labels, matches, parse_time,
                      score)

__all__ = ["Alert", "Incident", "alert_from_event", "alerts_from_events", "load_labels", "matches", "parse_time",
           "score"]
