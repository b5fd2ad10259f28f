"""Concurrency (issue #7, item 4): two overlapping backfills launched at the same time on the local
instance, through `make dev`'s webserver and daemon as a user would (UI or GraphQL).

Each backfill is one run (BackfillPolicy.single_run). DuckDB allows one writing process, so the
instance's pools (`concurrency: pools: default_limit: 1` in stock_platform/platform/dagster.yaml) make
the warehouse steps (load, dbt) of the two runs take turns, and the two ingests too; Spark cleaning
overlaps freely. Both runs must succeed with no lock error in their event logs, the pool steps of
the two runs must never overlap in time, a lake reader must never see a half-written partition
(both runs publish the same partitions), and the final tables must equal the uninterrupted
reference run.

The second range lies inside the first: the marts look back up to 364 days, so a range
materialized before its history exists is computed without it whatever the concurrency (see
the report of issue #7); with nested ranges every order of the steps has one correct result.
"""

import re
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from fixtures.dagster_dev import BACKFILL_STATUS, LAUNCH_BACKFILL, graphql, group_asset_keys, make_dev
from fixtures.lake_reader import LakeReader, lake_problems
from fixtures.platform import REFERENCE_RANGE, checksums, duplicates, open_instance, rows_lost
from fixtures.reliability import Outcome, record

from stock_platform.platform.settings import REPO_ROOT

pytestmark = pytest.mark.timeout(45 * 60)

BACKFILLS = [REFERENCE_RANGE, ("2024-04-09", "2024-04-11")]
RUN_TIMEOUT_S = 25 * 60
POOLS = {
    "stock_api": ["raw_stock_prices"],
    "warehouse": ["stock_raw__daily_prices", "stock_analytics_dbt"],
}
LOCK_ERROR = re.compile(r"\block\b", re.IGNORECASE)  # "Could not set lock", "Conflicting lock"

RUNS_OF_BACKFILL = """
query($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status } }
  }
}
"""

SCHEDULES = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { id name scheduleState { status } }
} } } }
"""
STOP_SCHEDULE = """
mutation($id: String!) { stopRunningSchedule(id: $id) {
  __typename
  ... on ScheduleStateResult { scheduleState { status } }
  ... on PythonError { message }
} }
"""


def stop_schedules(port: int) -> None:
    """The daily schedule is on by default: if its time came during the test it would add a run
    (and another day) to the warehouse."""
    nodes = graphql(port, SCHEDULES)["repositoriesOrError"]["nodes"]
    for schedule in [s for node in nodes for s in node["schedules"]]:
        result = graphql(port, STOP_SCHEDULE, {"id": schedule["id"]})["stopRunningSchedule"]
        assert result.get("scheduleState", {}).get("status") == "STOPPED", (schedule, result)


def launch_at_once(port: int, ranges) -> list[str]:
    """Launch one backfill per range, all released by one barrier: at the same time."""
    keys = group_asset_keys(port, "stock_prices")
    assert len(keys) == 8, keys
    barrier = threading.Barrier(len(ranges))
    results: list = [None] * len(ranges)

    def launch(index: int, first: str, last: str) -> None:
        window = {"range": {"start": first, "end": last}}
        params = {"partitionsByAssets": [{"assetKey": key, "partitions": window} for key in keys]}
        barrier.wait()
        launched = graphql(port, LAUNCH_BACKFILL, {"params": params})
        results[index] = launched["launchPartitionBackfill"]

    threads = [threading.Thread(target=launch, args=(i, *r)) for i, r in enumerate(ranges)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r and r["__typename"] == "LaunchBackfillSuccess" for r in results), results
    return [r["backfillId"] for r in results]


def wait_for_backfills(port: int, ids: list[str]) -> dict[str, str]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        statuses = {
            backfill: graphql(port, BACKFILL_STATUS, {"id": backfill})[
                "partitionBackfillOrError"]["status"]
            for backfill in ids
        }
        if all(s not in ("REQUESTED", "CANCELING", "FAILING") for s in statuses.values()):
            return statuses
        assert time.monotonic() < deadline, f"backfills not done after {RUN_TIMEOUT_S}s: {statuses}"
        time.sleep(5)


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """step key -> (start, end) timestamps of the step's execution in the run."""
    starts, ends = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS,
                                  dg.DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = entry.timestamp
    return {key: (starts[key], ends.get(key, float("inf"))) for key in starts}


