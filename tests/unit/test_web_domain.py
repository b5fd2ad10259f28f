"""The web traffic domain without Spark: delivery ("not delivered yet", retried until the
deadline), the files source, the schedule, and the domain's settings."""

import datetime as dt
import gzip
from zoneinfo import ZoneInfo

import dagster as dg
import gcsfs
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.gcs_emulator import gcs_emulator  # noqa: F401 (fixture)

from stock_platform.cli import definitions
from stock_platform.defs.web_traffic import ingestion
from stock_platform.defs.web_traffic.ingestion import NotDeliveredYet, raw_web_access_logs
from stock_platform.defs.web_traffic.resources import LogFilesResource
from stock_platform.defs.web_traffic.schema import RAW
from stock_platform.defs.web_traffic.settings import DEVELOPMENT_SALT, ip_salt, web_settings
from stock_platform.defs.web_traffic.spark.cleaning import balanced_groups, clean_files, task_count
from stock_platform.platform.lake import Lake
from stock_platform.platform.resources.interfaces import LakeResource
from stock_platform.platform.settings import SettingsError

SEOUL = ZoneInfo("Asia/Seoul")
DAY = dt.date(2024, 3, 5)
# The 01:00 tick for 2024-03-05 comes on 03-06; the deadline is 06:00 that day.
AT_SCHEDULE = dt.datetime(2024, 3, 6, 1, 0, tzinfo=SEOUL)
AT_DEADLINE = dt.datetime(2024, 3, 6, 6, 0, tzinfo=SEOUL)


def materialize(tmp_path, logs, monkeypatch, now=AT_SCHEDULE):
    monkeypatch.setattr(ingestion, "now_in_log_zone", lambda: now)
    with dg.build_asset_context(partition_key=DAY.isoformat()) as context:
        return raw_web_access_logs(
            context, web_log_source=LogFilesResource(uri=str(logs)), lake=LakeResource(root=str(tmp_path / "lake"))
        )


@pytest.mark.parametrize("folder", ["missing", "empty", "no log files"])
def test_a_day_without_log_files_is_not_delivered_yet_and_retried(tmp_path, monkeypatch, folder):
    logs = tmp_path / "logs"
    if folder != "missing":
        (logs / DAY.isoformat()).mkdir(parents=True)
    if folder == "no log files":
        (logs / DAY.isoformat() / "README.txt").write_text("not a log")
    with pytest.raises(NotDeliveredYet) as failure:
        materialize(tmp_path, logs, monkeypatch)
    assert failure.value.allow_retries is True
    assert "not delivered yet: no log file for 2024-03-05" in failure.value.description
    assert f"{logs}/2024-03-05/*.log[.gz]" in failure.value.description
    assert "until 2024-03-06 06:00 KST" in failure.value.description
    assert Lake(str(tmp_path / "lake")).manifest(RAW, DAY) is None  # never an empty success


def test_after_the_deadline_it_fails_for_good(tmp_path, monkeypatch):
    with pytest.raises(NotDeliveredYet) as failure:
        materialize(tmp_path, tmp_path / "logs", monkeypatch, now=AT_DEADLINE)
    assert failure.value.allow_retries is False
    assert "not delivered by the deadline" in failure.value.description and "Giving up" in failure.value.description


def test_the_retries_from_the_0100_tick_back_off_and_the_last_comes_after_the_deadline():
    policy = raw_web_access_logs.op.retry_policy
    at, attempts = AT_SCHEDULE, []
    for retry in range(1, policy.max_retries + 1):
        at += dt.timedelta(seconds=policy.calculate_delay(retry))
        attempts.append(at)
    deadline = ingestion.delivery_deadline(DAY)
    assert all(a < deadline for a in attempts[:-1]) and attempts[-1] >= deadline, attempts


def test_delivered_files_are_stored_byte_for_byte(tmp_path, monkeypatch):
    folder = tmp_path / "logs" / DAY.isoformat()
    folder.mkdir(parents=True)
    plain = b'203.0.113.7 - - [05/Mar/2024:10:00:00 +0900] "GET / HTTP/1.1" 200 1\r\n\r\n'
    packed = gzip.compress(plain * 3, mtime=0)
    (folder / "web-1.log").write_bytes(plain)
    (folder / "web-2.log.gz").write_bytes(packed)
    (folder / "notes.txt").write_text("ignored")
    result = dg.materialize(
        [raw_web_access_logs], partition_key=DAY.isoformat(),
        resources={"web_log_source": LogFilesResource(uri=str(tmp_path / "logs")),
                   "lake": LakeResource(root=str(tmp_path / "lake"))},
    )
    assert result.success
    lake = Lake(str(tmp_path / "lake"))
    manifest = lake.published(RAW, DAY)
    stored = {f["name"]: lake.read_bytes(f"{lake.partition_dir(RAW, DAY)}/{f['file']}")
              for f in manifest.details["files"]}
    assert stored == {"web-1.log": plain, "web-2.log.gz": packed}
    assert manifest.rows == 4  # non-empty lines: what the cleaning must account for


def test_delivered_files_are_read_from_gcs(gcs_emulator):  # noqa: F811
    uri = gcs_emulator()
    fs = gcsfs.GCSFileSystem()
    plain, packed = b"a line\n", gzip.compress(b"another line\n", mtime=0)
    fs.pipe({f"{uri}/2024-03-05/web-1.log": plain, f"{uri}/2024-03-05/web-2.log.gz": packed,
             f"{uri}/2024-03-05/manifest.txt": b"ignored", f"{uri}/2024-03-06/web-1.log": b"next day"})
    source = LogFilesResource(uri=uri)
    assert source.day_files(DAY) == {"web-1.log": plain, "web-2.log.gz": packed}
    assert source.day_files(dt.date(2024, 3, 7)) == {}  # not delivered (yet)
    assert source.describe(DAY) == f"{uri}/2024-03-05/*.log[.gz]"


