"""STOCK_PLATFORM_ENV=gcp: the code location loads with no network access and with variables
missing; the resources take their values from the settings; a missing variable fails the run
that needs it, naming the variable."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from stock_platform.defs.stock_prices.ingestion import raw_stock_prices
from stock_platform.defs.stock_prices.resources import SyntheticSourceResource
from stock_platform.defs.stock_prices.schema import DAILY_PRICES
from stock_platform.platform.resources import build_resources
from stock_platform.platform.resources.gcp import (
    BigQueryWarehouseResource,
    DataprocSparkResource,
    GcsLakeResource,
    KubernetesSparkSessionResource,
)
from stock_platform.platform.resources.local import InProcessSparkResource
from stock_platform.platform.settings import REPO_ROOT, PlatformSettings, parse
from stock_platform.platform.spark import SparkSessionResource

GCP = {
    "STOCK_PLATFORM_ENV": "gcp",
    "GCP_PROJECT": "test-project",
    "BQ_LOCATION": "asia-northeast3",
    "GCS_LAKE_URI": "gs://stock-lake/prod",
}

# Loads the code location in a fresh interpreter where any non-local socket connect fails.
LOAD_OFFLINE = """
import json, socket
real_connect = socket.socket.connect
def guarded(sock, address):
    if sock.family != socket.AF_UNIX:
        raise OSError(f"network access during load: {address}")
    return real_connect(sock, address)
socket.socket.connect = guarded

import dagster as dg
from stock_platform.definitions import defs
loaded = defs()
dg.Definitions.validate_loadable(loaded)
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in loaded.resolve_asset_graph().get_all_asset_keys()),
    "resources": {key: type(value).__name__ for key, value in loaded.resources.items()},
    "dbt_target": loaded.resources["dbt"].target,
}))
"""


def test_the_gcp_code_location_loads_offline_with_every_gcp_variable_missing(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GOOGLE_", "GCP_", "BQ_", "GCS_", "DATAPROC_", "STOCK_", "SPARK_"))}
    env.update(STOCK_PLATFORM_ENV="gcp", SPARK_RUNNER="dataproc", STOCK_PLATFORM_DATA_DIR=str(tmp_path),
               PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", LOAD_OFFLINE], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["resources"] == {
        "stock_source": "SyntheticSourceResource",
        "web_log_source": "SyntheticSiteResource",
        "lake": "GcsLakeResource",
        "spark": "DataprocSparkResource",
        "warehouse": "BigQueryWarehouseResource",
        "dbt": "DbtCliResource",
        "serving_db": "ServingDatabaseResource",
    }
    assert loaded["dbt_target"] == "prod"
    assert {"raw_stock_prices", "clean_stock_prices", "stock_raw/daily_prices", "raw_web_access_logs",
            "clean_web_access_logs", "web_raw/access_logs"} <= set(loaded["assets"])


def test_spark_runs_in_the_step_process_by_default_or_with_executors_on_kubernetes():
    spark = build_resources(parse(PlatformSettings, GCP))["spark"]
    assert isinstance(spark, InProcessSparkResource) and type(spark.session) is SparkSessionResource
    assert spark.session.spark_config["spark.master"].startswith("local")
    # The lake is in GCS: no local-disk tuning (serial listing of input paths on the driver).
    listing = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    assert listing not in spark.session.spark_config
    local = build_resources(parse(PlatformSettings, {}))["spark"]
    assert local.session.spark_config[listing] == "1000000"
    spark = build_resources(parse(PlatformSettings, {**GCP, "SPARK_RUNNER": "kubernetes"}))["spark"]
    assert isinstance(spark.session, KubernetesSparkSessionResource)


def test_gcp_resources_take_their_values_from_the_settings():
    resources = build_resources(parse(PlatformSettings, {
        **GCP, "SPARK_RUNNER": "dataproc", "DATAPROC_REGION": "asia-northeast3",
        "DATAPROC_CODE_URI": "gs://stock-code/1.0",
        "DATAPROC_SERVICE_ACCOUNT": "dataproc@test-project.iam.gserviceaccount.com",
    }))
    lake, warehouse, spark = resources["lake"], resources["warehouse"], resources["spark"]
    assert isinstance(lake, GcsLakeResource) and lake.root == "gs://stock-lake/prod"
    assert isinstance(warehouse, BigQueryWarehouseResource)
    assert (warehouse.bigquery.project, warehouse.bigquery.location) == ("test-project", "asia-northeast3")
    assert warehouse.bigquery.gcp_credentials is None  # ADC / Workload Identity only
    assert warehouse.table_name(DAILY_PRICES) == f"test-project.{DAILY_PRICES.qualified_name}"
    assert isinstance(spark, DataprocSparkResource)
    assert (spark.project, spark.region, spark.code_uri, spark.lake_uri, spark.service_account) == (
        "test-project", "asia-northeast3", "gs://stock-code/1.0", "gs://stock-lake/prod",
        "dataproc@test-project.iam.gserviceaccount.com")
    assert resources["dbt"].target == "prod"


def run_errors(result) -> str:
    errors = [getattr(event.event_specific_data, "error", None) for event in result.all_events]
    return "\n".join(error.to_string() for error in errors if error is not None)


@pytest.mark.parametrize(
    "lake_uri, message",
    [("", "GCS_LAKE_URI is not set; it is required for the lake in STOCK_PLATFORM_ENV=gcp"),
     ("/data/lake", "GCS_LAKE_URI='/data/lake' is not a gs://bucket/prefix URI")],
)
def test_a_missing_or_invalid_lake_uri_fails_the_run_naming_the_variable(lake_uri, message):
    resources = build_resources(parse(PlatformSettings, {**GCP, "GCS_LAKE_URI": lake_uri}))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [raw_stock_prices],
            resources={**resources, "stock_source": SyntheticSourceResource(seed=7, page_size=1000)},
            partition_key="2024-04-09", instance=instance, raise_on_error=False,
        )
        assert not result.success
        assert message in run_errors(result)


@pytest.mark.parametrize("missing", ["GCP_PROJECT", "DATAPROC_REGION", "DATAPROC_CODE_URI", "GCS_LAKE_URI"])
def test_dataproc_names_a_missing_variable_when_a_run_starts(missing):
    settings = {**GCP, "SPARK_RUNNER": "dataproc", "DATAPROC_REGION": "asia-northeast3",
                "DATAPROC_CODE_URI": "gs://stock-code/1.0", missing: ""}
    spark = build_resources(parse(PlatformSettings, settings))["spark"]
    with pytest.raises(dg.DagsterResourceFunctionError) as failure, dg.build_resources({"spark": spark}):
        pass
    assert str(failure.value.__cause__).startswith(f"{missing} is not set")
