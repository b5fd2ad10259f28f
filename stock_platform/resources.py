"""The one place that picks resources for an environment (STOCK_PLATFORM_ENV).

The asset graph is the same everywhere; only these resources change. Assets depend on the
resource interfaces below, never on a concrete backend.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid
from typing import Any

import dagster as dg
import fsspec
from dagster_dbt import DbtCliResource
from dagster_gcp import BigQueryResource
from dagster_gcp.pipes import PipesDataprocJobClient, PipesGCSMessageReader
from dagster_k8s import k8s_job_executor
from dagster_pipes.version import __version__ as dagster_pipes_version
from dagster_pyspark import PySparkResource
from dagster_pyspark.resources import spark_session_from_config
from google.cloud import dataproc_v1, storage

from stock_platform.lake import Lake
from stock_platform.k8s import kubernetes_spark_config
from stock_platform.settings import Settings, SettingsError, load_settings, require_value
from stock_platform.sources import FetchedPage
from stock_platform.spark import SESSION_CONFIG
from stock_platform.spark.cleaning import RawPage, run_cleaning
from stock_platform.spark.dataproc_job import pages_to_json
from stock_platform.warehouse.bigquery import BigQueryWarehouse
from stock_platform.warehouse.duckdb import DuckDBWarehouse

DBT_PROJECT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "dbt_project")


class LakeResource(dg.ConfigurableResource):
    """The data lake: a local folder or gs://bucket/prefix."""

    root: str

    def get(self) -> Lake:
        return Lake(self.root)


class SourceResource(dg.ConfigurableResource):
    """Where raw pages come from."""

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        raise NotImplementedError


class SyntheticSourceResource(SourceResource):
    """The embedded synthetic market (deterministic for a seed), served as API pages."""

    seed: int
    page_size: int

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        from stock_platform.sources.synthetic_source import SyntheticSource

        return SyntheticSource(self.seed, self.page_size).fetch_days(days)


class DataGoKrSourceResource(SourceResource):
    """The FSC stock price API on data.go.kr (stock_platform.sources.data_go_kr)."""

    service_key: str  # set from dg.EnvVar, so the UI and run config show the variable, not the key
    base_url: str
    max_rps: float
    page_size: int
    max_in_flight: int = 32
    max_attempts: int = 6
    backoff_s: float = 1.0
    timeout_s: float = 30.0

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        from stock_platform.sources.data_go_kr import (
            DataGoKrConfig,
            DataGoKrSource,
            PermanentError,
            QuotaExhaustedError,
        )

        try:
            config = DataGoKrConfig(
                service_key=self.service_key,
                base_url=self.base_url,
                max_rps=self.max_rps,
                page_size=self.page_size,
                max_in_flight=self.max_in_flight,
                max_attempts=self.max_attempts,
                backoff_s=self.backoff_s,
                timeout_s=self.timeout_s,
            )
            return DataGoKrSource(config, log=dg.get_dagster_logger()).fetch_days(days)
        except (PermanentError, QuotaExhaustedError) as exc:
            # Retrying the step cannot help today; transient errors keep the asset's retry policy.
            raise dg.Failure(description=str(exc), allow_retries=False) from None


def build_source(settings: Settings) -> SourceResource:
    """STOCK_SOURCE: the synthetic market or data.go.kr (the key is read when a run starts)."""
    if settings.source == "data_go_kr":
        return DataGoKrSourceResource(
            service_key=dg.EnvVar("DATA_GO_KR_SERVICE_KEY"),
            base_url=settings.base_url,
            max_rps=settings.max_rps,
            page_size=settings.page_size,
        )
    return SyntheticSourceResource(seed=settings.synthetic_seed, page_size=settings.page_size)


class WarehouseResource(dg.ConfigurableResource):
    """Where `stock_raw.daily_prices` lives."""

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        """Make each day's rows exactly those of its clean Parquet files (none: no rows)."""
        raise NotImplementedError

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        raise NotImplementedError

    @property
    def table_name(self) -> str:
        raise NotImplementedError


