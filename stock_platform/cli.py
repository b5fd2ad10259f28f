"""Command line for the local platform: `make run` and `make dev` call into here.

`run` materializes the whole asset graph for a range of partitions in ONE Dagster run, through
Dagster's own execution (`dagster asset materialize`, the path the UI takes), then prints a summary
read back from the warehouse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from stock_platform.platform.calendars import DAILY_PARTITIONS, SEOUL, parse_partition_key, trading_sessions
from stock_platform.platform.settings import REPO_ROOT, Settings, SettingsError, load_settings

DEFAULT_SESSIONS = 20
INSTANCE_HEADER = (
    "# Local Dagster instance for `make run` / `make dev` (written by stock_platform.cli)."
)
INSTANCE_YAML = """\
{header}
# Rewritten by the next `make run` / `make dev` while the line above is unchanged: delete it to
# keep your own edits.
telemetry:
  enabled: false
# Pools (the assets' `pool=`): one step per pool at a time across all runs of this instance.
# DuckDB allows one writing process, so the warehouse steps (load and dbt) of overlapping runs
# take turns; `stock_api` keeps two ingests from sharing the API's rate limit. Each step claims
# its slot when it starts and frees it when it ends (granularity op), so the rest of the runs
# (ingest, Spark) still overlap. `dagster instance concurrency set POOL N` overrides one pool.
concurrency:
  pools:
    default_limit: 1
    granularity: op
# Dagster's SQLite event log, with its connections kept open (stock_platform/instance.py says why).
event_log_storage:
  module: stock_platform.instance
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {home}/history/runs
"""


def instance_yaml(home: Path) -> str:
    return INSTANCE_YAML.format(header=INSTANCE_HEADER, home=home)


class UsageError(ValueError):
    pass


def _parse_date(name: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a date in YYYY-MM-DD form") from None


def resolve_range(
    start: str | None, end: str | None, now: dt.datetime
) -> tuple[dt.date, dt.date]:
    """The inclusive partition range [first, last] to run.

    Without START/END: the last 20 XKRX sessions whose partitions exist (a day's partition opens
    when the day ends in Seoul). START alone runs to the latest partition; END alone takes the 20
    sessions up to END.
    """
    first_allowed = parse_partition_key(DAILY_PARTITIONS.get_first_partition_key())
    keys = DAILY_PARTITIONS.get_partition_keys(current_time=now)
    if not keys:
        raise UsageError("no partition has closed yet; check STOCK_PARTITIONS_START")
    last_allowed = parse_partition_key(keys[-1])

    first = _parse_date("START", start) if start else None
    last = _parse_date("END", end) if end else last_allowed
    if first and first > last:
        raise UsageError(f"START={first} is after END={last}: the range is inverted")
    if last > last_allowed:
        raise UsageError(
            f"END={last} has no partition yet: the latest is {last_allowed} "
            "(a day's partition opens at 00:00 KST after it; data is published after 13:00 KST "
            "on the next business day)"
        )
    if first is None:
        sessions = trading_sessions(max(first_allowed, last - dt.timedelta(days=60)), last)
        if not sessions:
            raise UsageError(f"no XKRX session in the 60 days up to {last}")
        first = sessions[-DEFAULT_SESSIONS:][0]
    if first < first_allowed:
        raise UsageError(
            f"START={first} is before the first partition {first_allowed} "
            "(set STOCK_PARTITIONS_START to go further back)"
        )
    # Partition keys are the weekdays: snap the ends of the range onto them.
    weekdays = [
        first + dt.timedelta(days=n)
        for n in range((last - first).days + 1)
        if (first + dt.timedelta(days=n)).weekday() < 5
    ]
    if not weekdays:
        raise UsageError(f"no weekday partition between {first} and {last}")
    return weekdays[0], weekdays[-1]


def prepare_instance(settings: Settings) -> dict[str, str]:
    """Environment for Dagster processes: the local instance lives in the data dir."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path, wanted = home / "dagster.yaml", instance_yaml(home)
    if not path.exists() or (
        path.read_text().startswith(INSTANCE_HEADER) and path.read_text() != wanted
    ):
        path.write_text(wanted)
    # The venv's bin first: dagster-dbt looks for `dbt` on PATH when it prepares the manifest.
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "DAGSTER_HOME": str(home),
        "STOCK_PLATFORM_DATA_DIR": str(settings.data_dir),
    }


