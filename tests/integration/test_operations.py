"""The platform operating itself (defs/operations): the weekly maintenance job deletes old runs
with their event and step logs and collects the lake by retention; platform_health records disk
use and the daemon's heartbeat and warns. Against a real Dagster instance (SQLite, local step
logs) and a lake on disk."""

import datetime as dt
import time

import dagster as dg
import pytest

from stock_platform.defs.operations.health import health_figures, platform_health, problems
from stock_platform.defs.operations.maintenance import maintenance, retention_for
from stock_platform.platform.lake import Lake, Manifest, new_version
from stock_platform.platform.maintenance import collect_lake, delete_runs_before
from stock_platform.platform.resources.interfaces import LakeResource

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


@dg.asset
def noisy(context: dg.AssetExecutionContext) -> None:
    print("a line of step output")  # captured by the compute log manager


def test_old_finished_runs_go_with_their_event_and_step_logs_running_ones_stay(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        finished = [dg.materialize([noisy], instance=instance).run_id for _ in range(2)]
        running = dg.DagsterRun(job_name="__ephemeral_asset_job__", run_id="running-run",
                                status=dg.DagsterRunStatus.STARTED)
        instance.add_run(running)
        logs = tmp_path / "storage"
        assert any(run_id in str(path) for path in logs.rglob("*") for run_id in finished)
        # Nothing is older than 90 days.
        assert delete_runs_before(instance, dt.datetime.now(dt.UTC) - dt.timedelta(days=90)) == 0
        time.sleep(1)
        assert delete_runs_before(instance, dt.datetime.now(dt.UTC), batch=1) == 2
        assert [r.run_id for r in instance.get_runs()] == ["running-run"]
        assert all(instance.all_logs(run_id) == [] for run_id in finished)
        assert not any(run_id in str(path) for path in logs.rglob("*") for run_id in finished)


def publish(lake: Lake, dataset: str, day: dt.date, at: dt.datetime) -> str:
    version = at.strftime("%Y%m%dT%H%M%S%fZ") + "-0000abcd"
    name = f"v={version}/part-00000.parquet"
    lake.write_bytes(f"{lake.partition_dir(dataset, day)}/{name}", b"rows")
    lake.publish(Manifest(dataset, day, version, [name], rows=1))
    return version


def versions(lake: Lake, dataset: str, day: dt.date) -> list[str]:
    folder = lake.uri(lake.partition_dir(dataset, day))
    return sorted(p.rsplit("v=", 1)[1] for p in lake.fs.ls(folder, detail=False) if "/v=" in p)


def test_the_lake_keeps_what_its_retention_says(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    recent, old = TODAY - dt.timedelta(days=10), TODAY - dt.timedelta(days=400)
    web_old = TODAY - dt.timedelta(days=91)  # past WEB_RAW_RETENTION_DAYS (90)
    for dataset in ("raw/web_access_logs", "rejected/web_access_logs"):
        for day in (recent, web_old):
            publish(lake, dataset, day, NOW - dt.timedelta(days=2))
    for dataset in ("raw/stock_prices", "clean/stock_prices", "rejected/stock_prices"):
        for day in (recent, old):
            publish(lake, dataset, day, NOW - dt.timedelta(days=2))
    # clean/stock_prices of `recent`: published three times over the last days, plus a version a
    # killed writer left unpublished two days ago, and one being written now.
    first = publish(lake, "clean/stock_prices", recent, NOW - dt.timedelta(days=3))
    previous = publish(lake, "clean/stock_prices", recent, NOW - dt.timedelta(hours=30))
    current = publish(lake, "clean/stock_prices", recent, NOW - dt.timedelta(hours=2))
    killed, writing = new_version(), new_version()
    for version in (killed, writing):
        lake.write_bytes(f"{lake.partition_dir('clean/stock_prices', recent)}/v={version}/part.parquet", b"x")

    rules = retention_for(lake.datasets())
    assert rules == {"raw/web_access_logs": 90, "rejected/web_access_logs": 90, "rejected/stock_prices": 365}
    result = collect_lake(lake, NOW, rules, dt.timedelta(days=1))

    assert lake.partition_days("raw/web_access_logs") == [recent]  # full client IPs: 90 days
    assert lake.partition_days("rejected/web_access_logs") == [recent]
    assert lake.partition_days("rejected/stock_prices") == [recent]  # 365 days
    assert lake.partition_days("raw/stock_prices") == [old, recent]  # no retention: kept
    assert lake.partition_days("clean/stock_prices") == [old, recent]
    assert result.partitions_expired == 3
    # Versions older than the published one and than a day go; the published one stays, and so
    # do the newer unpublished ones (a writer may be running; the killed one goes once older).
    kept = versions(lake, "clean/stock_prices", recent)
    assert first not in kept and previous not in kept
    assert {current, killed, writing} <= set(kept)
    assert lake.manifest("clean/stock_prices", recent).version == current


def test_the_maintenance_job_runs_on_a_real_instance(tmp_path):
    lake_root = tmp_path / "lake"
    Lake(str(lake_root)).write_bytes("raw/x/dt=2020-01-01/_manifest.json",
                                     Manifest("raw/x", dt.date(2020, 1, 1), new_version(), [], 0).to_json().encode())
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        lake = LakeResource(root=str(lake_root))
        result = maintenance.execute_in_process(instance=instance, resources={"lake": lake})
        assert result.success
        [collected] = [e for e in result.all_events if e.step_key == "collect_lake_data" and e.is_successful_output]
        assert collected.event_specific_data.metadata["partitions_checked"].value == 1


@pytest.mark.parametrize(("figures", "expected"), [
    ({"disk_used_fraction": 0.5, "daemon_heartbeat_age_s": 30}, []),
    ({"disk_used_fraction": 0.95, "daemon_heartbeat_age_s": 30}, ["the data dir's disk is 95% full"]),
    ({"disk_used_fraction": 0.5, "daemon_heartbeat_age_s": 900}, ["the daemon's last heartbeat is 900 s old"]),
    ({"disk_used_fraction": 0.5, "daemon_heartbeat_age_s": -1}, ["the daemon has sent no heartbeat"]),
])
def test_platform_health_warns_before_the_disk_fills_and_when_the_daemon_is_stale(figures, expected):
    found = problems(figures, warn_fraction=0.9)
    assert len(found) == len(expected) and all(f.startswith(e) for f, e in zip(found, expected))


def test_platform_health_records_disk_use_and_the_heartbeat(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "base").write_bytes(b"x" * 1000)
    (data_dir / "lake.bin").write_bytes(b"y" * 500)
    monkeypatch.setenv("STOCK_PLATFORM_DATA_DIR", str(data_dir))
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        figures = health_figures(instance, data_dir, dt.datetime.now(dt.UTC))
        assert figures["data_dir_bytes"] == 1500 and figures["instance_bytes"] == 1000
        assert 0 < figures["disk_used_fraction"] < 1 and figures["daemon_heartbeat_age_s"] == -1
        result = dg.materialize([platform_health], instance=instance)
        [check] = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # no daemon here
        assert "no heartbeat" in check.description
        metadata = result.asset_materializations_for_node("platform_health")[0].metadata
        assert metadata["data_dir_bytes"].value == 1500
