"""`make run DOMAIN=web_traffic` from the synthetic site, uninterrupted and SIGKILLed.

The uninterrupted run is the reference: its warehouse holds exactly what the test's own parser
reads from the synthetic site's files, and the CLI prints the web figures. Then one data dir goes
through two kills of the whole process group (the CLI, the run worker, Spark's JVM, dbt), each
followed by a re-run of the same range:

- during the web cleaning's publication, on an empty platform: the first day is published, the
  second is adopted into its version prefix but not published;
- during the warehouse load, on the materialized platform: DELETE and INSERT done, COMMIT not.

After each kill every published lake partition is whole (its files exist and hold its rows) and
the warehouse is what it was before the run; after each re-run every web table equals the
reference's.
"""

import datetime as dt
import gzip
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from fixtures.platform import kill_group, start_cli_run, stop_platform, tail, wait_for
from fixtures.web_logs import parse_files

from stock_platform.defs.web_traffic.schema import CLEAN, RAW, REJECTED
from stock_platform.defs.web_traffic.settings import DEVELOPMENT_SALT, SYNTHETIC_SITE_HOSTS
from stock_platform.defs.web_traffic.sources.access_log import nonempty_lines
from stock_platform.defs.web_traffic.sources.synthetic_site import SyntheticSite
from stock_platform.platform.failpoints import ENV as FAILPOINT_ENV
from stock_platform.platform.lake import MANIFEST, Lake, parquet_rows

RANGE = ("2024-03-09", "2024-03-10")
DAYS = [dt.date(2024, 3, 9), dt.date(2024, 3, 10)]
REQUESTS = 3000
ENV = {"WEB_SYNTHETIC_REQUESTS_PER_DAY": str(REQUESTS)}
MARKER_ENV = "STOCK_PLATFORM_FAILPOINT_MARKER"
TABLES = ["web_raw.access_logs", "web_analytics.fct_requests", "web_analytics.fct_sessions",
          "web_analytics.web_daily_traffic", "web_analytics.web_top_pages_daily",
          "web_analytics.dim_page", "web_analytics.dim_user_agent", "web_analytics.dim_referrer",
          "web_analytics.dim_date"]


def web_checksums(warehouse: Path) -> dict[str, int]:
    """A content checksum per web table ({} before the first load): opening the file is itself
    a check, since after a kill DuckDB must replay its WAL."""
    if not warehouse.exists():
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        present = {f"{s}.{t}" for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        sums = {}
        for name in TABLES:
            if name in present:
                frame = con.execute(f"SELECT * FROM {name}").df()
                frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
                sums[name] = int(pd.util.hash_pandas_object(frame).sum())
        return sums


def lake_problems(root: Path) -> list[str]:
    """Published web partitions whose files are missing or do not hold the manifest's rows."""
    lake, problems = Lake(str(root)), []
    for dataset in (RAW, CLEAN, REJECTED):
        for path in sorted((root / dataset).glob(f"dt=*/{MANIFEST}")):
            day = dt.date.fromisoformat(path.parent.name.removeprefix("dt="))
            manifest = lake.published(dataset, day)
            uris = lake.version_files(dataset, day, manifest)
            if not all(Path(uri).exists() for uri in uris):
                problems.append(f"{dataset} {day}: files missing")
                continue
            if dataset == RAW:
                rows = sum(nonempty_lines(gzip.decompress(Path(u).read_bytes()) if u.endswith(".gz")
                                          else Path(u).read_bytes()) for u in uris)
            else:
                rows = parquet_rows(lake, uris)
            if rows != manifest.rows:
                problems.append(f"{dataset} {day}: {rows} rows, the manifest says {manifest.rows}")
    return problems


def run_to_completion(data_dir: Path, log: Path) -> int:
    return wait_for(start_cli_run(data_dir, *RANGE, log, domain="web_traffic", **ENV), log)


def kill_at(data_dir: Path, failpoint: str, log: Path) -> None:
    marker = data_dir.parent / f"{data_dir.name}-failpoint"
    marker.unlink(missing_ok=True)
    process = start_cli_run(data_dir, *RANGE, log, domain="web_traffic",
                            **ENV, **{FAILPOINT_ENV: failpoint, MARKER_ENV: str(marker)})
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert process.poll() is None, f"the run ended before {failpoint}:\n{tail(log)}"
            assert time.monotonic() < deadline, f"{failpoint} not reached:\n{tail(log)}"
            time.sleep(0.05)
    finally:
        kill_group(process)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("web_reference")
    log = data_dir.parent / "web_reference.log"
    try:
        code = run_to_completion(data_dir, log)
    finally:
        stop_platform(data_dir)
    assert code == 0, tail(log)
    return {"data_dir": data_dir, "output": log.read_text(), "checksums": web_checksums(data_dir / "warehouse.duckdb")}


def test_the_synthetic_site_reaches_the_warehouse_line_for_line(reference):
    site = SyntheticSite(11, REQUESTS, "Asia/Seoul", SYNTHETIC_SITE_HOSTS.split(","))
    expected = []
    for day in DAYS:
        rows, _ = parse_files(site.day_files(day), day, "Asia/Seoul", DEVELOPMENT_SALT.encode())
        expected += rows
    with duckdb.connect(str(reference["data_dir"] / "warehouse.duckdb"), read_only=True) as con:
        cursor = con.execute("SELECT * FROM web_raw.access_logs")
        names = [column[0] for column in cursor.description]
        actual = [dict(zip(names, row)) for row in cursor.fetchall()]
    key = lambda row: (row["log_date"], row["source_file"], row["line_number"])  # noqa: E731
    assert sorted(actual, key=key) == sorted(expected, key=key)


def test_make_run_prints_the_web_figures(reference):
    output = reference["output"]
    assert "web_traffic: 2024-03-09 .. 2024-03-10 (2 partitions) in one run" in output
    assert "Traffic on 2024-03-10:" in output and "visitors" in output and "sessions" in output
    assert "Top pages on 2024-03-10:" in output and "  #1 " in output


def test_a_killed_web_run_leaves_the_previous_version_and_the_re_run_converges(reference, tmp_path):
    data_dir = tmp_path / "data"
    lake, warehouse = data_dir / "lake", data_dir / "warehouse.duckdb"

    # 1. Empty platform, killed while publishing the cleaning: day 1 published, day 2 not.
    kill_at(data_dir, f"clean_web_access_logs.before_publish:clean/{DAYS[1]}", tmp_path / "kill-1.log")
    try:
        store = Lake(str(lake))
        assert store.manifest(CLEAN, DAYS[0]) is not None and store.manifest(REJECTED, DAYS[0]) is not None
        assert store.manifest(CLEAN, DAYS[1]) is None
        assert lake_problems(lake) == []
        assert web_checksums(warehouse) == {}  # the load never started
        assert run_to_completion(data_dir, tmp_path / "rerun-1.log") == 0, tail(tmp_path / "rerun-1.log")
        assert web_checksums(warehouse) == reference["checksums"]

        # 2. Materialized platform, killed with the warehouse transaction open.
        before = web_checksums(warehouse)
        kill_at(data_dir, "duckdb_warehouse.before_commit", tmp_path / "kill-2.log")
        assert web_checksums(warehouse) == before
        assert lake_problems(lake) == []
        assert run_to_completion(data_dir, tmp_path / "rerun-2.log") == 0, tail(tmp_path / "rerun-2.log")
        assert web_checksums(warehouse) == reference["checksums"]
    finally:
        stop_platform(data_dir)
