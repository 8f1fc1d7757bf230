"""Patches applied to moto inside the process that hosts the embedded server.

One folder per patched service, like moto's own layout, so it is obvious which
service's behaviour we change:

- ``events/targets.py``: EventBridge rules deliver to Step Functions and SNS targets
  (moto 5.2.5 only delivers to SQS, CloudWatch Logs, buses, archives and API
  destinations, and PutEvents fails with HTTP 500 for any other target type).
- ``events/cloudformation.py``: a rule's EventPattern may be a JSON string in a
  template (as CloudFormation allows), so a Number parameter can sit in a numeric match.
- ``stepfunctions/cloudformation.py``: state machines created by CloudFormation land
  in the backend that really executes ASL (moto keeps two separate backends).
- ``stepfunctions/start_execution.py``, ``sns/publish.py`` and ``sqs/send_message.py``: the
  per-target helpers (SQS: a target with input settings, which moto delivers without them).
- ``kinesis/split_shard.py``: after SplitShard, new records go to the open children
  and the closed parent keeps its records (moto routes them into the closed parent).
- ``kinesis/get_records_fastpath.py`` and ``kinesis/put_records_fastpath.py``: the same
  GetRecords and PutRecords answers, written directly instead of through moto's generic
  serializer (and, for reads, a record lookup that does not grow with the shard): moto's
  cost per record capped any local reader near 10k records/s.

The patches reach into moto internals, so they are pinned to one moto version and
refuse to load on any other: a silent mismatch would make local tests lie.
"""
from __future__ import annotations

import importlib.metadata

SUPPORTED_MOTO_VERSION = "5.2.5"


class UnsupportedMotoVersion(RuntimeError):
    pass


def check_moto_version() -> str:
    try:
        installed = importlib.metadata.version("moto")
    except importlib.metadata.PackageNotFoundError as exc:
        raise UnsupportedMotoVersion(
            "moto is not installed; install the local extra: pip install -e '.[local]'"
        ) from exc
    if installed != SUPPORTED_MOTO_VERSION:
        raise UnsupportedMotoVersion(
            f"deploy/local/patches are written against moto=={SUPPORTED_MOTO_VERSION} "
            f"but moto=={installed} is installed. Install the pinned version "
            f"(pip install 'moto[server]=={SUPPORTED_MOTO_VERSION}') or re-verify the "
            "patches against the new version before changing the pin."
        )
    return installed


_applied = False


def apply_all() -> None:
    """Apply every patch once (idempotent). Raises UnsupportedMotoVersion first."""
    global _applied
    check_moto_version()
    if _applied:
        return
    from .events import cloudformation as events_cloudformation
    from .events import targets as events_targets
    from .kinesis import get_records_fastpath as kinesis_get_records_fastpath
    from .kinesis import put_records_fastpath as kinesis_put_records_fastpath
    from .kinesis import split_shard as kinesis_split_shard
    from .stepfunctions import cloudformation as sfn_cloudformation

    kinesis_split_shard.apply()
    # Same answers as moto, without its ~100 µs/record generic serializer (the local
    # Kinesis read path would otherwise be capped near 10k records/s).
    kinesis_get_records_fastpath.apply()
    # And PutRecords answers without it (2/3 of a 500-record call's server time): the replay's bound.
    kinesis_put_records_fastpath.apply()
    sfn_cloudformation.apply()
    events_targets.apply()
    events_cloudformation.apply()
    _applied = True
