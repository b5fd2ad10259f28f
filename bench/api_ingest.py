"""Benchmark: a multi-day data.go.kr ingest against the fake API server (real HTTP on 127.0.0.1).

The concurrent client should take about pages / MAX_RPS (the rate ceiling is the bound), not
pages x latency; the same ingest done one request at a time is measured in the same run as the
baseline.

    .venv/bin/python bench/api_ingest.py [--days 40] [--max-rps 10] [--page-size 1000]
"""

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from stock_platform.defs.stock_prices.sources.data_go_kr import DataGoKrConfig, DataGoKrSource
from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
from stock_platform.platform.calendars import trading_sessions
from stock_platform.testing.fake_data_go_kr import FakeDataGoKr

KEY = "bench+Key/0123456789=="


def ingest(frames, days, args, max_in_flight: int) -> dict:
    with FakeDataGoKr(frames, KEY, latency=tuple(args.latency), max_rps=args.max_rps, seed=1) as api:
        config = DataGoKrConfig(
            KEY,
            base_url=api.url,
            max_rps=args.max_rps,
            page_size=args.page_size,
            max_in_flight=max_in_flight,
        )
        started = time.monotonic()
        pages = DataGoKrSource(config).fetch_days(days)
        wall = time.monotonic() - started
    rows = sum(page.rows for day in pages.values() for page in day)
    if rows != sum(len(frame) for frame in frames.values()):
        raise SystemExit(f"row count mismatch: fetched {rows}")
    return {
        "requests": api.count(),
        "pages": sum(len(day) for day in pages.values()),
        "rows": rows,
        "wall": wall,
        "rejected": api.count("rate_limited_by_server"),
        "max_1s": api.max_per_window(1.0),
        "peak_in_flight": api.peak_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--days", type=int, default=40, help="trading days from --start")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 1, 2))
    parser.add_argument("--max-rps", type=float, default=10.0, help="client and server ceiling")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--latency", type=float, nargs=2, default=[0.2, 0.5], metavar=("MIN", "MAX"))
    parser.add_argument("--max-in-flight", type=int, default=32)
    args = parser.parse_args()

    days = trading_sessions(args.start, args.start + dt.timedelta(days=args.days * 2))[: args.days]
    print(f"simulating {len(days)} sessions {days[0]}..{days[-1]} ...", flush=True)
    frames = SyntheticMarket(7).frames(days)

    concurrent = ingest(frames, days, args, args.max_in_flight)
    sequential = ingest(frames, days, args, max_in_flight=1)
    bound = concurrent["requests"] / args.max_rps
    print(
        f"\n{len(days)} days, {concurrent['rows']:,} rows, page size {args.page_size}, "
        f"latency {args.latency[0]}-{args.latency[1]} s, MAX_RPS {args.max_rps:g}\n"
        f"{'':12}{'requests':>9}{'wall s':>9}{'max/1s':>8}{'peak':>6}{'429s':>6}\n"
        + "".join(
            f"{name:12}{r['requests']:>9}{r['wall']:>9.2f}{r['max_1s']:>8}{r['peak_in_flight']:>6}{r['rejected']:>6}\n"
            for name, r in (("concurrent", concurrent), ("sequential", sequential))
        )
        + f"\nbound = requests / MAX_RPS = {bound:.2f} s\n"
        f"concurrent / bound = {concurrent['wall'] / bound:.3f}  (target <= 1.2)\n"
        f"sequential / concurrent = {sequential['wall'] / concurrent['wall']:.1f}x"
    )


if __name__ == "__main__":
    main()
