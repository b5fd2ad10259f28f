"""The stock marts' freshness on the KRX trading calendar (defs/stock_prices/freshness.py), at
fixed times around Chuseok 2024 (KRX closed Monday 16 to Wednesday 18 September): a session day,
the holidays, and the session after them; the check against a real (ephemeral) instance."""

import datetime as dt

import dagster as dg
import pytest

from stock_platform.defs.stock_prices.freshness import CHECK, due_session, freshness_results
from stock_platform.platform.calendars import SEOUL

THU, FRI = dt.date(2024, 9, 12), dt.date(2024, 9, 13)
MART = dg.AssetKey(["stock_analytics", "market_daily_summary"])


def kst(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SEOUL)


@pytest.mark.parametrize(("now", "due"), [
    # A session day: before 16:00 the session two back is due, after it the previous one.
    (kst(THU, 10), dt.date(2024, 9, 10)),
    (kst(THU, 15, 59), dt.date(2024, 9, 10)),
    (kst(THU, 16), dt.date(2024, 9, 11)),
    # Friday evening, the weekend and the three holidays: Thursday's session, nothing newer.
    (kst(FRI, 17), THU),
    (kst(dt.date(2024, 9, 15), 12), THU),
    (kst(dt.date(2024, 9, 16), 17), THU),
    (kst(dt.date(2024, 9, 18), 23, 59), THU),
    # The session after the holidays: Friday's data appears at 13:00 and is due at 16:00.
    (kst(dt.date(2024, 9, 19), 10), THU),
    (kst(dt.date(2024, 9, 19), 16, 30), FRI),
    # The time zone of `now` does not matter: 07:30 UTC is 16:30 KST.
    (dt.datetime(2024, 9, 19, 7, 30, tzinfo=dt.UTC), FRI),
])
def test_the_session_due(now, due):
    assert due_session(now) == due


def check(instance, now, first=dt.date(2024, 1, 2)) -> dg.AssetCheckResult:
    [result] = freshness_results(instance, [MART], now, first)
    assert result.check_name == CHECK and result.severity == dg.AssetCheckSeverity.WARN
    return result


def test_a_holiday_is_not_late_and_the_session_after_it_is_due_at_16():
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(MART, partition=THU.isoformat()))
        # Thursday's session is in: fresh through Friday evening, the weekend and the holidays
        # (a cron policy due at 16:00 on weekdays was stale on each of them).
        for now in (kst(FRI, 17), kst(dt.date(2024, 9, 16), 17), kst(dt.date(2024, 9, 18), 17)):
            assert check(instance, now).passed, now
        # Thursday after the holidays, 16:30: Friday's session is due and missing.
        late = check(instance, kst(dt.date(2024, 9, 19), 16, 30))
        assert not late.passed
        assert late.metadata["due_session"].value == FRI.isoformat()
        assert "2024-09-13 was due" in late.description
        instance.report_runless_asset_event(dg.AssetMaterialization(MART, partition=FRI.isoformat()))
        assert check(instance, kst(dt.date(2024, 9, 19), 16, 30)).passed


def test_nothing_is_due_before_the_first_partition():
    with dg.DagsterInstance.ephemeral() as instance:
        assert check(instance, kst(THU, 17), first=dt.date(2024, 9, 12)).passed
        assert not check(instance, kst(FRI, 17), first=dt.date(2024, 9, 12)).passed
