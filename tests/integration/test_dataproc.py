"""Spark on Dataproc through Dagster Pipes.

The job script runs for real through dg.PipesSubprocessClient (local paths, local Spark); what the
resource sends to Dataproc (cluster, job request, Pipes arguments) is asserted on mocked clients."""

import datetime as dt
import gzip
import json
import sys
from pathlib import Path
from unittest import mock

import dagster as dg
import pyarrow.dataset as ds
import pytest
from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes
from google.cloud import dataproc_v1

from stock_platform.platform.lake import RAW, Lake, new_version
from stock_platform.platform.resources.gcp import DataprocSparkResource
from stock_platform.platform.settings import REPO_ROOT
from stock_platform.defs.stock_prices.sources.synthetic_source import SyntheticSource
from stock_platform.spark import dataproc_job
from stock_platform.defs.stock_prices.spark.transform import RawPage

DAYS = [dt.date(2024, 4, 8), dt.date(2024, 4, 9)]
SCRIPT = Path(dataproc_job.__file__)


def write_raw_pages(root: Path) -> tuple[list[RawPage], int, int]:
    """Synthetic pages for DAYS, the first page of the first day stored twice (a re-fetch), so
    its rows are duplicates. Returns (pages, unique rows, duplicate rows)."""
    lake, pages, unique = Lake(str(root)), [], 0
    fetched = SyntheticSource(seed=7, page_size=500).fetch_days(DAYS)
    for day in DAYS:
        version = new_version()
        for page in fetched[day]:
            relative = f"{lake.partition_dir(RAW, day)}/v={version}/page-{page.page_no:05d}.json.gz"
            lake.write_bytes(relative, gzip.compress(page.body))
            pages.append(RawPage(lake.uri(relative), day, page.fetched_at))
            unique += page.rows
    first = fetched[DAYS[0]][0]
    refetch = f"{lake.partition_dir(RAW, DAYS[0])}/v={new_version()}/page-00001.json.gz"
    lake.write_bytes(refetch, gzip.compress(first.body))
    pages.append(RawPage(lake.uri(refetch), DAYS[0], first.fetched_at + dt.timedelta(hours=1)))
    return pages, unique, first.rows


def test_the_pipes_script_cleans_and_reports_counts_as_materialization_metadata(tmp_path):
    pages, unique, duplicates = write_raw_pages(tmp_path / "lake")
    pages_uri, staging = tmp_path / "pages.json", tmp_path / "staging"
    pages_uri.write_text(dataproc_job.pages_to_json(pages))

    @dg.asset
    def clean_stock_prices(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        command = [sys.executable, str(SCRIPT), "--pages", str(pages_uri), "--staging-uri", str(staging)]
        return pipes.run(
            command=command, context=context, env={"PYTHONPATH": str(REPO_ROOT)}
        ).get_materialize_result()

    result = dg.materialize([clean_stock_prices], resources={"pipes": dg.PipesSubprocessClient()})
    assert result.success
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("clean_stock_prices")[0].metadata.items()}
    assert metadata["spark_pages"] == len(pages)
    assert metadata["spark_clean_rows"] == unique
    assert metadata["spark_rejected_rows"] == duplicates
    written = {
        folder: ds.dataset(staging / folder, format="parquet", partitioning="hive").to_table()
        for folder in ("clean", "rejected")
    }
    by_day = {str(d): {"clean": 0, "rejected": 0} for d in DAYS}
    for folder, table in written.items():
        for day in table.column("dt").to_pylist():
            by_day[str(day)][folder] += 1
    assert metadata["spark_rows_by_day"] == by_day
    assert set(written["rejected"].column("reject_reason").to_pylist()) == {
        "duplicate (trade_date, ticker): a later-ingested row was kept"
    }


