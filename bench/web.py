"""The web section's floor (`make bench`, section (w)): DuckDB parsing the raw access logs with its
own regular expression, against which the Spark cleaning step (clean_web_access_logs) is set.

The same raw files the run cleaned (the lake's raw/web_access_logs, as each day's manifest lists
them, plain and .gz), each line read as one VARCHAR; one `regexp_extract` into a struct covers the
three formats of sources/access_log.py (combined, common, legacy), then the fields are typed:
the timestamp (with its offset; legacy ones, without, in WEB_LOGS_TIMEZONE), status, size,
method/path/query/protocol, referrer and user agent (NULL when empty or '-', escapes undone), and
written as zstd Parquet. What the platform's parser does beyond that is left out: user-agent
parsing, client networks and keyed visitor ids, line numbers, and the rejection bookkeeping (a line
no format matches is kept, its fields NULL; a line that is not UTF-8 is skipped by DuckDB's reader,
and counted).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

RAW = Path("lake") / "raw" / "web_access_logs"

# A quoted field with its quotes (telling an empty field from an absent one: one quoted field,
# even "", makes a line legacy).
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# client, two fields, [timestamp], "request" (METHOD TARGET [PROTOCOL], else any quoted text),
# status, size, then nothing (common), one quoted field (legacy) or two (combined).
PATTERN = (
    r'^(\S+) \S+ \S+ \[([^\]]*)\] "(?:([A-Z]+) ([^ ?"]*)(?:\?([^ "]*))?(?: ([^ "]+))?|(?:[^"\\]|\\.)*)" '
    r"(\S+) (\S+)(?: (" + _QUOTED + r")(?: (" + _QUOTED + r"))?)?$"
)
GROUPS = ["client", "stamp", "method", "path", "query", "protocol", "status", "size", "first", "second"]


def raw_log_files(data_dir: Path, days: list[str]) -> tuple[list[str], int]:
    """The raw files of `days` in the lake of `data_dir` (from each day's manifest), and their
    non-empty lines (the manifests' `rows`)."""
    files, lines = [], 0
    for day in days:
        folder = data_dir / RAW / f"dt={day}"
        manifest = json.loads((folder / "_manifest.json").read_text())
        files += [str(folder / file["file"]) for file in manifest["details"]["files"]]
        lines += manifest["rows"]
    return files, lines


def _text(field: str) -> str:
    """A referrer or user agent: NULL when empty or '-', \\" and \\\\ unescaped."""
    return (
        f"CASE WHEN {field} IN ('', '-') THEN NULL "
        f"WHEN contains({field}, '\\') THEN regexp_replace({field}, '\\\\([\"\\\\])', '\\1', 'g') "
        f"ELSE {field} END"
    )


def parse_sql(files: list[str], timezone: str) -> str:
    source = (
        f"read_csv({files!r}, columns = {{'line': 'VARCHAR'}}, delim = E'\\x01', quote = '', escape = '', "
        "header = false, auto_detect = false, compression = 'auto', ignore_errors = true, store_rejects = true)"
    )
    names = [f"g_{name}" for name in GROUPS]
    return f"""
        WITH matched AS (
            SELECT regexp_extract(line, '{PATTERN}', {names!r}) AS m FROM {source} WHERE line IS NOT NULL
        ), fields AS (
            SELECT m.*, m.g_first <> '' AND m.g_second = '' AS legacy,
                   m.g_first[2:-2] AS first_text, m.g_second[2:-2] AS second_text
            FROM matched
        )
        SELECT
            nullif(g_client, '') AS client,
            CASE WHEN legacy THEN timezone('{timezone}', try_strptime(g_stamp, '%Y-%m-%d %H:%M:%S'))
                 ELSE try_strptime(g_stamp, '%d/%b/%Y:%H:%M:%S %z') END AS ts,
            try_cast(g_status AS SMALLINT) AS status,
            CASE WHEN g_size = '-' THEN 0 ELSE try_cast(g_size AS BIGINT) END AS response_bytes,
            nullif(g_method, '') AS method,
            nullif(g_path, '') AS path,
            nullif(g_query, '') AS query,
            nullif(g_protocol, '') AS protocol,
            CASE WHEN legacy THEN NULL ELSE {_text("first_text")} END AS referrer,
            CASE WHEN legacy THEN {_text("first_text")} ELSE {_text("second_text")} END AS user_agent
        FROM fields
    """


def duckdb_parse(files: list[str], out: Path, timezone: str) -> dict:
    """Parse and type `files` into the zstd Parquet file `out` with DuckDB on every core: the wall
    time of that statement, and the lines it read."""
    import duckdb

    threads = os.cpu_count() or 1
    out.unlink(missing_ok=True)
    with duckdb.connect() as con:
        con.execute(f"SET threads = {threads}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        started = time.perf_counter()
        written = con.execute(
            f"COPY ({parse_sql(files, timezone)}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
        ).fetchall()[0][0]
        seconds = time.perf_counter() - started
        not_utf8 = con.execute("SELECT count(*) FROM reject_errors").fetchall()[0][0]
        unmatched, no_ts = con.execute(
            f"SELECT count(*) FILTER (WHERE client IS NULL), count(*) FILTER (WHERE ts IS NULL) FROM '{out}'"
        ).fetchall()[0]
    return {"seconds": round(seconds, 2), "threads": threads, "files": len(files),
            "lines": written + not_utf8, "rows_written": written, "not_utf8_skipped": not_utf8,
            "unmatched": unmatched, "untyped_ts": no_ts, "parquet_mib": round(out.stat().st_size / 2**20, 1),
            "lines_per_s": round((written + not_utf8) / seconds)}  # fmt: skip
