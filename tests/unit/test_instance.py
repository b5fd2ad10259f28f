"""The local instance's event log storage (stock_platform/instance.py): Dagster's SQLite storage with
its connections kept open must still record every event, share them with other processes' views,
and wake the UI's watcher of a live run."""

import datetime
import sqlite3
import threading

import dagster as dg
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import deserialize_value
from dagster._time import datetime_from_timestamp

from stock_platform.cli import instance_yaml
from stock_platform.instance import PooledSqliteEventLogStorage

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def upstream() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[upstream])
def downstream() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 2})


def instance_at(home) -> dg.DagsterInstance:
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(home))
    return dg.DagsterInstance.from_config(str(home))


def test_a_range_run_is_recorded_and_visible_to_another_instance(tmp_path):
    job = dg.Definitions(assets=[upstream, downstream]).resolve_implicit_global_asset_job_def()
    writer, reader = instance_at(tmp_path), instance_at(tmp_path)  # e.g. a run and the webserver
    assert isinstance(writer.event_log_storage, PooledSqliteEventLogStorage)
    for _ in range(2):  # the second run reuses the open connections
        result = job.execute_in_process(instance=writer, tags={
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-20",
        })
        assert result.success
    for key in ("upstream", "downstream"):
        records = reader.fetch_materializations(dg.AssetKey(key), limit=100).records
        assert len(records) == 40, key
        assert reader.get_materialized_partitions(dg.AssetKey(key)) == set(
            PARTITIONS.get_partition_keys_in_range(dg.PartitionKeyRange("2024-01-01", "2024-01-20")))
    assert len(reader.get_runs()) == 2
    writer.dispose()
    reader.dispose()


def test_a_watcher_of_a_live_run_is_woken_by_new_events(tmp_path):
    job = dg.Definitions(assets=[upstream]).resolve_implicit_global_asset_job_def()
    writer, reader = instance_at(tmp_path), instance_at(tmp_path)
    run = job.execute_in_process(instance=writer, partition_key="2024-01-02").dagster_run
    seen, woken = [], threading.Event()

    def callback(entry, cursor):
        message = entry.dagster_event.message if entry.dagster_event else entry.user_message
        seen.append(message)
        if message == "still running":
            woken.set()

    cursor = str(reader.get_records_for_run(run.run_id).cursor)
    reader.event_log_storage.watch(run.run_id, cursor, callback)
    try:
        writer.report_engine_event("still running", run)
        assert woken.wait(30), f"the watcher saw only {seen}"
    finally:
        reader.event_log_storage.end_watch(run.run_id, callback)
        writer.dispose()
        reader.dispose()


RANGE_TAGS = {"dagster/asset_partition_range_start": "2024-01-01",
              "dagster/asset_partition_range_end": "2024-01-20"}


def test_a_range_run_writes_its_planned_events_and_materializations_in_batches(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    job = dg.Definitions(assets=[upstream, downstream]).resolve_implicit_global_asset_job_def()
    instance = instance_at(tmp_path)
    batches = []
    store_batch = instance.event_log_storage.store_event_batch
    monkeypatch.setattr(instance.event_log_storage, "store_event_batch",
                        lambda events: (batches.append([e.dagster_event_type for e in events]), store_batch(events)))
    assert job.execute_in_process(instance=instance, tags=RANGE_TAGS).success
    planned, materialized = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, dg.DagsterEventType.ASSET_MATERIALIZATION
    # One batch of the 40 planned events, then one of 20 materializations per step.
    assert [(len(batch), set(batch)) for batch in batches] == [
        (40, {planned}), (20, {materialized}), (20, {materialized})]
    for key in ("upstream", "downstream"):
        assert len(instance.get_materialized_partitions(dg.AssetKey(key))) == 20
    instance.dispose()


def test_a_failed_batch_commits_nothing_and_its_events_are_written_once_each(tmp_path, monkeypatch):
    job = dg.Definitions(assets=[upstream]).resolve_implicit_global_asset_job_def()
    instance = instance_at(tmp_path)
    storage = instance.event_log_storage
    store_event, writes = storage.store_event, []

    def store_event_failing_in_a_batch(event):
        writes.append(event)
        if storage._batch.current is not None and len(writes) == 5:
            raise OSError("disk I/O error")  # mid-batch, after four events were written
        store_event(event)

    monkeypatch.setattr(storage, "store_event", store_event_failing_in_a_batch)
    run = job.execute_in_process(instance=instance, tags=RANGE_TAGS).dagster_run
    planned = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    assert len(planned) == 20  # the four written before the error were rolled back
    assert len(instance.fetch_materializations(dg.AssetKey("upstream"), limit=100).records) == 20
    instance.dispose()


def test_asset_events_do_not_open_a_database_engine_each(tmp_path, monkeypatch):
    job = dg.Definitions(assets=[upstream, downstream]).resolve_implicit_global_asset_job_def()
    instance = instance_at(tmp_path)
    assert job.execute_in_process(instance=instance, partition_key="2024-01-01").success  # warm
    engines = []
    create_engine = sqlite_event_log.create_engine
    monkeypatch.setattr(sqlite_event_log, "create_engine",
                        lambda *args, **kwargs: engines.append(args) or create_engine(*args, **kwargs))
    assert job.execute_in_process(instance=instance, tags=RANGE_TAGS).success
    # Dagster's SQLite storage asks whether the asset tag table exists with a new engine per
    # asset event (40 here); the answer is kept.
    assert engines == []
    instance.dispose()


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("positive", asset="checked")])
def checked() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="positive", passed=True)])


