"""The domain's daily job and schedule: the web servers deliver day D's logs shortly after
midnight, so the schedule ticks at 01:00 in WEB_LOGS_TIMEZONE and materializes yesterday through
the star schema. Late delivery is handled by raw_web_access_logs (retry until 06:00)."""

import dagster as dg

from stock_platform.defs.web_traffic.partitions import WEB_PARTITIONS
from stock_platform.defs.web_traffic.settings import web_settings

daily_job = dg.define_asset_job(
    "daily_web_traffic",
    selection=dg.AssetSelection.groups("web_traffic"),
    partitions_def=WEB_PARTITIONS,
    description="The domain, log files to the star schema, for one day (launched by the schedule).",
)

# The partition of day D ends at midnight after D; the 01:00 tick targets it (yesterday).
daily_schedule = dg.build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=1,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"01:00 {web_settings().timezone}: yesterday's access logs to the star schema.",
)
