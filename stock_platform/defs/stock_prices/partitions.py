"""The domain's partitions: one per weekday in Asia/Seoul from STOCK_PARTITIONS_START; the XKRX
calendar (platform/calendars.py) says which weekdays are sessions."""

from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.platform.calendars import weekday_partitions
from stock_platform.platform.partitions import single_run

STOCK_PARTITIONS = weekday_partitions(stock_settings().partitions_start.isoformat(), "Asia/Seoul")

# Every asset of the domain: these partitions, one run per backfill range.
PARTITIONED = single_run(STOCK_PARTITIONS)