class DuckDBWarehouseResource(WarehouseResource):
    path: str
    raw_dataset: str

    def _warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.path, self.raw_dataset)

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        return self._warehouse().replace_partitions(files_by_day)

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        return self._warehouse().partition_stats(first, last)

    @property
    def table_name(self) -> str:
        return f"{self.raw_dataset}.daily_prices"


class SparkResource(dg.ConfigurableResource):
    """Runs the cleaning transform (stock_platform.spark.cleaning) somewhere."""

    def clean(self, context: dg.AssetExecutionContext, pages: list[RawPage], staging_uri: str) -> None:
        """Write clean/ and rejected/ Parquet for `pages` under `staging_uri`."""
        raise NotImplementedError


class JavaCheckedPySparkResource(PySparkResource):
    """dagster-pyspark's session; says what to install when Java is missing."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_java()
        use_this_python_for_spark_workers()
        super().setup_for_execution(context)


class KubernetesPySparkResource(JavaCheckedPySparkResource):
    """Spark on Kubernetes: the driver in the step pod, executors as pods. The config is built
    when the step starts, from the pod's environment (its IP and name come from its op tags)."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_java()
        self._spark_session = spark_session_from_config(kubernetes_spark_config(load_settings()))


class InProcessSparkResource(SparkResource):
    """Spark in the run's own process through dagster-pyspark (local[*] by default)."""

    pyspark: JavaCheckedPySparkResource

    def clean(self, context: dg.AssetExecutionContext, pages: list[RawPage], staging_uri: str) -> None:
        run_cleaning(self.pyspark.spark_session, pages, staging_uri)


# gcp ------------------------------------------------------------------------------------------
# Values may be empty when the code location loads (no network, nothing required yet); each
# resource checks its variables when a run initializes it, so only a run that needs one fails.


class GcsLakeResource(LakeResource):
    """The lake at GCS_LAKE_URI (gs://bucket/prefix), through gcsfs with ADC."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        root = require_value("GCS_LAKE_URI", self.root, "for the lake in STOCK_PLATFORM_ENV=gcp")
        if not root.startswith("gs://"):
            raise SettingsError(f"GCS_LAKE_URI={root!r} is not a gs://bucket/prefix URI")


class BigQueryWarehouseResource(WarehouseResource):
    """`stock_raw.daily_prices` in BigQuery, through dagster-gcp's client (ADC credentials)."""

    bigquery: BigQueryResource
    raw_dataset: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_value("GCP_PROJECT", self.bigquery.project, "for the BigQuery warehouse")
        require_value("BQ_LOCATION", self.bigquery.location, "for the BigQuery warehouse")

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        with self.bigquery.get_client() as client:
            return BigQueryWarehouse(client, self.raw_dataset).replace_partitions(files_by_day)

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        with self.bigquery.get_client() as client:
            return BigQueryWarehouse(client, self.raw_dataset).partition_stats(first, last)

    @property
    def table_name(self) -> str:
        return f"{self.bigquery.project}.{self.raw_dataset}.daily_prices"


