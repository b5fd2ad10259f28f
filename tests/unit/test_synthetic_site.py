"""The synthetic site's access logs: deterministic bytes, the volume and rhythm of a real shop,
and every format and oddity the parser must handle, read back with the reference parser
(tests/fixtures/web_logs.py)."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import itertools
import re
from zoneinfo import ZoneInfo

import pytest
from fixtures.web_logs import Rejected, is_page_view, parse_file, split_fields

from stock_platform.defs.web_traffic.settings import SYNTHETIC_SITE_HOSTS
from stock_platform.defs.web_traffic.sources.synthetic_site import SyntheticSite

SEED, VOLUME, ZONE, SALT = 11, 20_000, "Asia/Seoul", b"test-salt"
HOSTS = SYNTHETIC_SITE_HOSTS.split(",")
MONDAY, SUNDAY = dt.date(2024, 3, 4), dt.date(2024, 3, 10)


def site(seed: int = SEED, volume: int = VOLUME) -> SyntheticSite:
    return SyntheticSite(seed, volume, ZONE, HOSTS)


def plain(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files' contents, gunzipped, under their delivered names."""
    return {name: gzip.decompress(data) if name.endswith(".gz") else data for name, data in files.items()}


@pytest.fixture(scope="module")
def monday() -> dict[str, bytes]:
    return site().day_files(MONDAY)


@pytest.fixture(scope="module")
def parsed(monday):
    """(rows, rejected) of the Monday's files."""
    rows, rejected = [], []
    for name, data in sorted(plain(monday).items()):
        file_rows, file_rejected = parse_file(data, name, MONDAY, ZONE, SALT)
        rows += file_rows
        rejected += file_rejected
    return rows, rejected


def test_same_seed_and_day_same_bytes_whatever_was_generated_before(monday):
    assert site().day_files(MONDAY) == monday
    other = site()
    other.day_files(SUNDAY)
    other.day_files(MONDAY - dt.timedelta(1))
    assert other.day_files(MONDAY) == monday
    assert site(seed=SEED + 1).day_files(MONDAY) != monday
    assert site().day_files(MONDAY + dt.timedelta(7)) != monday


def test_files_gzip_and_line_endings(monday):
    assert sorted(monday) == ["web-1.log", "web-2.log.gz"]
    assert monday["web-2.log.gz"][:2] == b"\x1f\x8b" and monday["web-2.log.gz"][4:8] == b"\0\0\0\0"  # mtime 0
    files = plain(monday)
    assert b"\r" not in files["web-1.log"] and files["web-1.log"].endswith(b"\n")
    web2 = files["web-2.log.gz"]
    assert web2.endswith(b"\r\n") and web2.count(b"\n") == web2.count(b"\r\n")


def test_volume_about_requests_per_day_with_lighter_weekends():
    generator = site()
    lines = {}
    for n in range(14):
        day = MONDAY + dt.timedelta(n)
        lines[day] = sum(data.count(b"\n") for data in plain(generator.day_files(day)).values())
    mean = sum(lines.values()) / len(lines)
    assert 0.85 * VOLUME < mean < 1.15 * VOLUME
    weekend = [count for day, count in lines.items() if day.weekday() >= 5]
    weekdays = [count for day, count in lines.items() if day.weekday() < 5]
    assert max(weekend) < min(weekdays)
    assert min(weekdays) > 0.85 * VOLUME


def test_every_rejection_reason_and_the_neighbouring_days(parsed, monday):
    _, rejected = parsed
    reasons = collections.Counter(r["reason"] for r in rejected)
    assert set(reasons) == {
        "invalid_utf8",
        "unparseable_line",
        "bad_client",
        "bad_timestamp",
        "bad_status",
        "bad_size",
        "outside_partition_day",
    }
    assert sum(reasons.values()) < 40  # a few
    lines = [r["line"] for r in rejected]
    assert any(line.startswith(b"999.1.1.1 ") for line in lines)
    assert any(b'" 777 ' in line for line in lines)
    # Log rotation lag: the previous day's last seconds and the next day's first ones, each a
    # valid line of its own day.
    late = [r for r in rejected if r["reason"] == "outside_partition_day"]
    days = set()
    for r in late:
        for day in (MONDAY - dt.timedelta(1), MONDAY + dt.timedelta(1)):
            ok, _ = parse_file(r["line"], r["source_file"], day, ZONE, SALT)
            if ok:
                days.add(day)
                local = ok[0]["ts"].replace(tzinfo=dt.UTC).astimezone(ZoneInfo(ZONE))
                assert local.time() >= dt.time(23, 59) or local.time() < dt.time(0, 1)
    assert days == {MONDAY - dt.timedelta(1), MONDAY + dt.timedelta(1)}