def test_planned_checks_are_recorded_as_dagster_records_them(tmp_path):
    """The pooled storage writes planned check rows its own (faster) way: the rows must be the
    ones Dagster's SQLite storage writes."""
    job = dg.Definitions(assets=[checked]).resolve_implicit_global_asset_job_def()
    rows = {}
    (tmp_path / "dagster").mkdir()
    for name, instance in [("pooled", instance_at(tmp_path / "pooled")),
                           ("dagster", dg.DagsterInstance.local_temp(str(tmp_path / "dagster")))]:
        assert type(instance.event_log_storage) is (
            PooledSqliteEventLogStorage if name == "pooled" else SqliteEventLogStorage)
        run = job.execute_in_process(instance=instance, tags=RANGE_TAGS).dagster_run
        index = instance.event_log_storage.path_for_shard("index")
        with sqlite3.connect(index) as con:
            found = con.execute(
                "SELECT asset_key, check_name, partition, run_id, execution_status, evaluation_event "
                "FROM asset_check_executions ORDER BY partition").fetchall()
        rows[name] = [(*row[:3], row[3] == run.run_id, row[4],
                       deserialize_value(row[5]).dagster_event.event_type_value if row[5] else None)
                      for row in found]
        instance.dispose()
    planned = [row for row in rows["pooled"] if row[4] == "PLANNED"]
    assert len({row[2] for row in planned}) == len(planned) == 20  # a row per partition
    assert rows["pooled"] == rows["dagster"]


def test_a_batch_leaves_the_asset_key_rows_dagster_leaves(tmp_path, monkeypatch):
    """The pooled storage writes each asset's row once per batch, from the batch's last events:
    the rows must be the ones Dagster's per-event writes leave, and a materialization serialized
    for it once per asset, not once per partition."""
    job = dg.Definitions(assets=[upstream, downstream]).resolve_implicit_global_asset_job_def()
    rows, serialized = {}, []
    (tmp_path / "dagster").mkdir()
    for name, instance in [("pooled", instance_at(tmp_path / "pooled")),
                           ("dagster", dg.DagsterInstance.local_temp(str(tmp_path / "dagster")))]:
        storage = instance.event_log_storage
        entry_values = storage._get_asset_entry_values
        monkeypatch.setattr(storage, "_get_asset_entry_values", lambda event, *args: (
            serialized.append(name) if event.dagster_event.is_step_materialization else None,
            entry_values(event, *args))[1])
        run = job.execute_in_process(instance=instance, tags=RANGE_TAGS).dagster_run
        with sqlite3.connect(storage.path_for_shard("index")) as con:
            found = con.execute(
                "SELECT asset_key, last_materialization, last_run_id, last_materialization_timestamp "
                "FROM asset_keys ORDER BY asset_key").fetchall()
        rows[name] = []
        for key, last, run_id, timestamp in found:
            record = deserialize_value(last)
            entry = record.event_log_entry
            rows[name].append((key, entry.dagster_event.partition, entry.dagster_event_type,
                               run_id == run.run_id, datetime.datetime.fromisoformat(timestamp)
                               == datetime_from_timestamp(entry.timestamp).replace(tzinfo=None)))
        instance.dispose()
    assert rows["pooled"] == [
        ('["downstream"]', "2024-01-20", dg.DagsterEventType.ASSET_MATERIALIZATION, True, True),
        ('["upstream"]', "2024-01-20", dg.DagsterEventType.ASSET_MATERIALIZATION, True, True)]
    assert rows["pooled"] == rows["dagster"]
    assert serialized.count("dagster") == 40 and serialized.count("pooled") == 2