class DataprocSparkResource(SparkResource):
    """The cleaning as a PySpark job (stock_platform/spark/dataproc_job.py) on a Dataproc cluster
    created for the run and deleted after it, driven through Dagster Pipes (deploy/README.md,
    "Spark on Dataproc", says why a cluster per run rather than Dataproc Serverless)."""

    project: str
    region: str
    code_uri: str  # gs:// folder holding dataproc_job.py and stock_platform.zip (deploy step)
    lake_uri: str  # Pipes messages go to <lake bucket>/_pipes/
    service_account: str = ""  # the cluster VMs' identity; empty: the Compute default account
    image_version: str = "2.2-debian12"  # Spark 3.5, Python 3.11
    machine_type: str = "n2-standard-4"
    num_workers: int = 2
    max_age_s: int = 4 * 3600  # Dataproc deletes the cluster itself if this process dies

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        why = "for Spark on Dataproc (SPARK_RUNNER=dataproc)"
        require_value("GCP_PROJECT", self.project, why)
        require_value("DATAPROC_REGION", self.region, why)
        require_value("DATAPROC_CODE_URI", self.code_uri, why)
        require_value("GCS_LAKE_URI", self.lake_uri, why)

    def cluster_spec(self, name: str) -> dataproc_v1.Cluster:
        return dataproc_v1.Cluster(
            project_id=self.project,
            cluster_name=name,
            labels={"app": "stock-platform"},
            config=dataproc_v1.ClusterConfig(
                gce_cluster_config=dataproc_v1.GceClusterConfig(
                    service_account=self.service_account,
                    service_account_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                    internal_ip_only=True,
                ),
                master_config=dataproc_v1.InstanceGroupConfig(
                    num_instances=1, machine_type_uri=self.machine_type
                ),
                worker_config=dataproc_v1.InstanceGroupConfig(
                    num_instances=self.num_workers, machine_type_uri=self.machine_type
                ),
                software_config=dataproc_v1.SoftwareConfig(
                    image_version=self.image_version,
                    # The job's Python dependencies beyond the image, at the versions Dagster uses.
                    properties={
                        "dataproc:pip.packages": f"dagster-pipes=={dagster_pipes_version},"
                        f"google-cloud-storage=={storage.__version__}"
                    },
                ),
                lifecycle_config=dataproc_v1.LifecycleConfig(
                    auto_delete_ttl=dt.timedelta(seconds=self.max_age_s),
                    idle_delete_ttl=dt.timedelta(minutes=30),
                ),
            ),
        )

    def job_spec(self, cluster_name: str, pages_uri: str, staging_uri: str) -> dataproc_v1.Job:
        code = self.code_uri.rstrip("/")
        return dataproc_v1.Job(
            placement=dataproc_v1.JobPlacement(cluster_name=cluster_name),
            pyspark_job=dataproc_v1.PySparkJob(
                main_python_file_uri=f"{code}/dataproc_job.py",
                python_file_uris=[f"{code}/stock_platform.zip"],
                # PipesDataprocJobClient appends the Pipes bootstrap arguments.
                args=["--pages", pages_uri, "--staging-uri", staging_uri],
                properties=SESSION_CONFIG,
            ),
            labels={"app": "stock-platform"},
        )

    def _message_reader(self) -> dg.PipesMessageReader:
        bucket = self.lake_uri.removeprefix("gs://").split("/")[0]
        return PipesGCSMessageReader(bucket=bucket, client=storage.Client(project=self.project))

    def _client_options(self) -> dict[str, str]:
        return {"api_endpoint": f"{self.region}-dataproc.googleapis.com:443"}

    def clean(self, context: dg.AssetExecutionContext, pages: list[RawPage], staging_uri: str) -> None:
        # The page list can exceed Dataproc's argument limits: pass it as a file.
        pages_uri = f"{staging_uri}/pages.json"
        with fsspec.open(pages_uri, "w") as handle:
            handle.write(pages_to_json(pages))
        clusters = dataproc_v1.ClusterControllerClient(client_options=self._client_options())
        name = f"stock-clean-{context.run.run_id[:8]}-{uuid.uuid4().hex[:6]}"
        location = {"project_id": self.project, "region": self.region}
        context.log.info(f"Creating Dataproc cluster {name} in {self.region}")
        clusters.create_cluster(**location, cluster=self.cluster_spec(name)).result()
        try:
            pipes = PipesDataprocJobClient(
                client=dataproc_v1.JobControllerClient(client_options=self._client_options()),
                message_reader=self._message_reader(),
            )
            job = self.job_spec(name, pages_uri, staging_uri)
            result = pipes.run(context=context, submit_job_params={**location, "job": job})
            context.add_asset_metadata(dict(result.get_materialize_result().metadata))
        finally:
            clusters.delete_cluster(**location, cluster_name=name).result()


