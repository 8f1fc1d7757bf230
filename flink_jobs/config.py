"""Job configuration: Managed Flink property groups, with local overrides.

Managed Service for Apache Flink hands the application its runtime properties as
``/etc/flink/application_properties.json``::

    [{"PropertyGroupId": "kinesis", "PropertyMap": {"region": "us-east-1", ...}}, ...]

The same file format is used locally. Values are resolved, last one wins:

1. ``flink_jobs/application_properties.json`` in this package (the defaults);
2. ``/etc/flink/application_properties.json`` when it exists (Managed Flink), or
   the file given with ``--properties FILE`` / env ``ADOPS_PROPERTIES``;
3. environment variables ``ADOPS__GROUP__KEY=value`` (``.`` in a key is written
   ``_``; the match is case-insensitive), e.g. ``ADOPS__PROCESSING__WINDOW_SIZE_S=60``;
4. ``--set group.key=value`` on the command line (repeatable).

Every key must exist in the defaults file: an override of an unknown key is an
error rather than silently ignored (a typo would otherwise change nothing). The one
exception is the service's own groups, ``kinesis.analytics.*`` (the run options
``python`` and ``jarfile``, which Managed Flink reads to start the job): they sit in the
same file on the service, and the job reads none of them.
Typed accessors validate and raise :class:`ConfigError` naming the key.

>>> c = JobConfig.load(overrides=["processing.window.size.s=60"], environ={})
>>> c.get_int("processing", "window.size.s")
60
>>> c.get_int("job", "parallelism", minimum=1)
2
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import urlsplit

DEFAULTS_PATH = Path(__file__).with_name("application_properties.json")
MANAGED_PATH = Path("/etc/flink/application_properties.json")
ENV_PREFIX = "ADOPS__"
#: Property groups Managed Flink reads itself (kinesis.analytics.flink.run.options), not the job.
SERVICE_GROUP_PREFIX = "kinesis.analytics."

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A property is missing, unknown or has an invalid value."""


