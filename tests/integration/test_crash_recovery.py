"""Crash recovery (issue #7, item 1): `make run` SIGKILLed at the worst moments, then re-run.

A kill is SIGKILL to the run's whole process group (the CLI, the run worker, Spark's JVM, dbt), as
the OOM killer or a lost machine would do it, at an exact moment:

- raw ingest (empty platform): failpoint; a day's pages are written, not yet published, and the
  day before is published;
- Spark write (after the first re-run): Spark's `_temporary` output appears in the lake's
  `_staging/`; the group is frozen with SIGSTOP, the moment checked again, then killed;
- cleaning publication (after the second re-run): failpoint; the days before are published, this
  one is adopted into its version prefix but not published;
- warehouse load (materialized platform): failpoint; DELETE and INSERT done, COMMIT not;
- dbt build (materialized): dbt writes the first mart's SQL to its target `run/` folder as it
  executes it (SIGSTOP, checked, killed); the other marts are not built yet.

Two chains, one data dir each, run side by side: one starting from an empty platform (the first
materialization) and one on a copy of the reference run's platform (re-materialization: the old
version must stay visible). After each kill the same range is re-run to completion, which must
leave tables identical (content checksums) to the uninterrupted reference run; the chain's next
kill then hits a run over that materialized range. After every kill: every lake manifest's files
exist and hold exactly its rows, no partition published before the run has disappeared, DuckDB
opens, and each warehouse table's per-day counts for the range are those before the run or those
of the reference (never a partial range). All along, a reader thread reads the lake through its
manifests and must never see a half-written partition. The warehouse is checked at each kill
rather than polled: a second process opening the DuckDB file would itself take the lock the
pipeline's writers need.
"""

import datetime as dt
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from fixtures.lake_reader import LakeReader, lake_problems, published
from fixtures.platform import (
    REFERENCE_RANGE,
    Reference,
    checksums,
    day_counts,
    duplicates,
    instance_url,
    kill_group,
    open_instance,
    rows_lost,
    start_cli_run,
    stop_platform,
    tail,
    wait_for,
)
from fixtures.reliability import Outcome, record

from stock_platform.platform.dbt import DBT_PROJECT_DIR
from stock_platform.platform.failpoints import ENV as FAILPOINT_ENV

MARKER_ENV = "STOCK_PLATFORM_FAILPOINT_MARKER"  # the file a failpoint writes when it is reached

pytestmark = pytest.mark.timeout(60 * 60)  # the module fixture runs every chain (minutes each)

FIRST, LAST = REFERENCE_RANGE
RANGE_DAYS = [dt.date.fromisoformat(FIRST) + dt.timedelta(days=n) for n in range(5)]
REACH_TIMEOUT_S = 15 * 60  # a run must reach its kill point within this (slow machine)
DBT_TARGET = DBT_PROJECT_DIR / "target"
FIRST_MART_RUN_SQL = "run/stock_platform/models/stock_prices/marts/fct_daily_stock_metrics.sql"


# A moment is recognised from outside by a probe built before the run starts:
# probe(data dir, run id of the run or None while unknown) -> check; check() describes the moment
# when it is now (a non-empty dict, kept as evidence), else returns {}.
Probe = Callable[[Path, Callable[[], str | None]], Callable[[], dict]]


@dataclass
class KillPoint:
    fault: str  # the kind of fault in the reliability table
    failpoint: str = ""  # freeze the run at this stock_platform.platform.failpoints name ...
    moment: Probe | None = None  # ... or recognise the moment from outside


def spark_writing(data_dir: Path, run_id) -> Callable[[], dict]:
    """Spark is writing the cleaned Parquet: its committer's `_temporary` folder in this run's
    staging folder holds files (a killed earlier run may have left its own behind)."""
    staging = data_dir / "lake" / "_staging"
    before = set(staging.glob("*/*/_temporary"))

    def now() -> dict:  # the folders holding files already
        try:
            writing = set(staging.glob("*/*/_temporary")) - before
            files = {str(f): sum(p.is_file() for p in f.rglob("*")) for f in writing}
        except OSError:  # committed and removed while we looked
            return {}
        return {folder: count for folder, count in files.items() if count}

    return now


def dbt_building_first_mart(data_dir: Path, run_id) -> Callable[[], dict]:
    """This run's dbt is executing fct_daily_stock_metrics (dbt writes the SQL it runs to the
    invocation's target `run/` folder first; dagster-dbt names the folder after the run id)."""

    def now() -> dict:
        current = run_id()
        folders = list(DBT_TARGET.glob(f"stock_analytics_dbt-{current[:7]}-*")) if current else []
        for folder in folders:
            if (folder / FIRST_MART_RUN_SQL).exists():
                marts = folder / FIRST_MART_RUN_SQL.rsplit("/", 1)[0]
                return {"started": sorted(p.stem for p in marts.glob("*.sql")),
                        "finished": (folder / "run_results.json").exists()}
        return {}

    return now


