"""The synthetic market served as data.go.kr pages (the local default source)."""

from __future__ import annotations

import datetime as dt

from stock_platform.partitions import SEOUL
from stock_platform.sources import FetchedPage
from stock_platform.sources.synthetic import SyntheticMarket
from stock_platform.sources.wire import build_page

# The simulated market closes at 15:30 KST and its data is "fetched" at 18:00 KST the same day.
# A fixed, simulated clock keeps re-runs byte-identical (ingested_at included).
_CLOSE = dt.time(15, 30)
_FETCH = dt.time(18, 0)


class SyntheticSource:
    name = "synthetic"

    def __init__(self, seed: int, page_size: int, now: dt.datetime | None = None):
        self.market = SyntheticMarket(seed)
        self.page_size = page_size
        self.now = now  # fixed clock for tests; default: the wall clock

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        now = self.now or dt.datetime.now(dt.timezone.utc)
        published = [d for d in days if dt.datetime.combine(d, _CLOSE, SEOUL) <= now]
        frames = self.market.frames(published) if published else {}
        result = {}
        for day in days:
            frame = frames.get(day)
            fetched_at = dt.datetime.combine(day, _FETCH, SEOUL).astimezone(dt.timezone.utc)
            if frame is None or frame.empty:
                # What the API answers for a session it has not published yet.
                body = build_page(None, page_no=1, num_of_rows=self.page_size, total_count=0)
                result[day] = [FetchedPage(1, body.encode(), fetched_at, 0, 0)]
                continue
            total = len(frame)
            pages = []
            for page_no, start in enumerate(range(0, total, self.page_size), start=1):
                chunk = frame.iloc[start : start + self.page_size]
                items = chunk.to_json(orient="records", force_ascii=False)
                body = build_page(items, page_no, self.page_size, total)
                pages.append(FetchedPage(page_no, body.encode(), fetched_at, len(chunk), total))
            result[day] = pages
        return result
