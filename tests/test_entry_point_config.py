"""The job's entry point and its configuration, without Flink: what flink_jobs.main accepts on its
command line and in kinesis.start.position, and that every shipped property is read.

A fake table environment records the statements the sources would run; main() runs with
create_environments replaced by fakes, so nothing starts a JVM.
"""
from __future__ import annotations

import os

import pytest

import flink_jobs.main as job
from flink_jobs.config import DEFAULTS_PATH, ConfigError, JobConfig, read_property_groups


class FakeTableEnv:
    """What create_sources calls on a StreamTableEnvironment, recorded."""

    def __init__(self):
        self.statements, self.views = [], {}

    def execute_sql(self, statement):
        self.statements.append(statement)

    def sql_query(self, query):
        class Planned:
            def explain(self):
                return ""
        return Planned()

    def create_temporary_view(self, name, table):
        self.views[name] = table

    def get_config(self):
        class Config:
            def set(self, key, value):
                pass
        return Config()


class FakeEnv:
    def get_execution_plan(self):
        return "{}"


def sources(source, *overrides):
    cfg = JobConfig.load(overrides=list(overrides), environ={})
    t_env = FakeTableEnv()
    job.create_sources(t_env, None, cfg, job.Settings.from_config(cfg), source)
    return t_env


@pytest.fixture
def boto3_tables(monkeypatch):
    """The boto3 Kinesis path's table builder, replaced by one that records its arguments."""
    import connectors.kinesis.flink_source as flink_source

    calls = []

    def kinesis_payload_table(t_env, env, stream_name, **kwargs):
        calls.append(dict(kwargs, stream_name=stream_name))
        return f"table of {stream_name}"

    monkeypatch.setattr(flink_source, "kinesis_payload_table", kinesis_payload_table)
    return calls


@pytest.fixture
def no_flink(monkeypatch):
    """main() with fake environments (its dry run prints the fake plan), leaving the process as it was:
    main() drops PYFLINK_GATEWAY_DISABLED from the environment and configures the root logger."""
    monkeypatch.setattr(job, "create_environments", lambda *a, **k: (FakeEnv(), FakeTableEnv()))
    monkeypatch.setattr(job, "running_on_managed_flink", lambda: False)
    monkeypatch.setattr(job.logging, "basicConfig", lambda **kwargs: None)
    if "PYFLINK_GATEWAY_DISABLED" in os.environ:
        monkeypatch.setenv("PYFLINK_GATEWAY_DISABLED", os.environ["PYFLINK_GATEWAY_DISABLED"])  # restored after


# ------------------------------------------------------------------ kinesis.start.position
@pytest.mark.parametrize("source", ["kinesis", "kinesis-local"])
@pytest.mark.parametrize("value", ["LATEST_ONLY", "bogus", "LATEST:x", "AT_TIMESTAMP:yesterday"])
def test_a_bad_start_position_is_a_configuration_error_naming_the_property(source, value):
    # on kinesis-local it was a ValueError traceback from the boto3 reader's parser, at job build
    with pytest.raises(ConfigError, match=r"kinesis\.start\.position=") as error:
        sources(source, f"kinesis.start.position={value}")
    if not value.startswith("AT_TIMESTAMP"):
        assert "must be LATEST or TRIM_HORIZON (any case)" in str(error.value)
    elif source == "kinesis":
        assert "AT_TIMESTAMP is supported only by the local boto3 path" in str(error.value)
    else:   # the boto3 path's parser's own reason, as a configuration error
        assert "Invalid isoformat string: 'yesterday'" in str(error.value)


