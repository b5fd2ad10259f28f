import datetime as dt
import os

from stock_platform.platform.lake import CLEAN, RAW, Lake, Manifest, new_version

DAY = dt.date(2024, 3, 4)


def write_version(lake: Lake, payload: bytes) -> tuple[str, list[str]]:
    version = new_version()
    name = f"v={version}/page-00001.json.gz"
    lake.write_bytes(f"{lake.partition_dir(RAW, DAY)}/{name}", payload)
    return version, [name]


def test_publish_makes_a_version_visible(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.manifest(RAW, DAY) is None and lake.files(RAW, DAY) == []
    version, names = write_version(lake, b"one")
    lake.publish(Manifest(RAW, DAY, version, names, rows=1))
    assert lake.manifest(RAW, DAY).version == version
    assert [open(path, "rb").read() for path in lake.files(RAW, DAY)] == [b"one"]


def test_a_killed_writer_leaves_the_previous_version_visible(tmp_path):
    lake = Lake(str(tmp_path))
    old, names = write_version(lake, b"old")
    lake.publish(Manifest(RAW, DAY, old, names, rows=1))
    write_version(lake, b"half-written")  # the writer dies before publishing
    assert [open(path, "rb").read() for path in lake.files(RAW, DAY)] == [b"old"]


def test_replacing_keeps_the_previous_version_for_readers_and_collects_older_ones(tmp_path):
    lake = Lake(str(tmp_path))
    versions = []
    for payload in (b"v1", b"v2", b"v3"):
        version, names = write_version(lake, payload)
        lake.publish(Manifest(RAW, DAY, version, names, rows=1))
        versions.append(version)
    folder = tmp_path / lake.partition_dir(RAW, DAY)
    kept = sorted(p.name for p in folder.iterdir() if p.name.startswith("v="))
    assert kept == [f"v={versions[1]}", f"v={versions[2]}"]
    assert [open(path, "rb").read() for path in lake.files(RAW, DAY)] == [b"v3"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_adopt_moves_staged_files_into_a_version(tmp_path):
    lake = Lake(str(tmp_path))
    staged = tmp_path / "_staging" / "run" / "part-0-abc.c000.zstd.parquet"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"parquet")
    version = new_version()
    names = lake.adopt([str(staged)], CLEAN, DAY, version)
    assert names == [f"v={version}/part-00000.zstd.parquet"]
    assert not staged.exists()
    lake.publish(Manifest(CLEAN, DAY, version, names, rows=1))
    assert os.path.exists(lake.files(CLEAN, DAY)[0])


def test_versions_sort_by_creation_time():
    first, second = new_version(), new_version()
    assert first < second
