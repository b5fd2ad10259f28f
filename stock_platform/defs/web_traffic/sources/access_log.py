"""The access log formats and their parser: a day's log file -> rows of `web_raw.access_logs`
and rejected lines with their reason. No Dagster, no Spark: the Spark cleaning runs it in its
Python workers, one file at a time.

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

The parser works a column at a time: Arrow's compute functions (RE2 regular expressions) split
and check all lines of a file at once, numpy does the arithmetic of time, and Python sees only the
distinct values (clients, user agents, visitor keys, 15-minute blocks of time): a day has millions
of lines but tens of thousands of clients and a few thousand user agents. Line by line in Python,
the same work took 20 us a line; the Spark job then spent most of its time waiting for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stock_platform.defs.web_traffic.sources.privacy import client_network, visitor_id
from stock_platform.defs.web_traffic.sources.user_agents import user_agent_fields

# A quoted field with its quotes, so that an empty field ("") differs from an absent one.
_QUOTED = r'"[^"\\]*(?:\\.[^"\\]*)*"'
# RE2 extracts the fields of a pattern anchored at the start in one pass if it has at most four
# groups, and several times slower otherwise; a long pattern costs more on a long line. So the
# line is read in two parts: the head up to the size, and the rest of the line after it.
_HEAD = r"^(?P<client>[^ ]+) [^ ]+ [^ ]+ \[(?P<stamp>[^\]]*)\] (?P<request>" + _QUOTED + r") (?P<status>[^ ]+) "
_WITHOUT_HEAD = r"^[^ ]+ [^ ]+ [^ ]+ \[[^\]]*\] " + _QUOTED + r" [^ ]+ "
_TAIL = r"^(?P<size>[^ ]+)(?: (?P<first>" + _QUOTED + r")(?: (?P<second>" + _QUOTED + r"))?)?$"
# Timestamps have a fixed width: checked by pattern, then read by position.
_APACHE_TIME = r"^[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$"
_APACHE_FIELDS = {"d": (0, 2), "mon": (3, 6), "y": (7, 11), "hh": (12, 14), "mm": (15, 17), "ss": (18, 20),
                  "sign": (21, 22), "oh": (22, 24), "om": (24, 26)}  # fmt: skip
_LEGACY_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_LEGACY_FIELDS = {"y": (0, 4), "mon": (5, 7), "d": (8, 10), "hh": (11, 13), "mm": (14, 16), "ss": (17, 19)}
_MONTHS = pa.array(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
# METHOD TARGET [PROTOCOL]; the path is the target up to its first '?', the query what follows.
_REQUEST = r"^(?P<method>[A-Z]+) (?P<target>[^ ]+)(?: (?P<protocol>[^ ]+))?$"
_TARGET = r"(?s)^(?P<path>[^?]*)(?P<query>\?.*)?$"
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1)
_INVALID = np.iinfo(np.int64).min  # no time: not a real instant, or one the zone cannot place
# The caches a worker keeps from file to file hold the distinct values of a few days; past this
# size they start again.
_CACHE_LIMIT = 1_000_000
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])

COLUMNS = (
    "log_date", "ts", "client_prefix", "visitor_id", "method", "path", "query", "protocol",
    "status", "response_bytes", "referrer", "user_agent", "browser_family", "browser_major",
    "os_family", "device_family", "is_bot", "source_file", "line_number",
)
REASONS = (
    "invalid_utf8", "unparseable_line", "bad_client", "bad_timestamp", "bad_status", "bad_size",
    "outside_partition_day",
)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class ParsedFile:
    """A file's rows (the access_logs columns) and rejected lines (source_file, line_number,
    reason, and the line's bytes as received)."""

    rows: pa.Table
    rejected: pa.Table

    @property
    def row_count(self) -> int:
        return self.rows.num_rows

    @property
    def rejected_count(self) -> int:
        return self.rejected.num_rows


def nonempty_lines(data: bytes) -> int:
    """The lines of a file the parser reads (a row or a rejected line each)."""
    return sum(1 for line in data.split(b"\n") if line not in (b"", b"\r"))


