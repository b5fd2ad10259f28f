"""What only the local lake does, or what test_gcs_lake.py (the same Lake on local disk and in GCS)
does not cover: manifests round-trip, no temporary files are left behind, versions sort by time,
and Parquet row counts come from the footers."""

import datetime as dt
import time

import pyarrow as pa
import pyarrow.parquet as pq

from stock_platform.platform.lake import Lake, Manifest, new_version, parquet_rows

RAW = "raw/test_prices"
DAY = dt.date(2024, 3, 4)


def test_a_manifest_keeps_status_and_details_through_the_lake(tmp_path):
    lake = Lake(str(tmp_path))
    closed = Manifest(RAW, DAY, new_version(), [], 0, "market_closed", {"reason": "KRX holiday"})
    lake.publish(closed)
    assert lake.manifest(RAW, DAY) == closed
    assert lake.files(RAW, DAY) == []
    assert lake.manifest(RAW, DAY + dt.timedelta(days=1)) is None


def test_publishing_leaves_no_temporary_files(tmp_path):
    lake = Lake(str(tmp_path))
    for _ in range(3):
        version = new_version()
        lake.write_bytes(f"{lake.partition_dir(RAW, DAY)}/v={version}/page-00001.json.gz", b"x")
        lake.publish(Manifest(RAW, DAY, version, [f"v={version}/page-00001.json.gz"], rows=1))
    names = [p.name for p in (tmp_path / lake.partition_dir(RAW, DAY)).iterdir()]
    assert not [name for name in names if name.endswith(".tmp")], names
    assert "_manifest.json" in names


def test_versions_sort_by_creation_time():
    versions = []
    for _ in range(3):
        versions.append(new_version())
        time.sleep(0.002)
    assert sorted(versions) == versions and len(set(versions)) == 3


def test_parquet_rows_adds_up_the_files(tmp_path):
    lake = Lake(str(tmp_path))
    uris = []
    for rows in (3, 0, 5):
        uri = str(tmp_path / f"part-{rows}.parquet")
        pq.write_table(pa.table({"x": list(range(rows))}, schema=pa.schema([("x", pa.int64())])), uri)
        uris.append(uri)
    assert parquet_rows(lake, uris) == 8
    assert parquet_rows(lake, []) == 0