def test_pages_round_trip_through_json():
    pages = [RawPage("gs://b/raw/stock_prices/dt=2024-04-08/v=1/page-00001.json.gz", DAYS[0],
                     dt.datetime(2024, 4, 9, 4, 30, tzinfo=dt.timezone.utc))]
    assert dataproc_job.pages_from_json(dataproc_job.pages_to_json(pages)) == pages


RESOURCE = dict(
    project="test-project",
    region="asia-northeast3",
    code_uri="gs://stock-code/stock_platform/1.2.3/",
    lake_uri="gs://stock-lake/prod",
    service_account="dataproc-spark@test-project.iam.gserviceaccount.com",
)
STAGING = "gs://stock-lake/prod/_staging/run-1"


def test_the_dataproc_job_request_for_a_range():
    resource = DataprocSparkResource(**RESOURCE)
    job = resource.job_spec("stock-clean-abc", f"{STAGING}/pages.json", STAGING)
    assert job == dataproc_v1.Job(
        placement=dataproc_v1.JobPlacement(cluster_name="stock-clean-abc"),
        pyspark_job=dataproc_v1.PySparkJob(
            main_python_file_uri="gs://stock-code/stock_platform/1.2.3/dataproc_job.py",
            python_file_uris=["gs://stock-code/stock_platform/1.2.3/stock_platform.zip"],
            args=["--pages", f"{STAGING}/pages.json", "--staging-uri", STAGING],
            properties={
                "spark.sql.session.timeZone": "UTC",
                "spark.sql.adaptive.enabled": "false",
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.ui.showConsoleProgress": "false",
                "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
            },
        ),
        labels={"app": "stock-platform"},
    )
    cluster = resource.cluster_spec("stock-clean-abc")
    assert (cluster.project_id, cluster.cluster_name) == ("test-project", "stock-clean-abc")
    config = cluster.config
    assert config.gce_cluster_config.service_account == RESOURCE["service_account"]
    assert config.gce_cluster_config.internal_ip_only is True
    assert (config.master_config.num_instances, config.worker_config.num_instances) == (1, 2)
    assert config.software_config.image_version == "2.2-debian12"
    assert config.software_config.properties["dataproc:pip.packages"].startswith("dagster-pipes==")
    # Dataproc deletes the cluster itself if the run dies before deleting it.
    assert config.lifecycle_config.auto_delete_ttl == dt.timedelta(hours=4)
    assert config.lifecycle_config.idle_delete_ttl == dt.timedelta(minutes=30)


class FakeDataproc:
    """Mocked cluster and job controllers; a submitted job plays the remote script's Pipes side
    with the arguments PipesDataprocJobClient added to the request."""

    def __init__(self, fail: bool = False):
        self.calls: list[str] = []
        self.fail = fail
        self.clusters = mock.create_autospec(dataproc_v1.ClusterControllerClient, instance=True)
        self.jobs = mock.create_autospec(dataproc_v1.JobControllerClient, instance=True)
        self.clusters.create_cluster.side_effect = lambda **kw: self.calls.append("create") or mock.Mock()
        self.clusters.delete_cluster.side_effect = lambda **kw: self.calls.append("delete") or mock.Mock()
        self.jobs.submit_job.side_effect = self._submit

    def _submit(self, project_id, region, job):
        self.calls.append("submit")
        if self.fail:
            raise RuntimeError("quota exceeded")
        args = list(job.pyspark_job.args)
        loader = PipesMappingParamsLoader({
            "DAGSTER_PIPES_CONTEXT": args[args.index("--dagster-pipes-context") + 1],
            "DAGSTER_PIPES_MESSAGES": args[args.index("--dagster-pipes-messages") + 1],
        })
        with open_dagster_pipes(params_loader=loader) as pipes:
            pipes.report_asset_materialization(metadata={"spark_clean_rows": 42, "spark_rejected_rows": 1})
        return dataproc_v1.Job(job_uuid="job-1", done=True, status={"state": dataproc_v1.JobStatus.State.DONE})

    def patched(self):
        return [
            mock.patch.object(dataproc_v1, "ClusterControllerClient", return_value=self.clusters),
            mock.patch.object(dataproc_v1, "JobControllerClient", return_value=self.jobs),
            # Messages through a local file instead of GCS; everything else as in production.
            mock.patch.object(DataprocSparkResource, "_message_reader",
                              lambda self: dg.PipesTempFileMessageReader()),
        ]


