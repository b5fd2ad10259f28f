"""The access log formats and their parser: a day's log file -> rows of `web_raw.access_logs`
and rejected lines with their reason. Pure Python (no Dagster, no Spark): the Spark cleaning runs
it in its Python workers, one file at a time.

Three formats, mixed freely within a file:

    combined  203.0.113.7 - frank [04/Mar/2024:10:15:32 +0900] "GET /p?x=1 HTTP/1.1" 200 5123 "https://r/" "UA"
    common    203.0.113.7 - - [04/Mar/2024:10:15:32 +0900] "GET /index.html HTTP/1.0" 304 -
    legacy    203.0.113.7 - - [2024-03-04 10:15:32] "GET /a/b.html" 200 5123 "UA"

A line has the common shape (client, two fields, a bracketed timestamp, a quoted request, status,
size) followed by two quoted fields (combined: referrer, user agent), none (common) or one
(legacy: user agent). The legacy timestamp has no offset: it is in the partition's time zone.

A line is rejected with the first reason that applies, in this order: invalid_utf8,
unparseable_line (no format matches), bad_client, bad_timestamp, bad_status (outside 100-599),
bad_size, outside_partition_day (its local date is not the partition day: log rotation lag).
Empty lines are skipped (they still count in line numbers); identical lines are kept.

Everything that repeats (timestamps, clients, user agents, visitor ids) is computed once per
distinct value: a day has millions of lines but tens of thousands of clients and a few thousand
user agents.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from stock_platform.defs.web_traffic.sources.privacy import client_network, visitor_id
from stock_platform.defs.web_traffic.sources.user_agents import user_agent_fields

_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
LINE = re.compile(
    r"([^ ]+) [^ ]+ [^ ]+ \[([^\]]*)\] " + _QUOTED + r" ([^ ]+) ([^ ]+)"
    r"(?: " + _QUOTED + r"(?: " + _QUOTED + r")?)?"
)
_APACHE_TIME = re.compile(
    r"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)
_LEGACY_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_MONTHS = {name: number for number, name in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1)}
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_METHOD = re.compile(r"[A-Z]+")
_UNESCAPE = re.compile(r'\\(["\\])')
_SIZE = re.compile(r"[0-9]{1,19}")
_STATUS = re.compile(r"[0-9]{3}")

COLUMNS = (
    "log_date", "ts", "client_prefix", "visitor_id", "method", "path", "query", "protocol",
    "status", "response_bytes", "referrer", "user_agent", "browser_family", "browser_major",
    "os_family", "device_family", "is_bot", "source_file", "line_number",
)
REJECTED_COLUMNS = ("source_file", "line_number", "reason", "line")


@dataclass(frozen=True)
class ParsedFile:
    """A file's rows (column -> values, the access_logs columns) and rejected lines (column ->
    values: source_file, line_number, reason, and the line's bytes as received)."""

    rows: dict[str, list[Any]]
    rejected: dict[str, list[Any]]

    @property
    def row_count(self) -> int:
        return len(self.rows["line_number"])

    @property
    def rejected_count(self) -> int:
        return len(self.rejected["line_number"])


