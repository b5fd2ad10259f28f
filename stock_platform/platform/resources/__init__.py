"""The one place that picks resources for an environment (STOCK_PLATFORM_ENV).

The asset graph is the same everywhere; only these resources change. Assets depend on the
interfaces in interfaces.py, never on a concrete backend.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from stock_platform.platform.dbt import DBT_PROJECT_DIR
from stock_platform.platform.resources.interfaces import LakeResource
from stock_platform.platform.resources.local import DuckDBWarehouseResource, InProcessSparkResource
from stock_platform.platform.serving import ServingDatabaseResource
from stock_platform.platform.settings import PlatformSettings
from stock_platform.platform.spark import SparkSessionResource, local_spark_config


def dbt_executable() -> str:
    """The project's dbt launcher (platform/dbt_launcher.py) installed beside this interpreter (the
    project's venv), even if not on PATH."""
    beside = Path(sys.executable).parent / "stock-platform-dbt"
    return str(beside) if beside.exists() else "stock-platform-dbt"


def build_executor(settings: PlatformSettings) -> dg.ExecutorDefinition:
    """Locally every step of a run shares one process: Python, Dagster and Spark's JVM start once
    per run instead of once per step. In gcp (GKE) every step gets its own pod, sized by its op
    tags (platform/k8s.py)."""
    if settings.env == "gcp":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.in_process_executor


def build_resources(settings: PlatformSettings) -> dict[str, Any]:
    """The platform's resources for settings.env ("local" or "gcp")."""
    if settings.env == "gcp":
        return _gcp_resources(settings)
    return {
        "lake": LakeResource(root=settings.lake_root),
        "spark": InProcessSparkResource(
            session=SparkSessionResource(spark_config=local_spark_config(settings.data_path))
        ),
        "warehouse": DuckDBWarehouseResource(path=str(settings.warehouse_path)),
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR), target="local", dbt_executable=dbt_executable()
        ),
        "serving_db": ServingDatabaseResource(),
    }


def _gcp_resources(settings: PlatformSettings) -> dict[str, Any]:
    """Lake in GCS, warehouse in BigQuery, dbt target prod, Spark in the step's process, with
    executors as pods, or on Dataproc."""
    from dagster_gcp import BigQueryResource  # the Google client libraries load in seconds

    from stock_platform.platform.resources import gcp

    spark: Any
    if settings.spark_runner == "dataproc":
        spark = gcp.DataprocSparkResource(
            project=settings.gcp_project,
            region=settings.dataproc_region,
            code_uri=settings.dataproc_code_uri,
            lake_uri=settings.gcs_lake_uri,
            service_account=settings.dataproc_service_account,
            subnetwork=settings.dataproc_subnetwork,
        )
    elif settings.spark_runner == "kubernetes":
        spark = InProcessSparkResource(session=gcp.KubernetesSparkSessionResource(spark_config={}))
    else:
        spark = InProcessSparkResource(
            session=SparkSessionResource(
                spark_config=local_spark_config(settings.data_path, lake_on_local_disk=False)
            )
        )
    return {
        "lake": gcp.GcsLakeResource(root=settings.gcs_lake_uri),
        "spark": spark,
        "warehouse": gcp.BigQueryWarehouseResource(
            bigquery=BigQueryResource(project=settings.gcp_project, location=settings.bq_location)
        ),
        # profiles.yml reads GCP_PROJECT, BQ_LOCATION and the datasets; dbt names a missing one
        # when the dbt step starts.
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR), target="prod", dbt_executable=dbt_executable()
        ),
        # Cloud SQL (SERVING_CLOUDSQL_INSTANCE, IAM database authentication) or SERVING_DATABASE_URL.
        "serving_db": gcp.CloudSqlServingDatabaseResource(instance=settings.serving_cloudsql_instance)
        if settings.serving_cloudsql_instance
        else ServingDatabaseResource(),
    }
