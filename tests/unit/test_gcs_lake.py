"""The same Lake code on local disk and in GCS (gcp-storage-emulator on 127.0.0.1, through gcsfs):
round trips, atomic partition replacement on a store without rename, garbage collection, and the
raw ingestion asset materialized into GCS with STOCK_PLATFORM_ENV=gcp."""

import datetime as dt
import gzip
import json
from unittest import mock

import dagster as dg
import pytest
from fixtures.gcs_emulator import gcs_emulator  # noqa: F401 (fixture)

from stock_platform.defs.stock_prices import schema
from stock_platform.defs.stock_prices.ingestion import raw_stock_prices
from stock_platform.defs.stock_prices.resources import SyntheticSourceResource
from stock_platform.platform.lake import Lake, Manifest, PublishConflict, new_version
from stock_platform.platform.resources import build_resources
from stock_platform.platform.resources.gcp import GcsLakeResource
from stock_platform.platform.settings import PlatformSettings, parse

# Lake datasets are named by the domains; the Lake itself does not care.
RAW, CLEAN, REJECTED = "raw/test_prices", "clean/test_prices", "rejected/test_prices"
DAY = dt.date(2024, 3, 4)
PAGES = 3


@pytest.fixture(params=["local", "gcs"])
def lake(request, tmp_path):
    if request.param == "local":
        return Lake(str(tmp_path / "lake"))
    return Lake(request.getfixturevalue("gcs_emulator")())


def write_version(lake: Lake, tag: str) -> Manifest:
    """Writes a version of PAGES pages without publishing it (what a killed writer leaves)."""
    version = new_version()
    names = [f"v={version}/page-{page:05d}.json.gz" for page in range(PAGES)]
    for page, name in enumerate(names):
        lake.write_bytes(f"{lake.partition_dir(RAW, DAY)}/{name}", f"{tag}/{page}".encode())
    return Manifest(RAW, DAY, version, names, rows=PAGES)


def read_partition(lake: Lake) -> list[str]:
    return [lake.fs.cat_file(uri).decode() for uri in lake.files(RAW, DAY)]


def versions_stored(lake: Lake) -> list[str]:
    lake.fs.invalidate_cache()
    entries = lake.fs.ls(lake.uri(lake.partition_dir(RAW, DAY)), detail=False)
    return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries if "/v=" in e)


def test_the_gcs_lake_is_backed_by_gcsfs(lake):
    assert lake.is_local != lake.root.startswith("gs://")
    assert type(lake.fs).__name__ == ("LocalFileSystem" if lake.is_local else "GCSFileSystem")


def test_pages_are_written_published_and_read_back(lake):
    assert lake.manifest(RAW, DAY) is None and lake.files(RAW, DAY) == []
    lake.publish(write_version(lake, "one"))
    assert read_partition(lake) == ["one/0", "one/1", "one/2"]
    assert all(uri.startswith(lake.root) for uri in lake.files(RAW, DAY))


def test_a_killed_write_leaves_the_old_version_and_is_collected_later(lake):
    old = write_version(lake, "old")
    lake.publish(old)
    killed = write_version(lake, "killed")  # files written, manifest never replaced
    assert read_partition(lake) == ["old/0", "old/1", "old/2"]
    assert lake.manifest(RAW, DAY).version == old.version
    for tag in ("new", "newer"):
        lake.publish(write_version(lake, tag))
    assert read_partition(lake) == ["newer/0", "newer/1", "newer/2"]
    assert f"v={killed.version}" not in versions_stored(lake)


def test_old_versions_are_collected_keeping_the_previous_one(lake):
    published = []
    for tag in ("v1", "v2", "v3", "v4"):
        published.append(write_version(lake, tag))
        lake.publish(published[-1])
    assert versions_stored(lake) == [f"v={m.version}" for m in published[-2:]]


def test_a_reader_never_sees_a_half_written_partition(lake):
    lake.publish(write_version(lake, "old"))
    old_pages = ["old/0", "old/1", "old/2"]
    version, names = new_version(), []
    for page in range(PAGES):
        names.append(f"v={version}/page-{page:05d}.json.gz")
        lake.write_bytes(f"{lake.partition_dir(RAW, DAY)}/{names[-1]}", f"new/{page}".encode())
        assert read_partition(lake) == old_pages  # mid-write, readers still get the old version
    old_files = lake.files(RAW, DAY)  # a reader that read the manifest just before publishing
    lake.publish(Manifest(RAW, DAY, version, names, rows=PAGES))
    assert read_partition(lake) == ["new/0", "new/1", "new/2"]
    assert [lake.fs.cat_file(uri).decode() for uri in old_files] == old_pages


def test_the_files_of_a_manifest_read_earlier_stay_those_of_its_version(lake):
    lake.publish(write_version(lake, "old"))
    read = lake.manifest(RAW, DAY)  # e.g. the warehouse load: row count and files from one read
    lake.publish(write_version(lake, "new"))
    assert [lake.fs.cat_file(uri).decode() for uri in lake.version_files(RAW, DAY, read)] == [
        "old/0", "old/1", "old/2"]
    assert read_partition(lake) == ["new/0", "new/1", "new/2"]


