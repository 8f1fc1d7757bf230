"""flink_jobs.config: Managed Flink property groups, overrides, typed accessors (no Flink)."""
import json

import pytest

from flink_jobs.config import DEFAULTS_PATH, ConfigError, JobConfig, read_property_groups


def test_defaults_file_is_managed_flink_format():
    raw = json.loads(DEFAULTS_PATH.read_text())
    assert isinstance(raw, list) and raw
    for group in raw:
        assert set(group) == {"PropertyGroupId", "PropertyMap"}
        assert all(isinstance(v, str) for v in group["PropertyMap"].values()), "Managed Flink stores strings"
    groups = read_property_groups(DEFAULTS_PATH)
    assert groups["processing"]["window.size.s"] == "300"
    assert groups["processing"]["watermark.delay.s"] == "30"


def test_precedence_file_then_env_then_set(tmp_path):
    props = tmp_path / "application_properties.json"
    props.write_text(json.dumps([
        {"PropertyGroupId": "processing", "PropertyMap": {"window.size.s": 60, "watermark.delay.s": "10"}},
        {"PropertyGroupId": "job", "PropertyMap": {"parallelism": "4"}},
    ]))
    env = {"ADOPS__PROCESSING__WATERMARK_DELAY_S": "20", "ADOPS__JOB__PARALLELISM": "3", "UNRELATED": "x"}
    cfg = JobConfig.load(props, overrides=["job.parallelism=1"], environ=env)
    assert cfg.get_int("processing", "window.size.s") == 60          # file (JSON number accepted)
    assert cfg.get_int("processing", "watermark.delay.s") == 20      # env beats file
    assert cfg.get_int("job", "parallelism") == 1                    # --set beats env
    assert cfg.get_str("kinesis", "region") == "us-east-1"           # default kept


def test_a_json_object_or_list_in_a_properties_file_is_taken_as_json(tmp_path):
    """`"detector.params": {"warmup": 10}` was read as Python's repr ({'warmup': 10}) and refused
    as "must be a JSON object", though it is one."""
    from flink_jobs.main import Settings

    props = tmp_path / "application_properties.json"
    props.write_text(json.dumps([{"PropertyGroupId": "processing",
                                  "PropertyMap": {"detector.params": {"warmup": 10, "name": "é"}}}]))
    cfg = JobConfig.load(props, environ={})
    assert cfg.get_str("processing", "detector.params") == '{"warmup":10,"name":"é"}'   # compact JSON
    props.write_text(json.dumps([{"PropertyGroupId": "processing",
                                  "PropertyMap": {"detector.params": {"warmup": 10, "seed": 3}}}]))
    assert Settings.from_config(JobConfig.load(props, environ={})).detector_params == {"warmup": 10, "seed": 3}
    # a list is JSON too, and refused here for what it is
    props.write_text(json.dumps([{"PropertyGroupId": "processing", "PropertyMap": {"detector.params": [1, 2]}}]))
    with pytest.raises(ConfigError, match=r"detector\.params='\[1,2\]' must be a JSON object"):
        Settings.from_config(JobConfig.load(props, environ={}))
    assert JobConfig.load(environ={}).set("processing.detector.params", {"a": [1, 2]}) \
        .get_str("processing", "detector.params") == '{"a":[1,2]}'


def test_set_with_dots_in_key_and_equals_in_value():
    cfg = JobConfig.load(overrides=["processing.detector.params={\"warmup\": 10, \"a\": \"b=c\"}"], environ={})
    assert json.loads(cfg.get_str("processing", "detector.params")) == {"warmup": 10, "a": "b=c"}


@pytest.mark.parametrize("override, message", [
    ("processing.window.size=60", "unknown property processing.window.size"),
    ("nogroup.key=1", "unknown property group 'nogroup'"),
    ("processing", "expected group.key=value"),
    ("novalue=1", "expected group.key=value"),
])
def test_unknown_or_malformed_overrides_are_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        JobConfig.load(overrides=[override], environ={})


