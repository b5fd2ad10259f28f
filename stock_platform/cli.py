"""Command line of the local platform: `make run`, `make dev` and `make stop` call into here.

    python -m stock_platform.cli run [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--domain D] [--verbose]
    python -m stock_platform.cli dev [--host H] [--port P]
    python -m stock_platform.cli stop

`run` materializes the selected domains for a range of partitions: one Dagster run per partitions
definition, each a single run for its whole range (every asset has a single-run backfill policy),
executed in this process with Dagster's own `execute_job`. It shows each step as it starts and
ends, writes Dagster's full event stream to a log file, then prints each domain's summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stock_platform.platform.settings import (
    PlatformSettings,
    SettingsError,
    child_environment,
    platform_settings,
)

DEFAULT_SESSIONS = 20
INVOCATION_TAG = "stock_platform/invocation"


class UsageError(ValueError):
    pass


# planning ---------------------------------------------------------------------------------------
def _parse_date(name: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a date in YYYY-MM-DD form") from None


def default_span(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The calendar span of the last 20 XKRX sessions whose day has ended in Seoul."""
    from stock_platform.platform.calendars import SEOUL, trading_sessions

    last = now.astimezone(SEOUL).date() - dt.timedelta(days=1)
    sessions = trading_sessions(last - dt.timedelta(days=60), last)
    return sessions[-DEFAULT_SESSIONS:][0], sessions[-1]


@dataclass
class RangeRun:
    """One run: the assets sharing one partitions definition, over [first_key, last_key]."""

    asset_keys: list[Any]  # dg.AssetKey
    groups: list[str]
    first_key: str
    last_key: str
    partitions: int
    notes: list[str] = field(default_factory=list)


def plan_runs(
    specs: Sequence[Any], start: str | None, end: str | None, now: dt.datetime
) -> list[RangeRun]:
    """The runs for `specs` (dg.AssetSpec, already filtered by domain) over START..END.

    Without START/END the range is the calendar span of the last 20 XKRX sessions. A range that
    begins before a partitions definition's first partition starts there (and says so); one that
    ends after its latest partition is an error."""
    first = _parse_date("START", start) if start else None
    last = _parse_date("END", end) if end else None
    if first and last and first > last:
        raise UsageError(f"START={first} is after END={last}: the range is inverted")
    if first is None or last is None:
        span_first, span_last = default_span(now)
        if last is None and first is not None:
            span_last = max(span_last, first)
        first, last = first or span_first, last or span_last

    by_partitions: dict[Any, list[Any]] = {}
    for spec in specs:
        by_partitions.setdefault(spec.partitions_def, []).append(spec)
    runs = []
    for partitions_def, members in by_partitions.items():
        groups = sorted({spec.group_name for spec in members})
        what = ", ".join(groups)
        keys = partitions_def.get_partition_keys(current_time=now)
        if not keys:
            raise UsageError(f"{what}: no partition has ended yet (first partition "
                             f"{partitions_def.start:%Y-%m-%d})")
        days = [dt.date.fromisoformat(key) for key in keys]
        notes = []
        if last > days[-1]:
            # A partition opens when its time window ends: a weekday partition's window runs to
            # the next weekday, so a Friday's opens on Monday 00:00.
            if end:
                raise UsageError(
                    f"END={last} has no partition of {what} yet: the latest is {days[-1]} (a "
                    "partition opens when its time window has ended; a Friday's on Monday)"
                )
            notes.append(f"{what} ends at its latest partition {days[-1]}: the partition of "
                         f"{last} opens when its time window has ended")
        if first < days[0]:
            notes.append(f"{what} starts at its first partition {days[0]}, not {first}")
        chosen = [key for key, day in zip(keys, days) if first <= day <= last]
        if not chosen:
            raise UsageError(f"no partition of {what} between {first} and {last}")
        runs.append(RangeRun([spec.key for spec in members], groups, chosen[0], chosen[-1],
                             len(chosen), notes))
    # The same order every time, whatever the order of the definitions: by domain, then assets.
    return sorted(runs, key=lambda run: (run.groups, sorted(key.to_user_string() for key in run.asset_keys)))


def select_specs(defs: Any, domain: str | None) -> list[Any]:
    """The partitioned assets of `domain` (an asset group), or of every domain."""
    specs = [spec for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None]
    domains = sorted({spec.group_name for spec in specs})
    if domain is None:
        return specs
    if domain not in domains:
        raise UsageError(f"DOMAIN={domain!r} is not a domain; domains: {', '.join(domains)}")
    return [spec for spec in specs if spec.group_name == domain]


