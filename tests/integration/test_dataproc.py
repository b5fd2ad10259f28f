"""Spark on Dataproc through Dagster Pipes.

The generic job script (stock_platform/platform/spark_job.py) runs the stock and web cleaning jobs
for real through dg.PipesSubprocessClient (local paths, local Spark), in a fresh virtual
environment holding only what a Dataproc image has plus what a release ships
(deploy/dataproc/bundle.py); what the resource sends to Dataproc (cluster, job request, Pipes
arguments) is asserted on mocked clients."""

import datetime as dt
import gzip
import importlib.util
import json
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path
from unittest import mock

import dagster as dg
import fsspec
import pyarrow.dataset as ds
import pytest
from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes
from fixtures.gcs_emulator import gcs_emulator  # noqa: F401 (fixture)
from google.cloud import dataproc_v1

from stock_platform.defs.stock_prices.cleaning import CLEANING_JOB
from stock_platform.defs.stock_prices.schema import RAW
from stock_platform.defs.stock_prices.sources.synthetic_source import SyntheticSource
from stock_platform.defs.web_traffic.cleaning import CLEANING_JOB as WEB_CLEANING_JOB
from stock_platform.platform import spark_job
from stock_platform.platform.lake import Lake, new_version
from stock_platform.platform.resources.gcp import DataprocSparkResource
from stock_platform.platform.settings import REPO_ROOT
from stock_platform.platform.spark import SESSION_CONFIG

DAYS = [dt.date(2024, 4, 8), dt.date(2024, 4, 9)]
_spec = importlib.util.spec_from_file_location("bundle", REPO_ROOT / "deploy" / "dataproc" / "bundle.py")
assert _spec is not None and _spec.loader is not None
bundle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bundle)
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


# What a Dataproc image has for the job: PySpark, pandas, pyarrow and their own dependencies.
IMAGE_PACKAGES = ("pyspark", "py4j", "pandas", "numpy", "python-dateutil", "pytz", "tzdata", "six", "pyarrow")


def link_distributions(names: tuple[str, ...], site: Path) -> None:
    """Make the installed distributions `names` (and only them) importable from `site`, by
    symbolic links to their top-level files and folders (no copy, no download)."""
    site.mkdir(parents=True)
    for name in names:
        dist = distribution(name)
        for top in {file.parts[0] for file in dist.files or [] if file.parts[0] != ".."}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)


@pytest.fixture(scope="module")
def dataproc_image(tmp_path_factory):
    """A fresh virtual environment holding only the image's packages (linked from this one) plus
    what the job ships (the dependency group `dataproc-job`, installed by uv as install-wheels.sh
    installs the staged wheels), and the release's stock_platform.zip: (python, zip)."""
    folder = tmp_path_factory.mktemp("dataproc_image")
    uv = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
    python = folder / "venv" / "bin" / "python"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(folder / "venv")], check=True)
    link_distributions(IMAGE_PACKAGES, folder / "image")
    site_packages = next((folder / "venv" / "lib").glob("python3*/site-packages"))
    (site_packages / "dataproc_image.pth").write_text(f"{folder / 'image'}\n")
    shipped = folder / "requirements.txt"
    shipped.write_text(bundle.requirements())
    subprocess.run([uv, "pip", "install", "--quiet", "--no-deps", "--python", str(python), "-r", str(shipped)],
                   check=True)
    return python, bundle.build_zip(folder / "stock_platform.zip")


