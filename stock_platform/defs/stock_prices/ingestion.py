"""raw_stock_prices: API pages for each trading day, stored losslessly in the lake (raw/)."""


import datetime as dt
import gzip
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg

from stock_platform.defs.stock_prices.partitions import PARTITIONED
from stock_platform.defs.stock_prices.resources import StockSourceResource
from stock_platform.defs.stock_prices.schema import RAW
from stock_platform.platform.calendars import SEOUL, closure_reason, is_trading_day
from stock_platform.platform.failpoints import failpoint
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.lake import Manifest, new_version
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import LakeResource


class NotPublishedYet(dg.Failure):
    pass


# Data for session D is published after 13:00 KST on the next session. Until 20:00 KST that day
# a missing session is retried with exponential backoff (from the 14:30 schedule: 14:40, 15:10,
# 16:20, 18:50); the attempt after the deadline fails for good, so the run ends that night.
PUBLICATION_DEADLINE = dt.time(20, 0)
FETCH_CHUNK_SESSIONS = 40
NOT_PUBLISHED_RETRY = dg.RetryPolicy(max_retries=5, delay=10 * 60, backoff=dg.Backoff.EXPONENTIAL)


def publication_deadline(day: dt.date) -> dt.datetime:
    """20:00 KST on the session after `day`: by then its data should have been published."""
    publication_day = day + dt.timedelta(days=1)
    while not is_trading_day(publication_day):
        publication_day += dt.timedelta(days=1)
    return dt.datetime.combine(publication_day, PUBLICATION_DEADLINE, SEOUL)


def seoul_now() -> dt.datetime:
    return dt.datetime.now(SEOUL)


@dg.asset(
    key="raw_stock_prices",
    group_name="stock_prices",
    kinds={"python", "json"},
    pool="stock_api",
    # HTTP paging with bounded concurrency: I/O bound.
    op_tags=k8s_op_tags(cpu="500m", cpu_limit="1", memory="1Gi"),
    retry_policy=NOT_PUBLISHED_RETRY,
    description="Stock price API pages as received (gzip JSON), per trading day, in lake raw/.",
    **PARTITIONED,
)
def raw_stock_prices(
    context: dg.AssetExecutionContext, stock_source: StockSourceResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get()
    days = run_days(context)
    closed = {day: closure_reason(day) for day in days}
    sessions = [day for day in days if closed[day] is None]

    stats: dict[dt.date, dict[str, Any]] = {}
    unpublished: list[dt.date] = []
    for day in days:
        if closed[day]:
            store.publish(Manifest(RAW, day, new_version(), [], 0, "market_closed", {"reason": closed[day]}))
            stats[day] = {"status": f"market closed ({closed[day]})", "market_closed": True,
                          "pages": 0, "dagster/row_count": 0}
    # zlib releases the GIL: compress and write pages in parallel (on GCS, uploads overlap too).
    with ThreadPoolExecutor(max_workers=4) as writer:
        # A chunk of sessions at a time: a ten-year backfill never holds all its pages in memory.
        for pages_by_day in stock_source.fetch_chunks(sessions, FETCH_CHUNK_SESSIONS):
            for day, pages in pages_by_day.items():
                if sum(p.rows for p in pages) == 0:
                    unpublished.append(day)  # never recorded as an empty success; the run fails below
                    continue
                stats[day] = _store_pages(store, writer, day, pages)
    stats = {day: stats[day] for day in days if day in stats}

    if unpublished:
        missing = ", ".join(d.isoformat() for d in unpublished)
        deadline = publication_deadline(unpublished[0])
        if seoul_now() >= deadline:
            raise NotPublishedYet(
                description=(
                    f"not published by the deadline: the API still returns zero rows for trading "
                    f"session(s) {missing} after {deadline:%Y-%m-%d %H:%M} KST. Giving up; check "
                    "the source, then re-run the partition(s)."
                ),
                allow_retries=False,
            )
        raise NotPublishedYet(
            description=(
                f"not published yet: the API returned zero rows for trading session(s) "
                f"{missing}; data for day D appears after 13:00 KST on the next business day. "
                f"Retrying with backoff until {deadline:%Y-%m-%d %H:%M} KST."
            ),
            allow_retries=True,
        )
    record_days(context, stats)
    context.log.info(
        f"Stored {sum(s['dagster/row_count'] for s in stats.values())} rows in "
        f"{sum(s['pages'] for s in stats.values())} pages for {len(sessions)} sessions "
        f"({len(days) - len(sessions)} days market closed)"
    )
    return dg.MaterializeResult(metadata={"lake_path": dg.MetadataValue.path(store.uri(RAW))})


def _store_pages(store, writer: ThreadPoolExecutor, day: dt.date, pages) -> dict[str, object]:
    """Write one session's pages under a new version and publish it."""
    version = new_version()
    files = [f"v={version}/page-{page.page_no:05d}.json.gz" for page in pages]
    # Level 1: 14x faster than gzip's default 9 for 25% more bytes; mtime=0 keeps re-runs
    # byte-identical.
    list(writer.map(
        lambda name, page: store.write_bytes(
            f"{store.partition_dir(RAW, day)}/{name}",
            gzip.compress(page.body, compresslevel=1, mtime=0),
        ),
        files,
        pages,
    ))
    details = {
        "pages": [
            {"file": f, "page_no": p.page_no, "rows": p.rows, "fetched_at": p.fetched_at.isoformat()}
            for f, p in zip(files, pages)
        ],
        "total_count": pages[0].total_count,
    }
    rows = sum(p.rows for p in pages)
    failpoint(f"raw_stock_prices.before_publish:{day}")  # pages written, day unpublished
    store.publish(Manifest(RAW, day, version, files, rows, "ok", details))
    return {"status": "ok", "market_closed": False, "pages": len(pages), "dagster/row_count": rows}
