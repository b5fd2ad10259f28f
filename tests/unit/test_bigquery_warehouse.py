"""What the BigQuery warehouse sends to BigQuery (a mocked google.cloud.bigquery.Client): the table
DDL, one WRITE_TRUNCATE load job per day partition, the DELETE of a closed day, the stats query and
the range read."""

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
FILES = {
    MON: ["gs://lake/clean/stock_prices/dt=2024-04-08/v=1/part-00000.zstd.parquet"],
    TUE: [
        "gs://lake/clean/stock_prices/dt=2024-04-09/v=2/part-00000.zstd.parquet",
        "gs://lake/clean/stock_prices/dt=2024-04-09/v=2/part-00001.zstd.parquet",
    ],
    WED: [],  # market closed: no files, and the day must end up with no rows
}


class FakeBigQuery:
    """A mocked Client whose jobs record when they are submitted and when they are waited on."""

    def __init__(self):
        self.client = mock.create_autospec(bigquery.Client, instance=True)
        self.client.project = "test-project"
        self.events: list[str] = []
        self.client.load_table_from_uri.side_effect = self._load
        self.client.query.side_effect = self._query

    def _job(self, kind, name, rows=None):
        job = mock.create_autospec(kind, instance=True)
        job.output_rows = rows
        job.result.side_effect = lambda *a, **k: self.events.append(f"wait {name}")
        self.events.append(f"submit {name}")
        return job

    def _load(self, uris, destination, job_config, job_id_prefix):
        return self._job(bigquery.LoadJob, destination.rsplit("$", 1)[1], rows=100 * len(uris))

    def _query(self, sql, job_config, job_id_prefix=None):
        return self._job(bigquery.QueryJob, "query")


def expected_schema():
    return [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in CONTRACT]


def fields(api_fields):
    return [{k: f[k] for k in ("name", "type", "mode")} for f in api_fields]


def test_the_table_is_created_partitioned_clustered_and_requiring_a_partition_filter():
    fake = FakeBigQuery()
    BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({MON: FILES[MON]})
    (table,), kwargs = fake.client.create_table.call_args
    assert kwargs == {"exists_ok": True}
    resource = table.to_api_repr()
    assert resource["tableReference"] == {
        "projectId": "test-project", "datasetId": DAILY_PRICES.dataset, "tableId": "daily_prices"
    }
    assert fields(resource["schema"]["fields"]) == expected_schema()
    assert resource["timePartitioning"] == {"type": "DAY", "field": "trade_date"}
    assert resource["clustering"] == {"fields": ["market", "ticker"]}
    assert resource["requirePartitionFilter"] is True


def test_each_day_is_one_write_truncate_load_into_its_partition_and_a_closed_day_is_emptied():
    fake = FakeBigQuery()
    loaded = BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions(FILES)
    assert loaded == 300

    loads = fake.client.load_table_from_uri.call_args_list
    assert [(c.args[0], c.args[1]) for c in loads] == [
        (FILES[MON], f"{TABLE}$20240408"),
        (FILES[TUE], f"{TABLE}$20240409"),
    ]
    assert [c.kwargs["job_id_prefix"] for c in loads] == [
        "replace_daily_prices_20240408_", "replace_daily_prices_20240409_"
    ]
    for call in loads:
        config = call.kwargs["job_config"].to_api_repr()["load"]
        assert fields(config.pop("schema")["fields"]) == expected_schema()
        assert config == {
            "sourceFormat": "PARQUET",
            "writeDisposition": "WRITE_TRUNCATE",
            "createDisposition": "CREATE_NEVER",
            "timePartitioning": {"type": "DAY", "field": "trade_date"},
            "clustering": {"fields": ["market", "ticker"]},
        }

    (sql,), kwargs = fake.client.query.call_args
    assert sql == f"DELETE FROM `{TABLE}` WHERE trade_date = @day"
    assert sqlglot.parse_one(sql, read="bigquery").sql("bigquery") == sql
    assert kwargs["job_id_prefix"] == "replace_daily_prices_20240410_"
    assert kwargs["job_config"].to_api_repr()["query"]["queryParameters"] == [
        {"name": "day", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "2024-04-10"}}
    ]


def test_a_range_submits_its_jobs_before_waiting_with_a_bounded_number_in_flight():
    fake = FakeBigQuery()
    BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions(FILES)
    assert fake.events == [
        "submit 20240408", "submit 20240409", "submit query",
        "wait 20240408", "wait 20240409", "wait query",
    ]
    fake = FakeBigQuery()
    BigQueryWarehouse(fake.client, DAILY_PRICES, max_in_flight=2).replace_partitions(FILES)
    assert fake.events == [
        "submit 20240408", "submit 20240409", "wait 20240408",
        "submit query", "wait 20240409", "wait query",
    ]


def test_a_failed_load_fails_the_replacement():
    fake = FakeBigQuery()
    fake.client.load_table_from_uri.side_effect = None
    failed = mock.create_autospec(bigquery.LoadJob, instance=True)
    failed.result.side_effect = RuntimeError("Provided Schema does not match Table")
    fake.client.load_table_from_uri.return_value = failed
    with pytest.raises(RuntimeError, match="does not match"):
        BigQueryWarehouse(fake.client, DAILY_PRICES).replace_partitions({MON: FILES[MON]})


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