RAW_INGEST = KillPoint("SIGKILL during raw ingest", "raw_stock_prices.before_publish:2024-04-09")
SPARK_WRITE = KillPoint("SIGKILL during the Spark write", moment=spark_writing)
CLEAN_PUBLISH = KillPoint(
    "SIGKILL between publishing clean days", "clean_stock_prices.before_publish:clean/2024-04-11"
)
WAREHOUSE_LOAD = KillPoint(
    "SIGKILL in the warehouse load transaction", "duckdb_warehouse.before_commit"
)
DBT_BUILD = KillPoint("SIGKILL during the dbt build", moment=dbt_building_first_mart)


@dataclass
class Kill:
    """What one killed run left behind."""

    point: KillPoint
    run_id: str | None
    lake_before: dict
    lake_after: dict
    lake_problems: list[str]
    warehouse_before: dict
    warehouse_after: dict | str  # per-day counts, or why DuckDB did not open
    duplicates: int
    pools_at_kill: dict = field(default_factory=dict)  # pool -> [(run id, step)] holding a slot
    evidence: dict = field(default_factory=dict)  # what an outside probe saw at the kill
    attempts: int = 1  # runs it took to catch the moment (outside probes only)
    rerun_exit: int | None = None  # the re-run of the same range right after this kill
    rerun_checksums: dict = field(default_factory=dict)


@dataclass
class Chain:
    name: str
    data_dir: Path
    kills: list[Kill] = field(default_factory=list)
    final_exit: int | None = None
    final_log: str = ""
    checksums: dict = field(default_factory=dict)
    rows_lost: int = 0
    duplicates: int = 0
    runs: dict = field(default_factory=dict)  # run id -> status
    slots_left: set = field(default_factory=set)
    staging_left: list = field(default_factory=list)  # Spark staging folders after the re-run
    reader_problems: list[str] = field(default_factory=list)
    reader_sweeps: int = 0
    reader_versions: int = 0
    seconds: float = 0.0
    error: BaseException | None = None


def new_run_id(data_dir: Path, known: set[str]) -> str | None:
    """The id of the run this chain started (the one not seen before), once it exists."""
    try:
        ids = all_run_ids(data_dir) - known
    except Exception:
        return None
    return ids.pop() if ids else None


def all_run_ids(data_dir: Path) -> set[str]:
    """Every run of the data dir's instance (none before its first `make run`, which starts the
    embedded PostgreSQL server; later ones find it running)."""
    if instance_url(data_dir) is None:
        return set()
    with open_instance(data_dir) as instance:
        return {run.run_id for run in instance.get_runs()}