def test_env_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown key"):
        JobConfig.load(environ={"ADOPS__PROCESSING__WINDOW_SIZE": "60"})


def test_typed_accessors_validate_with_clear_errors():
    cfg = JobConfig.load(overrides=["processing.window.size.s=five", "job.parallelism=0",
                                    "processing.baseline.threshold=nan", "deadletter.sink=s3"], environ={})
    with pytest.raises(ConfigError, match=r"processing\.window\.size\.s='five' is not an integer"):
        cfg.get_int("processing", "window.size.s")
    with pytest.raises(ConfigError, match=r"job\.parallelism=0 must be >= 1"):
        cfg.get_int("job", "parallelism", minimum=1)
    with pytest.raises(ConfigError, match="must be finite"):
        cfg.get_float("processing", "baseline.threshold")
    with pytest.raises(ConfigError, match="must be one of file, kinesis"):
        cfg.get_choice("deadletter", "sink", ("file", "kinesis"))
    with pytest.raises(ConfigError, match="missing property"):
        cfg.get_str("job", "nope")


def test_bool_and_optional():
    cfg = JobConfig.load(environ={})
    # the shipped defaults: one of each, so a get_bool that ignores its value fails here
    assert cfg.get_bool("archive", "verify.compressed") is True
    assert cfg.get_bool("cloudwatch", "metrics.enabled") is False
    for text, expected in (("TRUE", True), ("1", True), ("yes", True), ("On", True),
                           ("false", False), ("0", False), ("NO", False), ("off", False)):
        cfg.set("cloudwatch.metrics.enabled", text)
        assert cfg.get_bool("cloudwatch", "metrics.enabled") is expected, text
    for text in ("ture", "2", "enabled"):
        cfg.set("cloudwatch.metrics.enabled", text)
        with pytest.raises(ConfigError, match=r"cloudwatch\.metrics\.enabled=.* is not a boolean"):
            cfg.get_bool("cloudwatch", "metrics.enabled")
    assert cfg.get_optional("kinesis", "endpoint.url") is None
    cfg.set("kinesis.endpoint.url", "http://127.0.0.1:9")
    assert cfg.get_optional("kinesis", "endpoint.url") == "http://127.0.0.1:9"


def test_numbers_are_written_the_plain_way():
    cfg = JobConfig.load(environ={})
    for text in ("3_00", "\u0663\u0660", "1_0.5"):   # Python's int()/float() take these
        cfg.set("processing.window.size.s", text)
        with pytest.raises(ConfigError, match="is not an integer"):
            cfg.get_int("processing", "window.size.s")
        cfg.set("processing.baseline.threshold", text)
        with pytest.raises(ConfigError, match="is not a number"):
            cfg.get_float("processing", "baseline.threshold")
    cfg.set("processing.window.size.s", "+300")
    assert cfg.get_int("processing", "window.size.s") == 300


def test_settings_that_would_fail_later_are_refused_at_start():
    from flink_jobs.main import Settings

    def settings(*overrides):
        return Settings.from_config(JobConfig.load(overrides=list(overrides), environ={}))

    # a Kinesis dead-letter sink without a stream failed the job at its first bad record, at every restart
    with pytest.raises(ConfigError, match=r"deadletter\.stream\.name must not be empty"):
        settings("deadletter.sink=kinesis", "deadletter.stream.name=")
    assert settings("deadletter.sink=file", "deadletter.stream.name=").deadletter_sink == "file"
    with pytest.raises(ConfigError, match=r"deadletter\.path must not be empty"):
        settings("deadletter.path= ")
    # more windows asked for than the history keeps: the trailing baseline would never judge
    with pytest.raises(ConfigError, match=r"baseline\.min\.windows=20 must be <= processing\.baseline\.windows=12"):
        settings("processing.baseline.windows=12", "processing.baseline.min.windows=20")
    assert settings("processing.baseline.windows=12", "processing.baseline.min.windows=12").baseline_min_windows == 12


