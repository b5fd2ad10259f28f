"""BigQuery for real, as far as it goes offline: the warehouse load and the dbt models of both
domains on `bqemulator` (a BigQuery emulator on DuckDB, REST on 127.0.0.1), compared row for row
with the DuckDB build of the same range.

A local `make run` of every domain builds the lake and the DuckDB warehouse and marts. The clean
Parquet files of that lake are then loaded into the emulator by the production load
(platform/warehouse/bigquery.py: a staging table, the check of its days, one transaction), and
the dbt project runs against it with the `prod` profile (only the credentials and the endpoint
replaced): incremental windows first, then a full rebuild without window variables; after each,
every model's rows must equal DuckDB's.

The emulator runs in a virtual environment of its own (it pins a DuckDB the project does not use),
installed from PyPI by uv, with its DuckDB extensions installed from their PyPI wheels under a
private HOME (it would download them otherwise). What it cannot show stays asserted on what is sent
(tests/unit/test_bigquery_warehouse.py, tests/unit/test_dbt_bigquery_compile.py): it rejects
partition decorators, enforces neither `require_partition_filter` nor clustering, takes no query
parameters in multi-statement scripts, rejects ASSERT, and reads the `key=value` folders of a
Parquet path as extra columns (DuckDB's hive detection; BigQuery does not), so the lake's files
are staged for it under flat names.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml
from fixtures.platform import start_cli_run, stop_platform, tail, wait_for
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from stock_platform.defs.stock_prices.schema import CLEAN as STOCK_CLEAN
from stock_platform.defs.stock_prices.schema import DAILY_PRICES
from stock_platform.defs.web_traffic.schema import ACCESS_LOGS
from stock_platform.defs.web_traffic.schema import CLEAN as WEB_CLEAN
from stock_platform.platform.dbt import DBT_PROJECT_DIR
from stock_platform.platform.lake import Lake
from stock_platform.platform.resources import dbt_executable
from stock_platform.platform.settings import REPO_ROOT
from stock_platform.platform.warehouse.bigquery import BigQueryWarehouse

PROJECT = "test-project"
EMULATOR = ("bqemulator==1.4.0", "duckdb==1.5.5", "duckdb-extension-spatial==1.5.5",
            "duckdb-extension-avro==1.5.5", "numpy")  # fmt: skip
INSTALL_EXTENSIONS = """
import glob, site, duckdb
for name in ("spatial", "avro"):
    [path] = glob.glob(f"{site.getsitepackages()[0]}/duckdb_extension_{name}/extensions/*/{name}.duckdb_extension")
    duckdb.sql(f"INSTALL '{path}'")
"""
# Four sessions (2024-04-10 was a KRX holiday) and five days of web traffic.
DAYS = [dt.date(2024, 4, 8) + dt.timedelta(days=n) for n in range(5)]
WINDOWS = [(DAYS[0], DAYS[1]), (DAYS[2], DAYS[4])]  # incremental runs, in this order
TABLES = ((DAILY_PRICES, STOCK_CLEAN), (ACCESS_LOGS, WEB_CLEAN))
ANALYTICS = ("stock_analytics", "web_analytics")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    """A `make run` of every domain over DAYS (small web traffic), in the background: a function
    waiting for it and returning its data dir."""
    data_dir = tmp_path_factory.mktemp("duckdb_build")
    log = data_dir.parent / f"{data_dir.name}.log"
    process = start_cli_run(data_dir, DAYS[0].isoformat(), DAYS[-1].isoformat(), log, domain=None,
                            WEB_SYNTHETIC_REQUESTS_PER_DAY="3000")

    def finished() -> Path:
        code = wait_for(process, log)
        assert code == 0, f"the local run failed (exit {code}):\n{tail(log)}"
        return data_dir

    try:
        yield finished
    finally:
        wait_for(process, log)
        stop_platform(data_dir)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, local_build):
    """The emulator on a free port, its gs:// served from a local folder: (endpoint, that folder)."""
    folder = tmp_path_factory.mktemp("bqemulator")
    uv = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
    venv = folder / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *EMULATOR],
                   check=True)
    (folder / "home").mkdir()
    gcs = folder / "gcs"
    env = {**os.environ, "HOME": str(folder / "home"), "BQEMU_GCS_LOCAL_ROOT": str(gcs)}
    subprocess.run([venv / "bin" / "python", "-c", INSTALL_EXTENSIONS], env=env, check=True)
    port = free_port()
    log = folder / "emulator.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [venv / "bin" / "bqemulator", "start", "--project", PROJECT, "--rest-port", str(port),
             "--grpc-port", "0", "--ephemeral"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"bqemulator exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{endpoint}/bigquery/v2/projects/{PROJECT}/datasets").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"bqemulator did not answer:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield endpoint, gcs
    finally:
        process.terminate()
        process.wait(timeout=30)


def client_for(endpoint: str) -> bigquery.Client:
    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=endpoint))


