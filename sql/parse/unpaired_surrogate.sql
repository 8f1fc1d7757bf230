-- Whether the payload holds an unpaired UTF-16 surrogate escape, shared by sql/parse/metrics.sql
-- and events.sql (a SQL fragment, substituted as the unpaired_surrogate parameter, over the column
-- payload): a \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a \uDC00-\uDFFF escape
-- not preceded by one. The bytes are plain ASCII and JSON's grammar allows it (RFC 8259 calls the
-- result unpredictable; I-JSON, RFC 7493, forbids it), but it is no Unicode text: UTF-8 cannot
-- encode it, so both parse files call it INVALID_ENCODING.
--
-- Why it matters, measured on Flink 2.2 (2026-12-07): with this check off, the pipeline test's
-- record for editor "e-bad-\ud800" and its event with such details were accepted, no dead letter.
-- Where Flink holds a string as UTF-8 the surrogate becomes '?' (two ids that differ only there
-- would merge): a Python function handed a parsed id got '?' in its place in process mode, and in thread
-- mode, handed it straight from SQL (a Table converted to a DataStream and mapped), failed the
-- job (pemja: UnicodeDecodeError 'utf-16-le'). Checking the decoded strings (a
-- round trip through ENCODE and DECODE) caught it in one query and missed it in the parse: which
-- form a comparison sees, the Java string or its UTF-8 bytes, depends on the generated code.
--
-- So the escapes are read as text, without a backtracking regex (sql/README.md): turn every escaped
-- backslash `\\` into `#` (left to right, as a JSON reader pairs them), so that each `\u` left begins
-- an escape, and an escaped backslash between two escapes still parts them (deleting it made
-- `\ud800\\\udc00` a pair); upper-case; delete every well-formed pair (an emoji, escaped); any
-- `\UD8`-`\UDF` left is unpaired. Only a payload holding `\u` pays for more than one substring
-- search, and an oversized one (never parsed) for no regex. That search's cost per record was not
-- measured on its own (one benchmark run after it: flink_jobs/bench/README.md, at 05d1619).
POSITION('\u' IN payload) > 0
AND CHAR_LENGTH(payload) <= ${max_payload_bytes}
AND COALESCE(REGEXP(
      REGEXP_REPLACE(UPPER(REPLACE(payload, '\\', '#')),
                     '\\UD[89AB][0-9A-F][0-9A-F]\\UD[C-F][0-9A-F][0-9A-F]', ''),
      '\\UD[89A-F]'), FALSE)
