"""Where stock prices come from: the embedded synthetic market or the data.go.kr API.

Every source returns pages in the data.go.kr wire format, exactly as received, so the lake, the
parser and Spark never need to know which source produced them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class FetchedPage:
    page_no: int
    body: bytes  # the response body as received (never contains the API key)
    fetched_at: dt.datetime  # UTC
    rows: int
    total_count: int