def pool_holders(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    with open_instance(data_dir) as instance:
        storage = instance.event_log_storage
        return {
            pool: [(slot.run_id, slot.step_key)
                   for slot in storage.get_concurrency_info(pool).claimed_slots]
            for pool in ("stock_api", "warehouse")
        } | {"limit": storage.get_concurrency_info("warehouse").limit}


def warehouse_state(data_dir: Path) -> dict | str:
    try:
        return day_counts(data_dir / "warehouse.duckdb")
    except Exception as exc:
        return f"DuckDB did not open: {exc!r}"


def kill_at(chain: Chain, point: KillPoint, log: Path) -> Kill:
    """Run the range, SIGKILL the process group at `point`, and record what it left.

    An outside probe could miss a short moment on a fast machine: then the run that got through
    is one more re-run, and the next one is probed again."""
    attempts = 3 if point.moment else 1
    for attempt in range(1, attempts + 1):
        kill = try_kill_at(chain, point, log, last_attempt=attempt == attempts)
        if kill is not None:
            kill.attempts = attempt
            return kill
    raise AssertionError("unreachable")


def try_kill_at(chain: Chain, point: KillPoint, log: Path, last_attempt: bool) -> Kill | None:
    data_dir = chain.data_dir
    known = all_run_ids(data_dir)
    lake_before = published(data_dir / "lake")
    warehouse_before = warehouse_state(data_dir)
    marker = data_dir.parent / f"{data_dir.name}-failpoint"
    marker.unlink(missing_ok=True)
    env = {FAILPOINT_ENV: point.failpoint, MARKER_ENV: str(marker)} if point.failpoint else {}
    found: list[str] = []
    last_lookup = [0.0]

    def run_id() -> str | None:  # looked up at most once a second
        if not found and time.monotonic() - last_lookup[0] > 1.0:
            last_lookup[0] = time.monotonic()
            found.extend(filter(None, [new_run_id(data_dir, known)]))
        return found[0] if found else None

    moment = point.moment(data_dir, run_id) if point.moment else None
    process = start_cli_run(data_dir, FIRST, LAST, log, **env)
    pools, evidence = {}, {}
    deadline = time.monotonic() + REACH_TIMEOUT_S
    try:
        while True:
            code = process.poll()
            if code == 0 and not last_attempt:
                return None
            assert code is None, (
                f"{chain.name}: the run ended (exit {code}) before the kill point "
                f"({point.fault}):\n{tail(log)}"
            )
            assert time.monotonic() < deadline, f"{point.fault} not reached:\n{tail(log)}"
            if point.failpoint and marker.exists():
                pools = pool_holders(data_dir)
                break
            if moment is not None and moment():
                # Freeze the whole group, make sure the moment still holds, then kill.
                kill_group(process, signal.SIGSTOP)
                evidence = moment()
                if evidence:
                    pools = pool_holders(data_dir)
                    break
                kill_group(process, signal.SIGCONT)  # it passed meanwhile: wait for the next
            time.sleep(0.02)
    finally:
        kill_group(process)  # SIGKILL
    last_lookup[0] = 0.0
    return Kill(
        point=point,
        run_id=run_id(),
        lake_before=lake_before,
        lake_after=published(data_dir / "lake"),
        lake_problems=lake_problems(data_dir / "lake"),
        warehouse_before=warehouse_before,
        warehouse_after=warehouse_state(data_dir),
        duplicates=duplicates(data_dir / "warehouse.duckdb"),
        pools_at_kill=pools,
        evidence=evidence,
    )


def run_chain(chain: Chain, points: list[KillPoint], reference: Callable[[], Reference]) -> Chain:
    started = time.monotonic()
    reader = LakeReader(chain.data_dir / "lake")
    reader.start()
    try:
        path = chain.data_dir / "warehouse.duckdb"
        for index, point in enumerate(points):
            log = chain.data_dir.parent / f"{chain.name}-{index}.log"
            kill = kill_at(chain, point, log)
            chain.kills.append(kill)
            # After each kill, the same range re-run to completion.
            log = chain.data_dir.parent / f"{chain.name}-{index}-rerun.log"
            kill.rerun_exit = wait_for(start_cli_run(chain.data_dir, FIRST, LAST, log), log)
            chain.final_exit, chain.final_log = kill.rerun_exit, log.read_text(errors="replace")
            if kill.rerun_exit != 0:
                break
            kill.rerun_checksums = checksums(path)
        chain.checksums = checksums(path)
        chain.duplicates = duplicates(path)
        staging = chain.data_dir / "lake" / "_staging"
        chain.staging_left = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
        with open_instance(chain.data_dir) as instance:
            chain.runs = {run.run_id: run.status for run in instance.get_runs()}
            chain.slots_left = instance.event_log_storage.get_concurrency_run_ids()
    except BaseException as exc:  # reported by the tests, after the other chain finished
        chain.error = exc
    finally:
        try:
            chain.rows_lost = rows_lost(chain.data_dir / "warehouse.duckdb", reference().keys)
        except Exception as exc:
            chain.error = chain.error or exc
        reader.stop()
        chain.reader_problems = reader.problems
        chain.reader_sweeps = reader.sweeps
        chain.reader_versions = reader.versions_checked
        chain.seconds = time.monotonic() - started
    return chain


def record_chain(chain: Chain, scenario: str, ref: Reference) -> None:
    restored = chain.error is None and all(
        kill.rerun_exit == 0 and kill.rerun_checksums == ref.checksums for kill in chain.kills)
    runs = sum(kill.attempts + (kill.rerun_exit is not None) for kill in chain.kills)
    record(Outcome(
        scenario=scenario,
        faults={kill.point.fault: 1 for kill in chain.kills},
        runs=runs,
        survived=runs if restored else 0,
        rows_lost=chain.rows_lost,
        duplicates=chain.duplicates + sum(kill.duplicates for kill in chain.kills),
    ))


@pytest.fixture(scope="module")
def chains(reference_run, tmp_path_factory):
    """Both chains, side by side: the empty platform's while the reference run is still running,
    the re-materialization's on a copy of the reference platform's lake and warehouse once it is
    there (with an instance of its own: a PostgreSQL folder is not copied like a file)."""
    started = time.monotonic()
    empty = Chain("empty", tmp_path_factory.mktemp("crash-empty") / "data")
    again = Chain("rematerialize", tmp_path_factory.mktemp("crash-again") / "data")
    empty.data_dir.mkdir()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(run_chain, empty, [RAW_INGEST, SPARK_WRITE, CLEAN_PUBLISH],
                                reference_run.get)
            ref = reference_run.get()
            shutil.copytree(ref.data_dir, again.data_dir,
                            ignore=shutil.ignore_patterns("spark-tmp", "postgres"))
            run_chain(again, [WAREHOUSE_LOAD, DBT_BUILD], reference_run.get)
            first.result()
        record_chain(empty, "SIGKILL from an empty platform, re-run after each kill", ref)
        record_chain(again, "SIGKILL while re-materializing, re-run after each kill", ref)
        print(f"\ncrash chains: empty {empty.seconds:.0f}s, re-materialize {again.seconds:.0f}s, "
              f"module {time.monotonic() - started:.0f}s (reference included)")
        yield {"empty": empty, "rematerialize": again, "reference": ref}
    finally:
        for chain in (empty, again):
            stop_platform(chain.data_dir)


@pytest.fixture(params=["empty", "rematerialize"])
def chain(chains, request) -> Chain:
    chain = chains[request.param]
    if chain.error is not None:
        raise chain.error
    return chain


def test_every_kill_landed_and_the_rerun_succeeded(chain):
    assert [kill.run_id is not None for kill in chain.kills] == [True] * len(chain.kills)
    assert chain.final_exit == 0, chain.final_log[-4000:]


def test_outside_probes_killed_mid_write(chains):
    """The Spark kill froze the JVM with Parquet in `_temporary`; the dbt kill, with the first
    mart being built and the invocation unfinished."""
    (spark,) = [k for k in chains["empty"].kills if k.point is SPARK_WRITE]
    assert spark.evidence and all(files > 0 for files in spark.evidence.values()), spark.evidence
    (dbt,) = [k for k in chains["rematerialize"].kills if k.point is DBT_BUILD]
    assert "fct_daily_stock_metrics" in dbt.evidence["started"], dbt.evidence
    assert dbt.evidence["finished"] is False


def test_no_half_written_lake_partition_after_a_kill(chain):
    for kill in chain.kills:
        assert kill.lake_problems == [], kill.point.fault
        # The previous version stays visible: nothing published before the run disappeared.
        assert set(kill.lake_before) <= set(kill.lake_after), kill.point.fault


def test_a_kill_leaves_each_warehouse_table_all_old_or_all_new(chain, chains):
    reference = chains["reference"]
    for kill in chain.kills:
        assert isinstance(kill.warehouse_after, dict), kill.warehouse_after
        for name, after in kill.warehouse_after.items():
            in_range = {day: n for day, n in after.items() if day in RANGE_DAYS}
            old = {day: n for day, n in kill.warehouse_before[name].items() if day in RANGE_DAYS}
            assert in_range in (old, reference.day_counts[name]), (kill.point.fault, name)
        assert kill.duplicates == 0, kill.point.fault


def test_the_reader_never_saw_a_half_written_partition(chain):
    assert chain.reader_problems == []
    assert chain.reader_sweeps > 10 and chain.reader_versions > 0  # it did read, all along


def test_each_kill_is_followed_by_a_rerun_restoring_the_reference_tables(chain, chains):
    reference = chains["reference"].checksums
    assert [(k.point.fault, k.rerun_exit) for k in chain.kills] == [
        (k.point.fault, 0) for k in chain.kills]
    for kill in chain.kills:
        assert kill.rerun_checksums == reference, kill.point.fault
    assert chain.checksums == reference
    assert (chain.rows_lost, chain.duplicates) == (0, 0)


def test_the_rerun_collects_what_killed_runs_left_in_staging(chain):
    """A run killed during its Spark write leaves partial Parquet in `_staging/`; once the run is
    marked failed, the next cleaning removes it."""
    assert chain.staging_left == []


def test_killed_runs_are_marked_failed_and_their_pool_slots_freed(chain):
    killed = [kill.run_id for kill in chain.kills]
    assert [chain.runs[run_id] for run_id in killed] == [dg.DagsterRunStatus.FAILURE] * len(killed)
    assert "had died (killed or crashed)" in chain.final_log
    assert chain.slots_left == set()


def test_the_warehouse_pool_slot_is_held_by_the_load_step(chains):
    """Pools are honored by `make run`'s in-process execution: while the load is frozen in its
    transaction, its step holds the warehouse pool's only slot."""
    (kill,) = [k for k in chains["rematerialize"].kills if k.point is WAREHOUSE_LOAD]
    assert kill.pools_at_kill["limit"] == 1
    assert kill.pools_at_kill["warehouse"] == [(kill.run_id, "stock_raw__daily_prices")]
    (dbt,) = [k for k in chains["rematerialize"].kills if k.point is DBT_BUILD]
    assert dbt.pools_at_kill["warehouse"] == [(dbt.run_id, "stock_analytics_dbt")]