def run_script(image, job: str, arguments: dict, **env: str) -> dg.AssetMaterialization:
    """spark_job.py run by the image's Python through dg.PipesSubprocessClient, the package
    imported from the zip: the materialization it reported."""
    python, package = image
    arguments_file = package.parent / f"{job.rpartition(':')[2]}-arguments.json"
    arguments_file.write_text(json.dumps(arguments))
    # The session settings Dataproc gets as job properties; the workers run the image's Python.
    submit_args = " ".join(f"--conf {key}={value}" for key, value in SESSION_CONFIG.items())
    env = {
        **env,
        "PYTHONPATH": str(package),
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_SUBMIT_ARGS": f"--conf spark.ui.enabled=false {submit_args} pyspark-shell",
    }

    @dg.asset(name=job.rpartition(":")[2])
    def cleaning(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        # A copy of the script, so that nothing of this checkout is importable beside it.
        script = shutil.copy(SCRIPT, package.parent / "spark_job.py")
        command = [str(python), script, "--job", job, "--arguments", str(arguments_file)]
        return pipes.run(command=command, context=context, env=env).get_materialize_result()

    result = dg.materialize([cleaning], resources={"pipes": dg.PipesSubprocessClient()})
    assert result.success
    [materialization] = result.asset_materializations_for_node(cleaning.op.name)
    return materialization


def test_the_pipes_script_runs_the_stock_job_with_only_what_the_image_and_the_release_hold(
    tmp_path, dataproc_image
):
    pages, unique, duplicates = write_raw_pages(tmp_path / "lake")
    staging = tmp_path / "staging"
    materialization = run_script(dataproc_image, CLEANING_JOB, {"pages": pages, "staging_uri": str(staging)})
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


WEB_LINES = [
    '203.0.113.7 - - [08/Apr/2024:10:00:00 +0900] "GET /index.html HTTP/1.1" 200 512 "-" '
    '"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0 Safari/537.36"',
    '2001:db8::1 - - [08/Apr/2024:10:00:05 +0900] "GET /about HTTP/1.1" 304 - "https://www.google.com/" '
    '"Googlebot/2.1 (+http://www.google.com/bot.html)"',
    "this is not an access log line",
]


def test_the_pipes_script_runs_the_web_job_with_only_what_the_image_and_the_release_hold(
    tmp_path, dataproc_image
):
    """The web cleaning parses user agents in the Python workers: ua-parser ships with the job."""
    log = tmp_path / "raw" / "access.log"
    log.parent.mkdir()
    log.write_text("\n".join(WEB_LINES) + "\n")
    staging = tmp_path / "staging"
    files = [{"uri": str(log), "partition": "2024-04-08", "name": "access.log", "lines": len(WEB_LINES)}]
    materialization = run_script(
        dataproc_image, WEB_CLEANING_JOB,
        {"files": files, "staging_uri": str(staging), "timezone": "Asia/Seoul"},
        WEB_IP_SALT="a-test-salt",
    )
    assert materialization.metadata["spark_files"].value == 1
    clean = ds.dataset(staging / "clean", format="parquet", partitioning="hive").to_table().to_pylist()
    assert sorted(row["browser_family"] for row in clean) == ["Chrome", "Googlebot"]
    assert [row["is_bot"] for row in sorted(clean, key=lambda r: r["browser_family"])] == [False, True]
    rejected = ds.dataset(staging / "rejected", format="parquet", partitioning="hive").to_table()
    assert rejected.column("line").to_pylist() == [WEB_LINES[2].encode()]  # the raw bytes


RESOURCE = dict(
    project="test-project",
    region="asia-northeast3",
    code_uri="gs://stock-code/stock_platform/1.2.3/",
    lake_uri="gs://stock-lake/prod",
    service_account="dataproc-spark@test-project.iam.gserviceaccount.com",
    subnetwork="projects/test-project/regions/asia-northeast3/subnetworks/spark",
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
    # Internal IPs only, in the subnetwork named (the default network may not exist), and no
    # package installed from PyPI at start-up (no egress): the wheels staged beside the code.
    assert config.gce_cluster_config.subnetwork_uri == RESOURCE["subnetwork"]
    assert not config.software_config.properties
    [action] = config.initialization_actions
    assert action.executable_file == "gs://stock-code/stock_platform/1.2.3/install-wheels.sh"
    assert config.gce_cluster_config.metadata == {"stock-platform-wheels": "gs://stock-code/stock_platform/1.2.3/wheels"}
    # Dataproc deletes the cluster itself if the run dies before deleting it.
    assert config.lifecycle_config.auto_delete_ttl == dt.timedelta(hours=4)
    assert config.lifecycle_config.idle_delete_ttl == dt.timedelta(minutes=30)


class FakeDataproc:
    """Mocked cluster and job controllers; a submitted job plays the remote script's Pipes side
    with the arguments PipesDataprocJobClient added to the request."""

    def __init__(self, fail: bool = False, fail_create: bool = False):
        self.calls: list[str] = []
        self.fail = fail
        self.clusters = mock.create_autospec(dataproc_v1.ClusterControllerClient, instance=True)
        self.jobs = mock.create_autospec(dataproc_v1.JobControllerClient, instance=True)
        self.clusters.create_cluster.side_effect = lambda **kw: self.calls.append("create") or (
            mock.Mock(result=mock.Mock(side_effect=RuntimeError("initialization action failed")))
            if fail_create else mock.Mock())
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


def test_a_failed_cluster_creation_still_deletes_the_cluster():
    # A creation that fails (an initialization action, a quota) can leave a cluster in ERROR.
    fake = FakeDataproc(fail_create=True)
    result = run_job(fake)
    assert not result.success
    assert fake.calls == ["create", "delete"]


def test_a_missing_bucket_permission_for_pipes_fails_loudly_before_any_cluster():
    """PipesGCSMessageReader calls get_bucket and reads any error as "no messages yet": without
    storage.buckets.get the step would end with no logs and no metadata from the job."""
    from google.api_core.exceptions import Forbidden

    with mock.patch("google.cloud.storage.Client") as client_class:
        client_class.return_value.get_bucket.side_effect = Forbidden("storage.buckets.get denied")
        with pytest.raises(dg.Failure) as failure:
            DataprocSparkResource(**RESOURCE)._message_reader()
    client_class.return_value.get_bucket.assert_called_once_with("stock-lake")
    assert "storage.buckets.get" in str(failure.value)
    assert "roles/storage.legacyBucketReader" in str(failure.value)
    with mock.patch("google.cloud.storage.Client"):
        reader = DataprocSparkResource(**RESOURCE)._message_reader()
    # The driver's stdout and stderr travel with the messages (Dagster shows the job's logs).
    with reader.get_params() as params:
        assert params["bucket"] == "stock-lake" and params["include_stdio_in_messages"] is True


def test_pipes_messages_go_under_the_lake_prefix_and_are_deleted_after_the_session(gcs_emulator):  # noqa: F811
    """Against the GCS emulator: the job's writer puts its chunks under <lake>/_pipes/, the reader
    reads them, and the session leaves nothing behind (chunks at the bucket root never went)."""
    from dagster_pipes import PipesContext, PipesDefaultContextLoader, PipesGCSMessageWriter
    from google.cloud import storage

    lake_uri = gcs_emulator()
    bucket, _, lake_prefix = lake_uri.removeprefix("gs://").partition("/")
    client = storage.Client()
    reader = DataprocSparkResource(**{**RESOURCE, "lake_uri": lake_uri})._message_reader()
    reader.client = client  # the emulator's (anonymous credentials)
    written: list[str] = []

    @dg.asset
    def job(context: dg.AssetExecutionContext):
        with dg.open_pipes_session(context=context, message_reader=reader,
                                   context_injector=dg.PipesTempFileContextInjector()) as session:
            loader = PipesMappingParamsLoader(session.get_bootstrap_env_vars())
            writer = PipesGCSMessageWriter(client=client)
            # Its own context, not open_dagster_pipes' process-wide one (another test set that).
            with PipesContext(loader, PipesDefaultContextLoader(), writer) as pipes:
                pipes.report_asset_materialization(metadata={"spark_pages": 7})
            written.extend(b.name for b in client.list_blobs(bucket))
        yield from session.get_results()

    result = dg.materialize([job])
    assert result.success
    assert result.asset_materializations_for_node("job")[0].metadata["spark_pages"].value == 7
    assert written and all(n.startswith(f"{lake_prefix}/_pipes/") for n in written), written
    assert not [b.name for b in client.list_blobs(bucket, prefix=f"{lake_prefix}/_pipes/")]


@pytest.mark.parametrize("missing", ["GCP_PROJECT", "DATAPROC_REGION", "DATAPROC_CODE_URI", "GCS_LAKE_URI"])
def test_a_missing_dataproc_variable_is_named_when_the_run_starts(missing):
    field = {"GCP_PROJECT": "project", "DATAPROC_REGION": "region", "DATAPROC_CODE_URI": "code_uri",
             "GCS_LAKE_URI": "lake_uri"}[missing]
    resource = DataprocSparkResource(**{**RESOURCE, field: ""})
    with pytest.raises(dg.DagsterResourceFunctionError) as failure, dg.build_resources({"spark": resource}):
        pass
    assert str(failure.value.__cause__).startswith(f"{missing} is not set")
