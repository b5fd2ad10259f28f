"""What the BigQuery warehouse sends to BigQuery (a mocked google.cloud.bigquery.Client): the table
DDL, a range's load into a staging table, the check of its days and the one transaction replacing them, the stats
query and the range read."""

import datetime as dt
from unittest import mock

import dagster as dg
import pytest
import sqlglot
from google.cloud import bigquery

from stock_platform.defs.stock_prices.schema import DAILY_PRICES
from stock_platform.defs.stock_prices.warehouse import MARKET_CAP_RULE
from stock_platform.platform.resources.gcp import BigQueryWarehouseResource
from stock_platform.platform.settings import SettingsError
from stock_platform.platform.warehouse.bigquery import BigQueryWarehouse

TABLE = f"test-project.{DAILY_PRICES.qualified_name}"
# The warehouse contract (README), spelled out here so a drift in schema.py fails this test.
CONTRACT = [
    ("trade_date", "DATE"), ("ticker", "STRING"), ("isin", "STRING"), ("name", "STRING"),
    ("market", "STRING"), ("open", "INT64"), ("high", "INT64"), ("low", "INT64"),
    ("close", "INT64"), ("change", "INT64"), ("change_pct", "FLOAT64"), ("volume", "INT64"),
    ("traded_value", "INT64"), ("listed_shares", "INT64"), ("market_cap", "INT64"),
    ("ingested_at", "TIMESTAMP"),
]
MON, TUE, WED = dt.date(2024, 4, 8), dt.date(2024, 4, 9), dt.date(2024, 4, 10)
# The range's days as typed literals, bounded by BETWEEN so that BigQuery prunes partitions.
REPLACED_DAYS = (
    "trade_date BETWEEN DATE '2024-04-08' AND DATE '2024-04-10' "
    "AND trade_date IN (DATE '2024-04-08', DATE '2024-04-09', DATE '2024-04-10')"
)
FILES = {
    MON: ["gs://lake/clean/stock_prices/dt=2024-04-08/v=1/part-00000.zstd.parquet"],
    TUE: [
        "gs://lake/clean/stock_prices/dt=2024-04-09/v=2/part-00000.zstd.parquet",
        "gs://lake/clean/stock_prices/dt=2024-04-09/v=2/part-00001.zstd.parquet",
    ],
    WED: [],  # market closed: no files, and the day must end up with no rows
}


class FakeBigQuery:
    """A mocked Client that records the jobs and table calls in order. The existing table is
    `existing` (the contract's schema unless a test changes it)."""

    def __init__(self, existing_schema=None, staged_outside=()):
        self.staged_outside = list(staged_outside)  # what the check of staged days finds
        self.client = mock.create_autospec(bigquery.Client, instance=True)
        self.client.project = "test-project"
        self.events: list[str] = []
        self.existing_schema = existing_schema
        self.client.create_table.side_effect = self._create_table
        self.client.delete_table.side_effect = lambda table_id, **kw: self.events.append("drop staging")
        self.client.load_table_from_uri.side_effect = self._load
        self.client.query.side_effect = self._query

    def _create_table(self, table, exists_ok=False):
        if table.table_id == "daily_prices":
            self.events.append("ensure table")
            if self.existing_schema is not None:
                table = bigquery.Table(TABLE, schema=self.existing_schema)
            return table
        self.events.append("create staging")
        return table

    def _job(self, kind, name, rows=None, result=None):
        job = mock.create_autospec(kind, instance=True)
        job.output_rows = rows

        def wait(*args, **kwargs):
            self.events.append(f"wait {name}")
            return iter(result or [])

        job.result.side_effect = wait
        self.events.append(f"submit {name}")
        return job

    def _load(self, uris, destination, job_config, job_id_prefix):
        return self._job(bigquery.LoadJob, "load", rows=100 * len(uris))

    def _query(self, sql, job_config=None, job_id_prefix=None):
        if sql.startswith("SELECT"):
            return self._job(bigquery.QueryJob, "check", result=self.staged_outside)
        return self._job(bigquery.QueryJob, "replace")

    def staging(self) -> bigquery.Table:
        (table,), _ = self.client.create_table.call_args_list[1]
        return table


def expected_schema():
    return [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in CONTRACT]


def fields(api_fields):
    return [{k: f[k] for k in ("name", "type", "mode")} for f in api_fields]


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def test_the_table_is_created_partitioned_clustered_and_requiring_a_partition_filter():
    fake = FakeBigQuery()
    BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({MON: FILES[MON]})
    (table,), kwargs = fake.client.create_table.call_args_list[0]
    assert kwargs == {"exists_ok": True}
    resource = table.to_api_repr()
    assert resource["tableReference"] == {
        "projectId": "test-project", "datasetId": DAILY_PRICES.dataset, "tableId": "daily_prices"
    }
    assert fields(resource["schema"]["fields"]) == expected_schema()
    assert resource["timePartitioning"] == {"type": "DAY", "field": "trade_date"}
    assert resource["clustering"] == {"fields": ["market", "ticker"]}
    assert resource["requirePartitionFilter"] is True