def lock_errors(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    found = []
    for entry in instance.all_logs(run_id):
        texts = [entry.user_message or ""]
        event = entry.dagster_event
        error = getattr(getattr(event, "event_specific_data", None), "error", None)
        if error is not None:
            texts.append(error.to_string())
        found += [text[:300] for text in texts if LOCK_ERROR.search(text)]
    return found


@pytest.fixture(scope="module")
def backfills(reference_run, tmp_path_factory):
    """Two overlapping backfills launched at once on `make dev`; waits until both are done."""
    started = time.monotonic()
    data_dir = tmp_path_factory.mktemp("concurrency") / "data"
    data_dir.mkdir()
    # The reference partitions open at the default STOCK_PARTITIONS_START.
    with make_dev(Path(REPO_ROOT), data_dir) as port:
        stop_schedules(port)
        reader = LakeReader(data_dir / "lake")
        reader.start()
        try:
            ids = launch_at_once(port, BACKFILLS)
            statuses = wait_for_backfills(port, ids)
            runs = {
                backfill: graphql(port, RUNS_OF_BACKFILL, {"id": backfill})[
                    "runsOrError"]["results"]
                for backfill in ids
            }
        finally:
            reader.stop()
        with open_instance(data_dir) as instance:  # while make_dev's PostgreSQL server runs
            run_ids = [run["runId"] for backfill in ids for run in runs[backfill]]
            result = {
                "ids": ids,
                "statuses": statuses,
                "runs": runs,
                "run_status": {run_id: instance.get_run_by_id(run_id).status for run_id in run_ids},
                "intervals": {run_id: step_intervals(instance, run_id) for run_id in run_ids},
                "run_spans": {run_id: (instance.get_run_record_by_id(run_id).start_time,
                                       instance.get_run_record_by_id(run_id).end_time)
                              for run_id in run_ids},
                "lock_errors": {run_id: lock_errors(instance, run_id) for run_id in run_ids},
                "slots_left": instance.event_log_storage.get_concurrency_run_ids(),
            }
    path = data_dir / "warehouse.duckdb"
    ref = reference_run.get()
    result.update(
        data_dir=data_dir,
        reader=reader,
        checksums=checksums(path),
        reference=ref,
        rows_lost=rows_lost(path, ref.keys),
        duplicates=duplicates(path),
    )
    run_statuses = result["run_status"].values()
    survived = sum(status == dg.DagsterRunStatus.SUCCESS for status in run_statuses)
    record(Outcome(
        scenario="two overlapping backfills launched at once (make dev)",
        faults={"concurrent overlapping backfill": len(BACKFILLS)},
        runs=len(run_ids),
        survived=survived if result["checksums"] == ref.checksums else 0,
        rows_lost=result["rows_lost"],
        duplicates=result["duplicates"],
    ))
    print(f"\nconcurrency: two backfills on make dev in {time.monotonic() - started:.0f}s")
    return result


def test_both_backfills_succeed_each_as_one_run(backfills):
    assert list(backfills["statuses"].values()) == ["COMPLETED_SUCCESS"] * len(BACKFILLS)
    assert [len(backfills["runs"][b]) for b in backfills["ids"]] == [1] * len(BACKFILLS)
    assert set(backfills["run_status"].values()) == {dg.DagsterRunStatus.SUCCESS}


def test_the_runs_overlapped(backfills):
    """Otherwise the test proves nothing: the two runs were in progress at the same time."""
    (a_start, a_end), (b_start, b_end) = backfills["run_spans"].values()
    assert a_start < b_end and b_start < a_end


def test_no_lock_error_in_either_run(backfills):
    assert backfills["lock_errors"] == {run_id: [] for run_id in backfills["lock_errors"]}


def test_pool_steps_of_the_two_runs_never_overlap(backfills):
    (a, b) = backfills["intervals"].values()
    for pool, steps in POOLS.items():
        for step_a in steps:
            for step_b in steps:
                (a_start, a_end), (b_start, b_end) = a[step_a], b[step_b]
                assert a_end <= b_start or b_end <= a_start, (pool, step_a, step_b)
    assert backfills["slots_left"] == set()


def test_the_lake_stays_consistent(backfills):
    reader = backfills["reader"]
    assert reader.problems == [] and reader.versions_checked > 0
    assert lake_problems(backfills["data_dir"] / "lake") == []


def test_final_tables_equal_the_reference(backfills):
    assert backfills["checksums"] == backfills["reference"].checksums
    assert (backfills["rows_lost"], backfills["duplicates"]) == (0, 0)