def _alive_since(pid: int, since: float) -> bool:
    """Whether process `pid`, which existed at epoch time `since`, still runs: not gone, not a
    zombie, and not a newer process that reused the id (checked through /proc where it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # Fields after "(comm)": state is the 3rd field of the line, starttime the 22nd.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError):
        return True  # no /proc (macOS): the id exists; assume it is the same process
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return fields[0] not in ("Z", "X") and started <= since + 2.0  # btime has 1 s resolution


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark runs whose run worker died (SIGKILL, OOM killer, power loss) as failed, and free the
    pool slots of finished runs. Returns the ids of the runs marked failed.

    Why: a run killed while a step holds a pool slot keeps that slot forever (Dagster frees it
    when the step ends, or through a run-monitoring daemon this local instance does not have), and
    with a limit of 1 the next run's warehouse step would wait for it forever. The killed run
    also stays "started" in the UI. A run is dead when the process that started it (the one that
    logged its RUN_START and executes its steps in-process) no longer exists on this machine;
    a run in progress, e.g. a concurrent `make run`, is left alone.
    """
    reaped = []
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses)):
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
        pid = starts[0].dagster_event.pid if starts else None
        if pid is None or _alive_since(pid, starts[0].timestamp):
            continue
        instance.report_run_failed(
            run, f"The run worker (pid {pid}) is gone: killed or crashed. Marked failed "
            "by stock_platform.cli, which freed the run's pool slots; re-run the partitions."
        )
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return reaped


def reap(settings: Settings) -> None:
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for run_id in reap_dead_runs(instance):
            print(f"Run {run_id} had died (killed or crashed): marked it failed and freed its "
                  "pool slots", file=sys.stderr, flush=True)


def summary(settings: Settings, first: dt.date, last: dt.date) -> str:
    from stock_platform.platform.warehouse.duckdb import DuckDBWarehouse

    lines = [f"stock_platform: partitions {first} .. {last}", ""]
    # Waits while another run writes the warehouse (one writing process at a time).
    warehouse = DuckDBWarehouse(settings.warehouse_path, settings.raw_dataset)
    with warehouse.connect(read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN (?, ?) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            [settings.raw_dataset, settings.analytics_dataset],
        ).fetchall()
        lines.append(f"{'table':45} {'rows':>10}  date range")
        for schema, table in tables:
            rows, low, high = con.execute(
                f"SELECT count(*), min(trade_date), max(trade_date) FROM {schema}.{table}"
            ).fetchone()
            lines.append(f"{schema + '.' + table:45} {rows:>10}  {low} .. {high}")
        movers = con.execute(
            f"SELECT trade_date, market, direction, rank, ticker, name, change_pct, close "
            f"FROM {settings.analytics_dataset}.top_movers_daily "
            f"WHERE trade_date = (SELECT max(trade_date) FROM "
            f"{settings.analytics_dataset}.top_movers_daily WHERE trade_date <= ?) AND rank <= 3 "
            "ORDER BY market, direction, rank",
            [last],
        ).fetchall()
    if movers:
        lines += ["", f"Top movers on {movers[0][0]} (top 3 per market and direction):"]
        for _, market, direction, rank, ticker, name, pct, close in movers:
            lines.append(
                f"  {market:7} {direction:6} #{rank} {ticker} {name}  {pct:+.2f}%  close {close:,}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stock_platform.platform.spark import require_java

    settings = load_settings()
    require_java()
    first, last = resolve_range(args.start, args.end, dt.datetime.now(SEOUL))
    print(f"Materializing the whole graph for {first} .. {last} in one run", flush=True)
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize",
        "-m", "stock_platform.definitions",
        "--select", "*",
        "--partition-range", f"{first}...{last}",
    ]
    env = prepare_instance(settings)
    reap(settings)  # a killed earlier run must not hold the pool slots this run needs
    result = subprocess.run(command, env=env, cwd=REPO_ROOT)
    if result.returncode != 0:
        reap(settings)
        print(f"\nThe run failed (exit {result.returncode}); see the log above.", file=sys.stderr)
        return result.returncode
    print("\n" + summary(settings, first, last))
    return 0


def dev(args: argparse.Namespace) -> int:
    settings = load_settings()
    command = ["dagster", "dev", "-h", args.host, "-p", str(args.port), "-w", "workspace.yaml"]
    env = prepare_instance(settings)
    reap(settings)
    os.execvpe(str(Path(sys.executable).parent / command[0]), command, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stock_platform.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialize the whole graph for a range")
    run_parser.add_argument("--start", help="first day, YYYY-MM-DD")
    run_parser.add_argument("--end", help="last day, YYYY-MM-DD")
    run_parser.set_defaults(handler=run)
    dev_parser = commands.add_parser("dev", help="Dagster webserver and daemon")
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=3000)
    dev_parser.set_defaults(handler=dev)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except dg.Failure as exc:
        print(f"error: {exc.description}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