def test_adopt_moves_staged_files_into_a_version(lake):
    staged = [lake.uri(f"_staging/run/dt={DAY}/part-{n}-abc.c000.zstd.parquet") for n in (1, 0)]
    for uri in staged:
        lake.write_bytes(uri.removeprefix(lake.root + "/"), uri.encode())
    version = new_version()
    names = lake.adopt(staged, CLEAN, DAY, version)
    assert names == [f"v={version}/part-00000.zstd.parquet", f"v={version}/part-00001.zstd.parquet"]
    assert not any(lake.fs.exists(uri) for uri in staged)
    lake.publish(Manifest(CLEAN, DAY, version, names, rows=2))
    assert [lake.fs.cat_file(uri) for uri in lake.files(CLEAN, DAY)] == [s.encode() for s in sorted(staged)]


def test_a_publish_with_the_state_it_read_replaces_the_manifest(lake):
    assert lake.publish_state(RAW, DAY) == ""
    first = write_version(lake, "one")
    lake.publish(first, expected="")
    state = lake.publish_state(RAW, DAY)
    assert state != ""
    lake.publish(write_version(lake, "two"), expected=state)
    assert read_partition(lake) == ["two/0", "two/1", "two/2"]
    assert lake.publish_state(RAW, DAY) != state


def test_two_overlapping_writers_never_interleave_their_clean_and_rejected_versions(tmp_path):
    """Both read the state of clean/ and rejected/ before publishing either; A publishes clean/,
    B's clean/ then fails, A's rejected/ succeeds: the day is all A's. (The GCS emulator ignores
    preconditions: on GCS, what is sent is checked below.)"""
    lake = Lake(str(tmp_path / "lake"))
    states = {name: {ds: lake.publish_state(ds, DAY) for ds in (CLEAN, REJECTED)} for name in "AB"}

    def version(dataset: str, tag: str) -> Manifest:
        return Manifest(dataset, DAY, new_version(), [], rows=0, details={"run": tag})

    lake.publish(version(CLEAN, "A"), expected=states["A"][CLEAN])
    with pytest.raises(PublishConflict, match="published by another run"):
        lake.publish(version(CLEAN, "B"), expected=states["B"][CLEAN])
    lake.publish(version(REJECTED, "A"), expected=states["A"][REJECTED])
    with pytest.raises(PublishConflict):
        lake.publish(version(REJECTED, "B"), expected=states["B"][REJECTED])
    assert {lake.manifest(ds, DAY).details["run"] for ds in (CLEAN, REJECTED)} == {"A"}


def test_on_gcs_the_manifest_is_uploaded_with_the_generation_read_as_its_precondition():
    from google.api_core.exceptions import PreconditionFailed

    # Nothing published before, nothing to collect after.
    lake = Lake("gs://stock-lake/prod", fs=mock.Mock(**{"cat_file.side_effect": FileNotFoundError,
                                                         "ls.side_effect": FileNotFoundError}))
    manifest = Manifest(CLEAN, DAY, new_version(), [], rows=0)
    with mock.patch("google.cloud.storage.Client") as client_class:
        blob = client_class.return_value.bucket.return_value.blob.return_value
        lake.publish(manifest, expected="1712345678901234")
        client_class.return_value.bucket.assert_called_with("stock-lake")
        client_class.return_value.bucket.return_value.blob.assert_called_with(
            f"prod/{CLEAN}/dt={DAY}/_manifest.json")
        assert blob.upload_from_string.call_args.kwargs["if_generation_match"] == 1712345678901234
        lake.publish(manifest, expected="")  # nothing published yet: the object must not exist
        assert blob.upload_from_string.call_args.kwargs["if_generation_match"] == 0
        blob.upload_from_string.side_effect = PreconditionFailed("conditionNotMet")
        with pytest.raises(PublishConflict, match="gs://stock-lake/prod/clean/test_prices/dt=2024-03-04"):
            lake.publish(manifest, expected="1712345678901234")


def test_raw_stock_prices_materializes_into_gcs(gcs_emulator):  # noqa: F811
    lake_uri = gcs_emulator()
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_ENV": "gcp", "GCP_PROJECT": "test-project",
                                        "BQ_LOCATION": "asia-northeast3", "GCS_LAKE_URI": lake_uri})
    resources = build_resources(settings)
    assert isinstance(resources["lake"], GcsLakeResource)
    # 2024-04-10 is a KRX holiday (election day): published as market closed, no pages.
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [raw_stock_prices],
            resources={**resources, "stock_source": SyntheticSourceResource(seed=7, page_size=1000)},
            tags={
                "dagster/asset_partition_range_start": "2024-04-09",
                "dagster/asset_partition_range_end": "2024-04-11",
            },
            instance=instance,
        )
        assert result.success
    lake = Lake(lake_uri)
    closed = lake.manifest(schema.RAW, dt.date(2024, 4, 10))
    assert (closed.status, closed.files, closed.rows) == ("market_closed", [], 0)
    for day in (dt.date(2024, 4, 9), dt.date(2024, 4, 11)):
        manifest = lake.manifest(schema.RAW, day)
        assert manifest.status == "ok" and manifest.rows > 0
        rows = 0
        for uri in lake.files(schema.RAW, day):
            assert uri.startswith(f"{lake_uri}/{schema.RAW}/dt={day}/v={manifest.version}/")
            body = json.loads(gzip.decompress(lake.fs.cat_file(uri)))
            items = body["response"]["body"]["items"]["item"]
            assert {item["basDt"] for item in items} == {day.strftime("%Y%m%d")}
            rows += len(items)
        assert rows == manifest.rows
