"""Every dbt model compiles for the `prod` (BigQuery) target with no network, and the incremental
SQL reads the source only for the partition window plus its lookback.

dbt-bigquery talks to a small HTTP server on 127.0.0.1 acting as the BigQuery API; the profile is
the real `prod` output of dbt_project/profiles.yml with only the credentials method and the
endpoint replaced. One `dbt compile` for the module (module-scoped fixtures).
"""

import datetime as dt
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest
import sqlglot
import yaml
from sqlglot import exp

from stock_platform.defs.stock_prices.marts import LOOKBACK
from stock_platform.platform.dbt import DBT_PROJECT_DIR
from stock_platform.platform.resources import dbt_executable

MIN_DATE, MAX_DATE = "2024-04-08", "2024-04-12"
# Days each mart reads before the window (the Dagster lookback of the marts, LOOKBACK).
MARTS = {"fct_daily_stock_metrics": LOOKBACK.days, "market_daily_summary": LOOKBACK.days, "top_movers_daily": 0,
         "fct_stock_features": LOOKBACK.days}
CLUSTER_BY = {"fct_daily_stock_metrics": ["market", "ticker"], "market_daily_summary": ["market"],
              "top_movers_daily": ["market", "direction"], "fct_stock_features": ["market", "ticker"]}
# Datasets other than the defaults: the relations must come from these variables.
ENV = {"GCP_PROJECT": "test-project", "BQ_LOCATION": "asia-northeast3",
       "BQ_ANALYTICS_DATASET": "analytics_test", "BQ_RAW_DATASET": "raw_test"}
MODELS = "stock_platform/models/stock_prices"


class FakeBigQueryApi(http.server.BaseHTTPRequestHandler):
    """Records every request; answers a table GET with a minimal table resource (the table
    exists), anything else with 404."""

    requests: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        if "tables" in parts:
            project, dataset, table = parts[-5], parts[-3], parts[-1]
            self._reply(200, {"kind": "bigquery#table", "type": "TABLE", "tableReference": {
                "projectId": project, "datasetId": dataset, "tableId": table}})
        else:
            self._reply(404, {"error": {"code": 404, "message": f"Not found: {self.path}",
                                        "errors": [{"reason": "notFound"}], "status": "NOT_FOUND"}})

    do_POST = do_GET  # anything else is recorded and fails the request-log assertion

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeBigQueryApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def profiles_dir(tmp_path_factory, api):
    real = yaml.safe_load(Path(DBT_PROJECT_DIR, "profiles.yml").read_text())
    prod = dict(real["stock_platform"]["outputs"]["prod"])
    prod.pop("keyfile")
    prod.update(method="oauth-secrets", token="dummy-token", api_endpoint=api, job_retries=0)
    folder = tmp_path_factory.mktemp("bigquery_profiles")
    (folder / "profiles.yml").write_text(
        yaml.safe_dump({"stock_platform": {"target": "prod", "outputs": {"prod": prod}}})
    )
    return folder