def run_clean(fake: FakeDataproc, staging: Path):
    @dg.asset
    def clean_stock_prices(context: dg.AssetExecutionContext, spark: DataprocSparkResource):
        spark.clean(context, [], str(staging))
        return dg.MaterializeResult(metadata={"rejected_rows": 1})

    patches = fake.patched()
    fake.started = [patch.start() for patch in patches]
    try:
        return dg.materialize([clean_stock_prices], resources={"spark": DataprocSparkResource(**RESOURCE)},
                              raise_on_error=False)
    finally:
        for patch in patches:
            patch.stop()


def test_clean_runs_the_job_on_a_cluster_created_and_deleted_for_the_run(tmp_path):
    fake = FakeDataproc()
    result = run_clean(fake, tmp_path)
    assert result.success
    assert fake.calls == ["create", "submit", "delete"]
    name = fake.clusters.create_cluster.call_args.kwargs["cluster"].cluster_name
    assert name.startswith(f"stock-clean-{result.run_id[:8]}-")
    assert fake.clusters.create_cluster.call_args.kwargs["cluster"] == DataprocSparkResource(**RESOURCE).cluster_spec(name)
    fake.clusters.delete_cluster.assert_called_once_with(
        project_id="test-project", region="asia-northeast3", cluster_name=name
    )
    submitted = fake.jobs.submit_job.call_args.kwargs
    assert (submitted["project_id"], submitted["region"]) == ("test-project", "asia-northeast3")
    args = list(submitted["job"].pyspark_job.args)
    assert args[:4] == ["--pages", f"{tmp_path}/pages.json", "--staging-uri", str(tmp_path)]
    assert args[4::2] == ["--dagster-pipes-context", "--dagster-pipes-messages"]
    assert submitted["job"].labels["dagster-run-id"] == result.run_id
    assert json.loads((tmp_path / "pages.json").read_text()) == []
    # Regional endpoints: Dataproc serves a region's clusters and jobs only there.
    for client_class in fake.started[:2]:
        client_class.assert_called_once_with(
            client_options={"api_endpoint": "asia-northeast3-dataproc.googleapis.com:443"}
        )
    metadata = result.asset_materializations_for_node("clean_stock_prices")[0].metadata
    assert {k: metadata[k].value for k in ("spark_clean_rows", "spark_rejected_rows", "rejected_rows")} == {
        "spark_clean_rows": 42, "spark_rejected_rows": 1, "rejected_rows": 1
    }


def test_the_cluster_is_deleted_when_the_job_fails(tmp_path):
    fake = FakeDataproc(fail=True)
    result = run_clean(fake, tmp_path)
    assert not result.success
    assert fake.calls == ["create", "submit", "delete"]


@pytest.mark.parametrize("missing", ["GCP_PROJECT", "DATAPROC_REGION", "DATAPROC_CODE_URI", "GCS_LAKE_URI"])
def test_a_missing_dataproc_variable_is_named_when_the_run_starts(missing):
    field = {"GCP_PROJECT": "project", "DATAPROC_REGION": "region", "DATAPROC_CODE_URI": "code_uri",
             "GCS_LAKE_URI": "lake_uri"}[missing]
    resource = DataprocSparkResource(**{**RESOURCE, field: ""})
    with pytest.raises(dg.DagsterResourceFunctionError) as failure:
        with dg.build_resources({"spark": resource}):
            pass
    assert str(failure.value.__cause__).startswith(f"{missing} is not set")
