"""Spark on Dataproc through Dagster Pipes.

The generic job script (stock_platform/platform/spark_job.py) runs the stock cleaning job for real
through dg.PipesSubprocessClient (local paths, local Spark); what the resource sends to Dataproc
(cluster, job request, Pipes arguments) is asserted on mocked clients."""

import datetime as dt
import gzip
import json
import sys
from pathlib import Path
from unittest import mock

import dagster as dg
import fsspec
import pyarrow.dataset as ds
import pytest
from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes
from google.cloud import dataproc_v1

from stock_platform.defs.stock_prices.cleaning import CLEANING_JOB
from stock_platform.defs.stock_prices.schema import RAW
from stock_platform.defs.stock_prices.sources.synthetic_source import SyntheticSource
from stock_platform.platform import spark_job
from stock_platform.platform.lake import Lake, new_version
from stock_platform.platform.resources.gcp import DataprocSparkResource
from stock_platform.platform.settings import REPO_ROOT
from stock_platform.platform.spark import SESSION_CONFIG

DAYS = [dt.date(2024, 4, 8), dt.date(2024, 4, 9)]
SCRIPT = Path(spark_job.__file__)
DUPLICATE = "duplicate (trade_date, ticker): a later-ingested row was kept"


def write_raw_pages(root: Path) -> tuple[list[dict[str, str]], int, int]:
    """Synthetic pages for DAYS, the first page of the first day stored twice (a re-fetch), so
    its rows are duplicates. Returns (pages as the cleaning job takes them, unique rows,
    duplicate rows)."""
    lake, pages, unique = Lake(str(root)), [], 0

    def store(day: dt.date, relative: str, body: bytes, fetched_at: dt.datetime) -> None:
        lake.write_bytes(relative, gzip.compress(body))
        pages.append({"uri": lake.uri(relative), "partition": day.isoformat(),
                      "fetched_at": fetched_at.isoformat()})

    fetched = SyntheticSource(seed=7, page_size=500).fetch_days(DAYS)
    for day in DAYS:
        version = new_version()
        for page in fetched[day]:
            relative = f"{lake.partition_dir(RAW, day)}/v={version}/page-{page.page_no:05d}.json.gz"
            store(day, relative, page.body, page.fetched_at)
            unique += page.rows
    first = fetched[DAYS[0]][0]
    refetch = f"{lake.partition_dir(RAW, DAYS[0])}/v={new_version()}/page-00001.json.gz"
    store(DAYS[0], refetch, first.body, first.fetched_at + dt.timedelta(hours=1))
    return pages, unique, first.rows