# running ----------------------------------------------------------------------------------------
@functools.cache
def definitions() -> Any:
    """The code location's Definitions, loaded once per process."""
    from stock_platform.definitions import defs

    return defs()


RANGE_JOB = "make_run"


def range_job(asset_key_strings: tuple[str, ...]) -> Any:
    """A job of these assets (for dg.build_reconstructable_job), named after the command."""
    import dagster as dg

    keys = [dg.AssetKey.from_user_string(key) for key in asset_key_strings]
    job = dg.define_asset_job(RANGE_JOB, selection=keys)
    return dg.Definitions.merge(definitions(), dg.Definitions(jobs=[job])).resolve_job_def(RANGE_JOB)


class Progress:
    """Follows a run's events in the instance and shows each step as a person follows it."""

    def __init__(self, instance: Any, tag: str, steps: dict[str, int], out: IO[str]):
        self.instance, self.tag, self.steps, self.out = instance, tag, steps, out
        self.done = threading.Event()
        self.rows: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def _follow(self) -> None:
        import dagster as dg
        from rich import progress as rich

        console = rich.Console(file=self.out, highlight=False)
        bars: dict[str, Any] = {}
        run_id, cursor = None, None
        columns = (rich.SpinnerColumn(), rich.TextColumn("{task.description:28}"), rich.BarColumn(),
                   rich.MofNCompleteColumn(), rich.TimeElapsedColumn())
        # No redirection of sys.stdout/stderr: they go to the log file (output_to).
        with rich.Progress(*columns, console=console, transient=True,
                           redirect_stdout=False, redirect_stderr=False) as progress:
            while True:
                finishing = self.done.is_set()
                if run_id is None:
                    records = self.instance.get_run_records(
                        filters=dg.RunsFilter(tags={INVOCATION_TAG: self.tag}), limit=1)
                    run_id = records[0].dagster_run.run_id if records else None
                if run_id is not None:
                    connection = self.instance.get_records_for_run(run_id, cursor=cursor)
                    cursor = connection.cursor
                    for record in connection.records:
                        self._show(record.event_log_entry, progress, bars, console)
                if finishing:
                    return
                self.done.wait(1.0)

    def _show(self, entry: Any, progress: Any, bars: dict, console: Any) -> None:
        event = entry.dagster_event
        if event is None:
            return
        step, kind = event.step_key, event.event_type_value
        if kind == "STEP_START" and step in self.steps:
            self.started[step] = entry.timestamp
            bars[step] = progress.add_task(step, total=self.steps[step])
        elif kind == "ASSET_MATERIALIZATION" and step in bars:
            progress.advance(bars[step])
            rows = event.event_specific_data.materialization.metadata.get("dagster/row_count")
            if rows is not None:
                self.rows[step] = self.rows.get(step, 0) + int(rows.value)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in bars:
            progress.remove_task(bars.pop(step))
            elapsed = entry.timestamp - self.started.get(step, entry.timestamp)
            rows = f"{self.rows[step]:>12,} rows" if step in self.rows else " " * 17
            mark = "done  " if kind == "STEP_SUCCESS" else "FAILED"
            console.print(f"  {mark} {step:28} {rows}  {elapsed:7.1f} s")
            if kind == "STEP_FAILURE":
                console.print(f"         {_step_error(event)}")


def _step_error(event: Any) -> str:
    from stock_platform.platform.notifications import step_error

    return step_error(event).splitlines()[0][:300]