def _columns(names: tuple[str, ...], records: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    if not records:
        return {name: [] for name in names}
    return dict(zip(names, map(list, zip(*records))))


def nonempty_lines(data: bytes) -> int:
    """The lines of a file the parser reads (a row or a rejected line each)."""
    return sum(1 for line in data.split(b"\n") if line not in (b"", b"\r"))


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text


def _absent(text: str | None) -> str | None:
    """A referrer or user agent: NULL when absent, empty or '-'."""
    if text is None or text in ("", "-"):
        return None
    return _unescape(text)


def split_request(request: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(method, path, query, protocol) of `METHOD TARGET [PROTOCOL]`; all None for a request of
    any other shape (a TLS probe, '-')."""
    parts = request.split(" ")
    if len(parts) not in (2, 3) or not all(parts) or not _METHOD.fullmatch(parts[0]):
        return None, None, None, None
    target = parts[1]
    path, question, query = target.partition("?")
    return parts[0], path, (query if question else None), (parts[2] if len(parts) == 3 else None)


class LogParser:
    """Parses the files of partition days in `timezone`, keying visitor ids with `salt`."""

    def __init__(self, timezone: str, salt: bytes):
        self.zone = ZoneInfo(timezone)
        self.salt = salt
        self._times: dict[tuple[str, bool], tuple[dt.datetime, dt.date] | None] = {}
        self._clients: dict[str, tuple[str, str] | None] = {}
        self._visitors: dict[tuple[str, str | None], str] = {}
        self._offsets: dict[int, int] = {}
        self._wall_offsets: dict[int, int] = {}

    def parse(self, data: bytes, source_file: str, day: dt.date) -> ParsedFile:
        rows: list[tuple[Any, ...]] = []
        rejected: list[tuple[str, int, str, bytes]] = []
        try:
            lines: list[Any] = data.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            lines = data.split(b"\n")  # decoded line by line: only the broken lines are rejected
        parse_line = self._parse_line
        for number, line in enumerate(lines, start=1):
            text: str
            if isinstance(line, bytes):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    rejected.append((source_file, number, "invalid_utf8", line.removesuffix(b"\r")))
                    continue
            else:
                text = line
            if text.endswith("\r"):
                text = text[:-1]
            if not text:
                continue
            row = parse_line(text, day)
            if isinstance(row, str):
                rejected.append((source_file, number, row, text.encode()))
            else:
                rows.append((*row, source_file, number))
        return ParsedFile(_columns(COLUMNS, rows), _columns(REJECTED_COLUMNS, rejected))

    def _parse_line(self, text: str, day: dt.date) -> tuple[Any, ...] | str:
        """The line's columns (all but source_file and line_number), or why it is rejected."""
        match = LINE.fullmatch(text)
        if match is None:
            return "unparseable_line"
        client, stamp, request, status, size, first_quoted, second_quoted = match.groups()
        legacy = first_quoted is not None and second_quoted is None
        if client in self._clients:
            network = self._clients[client]
        else:
            network = self._clients[client] = client_network(client)
        if network is None:
            return "bad_client"
        instant = self._time(stamp, legacy)
        if instant is None:
            return "bad_timestamp"
        if not _STATUS.fullmatch(status) or not 100 <= int(status) <= 599:
            return "bad_status"
        if size != "-" and not (_SIZE.fullmatch(size) and int(size) < 2**63):  # fits INT64
            return "bad_size"
        ts, local_day = instant
        if local_day != day:
            return "outside_partition_day"
        referrer = None if legacy else _absent(first_quoted)
        user_agent = _absent(first_quoted if legacy else second_quoted)
        ip, prefix = network
        key = (ip, user_agent)
        visitor = self._visitors.get(key)
        if visitor is None:
            visitor = self._visitors[key] = visitor_id(self.salt, ip, user_agent)
        return (
            day, ts, prefix, visitor, *split_request(_unescape(request)), int(status),
            0 if size == "-" else int(size), referrer, user_agent, *user_agent_fields(user_agent),
        )

    def _time(self, stamp: str, legacy: bool) -> tuple[dt.datetime, dt.date] | None:
        """(UTC instant as a naive datetime, its date in the partition zone), None if invalid."""
        key = (stamp, legacy)
        if key not in self._times:
            self._times[key] = self._parse_time(stamp, legacy)
        return self._times[key]

    def _parse_time(self, stamp: str, legacy: bool) -> tuple[dt.datetime, dt.date] | None:
        # Arithmetic on seconds, not a zone-aware datetime per timestamp: a day has 86,400
        # distinct ones. Time zone offsets change on multiples of 15 minutes, so the zone is
        # asked once per 15-minute block.
        if legacy:
            match = _LEGACY_TIME.fullmatch(stamp)
            if match is None:
                return None
            y, mon, d, hh, mm, ss = map(int, match.groups())
        else:
            match = _APACHE_TIME.fullmatch(stamp)
            if match is None or match.group(2) not in _MONTHS:
                return None
            d, y, hh, mm, ss = (int(match.group(i)) for i in (1, 3, 4, 5, 6))
            mon = _MONTHS[match.group(2)]
            sign, oh, om = match.group(7), int(match.group(8)), int(match.group(9))
            if oh > 23 or om > 59:
                return None
        if hh > 23 or mm > 59 or ss > 59:
            return None
        try:
            day_seconds = (dt.date(y, mon, d).toordinal() - _EPOCH_ORDINAL) * 86400
        except ValueError:  # day 31 of a 30-day month, ...
            return None
        clock = day_seconds + hh * 3600 + mm * 60 + ss
        if legacy:
            offset = self._wall_offset(clock // 900)  # the wall clock in the partition zone
        else:
            offset = (oh * 3600 + om * 60) * (-1 if sign == "-" else 1)
        epoch = clock - offset
        local = epoch + self._utc_offset(epoch // 900)
        return _EPOCH + dt.timedelta(seconds=epoch), dt.date.fromordinal(local // 86400 + _EPOCH_ORDINAL)

    def _utc_offset(self, block: int) -> int:
        """The zone's UTC offset (seconds) during the 15-minute block `block` of UTC time."""
        offset = self._offsets.get(block)
        if offset is None:
            instant = dt.datetime.fromtimestamp(block * 900, self.zone)
            offset = self._offsets[block] = int(instant.utcoffset().total_seconds())  # type: ignore[union-attr]
        return offset

    def _wall_offset(self, block: int) -> int:
        """The zone's UTC offset during the 15-minute block `block` of wall-clock time (where a
        change of offset skips or repeats wall times, the offset before it, as Python reads them)."""
        offset = self._wall_offsets.get(block)
        if offset is None:
            wall = (_EPOCH + dt.timedelta(seconds=block * 900)).replace(tzinfo=self.zone)
            offset = self._wall_offsets[block] = int(wall.utcoffset().total_seconds())  # type: ignore[union-attr]
        return offset