def test_the_web_schedule_materializes_yesterday_at_0100_in_the_log_zone():
    defs = definitions()
    schedule = defs.resolve_schedule_def("daily_web_traffic_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 1 * * *", "Asia/Seoul")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(schedule.job_name)
    graph = defs.resolve_asset_graph()
    assert job.asset_layer.executable_asset_keys == {
        key for key in graph.materializable_asset_keys if graph.get(key).group_name == "web_traffic"}
    with dg.build_schedule_context(scheduled_execution_time=AT_SCHEDULE) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-03-05"


def test_the_salt_is_the_development_salt_locally_and_required_in_gcp(setenv):
    setenv(WEB_IP_SALT=None, STOCK_PLATFORM_ENV=None)
    assert ip_salt() == DEVELOPMENT_SALT.encode()
    setenv(STOCK_PLATFORM_ENV="gcp")
    with pytest.raises(SettingsError, match="WEB_IP_SALT is not set; it is required in gcp"):
        ip_salt()
    setenv(WEB_IP_SALT="s3cret")
    assert ip_salt() == b"s3cret"
    assert "s3cret" not in repr(web_settings()) and "s3cret" not in str(web_settings().model_dump())


def test_an_unknown_time_zone_is_refused_naming_the_variable(setenv):
    setenv(WEB_LOGS_TIMEZONE="Mars/Olympus")
    with pytest.raises(SettingsError, match=r"WEB_LOGS_TIMEZONE='Mars/Olympus'.*IANA time zone"):
        web_settings()


class FakeResponse:
    def __init__(self, status_code: int, payload: dict):
        self.status_code, self._payload = status_code, payload

    def json(self) -> dict:
        return self._payload


def test_the_dataproc_driver_reads_the_salt_from_secret_manager(monkeypatch):
    """Secret Manager cannot run here: what is asked of it, and what comes of its answers."""
    import base64

    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession

    from stock_platform.defs.web_traffic.spark.cleaning import resolve_salt

    asked = []
    answers = iter([
        FakeResponse(200, {"payload": {"data": base64.b64encode(b"s3cret-salt").decode()}}),
        FakeResponse(403, {"error": {"message": "Permission denied on secret s3cret-salt"}}),
    ])
    monkeypatch.setattr(google.auth, "default", lambda scopes: (AnonymousCredentials(), "p"))
    monkeypatch.setattr(AuthorizedSession, "get", lambda self, url, timeout: asked.append(url) or next(answers))
    version = "projects/p/secrets/web-ip-salt/versions/latest"
    assert resolve_salt(version) == b"s3cret-salt"
    assert asked == [f"https://secretmanager.googleapis.com/v1/{version}:access"]
    with pytest.raises(RuntimeError, match=r"could not read the secret .*web-ip-salt.*: HTTP 403") as failure:
        resolve_salt(version)
    assert "s3cret" not in str(failure.value)


def test_the_cleaning_spreads_files_over_tasks_by_lines_not_bytes():
    """A day's small .gz file holds as many lines as a large plain one: each task gets about the
    same number of lines, and every file exactly once."""
    files = [{"uri": f"f{n}", "lines": lines} for n, lines in enumerate([90, 10, 50, 50, 40, 30, 30, 20])]
    groups = balanced_groups(files, 3)
    assert sorted(f["uri"] for group in groups for f in group) == sorted(f["uri"] for f in files)
    assert sorted(sum(f["lines"] for f in group) for group in groups) == [100, 110, 110]
    assert len(balanced_groups(files[:2], 8)) == 2  # never an empty task


def test_a_day_is_one_round_of_tasks_and_a_long_backfill_many():
    """One task per core for a day; a backfill gets rounds of tasks of about LINES_PER_TASK lines
    (pending tasks are what a cluster's dynamic allocation adds executors for)."""
    assert task_count(100_000, cores=2) == 2
    assert task_count(3_000_000, cores=2) == 4  # 30 days at the default traffic
    assert task_count(170_000_000, cores=16) == 176  # 1,700 days: 11 rounds of 16
    assert task_count(0, cores=0) == 1


def test_a_cleaning_task_reads_and_writes_the_lake_on_gcs(gcs_emulator):  # noqa: F811
    """What a task on a cluster does: the raw file from gs://, the Parquet it writes to gs://."""
    lake = gcs_emulator()
    fs = gcsfs.GCSFileSystem()
    lines = [
        '203.0.113.7 - - [08/Apr/2024:10:00:00 +0900] "GET /a HTTP/1.1" 200 512 "-" "curl/8.0"',
        "not a log line",
    ]
    fs.pipe(f"{lake}/raw/dt=2024-04-08/v=1/access.log.gz", gzip.compress("\n".join(lines).encode()))
    file = {"uri": f"{lake}/raw/dt=2024-04-08/v=1/access.log.gz", "partition": "2024-04-08",
            "name": "access.log.gz", "lines": 2}
    done = list(clean_files(f"{lake}/_staging/run", "Asia/Seoul", b"salt")([[file]]))

    assert done == ["2024-04-08/access.log.gz"]
    staged = f"{lake}/_staging/run/{{}}/dt=2024-04-08/access.log.gz.zstd.parquet"
    with fs.open(staged.format("clean")) as handle:
        clean = pq.read_table(handle)
    with fs.open(staged.format("rejected")) as handle:
        rejected = pq.read_table(handle)
    assert clean.column("path").to_pylist() == ["/a"]
    assert clean.schema.field("ts").type == pa.timestamp("us", tz="UTC")  # an instant, as BigQuery loads it
    assert rejected.column("line").to_pylist() == [b"not a log line"]