@contextmanager
def output_to(log: Path, verbose: bool):
    """Everything this process and its children write (Dagster's event stream, Spark's JVM,
    dbt) goes to `log`; yields a stream to the terminal. With `verbose` the log is also shown."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal_fd = os.dup(1)
    terminal = os.fdopen(terminal_fd, "w", buffering=1)
    with open(log, "ab") as handle:
        saved = os.dup(1), os.dup(2)
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        stop = threading.Event()
        echo = threading.Thread(target=_echo, args=(log, terminal, stop), daemon=True)
        if verbose:
            echo.start()
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            if verbose:
                stop.set()
                echo.join(timeout=5)
    terminal.close()


def _echo(log: Path, terminal: IO[str], stop: threading.Event) -> None:
    with open(log, errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while not stop.is_set():
            chunk = handle.read()
            if chunk:
                terminal.write(chunk)
            else:
                stop.wait(0.2)
        terminal.write(handle.read())


def pin_pool_limits(instance: Any, asset_keys: Sequence[Any]) -> None:
    """Give each pool of these assets the instance's default limit as a limit of its own, unless
    it has one (`dagster instance concurrency set` keeps working).

    Dagster creates a pool's limit row from `default_limit` when a step first claims the pool; on
    PostgreSQL two runs doing so at once (two backfills launched together on a new instance) make
    one of them fail with InFailedSqlTransaction after a UniqueViolation (dagster-io/dagster#33552).
    A pool whose limit is not the default is never initialized by a run."""
    storage = instance.event_log_storage
    limit = instance.global_op_concurrency_default_limit
    if limit is None or not storage.supports_global_concurrency_limits:
        return
    pools = {pool for key in asset_keys for pool in definitions().resolve_assets_def(key).node_def.pools}
    for pool in sorted(pools - storage.get_concurrency_keys()):
        try:
            storage.set_concurrency_slots(pool, limit)
        except Exception:
            if pool not in storage.get_concurrency_keys():  # not another CLI setting it first
                raise


def tidy_instance(instance: Any, asset_keys: Sequence[Any]) -> None:
    """Before runs start: fail the runs whose worker died (a killed run must not hold its pool
    slots) and give the pools of these assets their limits."""
    from stock_platform.platform.instance import reap_dead_runs

    for run_id in reap_dead_runs(instance):
        print(f"Run {run_id} had died (killed or crashed): marked it failed and freed its "
              "pool slots", flush=True)
    pin_pool_limits(instance, asset_keys)


def execute(runs: list[RangeRun], log: Path, verbose: bool) -> bool:
    import dagster as dg

    ok = True
    with dg.DagsterInstance.get() as instance:
        tidy_instance(instance, [key for run in runs for key in run.asset_keys])
        for run in runs:
            steps = _steps(run)
            print(f"\n{', '.join(run.groups)}: {run.first_key} .. {run.last_key} "
                  f"({run.partitions} partitions) in one run", flush=True)
            for note in run.notes:
                print(f"  note: {note}", flush=True)
            tag = uuid.uuid4().hex
            job = dg.build_reconstructable_job(
                "stock_platform.cli", "range_job", (tuple(k.to_user_string() for k in run.asset_keys),)
            )
            started = time.monotonic()
            with output_to(log, verbose) as terminal, Progress(instance, tag, steps, terminal):
                result = dg.execute_job(
                    job, instance,
                    tags={"dagster/asset_partition_range_start": run.first_key,
                          "dagster/asset_partition_range_end": run.last_key,
                          INVOCATION_TAG: tag},
                    asset_selection=run.asset_keys,
                )
            state = "succeeded" if result.success else "FAILED"
            print(f"  run {result.run_id} {state} in {time.monotonic() - started:.1f} s",
                  flush=True)
            if not result.success:
                ok = False
                break
    return ok


def _steps(run: RangeRun) -> dict[str, int]:
    """Each step of the run and how many materializations it records (assets x partitions)."""
    steps: dict[str, int] = {}
    for key in run.asset_keys:
        name = definitions().resolve_assets_def(key).op.name
        steps[name] = steps.get(name, 0) + run.partitions
    return steps


def summaries(settings: PlatformSettings, runs: list[RangeRun]) -> str:
    """Each domain's summary (its module `summary.py`, if it has one), from the local warehouse."""
    from stock_platform.platform.warehouse.duckdb import DuckDBWarehouse

    spans: dict[str, tuple[dt.date, dt.date]] = {}  # a domain in several runs: once, over all their days
    for run in runs:
        first, last = dt.date.fromisoformat(run.first_key), dt.date.fromisoformat(run.last_key)
        for group in run.groups:
            low, high = spans.get(group, (first, last))
            spans[group] = (min(low, first), max(high, last))
    lines = []
    with DuckDBWarehouse(settings.warehouse_path).connect(read_only=True) as con:
        # A domain published by several runs (serving follows both calendars) comes after theirs.
        for group in sorted(spans, key=lambda name: sum(name in run.groups for run in runs)):
            first, last = spans[group]
            try:
                module = importlib.import_module(f"stock_platform.defs.{group}.summary")
            except ModuleNotFoundError:
                continue
            lines += ["", f"{group}: {first} .. {last}", *module.summary(con, first, last)]
    return "\n".join(lines)


# commands ---------------------------------------------------------------------------------------
def _launched(settings: PlatformSettings) -> bool:
    return bool(settings.instance_db_url)


def _relaunch(settings: PlatformSettings, argv: list[str]) -> None:
    """Run this command again with the local instance's environment (it must be in the
    environment when Dagster, Spark and dbt start): the embedded PostgreSQL, DAGSTER_HOME."""
    from stock_platform.platform.instance import old_sqlite_history, prepare_instance

    env = child_environment(prepare_instance(settings))
    history = old_sqlite_history(settings)
    if history is not None:
        print(f"note: runs are now kept in PostgreSQL ({settings.data_path / 'postgres'}); the "
              f"SQLite history of earlier runs in {history} is not shown any more (delete it "
              "to free the space).", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "stock_platform.cli", *argv], env)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    settings = platform_settings()
    if not _launched(settings):
        _relaunch(settings, argv)
    from stock_platform.platform.calendars import SEOUL
    from stock_platform.platform.spark import require_java

    require_java()
    runs = plan_runs(select_specs(definitions(), args.domain), args.start, args.end,
                     dt.datetime.now(SEOUL))
    log = settings.data_path / "logs" / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    print(f"Dagster's event stream: {log}", flush=True)
    if not execute(runs, log, args.verbose):
        print(f"\nThe run failed; the step's error is above, the whole story in {log}",
              file=sys.stderr)
        return 1
    print(summaries(settings, runs))
    return 0