def compile_prod(profiles_dir: Path, out: Path, window: bool = True):
    """`dbt compile` for the prod target: ({node path: compiled SQL}, {mart: resolved config}),
    for the window MIN_DATE..MAX_DATE or, with window=False, for a rebuild of every date."""
    FakeBigQueryApi.requests = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "DBT_"))}
    env.update(ENV, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    result = subprocess.run(
        [dbt_executable(), "compile", "--no-populate-cache", "--target", "prod",
         "--project-dir", DBT_PROJECT_DIR, "--profiles-dir", str(profiles_dir),
         "--target-path", str(out / "target"), "--log-path", str(out / "logs"),
         *(["--vars", json.dumps({"min_date": MIN_DATE, "max_date": MAX_DATE})] if window else [])],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    compiled = out / "target" / "compiled"
    sql = {str(p.relative_to(compiled)): p.read_text() for p in compiled.rglob("*.sql")}
    manifest = json.loads((out / "target" / "manifest.json").read_text())
    configs = {n["name"]: n["config"] for n in manifest["nodes"].values() if n["name"] in MARTS}
    return sql, configs


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, profiles_dir):
    """(compiled SQL by path, the BigQuery API requests made, the marts' resolved configs)."""
    sql, configs = compile_prod(profiles_dir, tmp_path_factory.mktemp("compiled"))
    return sql, list(FakeBigQueryApi.requests), configs


@pytest.fixture(scope="module")
def compiled_without_window(tmp_path_factory, profiles_dir):
    """The project (web datasets set too) compiled with no window vars: a rebuild of every date."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in WEB_ENV.items():
            patch.setenv(name, value)
        return compile_prod(profiles_dir, tmp_path_factory.mktemp("compiled_without_window"), window=False)


def mart(sql_by_path: dict[str, str], name: str) -> str:
    return sql_by_path[f"{MODELS}/marts/{name}.sql"]


def test_every_model_compiles_offline_to_bigquery_sql_without_asking_bigquery(compiled):
    sql_by_path, requests, _ = compiled
    models = {f"{MODELS}/marts/{m}.sql" for m in MARTS} | {f"{MODELS}/staging/stg_daily_prices.sql"}
    assert models <= set(sql_by_path)
    # No model calls is_incremental(): the window vars, not the table's state, bound what is read
    # and written, so compiling asks BigQuery nothing (the API answers "the table exists" to any
    # table GET; an is_incremental() branch added later would show up here as requests) and the
    # SQL is the same for a full refresh and an incremental run.
    assert requests == []
    for path, sql in sql_by_path.items():
        assert sqlglot.parse(sql, read="bigquery"), path  # raises on SQL BigQuery would reject


def tables(sql: str) -> set[tuple[str, str, str]]:
    return {(t.catalog, t.db, t.name) for t in sqlglot.parse_one(sql, read="bigquery").find_all(exp.Table)}


def test_relations_come_from_the_project_and_dataset_variables(compiled):
    sql_by_path = compiled[0]
    assert tables(sql_by_path[f"{MODELS}/staging/stg_daily_prices.sql"]) == {
        ("test-project", "raw_test", "daily_prices")}
    for name in MARTS:
        assert ("test-project", "analytics_test", "stg_daily_prices") in tables(mart(sql_by_path, name))


def test_marts_are_insert_overwrite_on_day_partitions_and_clustered_on_bigquery(compiled):
    configs = compiled[2]
    assert set(configs) == set(MARTS)
    for name, config in configs.items():
        assert config["materialized"] == "incremental"
        assert config["incremental_strategy"] == "insert_overwrite"
        assert config["partition_by"] == {"field": "trade_date", "data_type": "date", "granularity": "day"}
        assert config["cluster_by"] == CLUSTER_BY[name]
        assert config["schema"] is None and config["database"] is None  # the target's dataset


def test_a_window_run_replaces_every_day_of_its_write_window_on_bigquery(compiled):
    # Static partitions: the MERGE deletes every listed day's rows and inserts the new ones, so a
    # day with no rows any more (re-marked closed) is emptied; dynamic partitions would replace
    # only the days present in the new rows. The write window: the run's days and the 364 after.
    first, last = dt.date.fromisoformat(MIN_DATE), dt.date.fromisoformat(MAX_DATE)
    days = [first + dt.timedelta(days=n) for n in range((last + LOOKBACK - first).days + 1)]
    expected = [f"date '{day.isoformat()}'" for day in days]
    for name, config in compiled[2].items():
        assert config["partitions"] == expected, name
        # Each is a constant BigQuery date (the MERGE compares trade_date with them).
        assert [evaluate(sqlglot.parse_one(p, read="bigquery")) for p in config["partitions"][:2]] == days[:2]


def evaluate(expression: exp.Expression) -> dt.date:
    """A constant BigQuery date expression evaluated by a real engine (DuckDB, via sqlglot)."""
    with duckdb.connect() as con:
        return con.execute(f"select {expression.sql('duckdb')}").fetchone()[0]


def _reads_staging(source: exp.From | None) -> bool:
    return source is not None and isinstance(source.this, exp.Table) and (
        source.this.name == "stg_daily_prices"
    )


def conjuncts(where: exp.Where) -> list[exp.Expression]:
    """The top-level AND terms of a WHERE clause (not those inside its subqueries)."""
    return list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]


@pytest.mark.parametrize("name", MARTS)
def test_the_source_is_read_only_for_the_window_plus_lookback_and_lookahead(compiled, name):
    # Lookahead: the later days whose 52 weeks reach the window, which the mart rewrites too.
    # Lookback: 364 days; before it, only the older sessions of listings with fewer than 60
    # sessions in the lookback (macros/prices_with_previous.sql).
    tree = sqlglot.parse_one(mart(compiled[0], name), read="bigquery")
    reads = [s for s in tree.find_all(exp.Select) if _reads_staging(s.args.get("from_"))]
    first, last = dt.date.fromisoformat(MIN_DATE), dt.date.fromisoformat(MAX_DATE)
    lower = first - dt.timedelta(days=MARTS[name])
    window_reads = older_reads = 0
    for select in reads:
        terms = [t for t in conjuncts(select.args["where"]) if isinstance(t, (exp.GTE, exp.LTE, exp.LT))]
        assert terms and {t.this.name for t in terms} == {"trade_date"}, select.sql()
        bounds = {type(t).__name__: evaluate(t.expression) for t in terms}
        if "LT" in bounds:  # older sessions: before the lookback, for a few listings only
            assert bounds == {"LT": lower}
            assert any(isinstance(t, exp.In) and t.this.name == "ticker" for t in conjuncts(select.args["where"]))
            older_reads += 1
        else:
            assert bounds == {"GTE": lower, "LTE": last + LOOKBACK}
            window_reads += 1
    assert window_reads >= 1
    assert older_reads == (1 if MARTS[name] else 0), name


# ---------------------------------------------------------------------------------------------
# The web traffic models (dbt_project/models/web_traffic), schema web_analytics
# ---------------------------------------------------------------------------------------------

WEB_ENV = {"BQ_WEB_RAW_DATASET": "web_raw_test", "BQ_WEB_ANALYTICS_DATASET": "web_analytics_test",
           "WEB_LOGS_TIMEZONE": "Asia/Seoul"}
# The per-day models: incremental over whole log_date days, and their BigQuery clustering.
WEB_PER_DAY = {
    "int_web_page_days": ["page_key"], "int_web_user_agent_days": ["ua_key"],
    "int_web_referrer_days": ["referrer_key"], "fct_requests": ["page_key", "visitor_id"],
    "fct_sessions": ["visitor_id"], "web_daily_traffic": None, "web_top_pages_daily": None,
}
WEB_DIMENSIONS = ("dim_date", "dim_time", "dim_page", "dim_user_agent", "dim_referrer")


class MissingTablesApi(FakeBigQueryApi):
    """The BigQuery API of a project where no table exists yet (every table GET is a 404)."""

    requests: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        self._reply(404, {"error": {"code": 404, "message": f"Not found: {self.path}",
                                    "errors": [{"reason": "notFound"}], "status": "NOT_FOUND"}})

    do_POST = do_GET


def _web_compile(profiles_dir: Path, out: Path, api_class: type[FakeBigQueryApi]):
    """compile_prod with the web datasets set: (SQL by path, API requests, web model nodes)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in WEB_ENV.items():
            patch.setenv(name, value)
        api_class.requests = []
        sql, _ = compile_prod(profiles_dir, out)
    manifest = json.loads((out / "target" / "manifest.json").read_text())
    nodes = {n["name"]: n for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["fqn"][1] == "web_traffic"}
    return sql, list(api_class.requests) + list(FakeBigQueryApi.requests), nodes


@pytest.fixture(scope="module")
def web_compiled(tmp_path_factory, profiles_dir):
    """The project compiled for prod with the window vars, the API saying every table exists
    (the is_incremental() branch)."""
    return _web_compile(profiles_dir, tmp_path_factory.mktemp("web_compiled"), FakeBigQueryApi)


@pytest.fixture(scope="module")
def web_compiled_without_tables(tmp_path_factory):
    """The same with an API where no table exists (the first-run / full-refresh branch)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MissingTablesApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        real = yaml.safe_load(Path(DBT_PROJECT_DIR, "profiles.yml").read_text())
        prod = dict(real["stock_platform"]["outputs"]["prod"])
        prod.pop("keyfile")
        prod.update(method="oauth-secrets", token="dummy-token", job_retries=0,
                    api_endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        folder = tmp_path_factory.mktemp("web_profiles_without_tables")
        (folder / "profiles.yml").write_text(
            yaml.safe_dump({"stock_platform": {"target": "prod", "outputs": {"prod": prod}}})
        )
        return _web_compile(folder, tmp_path_factory.mktemp("web_compiled_without_tables"), MissingTablesApi)
    finally:
        server.shutdown()


def web_model_sql(sql_by_path: dict[str, str], node: dict) -> str:
    return sql_by_path[f"stock_platform/{node['original_file_path']}"]


def test_web_models_compile_offline_for_bigquery_into_their_own_dataset(web_compiled):
    sql_by_path, requests, nodes = web_compiled
    assert set(nodes) == {"stg_access_logs", *WEB_PER_DAY, *WEB_DIMENSIONS}
    assert requests == []  # nothing depends on whether a table exists
    for name, node in nodes.items():
        sql = web_model_sql(sql_by_path, node)
        assert sqlglot.parse(sql, read="bigquery"), name
        # Exactly the web dataset, not "<target dataset>_<custom>".
        assert node["schema"] == "web_analytics_test" and node["database"] == "test-project", name
        for catalog, dataset, table in tables(sql):
            if not dataset:  # a CTE
                continue
            if (dataset, table) == ("web_raw_test", "access_logs"):
                assert name == "stg_access_logs"  # the one model that reads the source
            else:
                assert (catalog, dataset) == ("test-project", "web_analytics_test"), (name, table)
    assert {t for t in tables(web_model_sql(sql_by_path, nodes["stg_access_logs"])) if t[1]} == {
        ("test-project", "web_raw_test", "access_logs")}
    # The local time of day in WEB_LOGS_TIMEZONE, with BigQuery's spelling.
    assert "datetime(ts, 'Asia/Seoul')" in web_model_sql(sql_by_path, nodes["stg_access_logs"])


def test_web_per_day_models_overwrite_every_day_partition_of_the_window_on_bigquery(web_compiled):
    nodes = web_compiled[2]
    first, last = dt.date.fromisoformat(MIN_DATE), dt.date.fromisoformat(MAX_DATE)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    for name, cluster_by in WEB_PER_DAY.items():
        config = nodes[name]["config"]
        assert config["materialized"] == "incremental", name
        assert config["incremental_strategy"] == "insert_overwrite", name
        assert config["partition_by"] == {"field": "log_date", "data_type": "date", "granularity": "day"}
        # Static partitions: every day of the window, none after it (no lookahead), so a day
        # that lost all its rows is emptied too.
        assert config["partitions"] == [f"date '{day.isoformat()}'" for day in days], name
        assert [evaluate(sqlglot.parse_one(p, read="bigquery")) for p in config["partitions"]] == days
        assert config["cluster_by"] == cluster_by, name
        assert config["schema"] == "web_analytics_test", name
    for name in WEB_DIMENSIONS:
        assert nodes[name]["config"]["materialized"] == "table", name
    assert nodes["stg_access_logs"]["config"]["materialized"] == "view"


def _reads(tree: exp.Expression, table_name: str) -> list[exp.Select]:
    return [s for s in tree.find_all(exp.Select)
            if (source := s.args.get("from_")) is not None and isinstance(source.this, exp.Table)
            and source.this.name == table_name]


@pytest.mark.parametrize("branch", ["tables_exist", "no_tables"])
def test_every_web_read_of_the_source_days_is_bounded_by_the_window(branch, request):
    """stg_access_logs is a view over web_raw.access_logs (its compiled SQL reads the source with
    no filter of its own); every model that reads it filters log_date to exactly [min_date,
    max_date] right there, so BigQuery prunes the source's partitions through the view. The
    dimensions read only the small per-day models and the marts, never the source.  Checked with
    the tables present and absent: the SQL is the same either way."""
    fixture = "web_compiled" if branch == "tables_exist" else "web_compiled_without_tables"
    sql_by_path, requests, nodes = request.getfixturevalue(fixture)
    assert requests == []
    first, last = dt.date.fromisoformat(MIN_DATE), dt.date.fromisoformat(MAX_DATE)
    readers = set()
    for name, node in nodes.items():
        tree = sqlglot.parse_one(web_model_sql(sql_by_path, node), read="bigquery")
        if name == "stg_access_logs":
            assert len(_reads(tree, "access_logs")) == 1
            continue
        assert not _reads(tree, "access_logs"), name
        reads = _reads(tree, "stg_access_logs")
        if reads:
            readers.add(name)
        for select in reads:
            terms = [t for t in conjuncts(select.args["where"]) if isinstance(t, (exp.GTE, exp.LTE))]
            assert {t.this.name for t in terms} == {"log_date"}, (name, select.sql())
            assert {type(t).__name__: evaluate(t.expression) for t in terms} == {"GTE": first, "LTE": last}
    assert readers == set(WEB_PER_DAY)
    assert not readers & set(WEB_DIMENSIONS)


def test_web_sql_is_the_same_whether_or_not_the_tables_exist(web_compiled, web_compiled_without_tables):
    with_tables, without = web_compiled, web_compiled_without_tables
    for name, node in with_tables[2].items():
        assert web_model_sql(with_tables[0], node) == web_model_sql(without[0], without[2][name]), name


# ---------------------------------------------------------------------------------------------
# Partition filters: the sources are created with require_partition_filter
# ---------------------------------------------------------------------------------------------

# The partitioned sources and the staging views over them (a view adds no filter of its own: the
# query reading it must carry one, which BigQuery pushes down to the source), by partition column.
PARTITIONED = {"daily_prices": "trade_date", "stg_daily_prices": "trade_date",
               "access_logs": "log_date", "stg_access_logs": "log_date"}
STAGING_VIEWS = ("stg_daily_prices.sql", "stg_access_logs.sql")


def unfiltered_reads(sql: str) -> list[str]:
    """The SELECTs of `sql` that read a partitioned source (or its staging view) without a
    constant bound on its partition column among the WHERE clause's top-level AND terms."""
    from sqlglot.optimizer.scope import traverse_scope

    missing = []
    for scope in traverse_scope(sqlglot.parse_one(sql, read="bigquery")):
        read = {PARTITIONED[t.name] for t in scope.sources.values()
                if isinstance(t, exp.Table) and t.name in PARTITIONED}
        if not read:
            continue
        where = scope.expression.args.get("where")
        bounded = {term.this.name for term in (conjuncts(where) if where else [])
                   if isinstance(term, (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.Between))
                   and isinstance(term.this, exp.Column)
                   and all(c is term.this for c in term.find_all(exp.Column))}  # the rest: constants
        if not read <= bounded:
            missing.append(scope.expression.sql("bigquery")[:300])
    return missing


def test_a_rebuild_without_window_replaces_each_table_whole_on_bigquery(compiled_without_window):
    # Without the vars every date is rebuilt: `create or replace table`, atomic. insert_overwrite
    # with dynamic partitions would replace only the days present in the new rows, so a day that
    # became empty (re-marked closed) would keep its old rows.
    configs = compiled_without_window[1]
    assert set(configs) == set(MARTS)
    for name, config in configs.items():
        assert config["materialized"] == "table", name
        assert config["partition_by"] == {"field": "trade_date", "data_type": "date", "granularity": "day"}
        assert config["cluster_by"] == CLUSTER_BY[name]


@pytest.mark.parametrize("branch", ["window", "rebuild"])
def test_every_compiled_query_on_a_partitioned_source_carries_a_partition_filter(branch, request):
    """Every compiled model and data test, for a window run and for a rebuild of every date: each
    SELECT that reads stock_raw.daily_prices or web_raw.access_logs (directly or through the
    staging view) bounds the partition column with a constant, as require_partition_filter needs."""
    if branch == "window":
        sql_by_path = {**request.getfixturevalue("compiled")[0], **request.getfixturevalue("web_compiled")[0]}
    else:
        sql_by_path = request.getfixturevalue("compiled_without_window")[0]
    readers = 0
    for path, sql in sql_by_path.items():
        if path.endswith(STAGING_VIEWS):
            continue
        if any(t.name in PARTITIONED for t in sqlglot.parse_one(sql, read="bigquery").find_all(exp.Table)):
            readers += 1
            assert unfiltered_reads(sql) == [], path
    # The marts, the per-day web models and the data tests on the staging views and the marts.
    assert readers >= len(MARTS) + len(WEB_PER_DAY), sorted(sql_by_path)


def test_the_filter_check_sees_a_missing_partition_filter():
    assert unfiltered_reads("select * from raw.daily_prices where ticker = 'A'")
    assert unfiltered_reads("select * from (select * from a.stg_access_logs) as s where log_date >= '2024-01-01'")
    assert unfiltered_reads("select * from a.stg_daily_prices where trade_date >= other_date")
    assert not unfiltered_reads("select * from a.stg_daily_prices where trade_date >= date '2024-01-01' and x = 1")
