"""raw_stock_prices: API pages for each trading day, stored losslessly in the lake (raw/)."""


import gzip

import dagster as dg

from stock_platform.assets.common import PARTITIONED, day_table, run_days
from stock_platform.lake import RAW, Manifest, new_version
from stock_platform.partitions import closure_reason
from stock_platform.resources import LakeResource, SourceResource


class NotPublishedYet(dg.Failure):
    pass


@dg.asset(
    key="raw_stock_prices",
    group_name="ingestion",
    kinds={"python", "json"},
    pool="stock_api",
    description="Stock price API pages as received (gzip JSON), per trading day, in lake raw/.",
    **PARTITIONED,
)
def raw_stock_prices(
    context: dg.AssetExecutionContext, source: SourceResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get()
    days = run_days(context)
    closed = {day: closure_reason(day) for day in days}
    sessions = [day for day in days if closed[day] is None]
    pages_by_day = source.fetch_days(sessions) if sessions else {}

    unpublished = [day for day in sessions if sum(p.rows for p in pages_by_day[day]) == 0]
    stats = {}
    for day in days:
        version = new_version()
        if closed[day]:
            store.publish(Manifest(RAW, day, version, [], 0, "market_closed", {"reason": closed[day]}))
            stats[day] = {"status": f"market closed ({closed[day]})", "pages": 0, "rows": 0}
            continue
        if day in unpublished:
            continue  # never recorded as an empty success; the run fails below
        pages, files = pages_by_day[day], []
        for page in pages:
            name = f"v={version}/page-{page.page_no:05d}.json.gz"
            store.write_bytes(f"{store.partition_dir(RAW, day)}/{name}", gzip.compress(page.body))
            files.append(name)
        details = {
            "pages": [
                {"file": f, "page_no": p.page_no, "rows": p.rows, "fetched_at": p.fetched_at.isoformat()}
                for f, p in zip(files, pages)
            ],
            "total_count": pages[0].total_count,
        }
        rows = sum(p.rows for p in pages)
        store.publish(Manifest(RAW, day, version, files, rows, "ok", details))
        stats[day] = {"status": "ok", "pages": len(pages), "rows": rows}

    if unpublished:
        raise NotPublishedYet(
            description=(
                f"not published yet: the API returned zero rows for trading session(s) "
                f"{', '.join(d.isoformat() for d in unpublished)}; data for day D appears after "
                "13:00 KST on the next business day. Retry later."
            ),
            allow_retries=True,
        )
    return dg.MaterializeResult(
        metadata={
            "rows": sum(s["rows"] for s in stats.values()),
            "pages": sum(s["pages"] for s in stats.values()),
            "sessions": len(sessions),
            "market_closed_days": [d.isoformat() for d in days if closed[d]],
            "market_closed": len(sessions) == 0,
            "lake_path": dg.MetadataValue.path(store.uri(RAW)),
            "days": day_table(stats),
        }
    )
