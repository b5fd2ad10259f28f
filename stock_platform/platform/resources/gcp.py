"""Resources for STOCK_PLATFORM_ENV=gcp: the lake in GCS, the warehouse in BigQuery, Spark in the
step's pod (executors as pods) or on Dataproc. They live apart from local.py so that a local run
never imports the Google and Kubernetes client libraries.

Credentials are never configured here: every client uses Application Default Credentials
(Workload Identity on GKE).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import fsspec
import psycopg
import pyarrow as pa
from dagster_gcp import BigQueryResource
from dagster_gcp.pipes import PipesDataprocJobClient, PipesGCSMessageReader
from dagster_pipes import PipesParams
from google.api_core import exceptions as google_exceptions
from google.cloud import dataproc_v1, storage
from pydantic import PrivateAttr

from stock_platform.platform.k8s import kubernetes_spark_config
from stock_platform.platform.resources.interfaces import LakeResource, SparkResource, WarehouseResource
from stock_platform.platform.serving import DATABASE as SERVING_DATABASE
from stock_platform.platform.serving import ServingDatabaseResource
from stock_platform.platform.settings import SettingsError, platform_settings, require_value
from stock_platform.platform.spark import SESSION_CONFIG, SparkSessionResource, require_java, start_session
from stock_platform.platform.warehouse import WarehouseTable
from stock_platform.platform.warehouse.bigquery import BigQueryWarehouse


class KubernetesSparkSessionResource(SparkSessionResource):
    """Spark on Kubernetes: the driver in the step pod, executors as pods of the run's image. The
    config is built when the step starts, from the pod's environment (its IP and name come from
    its op tags)."""

    _run_image: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_java()
        # The image the run launcher started this run with (the code server's).
        origin = context.dagster_run.job_code_origin if context.dagster_run else None
        self._run_image = origin.repository_origin.container_image if origin else None

    @property
    def spark_session(self) -> Any:
        return start_session(kubernetes_spark_config(platform_settings(), self._run_image))


class GcsLakeResource(LakeResource):
    """The lake at GCS_LAKE_URI (gs://bucket/prefix), through gcsfs with ADC."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        root = require_value("GCS_LAKE_URI", self.root, "for the lake in STOCK_PLATFORM_ENV=gcp")
        if not root.startswith("gs://"):
            raise SettingsError(f"GCS_LAKE_URI={root!r} is not a gs://bucket/prefix URI")


class BigQueryWarehouseResource(WarehouseResource):
    """The domains' raw tables in BigQuery, through dagster-gcp's client (ADC credentials)."""

    bigquery: BigQueryResource

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_value("GCP_PROJECT", self.bigquery.project, "for the BigQuery warehouse")
        require_value("BQ_LOCATION", self.bigquery.location, "for the BigQuery warehouse")

    def replace_partitions(self, table: WarehouseTable, files_by_day: dict[dt.date, list[str]]) -> int:
        with self.bigquery.get_client() as client:
            return BigQueryWarehouse(client, table).replace_partitions(files_by_day)

    def partition_stats(
        self, table: WarehouseTable, first: dt.date, last: dt.date, violations: dict[str, str]
    ) -> dict[str, int]:
        with self.bigquery.get_client() as client:
            return BigQueryWarehouse(client, table).partition_stats(first, last, violations)

    def rows_by_partition(self, table: WarehouseTable, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        with self.bigquery.get_client() as client:
            return BigQueryWarehouse(client, table).rows_by_partition(first, last)

    def read_range(self, table: WarehouseTable, first: dt.date, last: dt.date) -> pa.Table:
        with self.bigquery.get_client() as client:
            return BigQueryWarehouse(client, table).read_range(first, last)

    def table_name(self, table: WarehouseTable) -> str:
        return f"{self.bigquery.project}.{table.qualified_name}"


class LakePipesMessageReader(PipesGCSMessageReader):
    """Pipes messages under `<prefix>/` of the lake bucket instead of at its root, deleted once
    the session has read them (a crashed run's are left to the bucket's lifecycle rule on the
    prefix; deploy/README.md)."""

    def __init__(self, *, prefix: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.prefix = prefix.strip("/")

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        # The reader's threads have stopped when the base class leaves this context.
        with super().get_params() as params:
            key_prefix = f"{self.prefix}/{params['key_prefix']}"
            try:
                yield {**params, "key_prefix": key_prefix}
            finally:
                for blob in self.client.list_blobs(self.bucket, prefix=f"{key_prefix}/"):
                    blob.delete()


class DataprocSparkResource(SparkResource):
    """A domain's Spark job (platform/spark_job.py) on a Dataproc cluster created for the step and
    deleted after it, driven through Dagster Pipes (the deployment notes, "Spark on Dataproc",
    say why a cluster per run rather than Dataproc Serverless)."""

    project: str
    region: str
    code_uri: str  # gs:// folder holding spark_job.py and stock_platform.zip (deploy step)
    lake_uri: str  # Pipes messages go to <lake bucket>/_pipes/
    service_account: str = ""  # the cluster VMs' identity; empty: the Compute default account
    # The subnetwork of the cluster's internal IPs (name or URI); empty: the project's `default`
    # network, which many organisations delete. It needs Private Google Access.
    subnetwork: str = ""
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
                    subnetwork_uri=self.subnetwork,
                    # Where install-wheels.sh finds the job's dependencies.
                    metadata={"stock-platform-wheels": f"{self._code}/wheels"},
                ),
                master_config=dataproc_v1.InstanceGroupConfig(
                    num_instances=1, machine_type_uri=self.machine_type
                ),
                worker_config=dataproc_v1.InstanceGroupConfig(
                    num_instances=self.num_workers, machine_type_uri=self.machine_type
                ),
                software_config=dataproc_v1.SoftwareConfig(image_version=self.image_version),
                # The job's Python dependencies beyond the image's PySpark, pandas and pyarrow,
                # installed from wheels staged beside the code (deploy/dataproc/bundle.py): the
                # cluster has internal IPs only and no route to PyPI.
                initialization_actions=[
                    dataproc_v1.NodeInitializationAction(
                        executable_file=f"{self._code}/install-wheels.sh",
                        execution_timeout=dt.timedelta(minutes=10),
                    )
                ],
                lifecycle_config=dataproc_v1.LifecycleConfig(
                    auto_delete_ttl=dt.timedelta(seconds=self.max_age_s),
                    idle_delete_ttl=dt.timedelta(minutes=30),
                ),
            ),
        )

    @property
    def _code(self) -> str:
        return self.code_uri.rstrip("/")

    def job_spec(self, cluster_name: str, job: str, arguments_uri: str) -> dataproc_v1.Job:
        code = self._code
        return dataproc_v1.Job(
            placement=dataproc_v1.JobPlacement(cluster_name=cluster_name),
            pyspark_job=dataproc_v1.PySparkJob(
                main_python_file_uri=f"{code}/spark_job.py",
                python_file_uris=[f"{code}/stock_platform.zip"],
                # PipesDataprocJobClient appends the Pipes bootstrap arguments.
                args=["--job", job, "--arguments", arguments_uri],
                properties=SESSION_CONFIG,
            ),
            labels={"app": "stock-platform"},
        )

    def _message_reader(self) -> dg.PipesMessageReader:
        """Pipes messages through the lake bucket, the driver's stdout and stderr with them.

        The reader and the job's writer call get_bucket (storage.buckets.get, which object roles
        lack); the reader treats any error as "no messages yet" and would finish with none, so
        the permission is checked first and a missing one fails the step, naming it."""
        client = storage.Client(project=self.project)
        bucket, _, lake_prefix = self.lake_uri.removeprefix("gs://").partition("/")
        try:
            client.get_bucket(bucket)
        except google_exceptions.Forbidden as error:
            raise dg.Failure(
                f"Pipes messages from Dataproc go through gs://{bucket}, and this identity may not "
                f"read the bucket's metadata (storage.buckets.get): grant it and the Dataproc VM "
                f"account roles/storage.legacyBucketReader on the bucket (deploy/README.md). "
                f"({error.code} {type(error).__name__})"
            ) from None
        return LakePipesMessageReader(
            bucket=bucket, client=client, include_stdio_in_messages=True,
            prefix=f"{lake_prefix.strip('/')}/_pipes".lstrip("/"),
        )

    def _client_options(self) -> dict[str, str]:
        return {"api_endpoint": f"{self.region}-dataproc.googleapis.com:443"}

    def run(self, context: dg.AssetExecutionContext, job: str, arguments: dict[str, Any]) -> dict[str, Any]:
        # The arguments can exceed Dataproc's argument limits: pass them as a file next to the
        # lake, under the run's id.
        arguments_uri = f"{self.lake_uri.rstrip('/')}/_spark_jobs/{context.run.run_id}-{uuid.uuid4().hex[:8]}.json"
        with fsspec.open(arguments_uri, "w") as handle:
            handle.write(json.dumps(arguments))
        message_reader = self._message_reader()
        clusters = dataproc_v1.ClusterControllerClient(client_options=self._client_options())
        name = f"stock-spark-{context.run.run_id[:8]}-{uuid.uuid4().hex[:6]}"
        context.log.info(f"Creating Dataproc cluster {name} in {self.region}")
        try:
            # Inside the try: a creation that fails (a quota, an initialization action) can leave
            # a cluster in the ERROR state, which still costs until deleted.
            clusters.create_cluster(
                project_id=self.project, region=self.region, cluster=self.cluster_spec(name)
            ).result()
            pipes = PipesDataprocJobClient(
                client=dataproc_v1.JobControllerClient(client_options=self._client_options()),
                message_reader=message_reader,
            )
            result = pipes.run(
                context=context,
                submit_job_params={
                    "project_id": self.project,
                    "region": self.region,
                    "job": self.job_spec(name, job, arguments_uri),
                },
            )
            return dict(result.get_materialize_result().metadata or {})
        finally:
            # NotFound: the creation failed before the cluster existed.
            with contextlib.suppress(google_exceptions.NotFound):
                clusters.delete_cluster(
                    project_id=self.project, region=self.region, cluster_name=name
                ).result()


