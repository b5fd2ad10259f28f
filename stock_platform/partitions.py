"""Trading calendar and the daily partitions definition.

Partition keys are weekdays (YYYY-MM-DD, Asia/Seoul). Whether a weekday is a KRX session comes from
the XKRX calendar of exchange-calendars plus EXTRA_HOLIDAYS, because the packaged calendar lags
closures announced at short notice (election days, temporary holidays).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import dagster as dg

SEOUL = ZoneInfo("Asia/Seoul")
PARTITION_FORMAT = "%Y-%m-%d"
CALENDAR_START = dt.date(2000, 1, 1)

# Closures missing from exchange-calendars' XKRX. Add a date here as soon as KRX announces it.
EXTRA_HOLIDAYS: dict[dt.date, str] = {
    dt.date(2026, 6, 3): "9th local elections",
}


def daily_partitions(start: str) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions in Seoul time; the Friday window runs to Monday 00:00."""
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * 1-5",
        start=start,
        timezone="Asia/Seoul",
        fmt=PARTITION_FORMAT,
    )


@lru_cache(maxsize=1)
def _xkrx():
    # Imported lazily: building the calendar takes seconds and must not slow down code loading.
    import exchange_calendars

    return exchange_calendars.get_calendar("XKRX", start=CALENDAR_START.isoformat())


def closure_reason(day: dt.date) -> str | None:
    """Why the market is closed on `day`, or None on a session."""
    if day.weekday() >= 5:
        return "weekend"
    if day in EXTRA_HOLIDAYS:
        return EXTRA_HOLIDAYS[day]
    calendar = _xkrx()
    first, last = calendar.first_session.date(), calendar.last_session.date()
    if not first <= day <= last:
        raise ValueError(
            f"{day} is outside the XKRX calendar ({first} .. {last}); upgrade exchange-calendars"
        )
    if not calendar.is_session(day.isoformat()):
        return "KRX holiday"
    return None


def is_trading_day(day: dt.date) -> bool:
    return closure_reason(day) is None


def trading_sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """Sessions in the inclusive range [start, end], oldest first."""
    days = (start + dt.timedelta(n) for n in range((end - start).days + 1))
    return [day for day in days if is_trading_day(day)]


def parse_partition_key(key: str) -> dt.date:
    return dt.datetime.strptime(key, PARTITION_FORMAT).date()


def _configured_partitions() -> dg.TimeWindowPartitionsDefinition:
    from stock_platform.settings import load_settings

    return daily_partitions(load_settings().partitions_start)


# The one partitions definition every asset uses (start: STOCK_PARTITIONS_START).
DAILY_PARTITIONS = _configured_partitions()