def test_the_pipes_script_runs_the_job_and_reports_its_metadata(tmp_path):
    pages, unique, duplicates = write_raw_pages(tmp_path / "lake")
    staging = tmp_path / "staging"
    arguments = tmp_path / "arguments.json"
    arguments.write_text(json.dumps({"pages": pages, "staging_uri": str(staging)}))
    # The session settings Dataproc gets as job properties; the workers run this venv's Python.
    submit_args = " ".join(f"--conf {key}={value}" for key, value in SESSION_CONFIG.items())
    env = {
        "PYTHONPATH": str(REPO_ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_SUBMIT_ARGS": f"--conf spark.ui.enabled=false {submit_args} pyspark-shell",
    }

    @dg.asset
    def clean_stock_prices(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        command = [sys.executable, str(SCRIPT), "--job", CLEANING_JOB, "--arguments", str(arguments)]
        return pipes.run(command=command, context=context, env=env).get_materialize_result()

    result = dg.materialize([clean_stock_prices], resources={"pipes": dg.PipesSubprocessClient()})
    assert result.success
    [materialization] = result.asset_materializations_for_node("clean_stock_prices")
    # The metadata the job returned, reported through Pipes.
    assert {key: value.value for key, value in materialization.metadata.items()} == {
        "spark_pages": len(pages)
    }
    written = {
        folder: ds.dataset(staging / folder, format="parquet", partitioning="hive").to_table()
        for folder in ("clean", "rejected")
    }
    assert written["clean"].num_rows == unique
    assert written["rejected"].num_rows == duplicates
    assert sorted(set(written["clean"].column("dt").to_pylist())) == [str(day) for day in DAYS]
    assert set(written["rejected"].column("reject_reason").to_pylist()) == {DUPLICATE}


RESOURCE = dict(
    project="test-project",
    region="asia-northeast3",
    code_uri="gs://stock-code/stock_platform/1.2.3/",
    lake_uri="gs://stock-lake/prod",
    service_account="dataproc-spark@test-project.iam.gserviceaccount.com",
)
ARGUMENTS_URI = "gs://stock-lake/prod/_spark_jobs/run-1.json"
# For runs: the resource writes the job's arguments next to the lake, here in fsspec's memory.
IN_MEMORY_LAKE = {**RESOURCE, "lake_uri": "memory://stock-lake/prod"}
JOB_ARGUMENTS = {"pages": [], "staging_uri": "memory://stock-lake/prod/_staging/run-1"}


def test_the_dataproc_job_request():
    resource = DataprocSparkResource(**RESOURCE)
    job = resource.job_spec("stock-spark-abc", CLEANING_JOB, ARGUMENTS_URI)
    assert job == dataproc_v1.Job(
        placement=dataproc_v1.JobPlacement(cluster_name="stock-spark-abc"),
        pyspark_job=dataproc_v1.PySparkJob(
            main_python_file_uri="gs://stock-code/stock_platform/1.2.3/spark_job.py",
            python_file_uris=["gs://stock-code/stock_platform/1.2.3/stock_platform.zip"],
            args=["--job", CLEANING_JOB, "--arguments", ARGUMENTS_URI],
            # The session settings the domains' transforms rely on, as in local Spark.
            properties=SESSION_CONFIG,
        ),
        labels={"app": "stock-platform"},
    )
    cluster = resource.cluster_spec("stock-spark-abc")
    assert (cluster.project_id, cluster.cluster_name) == ("test-project", "stock-spark-abc")
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
            pipes.report_asset_materialization(metadata={"spark_pages": 42})
        done = dataproc_v1.JobStatus.State.DONE
        return dataproc_v1.Job(job_uuid="job-1", done=True, status={"state": done})

    def patched(self):
        return [
            mock.patch.object(dataproc_v1, "ClusterControllerClient", return_value=self.clusters),
            mock.patch.object(dataproc_v1, "JobControllerClient", return_value=self.jobs),
            # Messages through a local file instead of GCS; everything else as in production.
            mock.patch.object(DataprocSparkResource, "_message_reader",
                              lambda self: dg.PipesTempFileMessageReader()),
        ]


def run_job(fake: FakeDataproc):
    @dg.asset
    def clean_stock_prices(context: dg.AssetExecutionContext, spark: DataprocSparkResource):
        metadata = spark.run(context, CLEANING_JOB, JOB_ARGUMENTS)
        return dg.MaterializeResult(metadata={**metadata, "rejected_rows": 1})

    patches = fake.patched()
    fake.started = [patch.start() for patch in patches]
    try:
        return dg.materialize([clean_stock_prices],
                              resources={"spark": DataprocSparkResource(**IN_MEMORY_LAKE)},
                              raise_on_error=False)
    finally:
        for patch in patches:
            patch.stop()


def test_a_job_runs_on_a_cluster_created_and_deleted_for_the_run():
    fake = FakeDataproc()
    result = run_job(fake)
    assert result.success
    assert fake.calls == ["create", "submit", "delete"]
    name = fake.clusters.create_cluster.call_args.kwargs["cluster"].cluster_name
    assert result.run_id[:8] in name  # a cluster left behind names its run
    assert fake.clusters.create_cluster.call_args.kwargs["cluster"] == (
        DataprocSparkResource(**IN_MEMORY_LAKE).cluster_spec(name))
    fake.clusters.delete_cluster.assert_called_once_with(
        project_id="test-project", region="asia-northeast3", cluster_name=name
    )
    submitted = fake.jobs.submit_job.call_args.kwargs
    assert (submitted["project_id"], submitted["region"]) == ("test-project", "asia-northeast3")
    args = list(submitted["job"].pyspark_job.args)
    assert args[:3] == ["--job", CLEANING_JOB, "--arguments"]
    assert args[4::2] == ["--dagster-pipes-context", "--dagster-pipes-messages"]
    assert submitted["job"].labels["dagster-run-id"] == result.run_id
    # The job's arguments travel as a file beside the lake (they can exceed Dataproc's limits).
    assert args[3].startswith(f"{IN_MEMORY_LAKE['lake_uri']}/")
    with fsspec.open(args[3]) as handle:
        assert json.load(handle) == JOB_ARGUMENTS
    # Regional endpoints: Dataproc serves a region's clusters and jobs only there.
    for client_class in fake.started[:2]:
        client_class.assert_called_once_with(
            client_options={"api_endpoint": "asia-northeast3-dataproc.googleapis.com:443"}
        )
    # What the job reported through Pipes comes back to the asset.
    metadata = result.asset_materializations_for_node("clean_stock_prices")[0].metadata
    assert {key: metadata[key].value for key in ("spark_pages", "rejected_rows")} == {
        "spark_pages": 42, "rejected_rows": 1}


def test_the_cluster_is_deleted_when_the_job_fails():
    fake = FakeDataproc(fail=True)
    result = run_job(fake)
    assert not result.success
    assert fake.calls == ["create", "submit", "delete"]


@pytest.mark.parametrize("missing", ["GCP_PROJECT", "DATAPROC_REGION", "DATAPROC_CODE_URI", "GCS_LAKE_URI"])
def test_a_missing_dataproc_variable_is_named_when_the_run_starts(missing):
    field = {"GCP_PROJECT": "project", "DATAPROC_REGION": "region", "DATAPROC_CODE_URI": "code_uri",
             "GCS_LAKE_URI": "lake_uri"}[missing]
    resource = DataprocSparkResource(**{**RESOURCE, field: ""})
    with pytest.raises(dg.DagsterResourceFunctionError) as failure, dg.build_resources({"spark": resource}):
        pass
    assert str(failure.value.__cause__).startswith(f"{missing} is not set")
