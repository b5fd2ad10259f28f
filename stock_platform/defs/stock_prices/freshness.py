"""The marts' freshness on the KRX trading calendar.

Session S's data is published after 13:00 KST on the session after it, and the daily schedule
builds S at 14:30; so S's marts are due at 16:00 KST on the session after S. A cron freshness
policy cannot follow the calendar (on every KRX holiday it would call the marts stale), so a
check does: every 30 minutes it finds the latest session due and warns, per mart, while that
partition is not materialized. On a holiday the session due is still the one before it.
"""

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import cast

import dagster as dg

from stock_platform.defs.stock_prices.marts import LOOKBACK_KEYS as MART_KEYS
from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.platform.calendars import SEOUL, is_trading_day, previous_session
from stock_platform.platform.k8s import k8s_op_tags

CHECK = "fresh_on_the_trading_calendar"
DEADLINE = dt.time(16, 0)  # KST, on the session after the one due
# Generic over the key type at run time; its annotation says AssetKey, hence the cast.
EVERY_30_MINUTES = cast(
    "dg.AutomationCondition[dg.AssetCheckKey]",
    dg.AutomationCondition.cron_tick_passed("*/30 * * * *", cron_timezone="Asia/Seoul"),
)


def due_session(now: dt.datetime) -> dt.date:
    """The latest session whose marts are due at `now` (an aware datetime)."""
    local = now.astimezone(SEOUL)
    today = local.date()
    # The latest session whose 16:00 KST has passed: the day its predecessor was due.
    publication = today if is_trading_day(today) and local.time() >= DEADLINE else previous_session(today)
    return previous_session(publication)


def freshness_results(
    instance: dg.DagsterInstance, marts: Sequence[dg.AssetKey], now: dt.datetime, first: dt.date
) -> Iterable[dg.AssetCheckResult]:
    due = due_session(now)
    key = due.isoformat()
    for mart in marts:
        if due < first:  # nothing is due before the first partition
            passed = True
        else:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=mart, asset_partitions=[key]), limit=1
            ).records
            passed = bool(records)
        yield dg.AssetCheckResult(
            asset_key=mart,
            check_name=CHECK,
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"Session {key} is materialized" if passed
                else f"Session {key} was due at {DEADLINE:%H:%M} KST on the session after it and is not materialized"
            ),
            metadata={"due_session": key, "checked_at": now.astimezone(SEOUL).isoformat(timespec="minutes")},
        )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=key,
            description=f"Warns while the latest KRX session due (at {DEADLINE:%H:%M} KST on the session "
            "after it) is not materialized; holidays are not late.",
            automation_condition=EVERY_30_MINUTES,
        )
        for key in MART_KEYS
    ],
    can_subset=True,
    name="stock_marts_freshness",
    # Reads the instance's event log only.
    op_tags=k8s_op_tags(cpu="100m", cpu_limit="500m", memory="512Mi"),
)
def stock_marts_freshness(context: dg.AssetCheckExecutionContext) -> Iterable[dg.AssetCheckResult]:
    selected = [key.asset_key for key in context.selected_asset_check_keys]
    marts = [key for key in MART_KEYS if key in selected]
    yield from freshness_results(context.instance, marts, dt.datetime.now(SEOUL), stock_settings().partitions_start)
