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

from stock_platform.partitions import DAILY_PARTITIONS, SEOUL, parse_partition_key, trading_sessions
from stock_platform.settings import REPO_ROOT, Settings, SettingsError, load_settings

DEFAULT_SESSIONS = 20
INSTANCE_YAML = """\
# Local Dagster instance for `make run` / `make dev`, rewritten by stock_platform.cli on each start.
telemetry:
  enabled: false
# Dagster's SQLite event log, with its connections kept open (stock_platform/instance.py says why).
event_log_storage:
  module: stock_platform.instance
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {home}/history/runs
"""


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
    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(home=home))
    # The venv's bin first: dagster-dbt looks for `dbt` on PATH when it prepares the manifest.
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "DAGSTER_HOME": str(home),
        "STOCK_PLATFORM_DATA_DIR": str(settings.data_dir),
    }


def summary(settings: Settings, first: dt.date, last: dt.date) -> str:
    import duckdb

    lines = [f"stock_platform: partitions {first} .. {last}", ""]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
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
    from stock_platform.java import require_java

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
    result = subprocess.run(command, env=prepare_instance(settings), cwd=REPO_ROOT)
    if result.returncode != 0:
        print(f"\nThe run failed (exit {result.returncode}); see the log above.", file=sys.stderr)
        return result.returncode
    print("\n" + summary(settings, first, last))
    return 0


def dev(args: argparse.Namespace) -> int:
    settings = load_settings()
    command = ["dagster", "dev", "-h", args.host, "-p", str(args.port), "-w", "workspace.yaml"]
    os.execvpe(str(Path(sys.executable).parent / command[0]), command, prepare_instance(settings))


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