def read_property_groups(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Parse a Managed Flink ``application_properties.json`` into {group: {key: value}}."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"properties file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected a JSON list of property groups, got {type(raw).__name__}")
    groups: dict[str, dict[str, str]] = {}
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or "PropertyGroupId" not in entry or "PropertyMap" not in entry:
            raise ConfigError(f"{path}: entry {i} needs PropertyGroupId and PropertyMap")
        gid, pmap = entry["PropertyGroupId"], entry["PropertyMap"]
        if not isinstance(gid, str) or not isinstance(pmap, dict):
            raise ConfigError(f"{path}: entry {i}: PropertyGroupId must be a string, PropertyMap an object")
        # Managed Flink stores every value as a string; accept other JSON values locally too.
        groups.setdefault(gid, {}).update({str(k): _as_text(v) for k, v in pmap.items()})
    return groups


def _as_text(v) -> str:
    """A property value as the text Managed Flink would hold: JSON scalars as written, and a JSON
    object or list as compact JSON (``str()`` gave Python's repr, ``{'warmup': 10}``, which is not
    JSON, so ``"detector.params": {"warmup": 10}`` was refused as "not a JSON object").

    >>> _as_text({"warmup": 10}), _as_text([1, "a"]), _as_text(True), _as_text(None), _as_text(60)
    ('{"warmup":10}', '[1,"a"]', 'true', '', '60')
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return "" if v is None else str(v)


def running_on_managed_flink() -> bool:
    """Managed Flink mounts the application properties at a fixed path."""
    return MANAGED_PATH.exists()


@dataclass
class JobConfig:
    groups: dict[str, dict[str, str]]
    sources: list[str] = field(default_factory=list)  # where values came from, for logging

    # ---- loading -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        properties_file: str | os.PathLike | None = None,
        overrides: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> "JobConfig":
        groups = read_property_groups(DEFAULTS_PATH)
        sources = [str(DEFAULTS_PATH)]
        env = os.environ if environ is None else environ
        extra = properties_file or env.get("ADOPS_PROPERTIES") or (MANAGED_PATH if running_on_managed_flink() else None)
        if extra:
            for gid, pmap in read_property_groups(extra).items():
                if gid.startswith(SERVICE_GROUP_PREFIX):
                    continue
                for key, value in pmap.items():
                    _check_known(groups, gid, key, f"properties file {extra}")
                    groups[gid][key] = value
            sources.append(str(extra))
        cfg = cls(groups, sources)
        for name, value in sorted(env.items()):
            if name.upper().startswith(ENV_PREFIX):
                cfg._apply_env(name, value)
        for item in overrides:
            cfg.set_override(item)
        return cfg

    def _apply_env(self, name: str, value: str) -> None:
        parts = name[len(ENV_PREFIX):].split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment variable {name}: expected {ENV_PREFIX}GROUP__KEY")
        group = _match(self.groups.keys(), parts[0], f"environment variable {name}: unknown group")
        key = _match(self.groups[group].keys(), parts[1], f"environment variable {name}: unknown key in group {group!r}")
        self.groups[group][key] = value
        self.sources.append(f"env {name}")

    def set_override(self, item: str) -> None:
        """Apply one ``group.key=value`` override (the group is the text before the first dot)."""
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected group.key=value")
        path, value = item.split("=", 1)
        if "." not in path:
            raise ConfigError(f"--set {item!r}: expected group.key=value")
        group, key = path.split(".", 1)
        _check_known(self.groups, group, key, f"--set {item!r}")
        self.groups[group][key] = value
        self.sources.append(f"--set {path}")

    def with_overrides(self, **kv) -> "JobConfig":
        """A copy with ``{"group.key": value}`` overrides (for the Python API and tests)."""
        groups = {g: dict(m) for g, m in self.groups.items()}
        new = JobConfig(groups, list(self.sources))
        for path, value in kv.items():
            new.set_override(f"{path}={_as_text(value)}")
        return new

    def set(self, path: str, value) -> "JobConfig":
        self.set_override(f"{path}={_as_text(value)}")
        return self

    # ---- typed accessors -------------------------------------------------------------
    def get_str(self, group: str, key: str, *, allow_empty: bool = True) -> str:
        try:
            value = self.groups[group][key]
        except KeyError:
            raise ConfigError(f"missing property {group}.{key}") from None
        if not allow_empty and not value.strip():
            raise ConfigError(f"property {group}.{key} must not be empty")
        return value.strip()

    def get_optional(self, group: str, key: str) -> str | None:
        value = self.get_str(group, key)
        return value or None

    def get_endpoint_url(self, group: str, key: str) -> str | None:
        """An AWS endpoint URL (``http(s)://host[:port]``), or None for the SDK's own. Checked here:
        boto3 refuses a wrong one (``localhost:4566``) only when an operator builds its client, so the
        job would fail in every operator's open(), at every restart.

        >>> JobConfig({"kinesis": {"endpoint.url": "localhost:4566"}}).get_endpoint_url("kinesis", "endpoint.url")
        Traceback (most recent call last):
        ...
        flink_jobs.config.ConfigError: property kinesis.endpoint.url='localhost:4566' is not an endpoint URL (http://host:port or https://host)
        """
        value = self.get_optional(group, key)
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            parts.port     # a port that is not a number raises here
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError(f"property {group}.{key}={value!r} is not an endpoint URL (http://host:port or https://host)")
        return value

    def get_int(self, group: str, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        text = self.get_str(group, key, allow_empty=False)
        try:
            value = int(_plain_number(text))
        except ValueError:
            raise ConfigError(f"property {group}.{key}={text!r} is not an integer") from None
        _check_range(group, key, value, minimum, maximum)
        return value

    def get_float(self, group: str, key: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
        text = self.get_str(group, key, allow_empty=False)
        try:
            value = float(_plain_number(text))
        except ValueError:
            raise ConfigError(f"property {group}.{key}={text!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"property {group}.{key}={text!r} must be finite")
        _check_range(group, key, value, minimum, maximum)
        return value

    def get_bool(self, group: str, key: str) -> bool:
        text = self.get_str(group, key, allow_empty=False).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"property {group}.{key}={text!r} is not a boolean (true/false)")

    def get_choice(self, group: str, key: str, choices: Iterable[str]) -> str:
        value = self.get_str(group, key, allow_empty=False)
        options = list(choices)
        if value not in options:
            raise ConfigError(f"property {group}.{key}={value!r} must be one of {', '.join(options)}")
        return value

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {g: dict(m) for g, m in self.groups.items()}

    def to_property_groups(self) -> list[dict]:
        """Back to the Managed Flink file format (e.g. to hand a config to a subprocess)."""
        return [{"PropertyGroupId": g, "PropertyMap": dict(m)} for g, m in self.groups.items()]


#: Groups whose keys are not all in the defaults file: their consumer checks them (the job's
#: ``classifier`` group: any key ``ClassifierConfig.from_properties`` takes, flink_jobs/main.py).
OPEN_GROUPS = frozenset({"classifier"})


def _check_known(groups: Mapping[str, Mapping[str, str]], group: str, key: str, where: str) -> None:
    if group not in groups:
        raise ConfigError(f"{where}: unknown property group {group!r} (known: {', '.join(sorted(groups))})")
    if key not in groups[group] and group not in OPEN_GROUPS:
        raise ConfigError(
            f"{where}: unknown property {group}.{key} (known in {group}: {', '.join(sorted(groups[group]))})"
        )


def _match(options: Iterable[str], token: str, error: str) -> str:
    norm = token.lower()
    for opt in options:
        if opt.lower().replace(".", "_").replace("-", "_") == norm:
            return opt
    raise ConfigError(f"{error}: {token!r}")


def _plain_number(text: str) -> str:
    """``text`` if it is written the plain way; Python's int() and float() also take "3_00" and
    other scripts' digits ("٣٠"), which a properties file means as neither (and Java refuses)."""
    if "_" in text or not text.isascii():
        raise ValueError(text)
    return text


def _check_range(group, key, value, minimum, maximum) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"property {group}.{key}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"property {group}.{key}={value} must be <= {maximum}")
