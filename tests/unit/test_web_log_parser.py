"""The production access log parser agrees with the reference reading of the contract
(tests/fixtures/web_logs.py) row for row and rejection for rejection: on generated lines of every
format, address form, offset, escape, size, status, request shape, line ending and garbage, and on
the synthetic site's files."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress

import pytest
from fixtures.web_logs import COLUMNS, parse_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stock_platform.defs.web_traffic.sources.access_log import LogParser
from stock_platform.defs.web_traffic.sources.synthetic_site import SyntheticSite

DAY = dt.date(2024, 3, 4)
ZONES = ["Asia/Seoul", "UTC", "America/New_York"]
SALT = b"property-salt"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0",
]


def production(data: bytes, name: str, day: dt.date, zone: str):
    parsed = LogParser(zone, SALT).parse(data, name, day)
    return parsed.rows.to_pylist(), parsed.rejected.to_pylist()


def assert_same(data: bytes, name: str, day: dt.date, zone: str) -> None:
    rows, rejected = production(data, name, day, zone)
    expected_rows, expected_rejected = parse_file(data, name, day, zone, SALT)
    for row in rows:
        assert tuple(row) == COLUMNS
    assert rejected == expected_rejected
    assert rows == expected_rows


# -- line parts -----------------------------------------------------------------------------------

ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n))
clients = st.one_of(
    ipv4,
    ipv6.map(lambda a: a.compressed),
    ipv6.map(lambda a: a.exploded),
    ipv4.map(lambda a: "::ffff:" + a),
    st.sampled_from(["999.1.1.1", "-", "localhost", "1.2.3", "01.2.3.4", "::ffff:999.1.1.1", "2001:db8::/48"]),
)
# Instants within two days of DAY, and the offsets they are written with.
moments = st.integers(-2 * 86_400, 3 * 86_400).map(lambda s: dt.datetime(2024, 3, 3, 12) + dt.timedelta(seconds=s))
offsets = st.sampled_from([0, 540, -300, -240, 330, 345, -600, 840, -720])


def apache(moment: dt.datetime, minutes: int) -> str:
    local = moment + dt.timedelta(minutes=minutes)
    sign = "-" if minutes < 0 else "+"
    text = f"{local.day:02d}/{MONTHS[local.month - 1]}/{local:%Y:%H:%M:%S}"
    return f"{text} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


bad_stamps = st.sampled_from(
    ["31/Feb/2024:10:00:00 +0900", "04/mar/2024:10:00:00 +0900", "04/Mar/2024:10:00:00", "2024-03-04 24:00:00",
     "2024-02-30 10:00:00", "04/Mar/2024:10:00:00 +09:00", "", "-", "04/Mar/2024:25:00:00 +0000"]
)  # fmt: skip
# Pieces of quoted text: plain characters, a quote or backslash (escaped when written), an escape
# kept as written, and Hangul.
pieces = st.one_of(
    st.text(st.characters(codec="ascii", exclude_characters='"\\\r\n'), max_size=6),
    st.sampled_from(['"', "\\", r"\x16", r"\x03", "한글", "?", " ", "%20", "-"]),
)
quoted_texts = st.lists(pieces, max_size=5).map("".join)


def written(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


methods = st.sampled_from(["GET", "POST", "HEAD", "PUT", "get", "M-SEARCH", ""])
targets = st.one_of(
    st.sampled_from(["/", "/products/123", "/a?", "/a?b=1?c", "/search?q=%EB%85%B8", "?x", "/..\\..\\win.ini"]),
    quoted_texts.map(lambda t: "/" + t),
)
protocols = st.sampled_from(["HTTP/1.1", "HTTP/2.0", "HTTP/1.0", None, "x"])
requests = st.one_of(
    st.tuples(methods, targets, protocols).map(lambda r: " ".join(p for p in r if p is not None)),
    st.sampled_from([r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "-", "", "GET", "GET  / HTTP/1.1"]),
    quoted_texts,
)
statuses = st.one_of(st.integers(0, 999).map(str), st.sampled_from(["0200", "abc", "-", "2OO", "20"]))
sizes = st.one_of(
    st.integers(0, 2**63 - 1).map(str),
    st.sampled_from(["-", "0", "12KB", "-1", str(2**63), "007", "1.5"]),
)
agents = st.one_of(st.sampled_from([*AGENTS, "-", ""]), quoted_texts)
referrers = st.one_of(
    st.sampled_from(["-", "", "https://www.google.com/", "https://m.example-shop.kr/a"]), quoted_texts
)


@st.composite
def lines(draw) -> bytes:
    kind = draw(st.sampled_from(["combined", "common", "legacy", "combined", "garbage", "empty", "bad_utf8"]))
    if kind == "empty":
        return b""
    if kind == "garbage":
        return draw(st.binary(max_size=40).filter(lambda b: b"\n" not in b))
    moment = draw(moments)
    if draw(st.integers(0, 9)) == 0:
        stamp = draw(bad_stamps)
    elif kind == "legacy":
        stamp = f"{moment:%Y-%m-%d %H:%M:%S}"
    else:
        stamp = apache(moment, draw(offsets))
    head = f'{draw(clients)} - {draw(st.sampled_from(["-", "frank"]))} [{stamp}] "{written(draw(requests))}"'
    line = f"{head} {draw(statuses)} {draw(sizes)}"
    if kind == "combined":
        line += f' "{written(draw(referrers))}" "{written(draw(agents))}"'
    elif kind == "legacy":
        line += f' "{written(draw(agents))}"'
    data = line.encode()
    if kind == "bad_utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xed\x95", b"\xc3"])) + data[at:]
    if draw(st.integers(0, 19)) == 0:  # truncated
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(lines(), min_size=1, max_size=12),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
    st.sampled_from(ZONES),
)
def test_generated_lines(body, ending, last_ending, zone):
    data = ending.join(body) + (ending if last_ending else b"")
    assert_same(data, "web-1.log", DAY, zone)


@pytest.mark.parametrize("day", [dt.date(2024, 3, 4), dt.date(2024, 3, 10)])
def test_the_synthetic_sites_files(day):
    site = SyntheticSite(5, 4_000, "Asia/Seoul", ["www.example-shop.kr", "m.example-shop.kr"])
    for name, data in site.day_files(day).items():
        assert_same(gzip.decompress(data) if name.endswith(".gz") else data, name, day, "Asia/Seoul")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.integers(1600, 2400), st.sampled_from([1700, 1900, 2000, 2023, 2024, 2100])),
    st.one_of(st.just(2), st.integers(0, 13)),
    st.one_of(st.integers(28, 31), st.integers(0, 32)),
    st.integers(0, 24 * 3600 - 1), offsets, st.booleans(), st.sampled_from(ZONES),
)
def test_dates_across_the_calendar(year, month, day, second, minutes, legacy, zone):
    """Leap years, month lengths and impossible dates over four centuries: the line of each date is
    read on its own day (or rejected with the same reason) as the reference reading says."""
    clock = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    if legacy:
        stamp, tail = f"{year:04d}-{month:02d}-{day:02d} {clock}", ' "curl/8.4.0"'
    else:
        name = MONTHS[month - 1] if 1 <= month <= 12 else "Foo"
        sign = "-" if minutes < 0 else "+"
        stamp, tail = f"{day:02d}/{name}/{year:04d}:{clock} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}", ""
    try:
        partition = dt.date(year, month, day)
    except ValueError:
        partition = DAY
    line = f'203.0.113.7 - - [{stamp}] "GET / HTTP/1.1" 200 5{tail}'
    assert_same(line.encode(), "web-1.log", partition, zone)