def test_a_range_is_one_load_into_a_staging_table_and_one_transaction_replacing_its_days():
    fake = FakeBigQuery()
    loaded = BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions(FILES)
    assert loaded == 300
    assert fake.events == [
        "ensure table", "create staging", "submit load", "wait load", "submit check", "wait check",
        "submit replace", "wait replace", "drop staging",
    ]
    staging = fake.staging()
    staging_id = f"{staging.project}.{staging.dataset_id}.{staging.table_id}"
    assert staging.dataset_id == DAILY_PRICES.dataset and staging.table_id.startswith("_staging_daily_prices_")
    assert fields(staging.to_api_repr()["schema"]["fields"]) == expected_schema()
    assert staging.expires is not None  # a crashed run's staging table expires by itself

    ((uris, destination), load), = [(c.args, c.kwargs) for c in fake.client.load_table_from_uri.call_args_list]
    assert uris == FILES[MON] + FILES[TUE] and destination == staging_id
    # The table owns its schema, partitioning and clustering: the load names none of them.
    assert load["job_config"].to_api_repr()["load"] == {
        "sourceFormat": "PARQUET", "writeDisposition": "WRITE_APPEND", "createDisposition": "CREATE_NEVER",
    }
    assert load["job_id_prefix"] == "replace_daily_prices_20240408_20240410_"

    (check, replace) = fake.client.query.call_args_list
    assert check.args[0] == (
        f"SELECT trade_date AS day, COUNT(*) AS row_count FROM `{staging_id}` "
        "WHERE trade_date IS NULL OR trade_date NOT IN UNNEST(@days) GROUP BY day ORDER BY day LIMIT 10"
    )
    [days] = check.kwargs["job_config"].query_parameters
    assert days.to_api_repr()["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "DATE"}}
    assert days.to_api_repr()["parameterValue"] == {
        "arrayValues": [{"value": "2024-04-08"}, {"value": "2024-04-09"}, {"value": "2024-04-10"}]}
    names = ", ".join(name for name, _ in CONTRACT)
    assert statements(replace.args[0]) == [
        "BEGIN TRANSACTION",
        # every day of the range, the closed Wednesday included: it ends up empty
        f"DELETE FROM `{TABLE}` WHERE {REPLACED_DAYS}",
        f"INSERT INTO `{TABLE}` ({names}) SELECT {names} FROM `{staging_id}`",
        "COMMIT TRANSACTION",
    ]
    delete, insert = (sqlglot.parse_one(s, read="bigquery") for s in statements(replace.args[0])[1:3])
    assert isinstance(delete, sqlglot.exp.Delete) and isinstance(insert, sqlglot.exp.Insert)  # BigQuery SQL
    assert replace.kwargs["job_id_prefix"] == "replace_daily_prices_20240408_20240410_"


def test_staged_rows_of_a_day_outside_the_range_fail_the_load_naming_the_day_and_replace_nothing():
    fake = FakeBigQuery(staged_outside=[{"day": dt.date(2024, 4, 5), "row_count": 2400}])
    with pytest.raises(ValueError, match=r"outside the range 2024-04-08\.\.2024-04-09: 2024-04-05 \(2400 rows\)"):
        BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({MON: FILES[MON], TUE: FILES[TUE]})
    assert "submit replace" not in fake.events
    assert fake.events[-1] == "drop staging"


def test_the_number_of_jobs_is_bounded_whatever_the_length_of_the_range():
    # The default history: about 1,700 sessions, more than the per-table daily load-job limit.
    days = [MON + dt.timedelta(days=n) for n in range(1700)]
    fake = FakeBigQuery()
    BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions(
        {day: [f"gs://lake/clean/dt={day}/part-{i}.parquet" for i in range(8)] for day in days})
    # 13,600 files: two loads (at most 10,000 URIs each), a check and the replacement.
    assert [len(c.args[0]) for c in fake.client.load_table_from_uri.call_args_list] == [10_000, 3_600]
    assert fake.client.query.call_count == 2


def test_the_table_owns_its_schema_a_column_added_later_is_carried_through():
    schema = [bigquery.SchemaField(n, t) for n, t in CONTRACT] + [bigquery.SchemaField("added_later", "STRING")]
    fake = FakeBigQuery(existing_schema=schema)
    BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({MON: FILES[MON]})
    assert [f.name for f in fake.staging().schema][-1] == "added_later"
    (script,), _ = fake.client.query.call_args
    assert "market_cap, ingested_at, added_later) SELECT" in script


def test_a_range_of_closed_days_only_deletes():
    fake = FakeBigQuery()
    BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({WED: []})
    assert fake.events == ["ensure table", "submit replace", "wait replace"]
    (script,), _ = fake.client.query.call_args
    assert statements(script) == [
        "BEGIN TRANSACTION",
        f"DELETE FROM `{TABLE}` WHERE trade_date BETWEEN DATE '2024-04-10' AND DATE '2024-04-10' "
        "AND trade_date IN (DATE '2024-04-10')",
        "COMMIT TRANSACTION",
    ]


def test_a_failed_load_fails_the_replacement_leaves_the_table_alone_and_drops_the_staging_table():
    fake = FakeBigQuery()
    fake.client.load_table_from_uri.side_effect = None
    failed = mock.create_autospec(bigquery.LoadJob, instance=True)
    failed.result.side_effect = RuntimeError("Provided Schema does not match Table")
    fake.client.load_table_from_uri.return_value = failed
    with pytest.raises(RuntimeError, match="does not match"):
        BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({MON: FILES[MON]})
    assert fake.client.query.call_count == 0
    assert fake.events[-1] == "drop staging"


def test_partition_stats_is_one_query_filtered_on_the_partition_column():
    client = mock.create_autospec(bigquery.Client, instance=True)
    client.project = "test-project"
    client.query.return_value.result.return_value = iter(
        [{"rows": 2400, "market_cap_mismatches": 3}]
    )
    stats = BigQueryWarehouse(client, DAILY_PRICES).partition_stats(
        MON, WED, {"market_cap_mismatches": MARKET_CAP_RULE})
    assert stats == {"rows": 2400, "market_cap_mismatches": 3}
    (sql,), kwargs = client.query.call_args
    parsed = sqlglot.parse_one(sql, read="bigquery")
    assert parsed.find(sqlglot.exp.Table).sql("bigquery") == f"`{TABLE}`"
    assert parsed.args["where"].sql("bigquery") == "WHERE trade_date BETWEEN @first AND @last"
    # Each named rule counts the rows breaking it.
    rule = sqlglot.parse_one(MARKET_CAP_RULE, read="bigquery")
    (count,) = [e for e in parsed.expressions if e.alias == "market_cap_mismatches"]
    assert count.this.find(sqlglot.exp.Not).this.unnest() == rule
    assert [p.to_api_repr() for p in kwargs["job_config"].query_parameters] == [
        {"name": "first", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "2024-04-08"}},
        {"name": "last", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "2024-04-10"}},
    ]