class LogParser:
    """Parses the files of partition days in `timezone`, keying visitor ids with `salt`. What it
    computes per distinct value (client, visitor, block of time) it keeps for the next file."""

    def __init__(self, timezone: str, salt: bytes):
        self.zone = ZoneInfo(timezone)
        self.salt = salt
        self._clients: dict[str, tuple[str, str] | None] = {}
        self._visitors: dict[str, str] = {}
        self._offsets: dict[int, int] = {}
        self._wall_offsets: dict[int, int] = {}

    def parse(self, data: bytes, source_file: str, day: dt.date) -> ParsedFile:
        numbers, lines = _lines(data)
        text, not_utf8 = _decoded(lines)
        head = pc.extract_regex(text, _HEAD)
        tail = pc.extract_regex(pc.replace_substring_regex(text, _WITHOUT_HEAD, "", max_replacements=1), _TAIL)
        fields = _struct(head, tail, valid=pc.and_(head.is_valid(), tail.is_valid()))
        networks, client_index = _distinct(fields.field("client"), self._network)
        ips = _expand([n and n[0] for n in networks], client_index)
        legacy = _flags(pc.and_(pc.not_equal(fields.field("first"), ""), pc.equal(fields.field("second"), "")))
        epoch, local_day = self._times(fields.field("stamp"), legacy)
        status = _integers(fields.field("status"), r"^[0-9]{3}$")
        size_text = fields.field("size")
        size = np.where(_flags(pc.equal(size_text, "-")), 0, _integers(size_text, r"^[0-9]{1,19}$"))
        failed_checks = (  # one per reason, in the order of REASONS: a line gets the first
            not_utf8,
            ~_flags(fields.is_valid()),
            _flags(ips.is_null()),
            local_day == _INVALID,
            (status < 100) | (status > 599),
            size < 0,
            local_day != day.toordinal() - _EPOCH_ORDINAL,
        )
        reason = np.full(len(lines), -1)
        for code, failed in enumerate(failed_checks):
            reason[(reason < 0) & failed] = code
        kept, dropped = reason < 0, reason >= 0
        rejected = pa.table({
            "source_file": pa.array([source_file] * int(dropped.sum()), pa.string()),
            "line_number": pa.array(numbers[dropped], pa.int64()),
            "reason": pa.array(np.array(REASONS)[reason[dropped]], pa.string()),
            "line": lines.filter(dropped),
        })
        columns = {
            "log_date": pa.array([day] * int(kept.sum()), pa.date32()),
            "ts": pa.array(epoch[kept] * 1_000_000, pa.int64()).cast(pa.timestamp("us")),
            "client_prefix": _expand([n and n[1] for n in networks], client_index[kept]),
            **self._request_and_headers(fields.filter(kept), ips.filter(kept), legacy[kept]),
            "status": pa.array(status[kept], pa.int64()),
            "response_bytes": pa.array(size[kept], pa.int64()),
            "source_file": pa.array([source_file] * int(kept.sum()), pa.string()),
            "line_number": pa.array(numbers[kept], pa.int64()),
        }
        return ParsedFile(pa.table({name: columns[name] for name in COLUMNS}), rejected)

    def _request_and_headers(self, fields: pa.StructArray, ips: pa.Array, legacy: np.ndarray) -> dict[str, pa.Array]:
        """The columns of the kept lines that come from the request, referrer and user agent."""
        parts = pc.extract_regex(_unescaped(_unquoted(fields.field("request"))), _REQUEST)
        target = pc.extract_regex(parts.field("target"), _TARGET)
        # A request of any other shape (a TLS probe, '-') leaves all four NULL.
        is_request = parts.is_valid()
        query = target.field("query")
        user_agent = _header(pc.if_else(legacy, fields.field("first"), fields.field("second")))
        agents, agent_index = _distinct(pc.fill_null(user_agent, ""), lambda a: user_agent_fields(a or None))
        keys = pc.binary_join_element_wise(ips, pc.fill_null(user_agent, ""), "|")
        visitors, visitor_index = _distinct(keys, self._visitor)
        browser, major, os_family, device, bot = zip(*agents) if agents else ((),) * 5
        return {
            "visitor_id": _expand(visitors, visitor_index),
            "method": _where(is_request, parts.field("method")),
            "path": _where(is_request, target.field("path")),
            "query": _where(pc.and_(is_request, pc.not_equal(query, "")), pc.utf8_slice_codeunits(query, 1)),
            "protocol": _where(pc.and_(is_request, pc.not_equal(parts.field("protocol"), "")), parts.field("protocol")),
            "referrer": _where(pc.invert(pa.array(legacy)), _header(fields.field("first"))),
            "user_agent": user_agent,
            "browser_family": _expand(list(browser), agent_index),
            "browser_major": _expand(list(major), agent_index),
            "os_family": _expand(list(os_family), agent_index),
            "device_family": _expand(list(device), agent_index),
            "is_bot": _expand(list(bot), agent_index, pa.bool_()),
        }

    def _network(self, client: str) -> tuple[str, str] | None:
        return _cached(self._clients, client, client_network)

    def _visitor(self, key: str) -> str:
        # The address is canonical: it holds no '|'.
        ip, _, user_agent = key.partition("|")
        return _cached(self._visitors, key, lambda _: visitor_id(self.salt, ip, user_agent or None))

    def _times(self, stamps: pa.Array, legacy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each stamp's UTC instant (seconds since the epoch) and its day in the partition zone
        (days since the epoch; _INVALID if the stamp is not a real instant)."""
        apache = _flags(pc.match_substring_regex(stamps, _APACHE_TIME)) & ~legacy
        old = _flags(pc.match_substring_regex(stamps, _LEGACY_TIME)) & legacy

        def number(name: str) -> np.ndarray:
            legacy_value = _digits_at(stamps, old, _LEGACY_FIELDS[name])
            return np.where(legacy, legacy_value, _digits_at(stamps, apache, _APACHE_FIELDS[name]))

        year, day, hour, minute, second = map(number, ("y", "d", "hh", "mm", "ss"))
        month_names = pc.index_in(pc.utf8_slice_codeunits(stamps, *_APACHE_FIELDS["mon"]), value_set=_MONTHS)
        month_by_name = pc.fill_null(month_names, -1).to_numpy() + 1
        month = np.where(legacy, _digits_at(stamps, old, _LEGACY_FIELDS["mon"]), month_by_name)
        offset_hours, offset_minutes = (_digits_at(stamps, apache, _APACHE_FIELDS[name]) for name in ("oh", "om"))
        valid = old | (apache & (offset_hours <= 23) & (offset_minutes <= 59))
        valid &= (hour <= 23) & (minute <= 59) & (second <= 59) & _real_date(year, month, day)
        clock = _days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
        # Time zone offsets change on multiples of 15 minutes: the zone is asked once per block.
        sign = pc.utf8_slice_codeunits(stamps, *_APACHE_FIELDS["sign"])
        written = np.where(_flags(pc.equal(sign, "-")), -1, 1) * (offset_hours * 3600 + offset_minutes * 60)
        offset = np.where(legacy, self._per_block(clock // 900, valid & legacy, self._wall_offset), written)
        valid &= offset != _INVALID
        epoch = clock - np.where(valid, offset, 0)
        utc_offset = self._per_block(epoch // 900, valid, self._utc_offset)
        valid &= utc_offset != _INVALID
        return epoch, np.where(valid, (epoch + utc_offset) // 86400, _INVALID)

    @staticmethod
    def _per_block(blocks: np.ndarray, mask: np.ndarray, offset_of: Callable[[int], int]) -> np.ndarray:
        offsets = np.full(len(blocks), _INVALID, np.int64)
        if mask.any():
            distinct, index = np.unique(blocks[mask], return_inverse=True)
            offsets[mask] = np.array([offset_of(int(block)) for block in distinct], np.int64)[index]
        return offsets

    def _utc_offset(self, block: int) -> int:
        return _cached(self._offsets, block, lambda b: _zone_offset(self.zone, b, wall_clock=False))

    def _wall_offset(self, block: int) -> int:
        return _cached(self._wall_offsets, block, lambda b: _zone_offset(self.zone, b, wall_clock=True))


def _zone_offset(zone: ZoneInfo, block: int, wall_clock: bool) -> int:
    """The zone's UTC offset (seconds) during the 15-minute block `block` of UTC time, or of
    wall-clock time (where a change of offset skips or repeats wall times, the offset before it,
    as Python reads them); _INVALID for years the zone's arithmetic cannot reach."""
    try:
        if wall_clock:
            instant = (_EPOCH + dt.timedelta(seconds=block * 900)).replace(tzinfo=zone)
        else:
            instant = dt.datetime.fromtimestamp(block * 900, zone)
        return int(instant.utcoffset().total_seconds())  # type: ignore[union-attr]
    except (OverflowError, ValueError, OSError):
        return int(_INVALID)


def _lines(data: bytes) -> tuple[np.ndarray, pa.Array]:
    """(line numbers, lines) of the non-empty lines of `data`. One CR before an LF (or at the end
    of the data) belongs to the line ending."""
    lines = pa.array([line.removesuffix(b"\r") for line in data.split(b"\n")], pa.binary())
    nonempty = _flags(pc.greater(pc.binary_length(lines), 0))
    return np.flatnonzero(nonempty) + 1, lines.filter(nonempty)


def _decoded(lines: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The lines as text ('' where a line is not UTF-8), and which lines are not UTF-8."""
    try:
        return lines.cast(pa.string()), np.zeros(len(lines), bool)
    except pa.ArrowInvalid:  # some line is not UTF-8: find which
        not_utf8 = np.array([not _is_utf8(line) for line in lines.to_pylist()], bool)
        return pc.if_else(not_utf8, b"", lines).cast(pa.string()), not_utf8


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _struct(*parts: pa.StructArray, valid: pa.Array) -> pa.StructArray:
    """The fields of `parts` in one struct, null where `valid` is false."""
    fields = [part.type.field(i) for part in parts for i in range(part.type.num_fields)]
    arrays = [part.field(i) for part in parts for i in range(part.type.num_fields)]
    return pa.StructArray.from_arrays(arrays, fields=fields, mask=pc.invert(valid))


def _flags(mask: pa.Array) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _digits_at(text: pa.Array, where: np.ndarray, span: tuple[int, int]) -> np.ndarray:
    """The ASCII digits at `span` of each text as an integer where `where` holds, else 0."""
    digits = pc.utf8_slice_codeunits(pc.if_else(where, text, "0" * span[1]), *span)
    return pc.cast(digits, pa.int64()).to_numpy()


def _integers(text: pa.Array, pattern: str) -> np.ndarray:
    """`text` as integers where it matches `pattern` (ASCII digits) and fits INT64, else -1."""
    matches = _flags(pc.match_substring_regex(text, pattern))
    values = pc.cast(pc.if_else(matches, text, "0"), pa.uint64()).to_numpy()
    return np.where(matches & (values < np.uint64(2**63)), values.astype(np.int64), -1)


def _real_date(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last_day = _DAYS_IN_MONTH[np.clip(month, 1, 12) - 1] + (leap & (month == 2))
    return (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= last_day)


def _days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _cached(cache: dict[K, V], key: K, compute: Callable[[K], V]) -> V:
    if key not in cache:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = compute(key)
    return cache[key]


def _distinct(values: pa.Array, compute: Callable[[Any], V]) -> tuple[list[V], np.ndarray]:
    """compute() of each distinct value (no nulls), and each row's index into the results."""
    encoded = pc.dictionary_encode(values)
    return [compute(value) for value in encoded.dictionary.to_pylist()], encoded.indices.to_numpy()


def _expand(values: list[Any], index: np.ndarray, type: pa.DataType | None = None) -> pa.Array:
    """values[index] for each row's index into the distinct values."""
    return pa.array(values, type or pa.string()).take(pa.array(index))


def _where(condition: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(condition, values, pa.scalar(None, values.type))


def _unquoted(quoted: pa.Array) -> pa.Array:
    return pc.utf8_slice_codeunits(quoted, 1, -1)


def _unescaped(text: pa.Array) -> pa.Array:
    """\\" and \\\\ undone; other escapes stay as written."""
    return pc.replace_substring_regex(text, r'\\(["\\])', r"\1")


def _header(quoted: pa.Array) -> pa.Array:
    """A referrer or user agent: NULL when absent, empty or '-'."""
    text = _unquoted(quoted)
    return _where(pc.invert(pc.is_in(text, pa.array(["", "-"]))), _unescaped(text))
