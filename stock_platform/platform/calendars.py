"""Calendars and partitions definitions that domains choose from.

- `weekday_partitions`: one key per weekday (YYYY-MM-DD) in a time zone; the Friday window runs to
  Monday 00:00. Whether a weekday is a KRX session comes from the XKRX calendar of
  exchange-calendars plus EXTRA_HOLIDAYS, because the packaged calendar lags closures announced at
  short notice (election days, temporary holidays).
- `calendar_day_partitions`: one key per calendar day in a time zone.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from stock_platform.platform.settings import platform_settings

SEOUL = ZoneInfo("Asia/Seoul")
PARTITION_FORMAT = "%Y-%m-%d"
CALENDAR_START = dt.date(2000, 1, 1)

# Closures missing from exchange-calendars' XKRX. Add a date here as soon as KRX announces it.
EXTRA_HOLIDAYS: dict[dt.date, str] = {
    dt.date(2026, 6, 3): "9th local elections",
}


def weekday_partitions(start: str, timezone: str) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions in `timezone`; the Friday window runs to Monday 00:00."""
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * 1-5", start=start, timezone=timezone, fmt=PARTITION_FORMAT
    )


def calendar_day_partitions(start: str, timezone: str) -> dg.TimeWindowPartitionsDefinition:
    """One partition per calendar day in `timezone`."""
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * *", start=start, timezone=timezone, fmt=PARTITION_FORMAT
    )


@lru_cache(maxsize=1)
def _xkrx_sessions() -> tuple[dt.date, dt.date, frozenset[dt.date]]:
    """(first, last, all) XKRX sessions from CALENDAR_START.

    Building exchange-calendars' XKRX takes 3-9 s of CPU (its lunar holidays), in every process
    that needs it: its sessions are kept in the cache dir (STOCK_PLATFORM_CACHE_DIR), shared by
    every data dir. Its last session is a year ahead of today, so an entry holds for the day it
    was built on."""
    version = importlib.metadata.version("exchange-calendars")
    cache = platform_settings().cache_dir
    path = cache / f"xkrx-sessions-{version}-from-{CALENDAR_START}-on-{dt.date.today()}.json"
    try:
        sessions = [dt.date.fromisoformat(day) for day in json.loads(path.read_text())]
    except (OSError, ValueError):
        import exchange_calendars  # imported here: it takes a second to import

        calendar = exchange_calendars.get_calendar("XKRX", start=CALENDAR_START.isoformat())
        sessions = [session.date() for session in calendar.sessions]
        for stale in path.parent.glob("xkrx-sessions-*.json"):
            stale.unlink(missing_ok=True)
        _write_atomically(path, json.dumps([day.isoformat() for day in sessions]).encode())
    return sessions[0], sessions[-1], frozenset(sessions)


def closure_reason(day: dt.date) -> str | None:
    """Why the market is closed on `day`, or None on a session."""
    if day.weekday() >= 5:
        return "weekend"
    if day in EXTRA_HOLIDAYS:
        return EXTRA_HOLIDAYS[day]
    first, last, sessions = _xkrx_sessions()
    if not first <= day <= last:
        raise ValueError(
            f"{day} is outside the XKRX calendar ({first} .. {last}); upgrade exchange-calendars"
        )
    if day not in sessions:
        return "KRX holiday"
    return None


def is_trading_day(day: dt.date) -> bool:
    return closure_reason(day) is None


def trading_sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """Sessions in the inclusive range [start, end], oldest first."""
    days = (start + dt.timedelta(n) for n in range((end - start).days + 1))
    return [day for day in days if is_trading_day(day)]


def previous_session(day: dt.date) -> dt.date:
    """The last XKRX session strictly before `day` (KRX never closes for more than two weeks)."""
    for back in range(1, 15):
        candidate = day - dt.timedelta(days=back)
        if is_trading_day(candidate):
            return candidate
    raise ValueError(f"no XKRX session in the two weeks before {day}")


def parse_partition_key(key: str) -> dt.date:
    return dt.datetime.strptime(key, PARTITION_FORMAT).date()


def _write_atomically(path: Path, data: bytes) -> None:
    """Whole or not at all (concurrent runs may race to fill the same entry); best effort: a
    read-only cache dir only makes the next process slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    except OSError:
        pass