def test_read_range_is_one_query_of_the_contract_columns_filtered_on_the_partition_column():
    """What the serving domain reads: the table's columns for [first, last], as Arrow."""
    client = mock.create_autospec(bigquery.Client, instance=True)
    client.project = "test-project"
    client.query.return_value.to_arrow.return_value = "arrow table"
    assert BigQueryWarehouse(client, DAILY_PRICES).read_range(MON, WED) == "arrow table"
    (sql,), kwargs = client.query.call_args
    parsed = sqlglot.parse_one(sql, read="bigquery")
    assert [column.sql("bigquery") for column in parsed.expressions] == [name for name, _ in CONTRACT]
    assert parsed.find(sqlglot.exp.Table).sql("bigquery") == f"`{TABLE}`"
    assert parsed.args["where"].sql("bigquery") == "WHERE trade_date BETWEEN @first AND @last"
    assert [p.to_api_repr()["parameterValue"]["value"] for p in kwargs["job_config"].query_parameters] == [
        "2024-04-08", "2024-04-10"]


def test_the_resource_uses_dagster_gcp_bigquery_client_for_project_and_location():
    resource = BigQueryWarehouseResource(bigquery=_bq("test-project", "asia-northeast3"))
    assert resource.table_name(DAILY_PRICES) == TABLE
    with mock.patch("google.cloud.bigquery.Client") as client_class:
        client_class.return_value.project = "test-project"
        client_class.return_value.query.return_value.result.return_value = iter([{"rows": 1}])
        with dg.build_resources({"warehouse": resource}) as built:
            assert built.warehouse.partition_stats(DAILY_PRICES, MON, MON, {}) == {"rows": 1}
    client_class.assert_called_once_with(project="test-project", location="asia-northeast3")


@pytest.mark.parametrize("missing", ["GCP_PROJECT", "BQ_LOCATION"])
def test_the_resource_names_a_missing_variable_when_a_run_starts(missing):
    values = {"GCP_PROJECT": "test-project", "BQ_LOCATION": "asia-northeast3", missing: ""}
    resource = BigQueryWarehouseResource(bigquery=_bq(values["GCP_PROJECT"], values["BQ_LOCATION"]))
    with (pytest.raises(dg.DagsterResourceFunctionError) as failure,
          dg.build_resources({"warehouse": resource})):
        pass
    assert isinstance(failure.value.__cause__, SettingsError)
    assert str(failure.value.__cause__).startswith(f"{missing} is not set")


def _bq(project, location):
    from dagster_gcp import BigQueryResource

    return BigQueryResource(project=project, location=location)
