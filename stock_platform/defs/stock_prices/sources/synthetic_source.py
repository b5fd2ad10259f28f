"""The synthetic market served as data.go.kr pages (the local default source)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from stock_platform.defs.stock_prices.sources import FetchedPage
from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
from stock_platform.defs.stock_prices.sources.wire import WIRE_FIELDS, build_page, items_json
from stock_platform.platform.calendars import SEOUL

# The simulated market closes at 15:30 KST and its data is "fetched" at 18:00 KST the same day.
# A fixed, simulated clock keeps re-runs byte-identical (ingested_at included).
_CLOSE = dt.time(15, 30)
_FETCH = dt.time(18, 0)


class SyntheticSource:
    def __init__(self, seed: int, page_size: int):
        self.market = SyntheticMarket(seed)
        self.page_size = page_size

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        return {day: pages for chunk in self.fetch_chunks(days, len(days)) for day, pages in chunk.items()}

    def fetch_chunks(self, days: list[dt.date], size: int) -> Iterator[dict[dt.date, list[FetchedPage]]]:
        """fetch_days for `size` days at a time, oldest first, all from one simulation."""
        now = dt.datetime.now(dt.UTC)
        days = sorted(set(days))
        published = [d for d in days if dt.datetime.combine(d, _CLOSE, SEOUL) <= now]
        frames = self.market.iter_frames(published)
        upcoming = next(frames, None)
        chunk = {}
        for day in days:
            frame = None
            if upcoming is not None and upcoming[0] == day:
                frame, upcoming = upcoming[1], next(frames, None)
            chunk[day] = self._pages(day, frame)
            if len(chunk) == size:
                yield chunk
                chunk = {}
        if chunk:
            yield chunk

    def _pages(self, day: dt.date, frame) -> list[FetchedPage]:
        fetched_at = dt.datetime.combine(day, _FETCH, SEOUL).astimezone(dt.UTC)
        if frame is None or frame.empty:
            # What the API answers for a session it has not published yet.
            body = build_page(None, page_no=1, num_of_rows=self.page_size, total_count=0)
            return [FetchedPage(1, body.encode(), fetched_at, 0, 0)]
        total = len(frame)
        columns = [frame[field].tolist() for field in WIRE_FIELDS]
        pages = []
        for page_no, start in enumerate(range(0, total, self.page_size), start=1):
            stop = min(start + self.page_size, total)
            items = items_json([column[start:stop] for column in columns])
            body = build_page(items, page_no, self.page_size, total)
            pages.append(FetchedPage(page_no, body.encode(), fetched_at, stop - start, total))
        return pages
