"""STOCK_PLATFORM_ENV=gcp: the code location loads with no network access and with variables
missing; a missing variable fails the run that needs it, naming the variable."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from stock_platform.defs.stock_prices.ingestion import raw_stock_prices
from stock_platform.platform.resources.gcp import (
    BigQueryWarehouseResource,
    DataprocSparkResource,
    GcsLakeResource,
    KubernetesPySparkResource,
)
from stock_platform.resources import (
    InProcessSparkResource,
    JavaCheckedPySparkResource,
    build_resources,
)
from stock_platform.platform.settings import REPO_ROOT, SettingsError, load_settings

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
dg.Definitions.validate_loadable(defs)
resources = defs.resources
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()),
    "resources": {key: type(value).__name__ for key, value in resources.items()},
    "dbt_target": resources["dbt"].target,
}))
"""


def load_offline(tmp_path, environ: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GOOGLE_", "GCP_", "BQ_", "GCS_", "DATAPROC_", "STOCK_", "SPARK_"))}
    env.update(environ, STOCK_PLATFORM_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", LOAD_OFFLINE], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_gcp_code_location_loads_without_network(tmp_path):
    loaded = load_offline(tmp_path, {**GCP, "SPARK_RUNNER": "dataproc"})
    assert loaded["resources"] == {
        "source": "SyntheticSourceResource",
        "lake": "GcsLakeResource",
        "spark": "DataprocSparkResource",
        "warehouse": "BigQueryWarehouseResource",
        "dbt": "ProjectDbtCliResource",
    }
    assert loaded["dbt_target"] == "prod"
    assert {"raw_stock_prices", "clean_stock_prices", "stock_raw/daily_prices"} <= set(loaded["assets"])


def test_the_gcp_code_location_loads_with_every_gcp_variable_missing(tmp_path):
    loaded = load_offline(tmp_path, {"STOCK_PLATFORM_ENV": "gcp"})
    assert loaded["resources"]["warehouse"] == "BigQueryWarehouseResource"


def test_spark_runs_in_process_by_default_or_on_kubernetes():
    spark = build_resources(load_settings(GCP))["spark"]
    assert isinstance(spark, InProcessSparkResource)
    assert type(spark.pyspark) is JavaCheckedPySparkResource
    spark = build_resources(load_settings({**GCP, "SPARK_RUNNER": "kubernetes"}))["spark"]
    assert isinstance(spark.pyspark, KubernetesPySparkResource)
    with pytest.raises(SettingsError, match="SPARK_RUNNER='yarn' is not valid; "
                                            "allowed values: local, dataproc, kubernetes"):
        load_settings({**GCP, "SPARK_RUNNER": "yarn"})


def test_gcp_resources_take_their_values_from_the_settings():
    resources = build_resources(load_settings({
        **GCP, "SPARK_RUNNER": "dataproc", "DATAPROC_REGION": "asia-northeast3",
        "DATAPROC_CODE_URI": "gs://stock-code/1.0", "BQ_RAW_DATASET": "raw_test",
    }))
    lake, warehouse, spark = resources["lake"], resources["warehouse"], resources["spark"]
    assert isinstance(lake, GcsLakeResource) and lake.root == "gs://stock-lake/prod"
    assert isinstance(warehouse, BigQueryWarehouseResource)
    assert (warehouse.bigquery.project, warehouse.bigquery.location) == ("test-project", "asia-northeast3")
    assert warehouse.bigquery.gcp_credentials is None  # ADC / Workload Identity only
    assert warehouse.table_name == "test-project.raw_test.daily_prices"
    assert isinstance(spark, DataprocSparkResource)
    assert (spark.project, spark.region, spark.code_uri, spark.lake_uri) == (
        "test-project", "asia-northeast3", "gs://stock-code/1.0", "gs://stock-lake/prod"
    )


def run_errors(result) -> str:
    errors = [getattr(event.event_specific_data, "error", None) for event in result.all_events]
    return "\n".join(error.to_string() for error in errors if error is not None)


@pytest.mark.parametrize(
    "lake_uri, message",
    [("", "GCS_LAKE_URI is not set; it is required for the lake in STOCK_PLATFORM_ENV=gcp"),
     ("/data/lake", "GCS_LAKE_URI='/data/lake' is not a gs://bucket/prefix URI")],
)
def test_a_missing_or_invalid_lake_uri_fails_the_run_naming_the_variable(lake_uri, message):
    resources = build_resources(load_settings({**GCP, "GCS_LAKE_URI": lake_uri}))
    result = dg.materialize(
        [raw_stock_prices], resources=resources, partition_key="2024-04-09", raise_on_error=False
    )
    assert not result.success
    assert message in run_errors(result)