def require_java(minimum: int = 17) -> None:
    """Fail with an actionable message unless a Java runtime >= `minimum` is available."""
    java = (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
    hint = (
        f"Spark needs Java {minimum}. Install a JDK/JRE {minimum}, e.g. "
        f"`sudo apt-get install openjdk-{minimum}-jre-headless` (Debian/Ubuntu) or "
        f"`brew install openjdk@{minimum}` (macOS), then put `java` on PATH or set JAVA_HOME."
    )
    if not java or not os.path.exists(java):
        raise dg.Failure(f"Java was not found. {hint}")
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = output.split('"')[1] if '"' in output else ""
    major = int(version.split(".")[1] if version.startswith("1.") else version.split(".")[0] or 0)
    if major < minimum:
        raise dg.Failure(f"Java {version or '?'} found at {java} is too old. {hint}")


def use_this_python_for_spark_workers() -> None:
    """Local Spark starts its Python workers with $PYSPARK_PYTHON, else `python3` from PATH (read
    once, when the SparkContext is created; the `spark.pyspark.python` setting does not apply to
    a session created from Python). Run as `.venv/bin/python ...` without the venv on PATH, that
    `python3` lacks pandas and every mapInPandas task fails: default to this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (the project's venv), even if not on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "dbt")
    return beside if os.path.exists(beside) else "dbt"


def local_spark_config(settings: Settings) -> dict[str, Any]:
    return {
        "spark.master": "local[*]",
        "spark.app.name": "stock_platform",
        "spark.driver.memory": "6g",
        **SESSION_CONFIG,
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.local.dir": str(settings.data_dir / "spark-tmp"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={settings.data_dir / 'spark-tmp'}",
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Locally every step of a run shares one process: Python, Dagster and Spark's JVM start once
    per run instead of once per step. In gcp (GKE) every step gets its own pod, sized by its op
    tags (stock_platform/k8s.py)."""
    if settings.env == "gcp":
        return k8s_job_executor
    return dg.in_process_executor


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources for settings.env ("local" or "gcp")."""
    if settings.env == "gcp":
        return {"source": build_source(settings), **gcp_resources(settings)}
    # dbt runs as a subprocess inside dbt_project/: give its profile the absolute data dir.
    os.environ["STOCK_PLATFORM_DATA_DIR"] = str(settings.data_dir)
    return {
        "source": build_source(settings),
        "lake": LakeResource(root=settings.lake_root),
        "spark": InProcessSparkResource(
            pyspark=JavaCheckedPySparkResource(spark_config=local_spark_config(settings))
        ),
        "warehouse": DuckDBWarehouseResource(
            path=str(settings.warehouse_path), raw_dataset=settings.raw_dataset
        ),
        "dbt": DbtCliResource(project_dir=DBT_PROJECT_DIR, target="local", dbt_executable=dbt_executable()),
    }


def gcp_resources(settings: Settings) -> dict[str, Any]:
    """Lake in GCS, warehouse in BigQuery, dbt target prod, Spark in-process or on Dataproc.

    Credentials are never configured here: every client uses Application Default Credentials
    (Workload Identity on GKE)."""
    env = settings.environ
    project, lake_uri = env.get("GCP_PROJECT", ""), env.get("GCS_LAKE_URI", "")
    if settings.spark_runner == "dataproc":
        spark: SparkResource = DataprocSparkResource(
            project=project,
            region=env.get("DATAPROC_REGION", ""),
            code_uri=env.get("DATAPROC_CODE_URI", ""),
            lake_uri=lake_uri,
            service_account=env.get("DATAPROC_SERVICE_ACCOUNT", ""),
        )
    elif settings.spark_runner == "kubernetes":
        spark = InProcessSparkResource(pyspark=KubernetesPySparkResource(spark_config={}))
    else:
        spark = InProcessSparkResource(
            pyspark=JavaCheckedPySparkResource(spark_config=local_spark_config(settings))
        )
    return {
        "lake": GcsLakeResource(root=lake_uri),
        "spark": spark,
        "warehouse": BigQueryWarehouseResource(
            bigquery=BigQueryResource(project=project, location=env.get("BQ_LOCATION", "")),
            raw_dataset=settings.raw_dataset,
        ),
        # profiles.yml reads GCP_PROJECT, BQ_LOCATION and BQ_ANALYTICS_DATASET; dbt names a
        # missing one when the dbt step starts.
        "dbt": DbtCliResource(project_dir=DBT_PROJECT_DIR, target="prod", dbt_executable=dbt_executable()),
    }