def test_the_datagen_defaults_pass_the_checks_the_datagen_source_applies():
    # `--source datagen` with the shipped defaults stopped at "number.of.rows=0 must be >= 1"
    cfg = JobConfig.load(environ={})
    assert cfg.get_int("datagen", "number.of.rows", minimum=1) >= 1
    assert cfg.get_int("datagen", "partners.per.editor", minimum=1,
                       maximum=cfg.get_int("datagen", "partners", minimum=1)) >= 1


def test_the_classifier_is_tuned_from_its_property_group(tmp_path):
    """DESIGN.md promised ClassifierConfig.from_properties for property groups; the job used the defaults."""
    from dataclasses import replace

    from detectors.classifier import DOWN, ClassifierConfig
    from flink_jobs.main import Settings, window_scoring
    from udfs.correlator import EditorCorrelator

    def settings(*overrides, properties_file=None):
        return Settings.from_config(JobConfig.load(properties_file, overrides=list(overrides), environ={}))

    assert settings().classifier_properties == {}
    tuned = settings("classifier.thresholds.rpm.down=0.3", "classifier.severity_revenue_at_risk=10,100,1000")
    assert tuned.classifier_properties == {"thresholds.rpm.down": "0.3", "severity_revenue_at_risk": "10,100,1000"}
    managed = tmp_path / "application_properties.json"   # as Managed Flink hands it over
    managed.write_text(json.dumps([{"PropertyGroupId": "classifier", "PropertyMap": {"min_signature_score": "0.5"}}]))
    assert settings(properties_file=managed).classifier_properties == {"min_signature_score": "0.5"}
    with pytest.raises(ConfigError, match="property group classifier: unknown classifier config keys: no_such_knob"):
        settings("classifier.no_such_knob=1")
    # misspelt metrics or directions, and NaN, were merged in and never read (or disabled a rule)
    for override, message in (("classifier.thresholds.rmp.down=0.3", r"thresholds\.rmp: unknown metric"),
                              ("classifier.thresholds.rpm.dwn=0.3", "a direction is up or down, not dwn"),
                              ("classifier.relative_floor.eror_rate=0.5", r"relative_floor\.eror_rate: unknown metric"),
                              ("classifier.min_signature_score=nan", "min_signature_score=nan must be a finite number"),
                              ("classifier.severity_revenue_at_risk=10,inf,1000", "must be a finite number"),
                              # revenue_at_risk divides by it: the editor operator failed at its first anomaly
                              ("classifier.rate_period_s=0", "rate_period_s=0.0 must be a positive number"),
                              # MetricReading.size divides by it (ZeroDivisionError at an anomaly)
                              ("classifier.contradiction_full_magnitude=0", "must be positive"),
                              ("classifier.contradiction_full_magnitude=-1", "must be positive")):
        with pytest.raises(ConfigError, match=message):
            settings(override)
    with pytest.raises(ConfigError, match="processing.events.lookback.s"):
        settings("classifier.event_lookback_s=60")
    # the editor operator classifies with them (its window and look-back stay the job's)
    from flink_fakes import KeyedRuntimeContext, KeyedStore   # keyed state in memory

    operator = EditorCorrelator(300, 0, 1800, scoring=window_scoring(tuned),
                                classifier_properties=tuned.classifier_properties)
    operator.open(KeyedRuntimeContext(KeyedStore()))
    assert operator.config.threshold("rpm", DOWN) == 0.3
    assert operator.config == replace(ClassifierConfig.from_properties(tuned.classifier_properties),
                                      window_seconds=300.0, event_lookback_s=1800.0)


