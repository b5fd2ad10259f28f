"""The reference reading of the access log contract (tests/fixtures/web_logs.py) on hand-written
lines: every format, escape, address form, offset and rejection reason, and their precedence."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from fixtures.web_logs import COLUMNS, REASONS, parse_file

from stock_platform.defs.web_traffic.schema import ACCESS_LOGS, REJECT_REASONS

DAY = dt.date(2024, 3, 4)
ZONE = "Asia/Seoul"
SALT = b"test-salt"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def parse(*lines: str | bytes, ending: bytes = b"\n", day: dt.date = DAY):
    data = ending.join(line.encode() if isinstance(line, str) else line for line in lines) + ending
    return parse_file(data, "web-1.log", day, ZONE, SALT)


def row(line: str | bytes, **kwargs) -> dict:
    rows, rejected = parse(line, **kwargs)
    assert rejected == [] and len(rows) == 1, rejected
    return rows[0]


def reason(line: str | bytes, **kwargs) -> str:
    rows, rejected = parse(line, **kwargs)
    assert rows == [] and len(rejected) == 1
    return rejected[0]["reason"]


def expected_visitor(ip: str, user_agent: str | None) -> str:
    return hmac.new(SALT, f"{ip}|{user_agent or ''}".encode(), hashlib.sha256).hexdigest()[:32]


def test_contract_columns_and_reasons():
    assert tuple(column.name for column in ACCESS_LOGS.columns) == COLUMNS
    assert REASONS == REJECT_REASONS


def test_combined_line():
    line = (
        '203.0.113.7 - frank [04/Mar/2024:10:15:32 +0900] "GET /products/123?ref=mail HTTP/1.1" 200 5123 '
        f'"https://www.google.com/" "{CHROME}"'
    )
    assert row(line) == {
        "log_date": DAY,
        "ts": dt.datetime(2024, 3, 4, 1, 15, 32),
        "client_prefix": "203.0.113.0/24",
        "visitor_id": expected_visitor("203.0.113.7", CHROME),
        "method": "GET",
        "path": "/products/123",
        "query": "ref=mail",
        "protocol": "HTTP/1.1",
        "status": 200,
        "response_bytes": 5123,
        "referrer": "https://www.google.com/",
        "user_agent": CHROME,
        "browser_family": "Chrome",
        "browser_major": "122",
        "os_family": "Windows",
        "device_family": "Other",
        "is_bot": False,
        "source_file": "web-1.log",
        "line_number": 1,
    }


def test_common_line_has_no_referrer_or_user_agent():
    r = row('203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET /index.html HTTP/1.0" 304 -')
    assert (r["method"], r["path"], r["query"], r["protocol"]) == ("GET", "/index.html", None, "HTTP/1.0")
    assert (r["status"], r["response_bytes"], r["referrer"], r["user_agent"]) == (304, 0, None, None)
    assert [r[c] for c in ("browser_family", "browser_major", "os_family", "device_family")] == [None] * 4
    assert r["is_bot"] is None
    assert r["visitor_id"] == expected_visitor("203.0.113.7", None) == expected_visitor("203.0.113.7", "")


def test_legacy_line_is_local_time_without_protocol():
    r = row(f'203.0.113.7 - - [2024-03-04 10:15:32] "GET /a/b.html" 200 5123 "{CHROME}"')
    assert r["ts"] == dt.datetime(2024, 3, 4, 1, 15, 32)
    assert (r["method"], r["path"], r["query"], r["protocol"]) == ("GET", "/a/b.html", None, None)
    assert (r["referrer"], r["user_agent"], r["browser_family"]) == (None, CHROME, "Chrome")
    # The protocol is kept as written in any format.
    assert row(f'203.0.113.7 - - [2024-03-04 10:15:32] "GET /a HTTP/1.1" 200 1 "{CHROME}"')["protocol"] == "HTTP/1.1"


def test_quoted_fields_unescape_quote_and_backslash_only():
    line = (
        r'203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET /search?q=\"rain\"&x=a\\b\x41 HTTP/1.1" 200 1 '
        r'"https://ex.kr/\"r\"" "Mozilla/5.0 (compatible; \"Scanner\" \\ \x16\x03)"'
    )
    r = row(line)
    assert r["path"] == "/search"
    assert r["query"] == 'q="rain"&x=a\\b\\x41'
    assert r["referrer"] == 'https://ex.kr/"r"'
    assert r["user_agent"] == 'Mozilla/5.0 (compatible; "Scanner" \\ \\x16\\x03)'


@pytest.mark.parametrize(
    "request_text",
    [r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "-", "GET", "", "GET / HTTP/1.1 extra", "get / HTTP/1.1"],
)
def test_requests_of_another_shape_are_kept_with_null_parts(request_text):
    r = row(f'203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "{request_text}" 400 157 "-" "-"')
    assert (r["method"], r["path"], r["query"], r["protocol"]) == (None, None, None, None)
    assert (r["status"], r["response_bytes"], r["referrer"], r["user_agent"]) == (400, 157, None, None)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/a", "/a", None),
        ("/a?", "/a", ""),
        ("/a?b=1?c", "/a", "b=1?c"),
        ("/%EB%85%B8%ED%8A%B8?q=%20", "/%EB%85%B8%ED%8A%B8", "q=%20"),
        ("?x", "", "x"),
        ("http://example.com/p?q", "http://example.com/p", "q"),
    ],
)
def test_path_and_query(target, path, query):
    r = row(f'203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "POST {target} HTTP/2.0" 200 0')
    assert (r["method"], r["path"], r["query"], r["protocol"]) == ("POST", path, query, "HTTP/2.0")


@pytest.mark.parametrize(
    ("client", "canonical", "prefix"),
    [
        ("203.0.113.7", "203.0.113.7", "203.0.113.0/24"),
        ("2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::/48"),
        ("2001:DB8:85A3:0:0:8A2E:0370:7334", "2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::/48"),
        ("::ffff:203.0.113.7", "203.0.113.7", "203.0.113.0/24"),
        ("::1", "::1", "::/48"),
    ],
)
def test_clients(client, canonical, prefix):
    r = row(f'{client} - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "{CHROME}"')
    assert r["client_prefix"] == prefix
    assert r["visitor_id"] == expected_visitor(canonical, CHROME)
    assert len(r["visitor_id"]) == 32 and r["visitor_id"] == r["visitor_id"].lower()


@pytest.mark.parametrize(
    ("stamp", "utc", "accepted"),
    [
        ("04/Mar/2024:00:00:00 +0900", dt.datetime(2024, 3, 3, 15, 0, 0), True),
        ("03/Mar/2024:15:00:00 +0000", dt.datetime(2024, 3, 3, 15, 0, 0), True),
        ("03/Mar/2024:14:59:59 +0000", None, False),
        ("03/Mar/2024:14:00:00 -0500", dt.datetime(2024, 3, 3, 19, 0, 0), True),
        ("04/Mar/2024:20:30:00 +0530", dt.datetime(2024, 3, 4, 15, 0, 0), False),
        ("04/Mar/2024:20:29:59 +0530", dt.datetime(2024, 3, 4, 14, 59, 59), True),
        ("04/Mar/2024:23:59:59 +0900", dt.datetime(2024, 3, 4, 14, 59, 59), True),
        ("05/Mar/2024:00:00:00 +0900", None, False),
        ("2024-03-04 00:00:00", dt.datetime(2024, 3, 3, 15, 0, 0), True),
        ("2024-03-04 23:59:59", dt.datetime(2024, 3, 4, 14, 59, 59), True),
        ("2024-03-03 23:59:59", None, False),
    ],
)
def test_timestamps_convert_to_utc_and_their_day_in_the_zone(stamp, utc, accepted):
    tail = f' "{CHROME}"' if "-" in stamp[:5] else ' "-" "-"'
    line = f'203.0.113.7 - - [{stamp}] "GET / HTTP/1.1" 200 10' + tail
    if accepted:
        assert row(line)["ts"] == utc
    else:
        assert reason(line) == "outside_partition_day"


def test_legacy_timestamps_follow_the_zone_given():
    line = f'203.0.113.7 - - [2024-07-04 10:15:32] "GET / HTTP/1.1" 200 10 "{CHROME}"'
    rows, _ = parse_file(line.encode(), "x.log", dt.date(2024, 7, 4), "America/New_York", SALT)
    assert rows[0]["ts"] == dt.datetime(2024, 7, 4, 14, 15, 32)  # EDT, UTC-4


def test_size_and_status():
    base = '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" {} {}'
    assert row(base.format(100, "-"))["response_bytes"] == 0
    assert row(base.format(599, "0"))["status"] == 599
    assert row(base.format(200, str(2**63 - 1)))["response_bytes"] == 2**63 - 1
    for status in ("99", "600", "777", "abc", "2OO", "-", "+200", "２００", "0200", "20"):
        assert reason(base.format(status, "10")) == "bad_status", status
    for size in ("12KB", "-1", "1.5", str(2**63), "--", "１"):
        assert reason(base.format(200, size)) == "bad_size", size


@pytest.mark.parametrize(
    "stamp",
    [
        "31/Feb/2024:10:15:32 +0900",
        "04/mar/2024:10:15:32 +0900",
        "04/Mar/2024:24:00:00 +0900",
        "04/Mar/2024:10:15:32",
        "04/Mar/2024:10:15:32 +09:00",
        "04/Mar/2024:10:15:32 +0960",
        "4/Mar/2024:10:15:32 +0900",
        "2024-03-04 10:15:32",  # a legacy timestamp in a combined line
        "",
        "-",
    ],
)
def test_bad_timestamps(stamp):
    assert reason(f'203.0.113.7 - - [{stamp}] "GET / HTTP/1.1" 200 10 "-" "-"') == "bad_timestamp"


@pytest.mark.parametrize(
    "stamp", ["2024-03-04 24:00:07", "2024-02-30 10:00:00", "2024-03-04T10:15:32", "04/Mar/2024:10:15:32 +0900"]
)
def test_bad_legacy_timestamps(stamp):
    assert reason(f'203.0.113.7 - - [{stamp}] "GET /cart" 200 10 "{CHROME}"') == "bad_timestamp"


@pytest.mark.parametrize("client", ["999.1.1.1", "203.0.113", "example.com", "-", "01.2.3.4", "2001:db8::g", "[::1]"])
def test_bad_clients(client):
    assert reason(f'{client} - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "-"') == "bad_client"


@pytest.mark.parametrize(
    "line",
    [
        "<html><head><title>502 Bad Gateway</title></head>",
        "-- MARK --",
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "Mozilla/5.0 (Windo',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "-" "extra"',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1"  200 10',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 ',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-""-"',
        "203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] GET / HTTP/1.1 200 10",
        '203.0.113.7 - - 04/Mar/2024:10:15:32 +0900 "GET / HTTP/1.1" 200 10',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900 "GET / HTTP/1.1" 200 10',
        '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1\\" 200 10',
        ' 203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10',
        '203.0.113.7\t- - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10',
    ],
)
def test_unparseable_lines(line):
    assert reason(line) == "unparseable_line"


def test_invalid_utf8_is_kept_as_received():
    line = b'203.0.113.7 - - [2024-03-04 10:15:32] "GET /search?q=' + b'\xed\x95" 200 1 "x"'
    rows, rejected = parse(line, ending=b"\r\n")
    assert rows == []
    assert rejected == [{"source_file": "web-1.log", "line_number": 1, "reason": "invalid_utf8", "line": line}]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"\xff garbage", "invalid_utf8"),  # before unparseable_line
        ('999.1.1.1 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200', "unparseable_line"),
        ('999.1.1.1 - - [31/Feb/2024:10:15:32 +0900] "GET / HTTP/1.1" 777 x', "bad_client"),
        ('203.0.113.7 - - [31/Feb/2024:10:15:32 +0900] "GET / HTTP/1.1" 777 x', "bad_timestamp"),
        ('203.0.113.7 - - [05/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 777 x', "bad_status"),
        ('203.0.113.7 - - [05/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 x', "bad_size"),
        ('203.0.113.7 - - [05/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 1', "outside_partition_day"),
    ],
)
def test_the_first_reason_in_order_wins(line, expected):
    assert reason(line) == expected


def test_line_numbers_count_empty_lines_which_are_skipped():
    ok = '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10'
    data = b"\n".join([b"", ok.encode(), b"", b"", b"garbage", ok.encode()]) + b"\n\n"
    rows, rejected = parse_file(data, "f.log", DAY, ZONE, SALT)
    assert [r["line_number"] for r in rows] == [2, 6]
    assert [(r["line_number"], r["reason"], r["line"]) for r in rejected] == [(5, "unparseable_line", b"garbage")]


def test_crlf_and_a_last_line_without_ending():
    ok = '203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "x"'
    data = (ok + "\r\n\r\n" + ok + "\r\n" + ok).encode()
    rows, rejected = parse_file(data, "f.log", DAY, ZONE, SALT)
    assert rejected == [] and [r["line_number"] for r in rows] == [1, 3, 4]
    assert {r["user_agent"] for r in rows} == {"x"}  # no CR left in the last field


def test_identical_lines_are_all_kept():
    line = f'203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "{CHROME}"'
    rows, _ = parse(line, line, line)
    assert len(rows) == 3 and len({r["line_number"] for r in rows}) == 3
    assert len({tuple(v for k, v in r.items() if k != "line_number") for r in rows}) == 1


def test_user_agent_families_and_bots():
    r = row(f'66.249.66.1 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "{GOOGLEBOT}"')
    assert (r["browser_family"], r["browser_major"], r["device_family"], r["is_bot"]) == (
        "Googlebot",
        "2",
        "Spider",
        True,
    )
    r = row('203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "-" "made-up agent"')
    assert (r["browser_family"], r["os_family"], r["device_family"], r["is_bot"]) == ("Other", "Other", "Other", False)
    r = row('203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 10 "" ""')
    assert (r["referrer"], r["user_agent"], r["browser_family"], r["is_bot"]) == (None, None, None, None)
