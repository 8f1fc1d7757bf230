"""Dead-letter output: record builder (`records`), Kinesis and JSON-lines writers
(`writers`), and the PyFlink wiring (`flink_sinks`, imported lazily: it needs pyflink)."""
from connectors.deadletter.records import (  # noqa: F401
    EVENTBRIDGE_RAW_LIMIT_BYTES,
    MAX_LINE_BYTES,
    RAW_LIMIT_BYTES,
    REASON_CODES,
    build_dead_letter,
    dead_letter_json,
)