def load_range(client: bigquery.Client, lake: Lake, gcs: Path) -> None:
    """Each raw table's range loaded from the lake's clean files as production loads it (one
    replace_partitions for the range); the files staged under flat names (see the docstring)."""
    for table, clean in TABLES:
        client.create_dataset(table.dataset, exists_ok=True)
        files_by_day = {}
        for day in DAYS:
            manifest = lake.manifest(clean, day)
            if manifest is None:  # a day the domain has no partition for (a KRX holiday)
                continue
            files_by_day[day] = []
            for index, uri in enumerate(lake.version_files(clean, day, manifest)):
                name = f"{table.name}/{day}-{index}.parquet"
                (gcs / "lake" / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(uri, gcs / "lake" / name)
                files_by_day[day].append(f"gs://lake/{name}")
        BigQueryWarehouse(client, table).replace_partitions(files_by_day)


def run_dbt(endpoint: str, work: Path, window: tuple[dt.date, dt.date] | None) -> None:
    """`dbt run` of both domains' models with the prod profile, for a window or (None) a rebuild."""
    real = yaml.safe_load(Path(DBT_PROJECT_DIR, "profiles.yml").read_text())
    prod = dict(real["stock_platform"]["outputs"]["prod"])
    prod.pop("keyfile")
    prod.update(method="oauth-secrets", token="emulator", api_endpoint=endpoint, job_retries=0)
    (work / "profiles").mkdir(parents=True, exist_ok=True)
    (work / "profiles" / "profiles.yml").write_text(
        yaml.safe_dump({"stock_platform": {"target": "prod", "outputs": {"prod": prod}}})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "DBT_", "BQ_"))}
    env.update(GCP_PROJECT=PROJECT, BQ_LOCATION="US", DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    window_vars = {"min_date": window[0].isoformat(), "max_date": window[1].isoformat()} if window else None
    result = subprocess.run(
        [dbt_executable(), "run", "--target", "prod", "--project-dir", DBT_PROJECT_DIR,
         "--profiles-dir", str(work / "profiles"), "--target-path", str(work / "target"),
         "--log-path", str(work / "logs"), *(["--vars", json.dumps(window_vars)] if window_vars else [])],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def normalized(value):
    """A value as both engines' Python types compare: numbers to 9 significant digits, instants as
    naive UTC (BigQuery's TIMESTAMP comes back with its zone, DuckDB's TIMESTAMP without)."""
    if isinstance(value, decimal.Decimal | float):
        return None if math.isnan(value) else float(f"{float(value):.9g}")
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def duckdb_tables(warehouse: Path) -> dict[str, list[str]]:
    """The models DuckDB built (tables; the staging views are not stored): {schema.table: columns}."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT table_schema || '.' || table_name, list(column_name ORDER BY ordinal_position) "
            "FROM information_schema.columns JOIN information_schema.tables USING (table_schema, table_name) "
            f"WHERE table_type = 'BASE TABLE' AND table_schema IN {ANALYTICS} GROUP BY ALL"
        ).fetchall()
    return dict(rows)


def rows_of(source, relation: str, columns: list[str]) -> list[tuple]:
    names = ", ".join(columns)
    if isinstance(source, bigquery.Client):
        result = source.query(f"SELECT {names} FROM `{PROJECT}.{relation}`").result()
        rows = [tuple(row.values()) for row in result]
    else:
        rows = source.execute(f"SELECT {names} FROM {relation}").fetchall()
    return sorted((tuple(normalized(v) for v in row) for row in rows), key=repr)


def assert_same_rows(client: bigquery.Client, warehouse: Path, when: str) -> None:
    tables = duckdb_tables(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for relation, columns in sorted(tables.items()):
            bq_columns = [f.name for f in client.get_table(f"{PROJECT}.{relation}").schema]
            assert bq_columns == columns, f"{relation} after {when}: columns differ"
            expected = rows_of(con, relation, columns)
            assert expected, f"{relation} is empty in DuckDB: nothing compared"
            assert rows_of(client, relation, columns) == expected, f"{relation} after {when}"


def test_the_load_and_the_dbt_models_on_the_bigquery_emulator_give_the_duckdb_rows(
    emulator, local_build, tmp_path
):
    endpoint, gcs = emulator
    data_dir = local_build()
    warehouse = data_dir / "warehouse.duckdb"
    client = client_for(endpoint)
    load_range(client, Lake(str(data_dir / "lake")), gcs)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, _ in TABLES:
            key = table.partition_column
            expected = dict(con.execute(f"SELECT {key}, count(*) FROM {table.qualified_name} GROUP BY 1").fetchall())
            loaded = BigQueryWarehouse(client, table).rows_by_partition(DAYS[0], DAYS[-1])
            assert loaded == expected and sum(expected.values()) > 0, table.qualified_name
    assert set(duckdb_tables(warehouse)) >= {
        "stock_analytics.fct_daily_stock_metrics", "stock_analytics.market_daily_summary",
        "stock_analytics.top_movers_daily", "stock_analytics.fct_stock_features",
        "web_analytics.fct_requests", "web_analytics.fct_sessions", "web_analytics.web_daily_traffic",
        "web_analytics.web_top_pages_daily", "web_analytics.dim_page",
    }

    for first, last in WINDOWS:  # the first creates the tables, the second takes the incremental path
        run_dbt(endpoint, tmp_path, (first, last))
    assert_same_rows(client, warehouse, "incremental windows")
    run_dbt(endpoint, tmp_path, None)
    assert_same_rows(client, warehouse, "a full rebuild")
    # Re-running a window changes nothing.
    run_dbt(endpoint, tmp_path, WINDOWS[1])
    assert_same_rows(client, warehouse, "a window run again")
