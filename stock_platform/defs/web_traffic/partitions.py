"""The domain's partitions: one per calendar day in WEB_LOGS_TIMEZONE from WEB_PARTITIONS_START."""

from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.calendars import calendar_day_partitions
from stock_platform.platform.partitions import single_run

WEB_PARTITIONS = calendar_day_partitions(
    web_settings().partitions_start.isoformat(), web_settings().timezone
)

# Every asset of the domain: these partitions, one run per backfill range.
PARTITIONED = single_run(WEB_PARTITIONS)
