"""The domain's daily job and schedule.

Data for session D is published after 13:00 KST on the next session, so the schedule ticks at
14:30 KST on weekdays and materializes the previous XKRX session through the dbt marts. Late
publication is handled by raw_stock_prices (retry with backoff until the 20:00 KST deadline).
"""

import dagster as dg

from stock_platform.defs.stock_prices.freshness import stock_marts_freshness
from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.platform.calendars import PARTITION_FORMAT, SEOUL, closure_reason, previous_session

daily_job = dg.define_asset_job(
    "daily_stock_prices",
    # Not the freshness check: it judges the wall clock every 30 minutes by itself.
    selection=dg.AssetSelection.groups("stock_prices") - dg.AssetSelection.checks(stock_marts_freshness),
    description="The domain, API to dbt marts, for one session (launched by daily_schedule).",
)


@dg.schedule(
    job=daily_job,
    cron_schedule="30 14 * * 1-5",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="14:30 KST on KRX sessions: the previous session (published after 13:00 KST).",
)
def daily_schedule(context: dg.ScheduleEvaluationContext):
    today = context.scheduled_execution_time.astimezone(SEOUL).date()
    reason = closure_reason(today)
    if reason:
        # Nothing is published on a closed day; the session before it is picked up on the next
        # session, when its data appears.
        return dg.SkipReason(f"{today} is not a KRX session ({reason}): nothing is published today")
    # The previous *session*, not the previous weekday: after a holiday the data published today
    # is that of the session before the holiday, which no earlier tick could have fetched.
    target = previous_session(today)
    first = stock_settings().partitions_start
    if target < first:
        return dg.SkipReason(f"{target} is before the first partition {first}")
    key = target.strftime(PARTITION_FORMAT)
    return dg.RunRequest(run_key=key, partition_key=key)


# Declarative automation of the domain: the marts' checks only. The lookback checks are
# re-evaluated when stock_raw/daily_prices changes without the marts (platform/lookback.py), the
# trading-calendar freshness check every 30 minutes (freshness.py). Running by default, so that
# `make dev` and a deployment evaluate them without a click.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "stock_prices_automation",
    target=dg.AssetSelection.groups("stock_prices"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the marts' lookback checks when stock_raw/daily_prices changes without them, "
    "and their freshness check every 30 minutes.",
)