def test_formats_per_server(monday):
    formats: dict[str, collections.Counter] = {}
    stamps = collections.Counter()
    for name, data in plain(monday).items():
        formats[name] = collections.Counter()
        for line in data.splitlines():
            try:
                fields = split_fields(line.decode())
            except (Rejected, UnicodeDecodeError):
                continue
            formats[name][fields["format"]] += 1
            stamps[name, fields["timestamp"][-5:]] += 1
    assert set(formats["web-1.log"]) == {"combined"}
    assert set(formats["web-2.log.gz"]) == {"combined", "common", "legacy"}
    assert min(formats["web-2.log.gz"].values()) > 0.1 * sum(formats["web-2.log.gz"].values())
    assert stamps["web-1.log", "+0900"] == sum(formats["web-1.log"].values())
    web2_offsets = {suffix for name, suffix in stamps if name == "web-2.log.gz" and suffix[0] in "+-"}
    assert web2_offsets == {"+0000"}


def test_clients_agents_and_bots(parsed, monday):
    rows, _ = parsed
    raw = b"".join(plain(monday).values())
    assert re.search(rb"^::ffff:\d+\.\d+\.\d+\.\d+ ", raw, re.MULTILINE)
    prefixes = collections.Counter(r["client_prefix"].endswith("/48") for r in rows)
    assert 0.05 < prefixes[True] / len(rows) < 0.3
    families = {r["browser_family"] for r in rows}
    expected = {"Chrome", "Mobile Safari", "Safari", "Firefox", "Edge", "Samsung Internet", "Chrome Mobile"}
    assert expected | {"Googlebot", "bingbot", "Yeti"} <= families
    bots = [r for r in rows if r["is_bot"]]
    assert 0.04 < len(bots) / len(rows) < 0.15
    assert {r["device_family"] for r in bots} == {"Spider"}
    # A visitor keeps one user agent.
    agents = collections.defaultdict(set)
    for r in rows:
        agents[r["visitor_id"]].add(r["user_agent"])
    assert all(len(a) == 1 for a in agents.values())
    assert any(r["user_agent"] and '"' in r["user_agent"] for r in rows)  # written \" in the log
    assert any(r["path"] and "\\" in r["path"] for r in rows) or any(r["query"] and '"' in r["query"] for r in rows)


def test_requests_of_every_kind(parsed):
    rows, _ = parsed
    statuses = collections.Counter(r["status"] for r in rows)
    assert statuses[200] > 0.6 * len(rows)
    assert statuses[304] > 0.02 * len(rows)
    assert {301, 302, 304, 404, 500, 502} <= set(statuses)
    probes = [r for r in rows if r["method"] is None]
    assert len(probes) >= 2 and {r["status"] for r in probes} <= {400, 408}
    assert all(r["path"] is None and r["query"] is None and r["protocol"] is None for r in probes)
    assert {"GET", "POST", "HEAD"} <= {r["method"] for r in rows}
    assert {"HTTP/1.1", "HTTP/2.0", None} <= {r["protocol"] for r in rows}
    assert any(r["query"] is not None for r in rows) and any(r["query"] == "" for r in rows)
    assert any(r["response_bytes"] == 0 and r["status"] == 304 for r in rows)
    paths = {r["path"] for r in rows if r["path"]}
    assets = {p for p in paths if p.rsplit("/", 1)[-1].rsplit(".", 1)[-1] in ("css", "js", "png", "ico")}
    assert {".css", ".js", ".png", ".ico"} <= {"." + p.rsplit(".", 1)[1] for p in assets}
    assert any(p.endswith(".html") for p in paths) and any(p.endswith("/") for p in paths)
    assert any(re.fullmatch(r"/products/\d+", p) for p in paths) and any(p.startswith("/blog/") for p in paths)