def dev(args: argparse.Namespace, argv: list[str]) -> int:
    """The Dagster webserver and daemon on the local instance (`dagster dev`), until Ctrl-C.

    `dagster dev` stops both when one of them dies, but exits 0 all the same; it exits only then
    or on Ctrl-C / SIGTERM, so any other exit is a death, reported with a non-zero status."""
    import dagster as dg

    settings = platform_settings()
    if not _launched(settings):  # the instance's dagster.yaml reads its database URL from the env
        _relaunch(settings, argv)
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-h", args.host,
               "-p", str(args.port), "-w", "workspace.yaml"]
    with dg.DagsterInstance.get() as instance:
        tidy_instance(instance, list(definitions().resolve_all_asset_keys()))
    print(f"Serving the Dagster UI on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    process = subprocess.Popen(command, env=child_environment({}))
    stopping = threading.Event()

    def forward(signum: int, frame: object) -> None:
        stopping.set()
        process.send_signal(signal.SIGINT)  # dagster dev shuts its services down on SIGINT

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)  # Ctrl-C also reaches dagster dev itself (same group)
    code = process.wait()
    if stopping.is_set():
        return 0
    print(f"dagster dev stopped by itself (exit status {code}): the webserver or the daemon died; "
          "its error is above", file=sys.stderr, flush=True)
    return code or 1


def stop(args: argparse.Namespace, argv: list[str]) -> int:
    from stock_platform.platform.instance import stop_postgres

    settings = platform_settings()
    if stop_postgres(settings):
        print(f"Stopped the embedded PostgreSQL server of {settings.data_path}")
    else:
        print(f"The embedded PostgreSQL server of {settings.data_path} was not running")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m stock_platform.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialize the domains for a range")
    run_parser.add_argument("--start", help="first day, YYYY-MM-DD (default: 20 sessions back)")
    run_parser.add_argument("--end", help="last day, YYYY-MM-DD (default: the latest session with a partition)")
    run_parser.add_argument("--domain", help="one domain (asset group); default: every domain")
    run_parser.add_argument("--verbose", action="store_true",
                            help="show Dagster's event stream as well")
    run_parser.set_defaults(handler=run)
    dev_parser = commands.add_parser("dev", help="Dagster webserver and daemon")
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=3000)
    dev_parser.set_defaults(handler=dev)
    stop_parser = commands.add_parser("stop", help="stop the embedded PostgreSQL server")
    stop_parser.set_defaults(handler=stop)
    args = parser.parse_args(argv)
    try:
        return args.handler(args, argv)
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # dg.Failure from the Java check
        description = getattr(exc, "description", None)
        if description is None:
            raise
        print(f"error: {description}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