def test_bad_properties_file(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"PropertyGroupId": "x"}')
    with pytest.raises(ConfigError, match="expected a JSON list"):
        JobConfig.load(bad, environ={})
    bad.write_text("[{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        JobConfig.load(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        JobConfig.load(tmp_path / "missing.json", environ={})


def test_settings_are_typed_and_validated():
    from flink_jobs.main import Settings

    def settings(*overrides):
        return Settings.from_config(JobConfig.load(overrides=list(overrides), environ={}))

    s = settings()
    assert (s.window_size_s, s.watermark_delay_s, s.parallelism) == (300, 30, 2)
    assert s.python_execution_mode == "thread"
    with pytest.raises(ConfigError, match="python.execution.mode"):
        settings("job.python.execution.mode=loopback")
    assert s.python_gc_threshold == 100000          # udfs/python_gc.py
    assert settings("job.python.gc.threshold=0").python_gc_threshold == 0
    with pytest.raises(ConfigError, match="python.gc.threshold"):
        settings("job.python.gc.threshold=-1")
    with pytest.raises(ConfigError, match="detector.params"):
        settings("processing.detector.params=[1]")
    # Flink's own refusal of 1-9 ms came as a Java stack trace; 0 turns checkpointing off
    with pytest.raises(ConfigError, match="checkpoint.interval.ms=5 must be 0 .* or at least 10"):
        settings("job.checkpoint.interval.ms=5")
    assert settings("job.checkpoint.interval.ms=0").checkpoint_interval_ms == 0
    # a URI was taken as a relative folder named after it
    assert settings("job.checkpoint.dir=file:///data/ck%20pt").checkpoint_dir == "/data/ck pt"
    with pytest.raises(ConfigError, match="must be a local folder or a file: URI"):
        settings("job.checkpoint.dir=s3://bucket/x")
    # found at start, not by the first window scored (which failed the job, and every restart)
    with pytest.raises(ConfigError, match="processing.detector='ensembel'.*unknown detector 'ensembel'"):
        settings("processing.detector=ensembel")
    with pytest.raises(ConfigError, match="unexpected keyword argument 'bogus'"):
        settings('processing.detector.params={"bogus": 1}')
    # a division by zero escaped the check as a traceback; one that shows only when the detector
    # first scores passed it, and failed the operator at the first window
    with pytest.raises(ConfigError, match="half_life.*division by zero"):
        settings('processing.detector.params={"half_life": 0}')
    with pytest.raises(ConfigError, match="z_scale.*division by zero"):
        settings("processing.detector=seasonal_surprise", 'processing.detector.params={"z_scale": 0}')
    # gc.set_threshold takes a C int: OverflowError in both operators' open(), at every start
    with pytest.raises(ConfigError, match="python.gc.threshold"):
        settings("job.python.gc.threshold=10000000000")
    # detectors.base.MAX_MAGNITUDE: a larger value would pass the parse and be unscorable
    from detectors.base import MAX_MAGNITUDE

    assert settings(f"processing.max.metric.value={MAX_MAGNITUDE}").max_metric_value == MAX_MAGNITUDE
    with pytest.raises(ConfigError, match="max.metric.value"):
        settings("processing.max.metric.value=1e200")
    with pytest.raises(ConfigError, match="max.metric.value"):
        settings("processing.max.metric.value=1e31")     # accepted up to 1e150 until 2026-12-07
    # boto3 refused it only when an operator built its client: in every open(), at every restart
    for group in ("kinesis", "eventbridge"):
        with pytest.raises(ConfigError, match=f"{group}.endpoint.url='localhost:4566' is not an endpoint URL"):
            JobConfig.load(overrides=[f"{group}.endpoint.url=localhost:4566"], environ={}) \
                .get_endpoint_url(group, "endpoint.url")
        for bad in ("ftp://host:21", "http://host:port", "http://"):
            with pytest.raises(ConfigError, match="is not an endpoint URL"):
                JobConfig.load(overrides=[f"{group}.endpoint.url={bad}"], environ={}).get_endpoint_url(group, "endpoint.url")
        for good in ("http://127.0.0.1:4566", "https://events.eu-west-1.amazonaws.com", "http://[::1]:5000"):
            assert JobConfig.load(overrides=[f"{group}.endpoint.url={good}"], environ={}) \
                .get_endpoint_url(group, "endpoint.url") == good
    with pytest.raises(ConfigError, match="eventbridge.endpoint.url='localhost:4566'"):
        settings("eventbridge.endpoint.url=localhost:4566")
    # the boto3 Kinesis readers' max parallelism is 128: Flink refused 200 with a Java stack trace
    from flink_jobs.main import create_sources

    wide = JobConfig.load(overrides=["job.parallelism=200"], environ={})
    with pytest.raises(ConfigError, match="job.parallelism=200: --source kinesis-local runs at most 128"):
        create_sources(None, None, wide, Settings.from_config(wide), "kinesis-local")
    with pytest.raises(ConfigError, match="timer.grace.ms"):
        settings("processing.window.size.s=1", "processing.timer.grace.ms=5000")


def test_a_restore_point_that_is_not_there_is_refused_before_the_job_is_submitted(tmp_path):
    """A path ending in _metadata was taken on its name; the job was submitted and failed in Flink."""
    from flink_jobs.main import Settings
    from flink_jobs.restore_points import resolve_restore

    settings = Settings.from_config(JobConfig.load(overrides=[f"job.checkpoint.dir={tmp_path}"], environ={}))
    for missing in (tmp_path / "sp" / "_metadata", tmp_path / "sp"):
        with pytest.raises(ConfigError, match="no _metadata"):
            resolve_restore(str(missing), settings)
    (tmp_path / "sp").mkdir()
    (tmp_path / "sp" / "_metadata").write_bytes(b"x")
    assert resolve_restore(str(tmp_path / "sp" / "_metadata"), settings) == str(tmp_path / "sp" / "_metadata")
    assert resolve_restore((tmp_path / "sp").as_uri(), settings) == str(tmp_path / "sp")


def test_a_restore_across_python_execution_modes_is_refused(tmp_path):
    from flink_jobs.restore_points import check_restore_mode, record_execution_mode, recorded_execution_mode

    job_dir = tmp_path / "ckpt" / "0123456789abcdef"
    (job_dir / "chk-7").mkdir(parents=True)
    savepoint = tmp_path / "ckpt" / "savepoints" / "savepoint-012345-abcdef"
    savepoint.mkdir(parents=True)
    record_execution_mode(job_dir, "process")
    record_execution_mode(savepoint, "thread")
    assert recorded_execution_mode(str(job_dir / "chk-7")) == "process"
    assert recorded_execution_mode("file:" + str(job_dir / "chk-7" / "_metadata")) == "process"
    assert recorded_execution_mode(str(savepoint)) == "thread"
    check_restore_mode(str(job_dir / "chk-7"), "process")
    check_restore_mode(None, "thread")
    with pytest.raises(ConfigError, match="written with job.python.execution.mode=process, this run uses thread"):
        check_restore_mode(str(job_dir / "chk-7"), "thread")
    with pytest.raises(ConfigError, match="job.python.execution.mode=thread"):
        check_restore_mode(str(savepoint), "process")
    unmarked = tmp_path / "elsewhere" / "savepoint-x"
    unmarked.mkdir(parents=True)
    assert recorded_execution_mode(str(unmarked)) is None   # taken outside this client: not judged
    check_restore_mode(str(unmarked), "thread")


def test_the_scoring_operators_get_the_jobs_settings():
    """flink_jobs.main.scoring_operators is what the job's graph uses: the collector's threshold, the window
    and the look-back reach both operators, and they share one scoring."""
    from flink_jobs.main import Settings, scoring_operators

    s = Settings.from_config(JobConfig.load(overrides=["job.python.gc.threshold=4321", "processing.window.size.s=600"],
                                            environ={}))
    partner, editor = scoring_operators(s)
    assert (partner.gc_threshold, editor.gc_threshold) == (4321, 4321)
    assert partner.window_size_ms == editor.window_size_ms == 600_000
    assert partner.lookback_ms == editor.lookback_ms == s.events_lookback_s * 1000
    assert partner.scoring is editor.scoring
