"""The pure parts of udfs/ (no Flink): trailing baseline, model/baseline combination, security detail."""
import math

from detectors.base import Detection
from udfs.baseline import combine, learn_window, read_history, trailing_verdict
from udfs.security import security_detail


def test_trailing_baseline_band_and_min_windows():
    history = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1]
    assert trailing_verdict(history[:3], 5.0, 0.25, 6) is None
    v = trailing_verdict(history, 5.0, 0.25, 6)
    assert v.outside and v.score > 0.5 and v.lower > 5.0
    inside = trailing_verdict(history, 10.3, 0.25, 6)
    assert not inside.outside and inside.score < 0.5
    assert trailing_verdict([math.nan] * 10, 1.0, 0.25, 6) is None


def test_combine_requires_model_and_baseline_to_agree():
    # the model agrees when it pages or when the value is outside its band (its paging is rate-limited)
    model_alarm = Detection(0.99, 10.0, 9.0, 11.0, True)
    model_quiet = Detection(0.2, 10.0, 9.0, 11.0, False)
    outside = trailing_verdict([10.0] * 12, 4.0, 0.25, 6)
    inside = trailing_verdict([4.0] * 12, 4.0, 0.25, 6)
    assert combine(model_alarm, outside)[4] is True
    assert combine(model_alarm, inside)[4] is False     # the key's own recent level says normal
    assert combine(model_quiet, outside)[4] is True      # the model does not page, but 4.0 is outside its band
    model_wide = Detection(0.2, 10.0, 3.0, 17.0, False)
    assert combine(model_wide, outside)[4] is False     # inside the model's (seasonal) band: normal for the hour
    # the model's seasonal expectation is the reported baseline
    assert combine(model_alarm, outside)[:3] == (10.0, 9.0, 11.0)
    # warming-up model (no band): the trailing baseline stands in
    warming = Detection(0.0, math.nan, math.nan, math.nan, False)
    baseline, lower, upper, score, is_anomaly = combine(warming, outside)
    assert is_anomaly and baseline == 10.0 and lower < 10.0 < upper
    assert combine(warming, None)[4] is False
    # the shipped ensemble warming up (its first 12 windows) has a band of zero width at the value:
    # nothing is anomalous then, whatever the trailing baseline says (udfs.baseline.combine says why)
    import detectors

    ensemble = detectors.make("ensemble")
    for i in range(12):
        detection = ensemble.update(i * 300.0, 10.0 if i < 11 else 4.0)
    assert detection.lower == detection.upper == detection.expected == 4.0
    assert combine(detection, outside)[3:] == (0.0, False)


def test_history_is_bounded_and_skips_non_finite():
    h = None
    for v in [1.0, math.inf, 2.0, 3.0, 4.0]:
        h = learn_window(*read_history(h), v, None, 3)
    assert h == ((2.0, 3.0, 4.0), 0)


def test_security_detail_threshold_and_deterministic_id():
    kwargs = dict(event_type="security_finding", timestamp_ms=1793527500000, editor_id="e-1", partner="p-1",
                  details_json='{"title": "ad fraud ring"}', min_severity=7)
    a = security_detail(severity=7.0, **kwargs)
    b = security_detail(severity=7.0, **kwargs)
    assert a == b and a["finding_id"].startswith("fnd-") and a["title"] == "ad fraud ring"
    assert a["editor_id"] == "e-1" and a["partner"] == "p-1" and a["detected_at"].endswith("Z")
    assert security_detail(severity=6.9, **kwargs) is None
    assert security_detail(**{**kwargs, "event_type": "deployment"}, severity=9.0) is None
    own = security_detail(severity=9.0, **{**kwargs, "details_json": '{"finding_id": "gd-123"}'})
    assert own["finding_id"] == "gd-123"


def test_a_noisy_history_widens_the_trailing_band_by_its_spread():
    """The band is the median +- max(3 robust sigma, rel_threshold x |median|): on a noisy series the
    spread term is the wider, and a value within the series' ordinary noise is no anomaly however far
    it is in relative terms."""
    history = [10.0, 16.0, 4.0, 13.0, 7.0, 10.0, 15.0, 5.0, 12.0, 8.0]       # median 10, MAD 3
    verdict = trailing_verdict(history, 20.0, 0.25, 6)
    assert math.isclose(verdict.upper - verdict.median, 3 * 1.4826 * 3.0)        # 13.3, not 0.25 x 10
    assert not verdict.outside and verdict.score < 0.5
    assert trailing_verdict(history, 25.0, 0.25, 6).outside