class CloudSqlServingDatabaseResource(ServingDatabaseResource):
    """The serving database on Cloud SQL for PostgreSQL, through the Cloud SQL Python Connector
    with IAM database authentication: the step's service account (Workload Identity) is the
    database user, and no password exists anywhere. Private IP: the cluster's VPC reaches it."""

    instance: str  # project:region:instance (SERVING_CLOUDSQL_INSTANCE)
    _connector: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from google.cloud.sql.connector import Connector, IPTypes

        self._connector = Connector(ip_type=IPTypes.PRIVATE, enable_iam_auth=True, refresh_strategy="lazy")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._connector is not None:
            self._connector.close()

    def connect(self) -> psycopg.Connection:
        return self._connector.connect(self.instance, "psycopg", user=iam_database_user(), db=SERVING_DATABASE)


def iam_database_user() -> str:
    """The IAM database user of the application default credentials: the service account's
    email (the connector shortens it to the PostgreSQL user name Cloud SQL created)."""
    import google.auth
    from google.auth.transport.requests import Request

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/sqlservice.login"])
    if not credentials.valid:
        credentials.refresh(Request())  # a GKE metadata server names the account once asked
    email = getattr(credentials, "service_account_email", None)
    if not email or email == "default":
        raise SettingsError(
            "SERVING_CLOUDSQL_INSTANCE needs a service account identity (Workload Identity) as its "
            "IAM database user; the application default credentials name none"
        )
    return email