def test_dash_sizes_and_empty_lines(monday, parsed):
    files = plain(monday)
    assert re.search(rb'" 304 -\r\n', files["web-2.log.gz"])
    rows, rejected = parsed
    for name, data in files.items():
        lines = data.split(b"\n")[:-1]
        empty = {n for n, line in enumerate(lines, start=1) if line in (b"", b"\r")}
        used = {r["line_number"] for r in rows + rejected if r["source_file"] == name}
        assert empty and used.isdisjoint(empty) and used | empty == set(range(1, len(lines) + 1))


def test_popularity_sessions_and_daily_rhythm(parsed):
    rows, _ = parsed
    views = [r for r in rows if is_page_view(r)]
    assert len(views) > 0.25 * len(rows)
    popularity = collections.Counter(r["path"] for r in views).most_common()
    assert len(popularity) > 150
    assert popularity[0][1] > 10 * popularity[49][1]
    by_visitor = collections.defaultdict(list)
    for r in views:
        by_visitor[r["visitor_id"]].append(r["ts"])
    gaps = []
    for times in by_visitor.values():
        times.sort()
        gaps += [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert sum(g < 1800 for g in gaps) > 0.6 * len(gaps)
    assert sum(g > 1800 for g in gaps) > 0.05 * len(gaps)
    returning = sum(len(t) > 1 for t in by_visitor.values())
    assert returning > 0.3 * len(by_visitor)
    hours = collections.Counter(r["ts"].replace(tzinfo=dt.UTC).astimezone(ZoneInfo(ZONE)).hour for r in views)
    assert hours[21] > 4 * hours[4] and hours[12] > 4 * hours[4]


def test_referrers(parsed):
    rows, _ = parsed
    referrers = {r["referrer"] for r in rows if r["referrer"]}
    hosts = {re.sub(r"^[a-z-]+://([^/]+).*$", r"\1", ref) for ref in referrers}
    for expected in (
        "google.com",
        "naver.com",
        "daum.net",
        "bing.com",
        "facebook.com",
        "instagram.com",
        "t.co",
        "kakao.com",
    ):
        assert any(h == expected or h.endswith("." + expected) for h in hosts), expected
    assert set(HOSTS) <= hosts
    views = [r for r in rows if is_page_view(r)]
    assert 0.1 < sum(r["referrer"] is None for r in views) / len(views) < 0.5


def test_lines_are_mostly_in_time_order(parsed):
    rows, _ = parsed
    for name in ("web-1.log", "web-2.log.gz"):
        times = [r["ts"] for r in sorted(rows, key=lambda r: r["line_number"]) if r["source_file"] == name]
        back = [(a - b).total_seconds() for a, b in itertools.pairwise(times) if b < a]
        assert len(back) < 0.05 * len(times)
        assert max(back) < 60


def test_other_zones_and_small_sites():
    """New York on the day daylight saving time starts: both offsets, every request on its day."""
    day = dt.date(2024, 3, 10)
    files = plain(SyntheticSite(3, 500, "America/New_York", ["shop.example.com"]).day_files(day))
    rows, rejected = parse_file(files["web-1.log"], "web-1.log", day, "America/New_York", SALT)
    assert len(rows) > 300
    assert {r["reason"] for r in rejected} == {"outside_partition_day", "bad_client", "bad_status", "unparseable_line"}
    offsets = collections.Counter(m[1] for m in re.finditer(rb":\d\d ([+-]\d{4})\]", files["web-1.log"]))
    assert set(offsets) == {b"-0500", b"-0400"}
    rows, _ = parse_file(files["web-2.log.gz"], "web-2.log.gz", day, "America/New_York", SALT)
    assert any(r["referrer"] and r["referrer"].startswith("https://shop.example.com/") for r in rows)