def test_main_reports_a_bad_start_position_and_exits_2(no_flink, capsys):
    code = job.main(["--source", "kinesis-local", "--set", "kinesis.start.position=LATEST_ONLY", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("configuration error: property kinesis.start.position='LATEST_ONLY'")
    assert "Traceback" not in err


@pytest.mark.parametrize("value, expected", [("latest", "LATEST"), ("Trim_Horizon", "TRIM_HORIZON")])
def test_both_kinesis_sources_take_the_same_spellings(value, expected, boto3_tables):
    official = sources("kinesis", f"kinesis.start.position={value}")
    assert len(official.statements) == 2
    assert all(f"'source.init.position' = '{expected}'" in ddl for ddl in official.statements)
    local = sources("kinesis-local", f"kinesis.start.position={value}")
    assert [c["start_position"] for c in boto3_tables] == [expected, expected]
    assert set(local.views) == {"metrics_raw", "events_raw"}


def test_at_timestamp_is_the_boto3_paths_only(boto3_tables):
    # the official connector's DDL is given no timestamp: refused there, with the way out named
    with pytest.raises(ConfigError, match=r"AT_TIMESTAMP is supported only by the local boto3 path "
                                          r"\(--source kinesis-local\)"):
        sources("kinesis", "kinesis.start.position=AT_TIMESTAMP:1767225600000")
    sources("kinesis-local", "kinesis.start.position=at_timestamp:2026-01-01T00:00:00Z")
    sources("kinesis-local", "kinesis.start.position=AT_TIMESTAMP:1767225600000")  # as flink_jobs.evaluate sets it
    assert [c["start_position"] for c in boto3_tables] == ["AT_TIMESTAMP:1767225600000"] * 4
    with pytest.raises(ConfigError, match="needs a zone"):
        sources("kinesis-local", "kinesis.start.position=AT_TIMESTAMP:2026-01-01T00:00:00")


# ------------------------------------------------------------------ command line
@pytest.mark.parametrize("argv, unknown, source", [
    (["--sett", "processing.window.size.s=60"], "--sett processing.window.size.s=60", None),
    (["--surce", "archive"], "--surce archive", None),
    (["--source", "archive", "--dryrun"], "--dryrun", "archive"),
])
def test_a_mistyped_option_is_an_error_locally_and_ignored_on_managed_flink(argv, unknown, source, monkeypatch,
                                                                            capsys):
    monkeypatch.setattr(job, "running_on_managed_flink", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        job.parse_args(argv)
    assert exit_.value.code == 2
    assert f"unrecognized arguments: {unknown}" in capsys.readouterr().err
    # The service may pass arguments of its own to the entry point: its start must not fail on them.
    monkeypatch.setattr(job, "running_on_managed_flink", lambda: True)
    args = job.parse_args(argv)
    assert (args.source, args.overrides, args.dry_run) == (source, [], False)


def test_main_refuses_a_mistyped_dry_run_before_anything_starts(no_flink, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(job, "start_job", lambda *a, **k: started.append(a))
    with pytest.raises(SystemExit):
        job.main(["--source", "archive", "--dryrun"])
    assert started == []
    assert "unrecognized arguments: --dryrun" in capsys.readouterr().err


# ------------------------------------------------------------------ every shipped key is read
def test_every_key_of_the_defaults_file_is_read_by_the_job(no_flink, boto3_tables, monkeypatch, tmp_path):
    """A key in flink_jobs/application_properties.json that nothing reads is a setting that does
    nothing (job.python.executable was one: Settings had no field, the workers always ran
    sys.executable). Every typed accessor goes through JobConfig.get_str, so recording it over
    what the job reads at start (Settings, the source choice, each source) finds such a key."""
    read = set()
    get_str = JobConfig.get_str

    def recording(self, group, key, **kwargs):
        read.add((group, key))
        return get_str(self, group, key, **kwargs)

    monkeypatch.setattr(JobConfig, "get_str", recording)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "part-0.jsonl").write_text("{}\n")
    overrides = [f"archive.metrics.path={archive}", f"archive.events.path={archive}"]
    monkeypatch.setattr(job, "build_pipeline", lambda env, t_env, cfg, s, source: None)
    assert job.main(["--dry-run", *(a for o in overrides for a in ("--set", o))]) == 0   # job.source
    cfg = JobConfig.load(overrides=overrides, environ={})
    s = job.Settings.from_config(cfg)
    for source in job.SOURCES:
        job.create_sources(FakeTableEnv(), None, cfg, s, source)
    unread = sorted(f"{group}.{key}" for group, keys in read_property_groups(DEFAULTS_PATH).items()
                    for key in keys if (group, key) not in read)
    assert unread == [], f"properties the job never reads: {unread}"
