"""The dbt project (dbt_project/) against a real DuckDB warehouse.

A small seeded market is written to stock_raw.daily_prices; real `dbt` subprocesses build the
marts.  Checked:
  1. every mart column equals an independent pandas recomputation from the source table;
  2. window-by-window incremental runs equal a full refresh, and re-running a window is a no-op;
  3. a window run writes only rows inside the window;
  4. the compiled SQL bounds the source scan by the lookback (min_date - 364 days) and the lookahead
     (max_date + 364 days); a listing with few sessions in the lookback also reads its older ones.

dbt is slow to start (seconds per invocation), so the module uses six invocations in all, in two
lanes side by side (fixture `builds`): one full refresh and one window run for test 3; three
window runs and one re-run for test 2.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from stock_platform.defs.stock_prices.schema import DAILY_PRICES
from stock_platform.platform.dbt import DBT_PROJECT_DIR as PROJECT_DIR
from stock_platform.platform.resources import dbt_executable
from stock_platform.platform.settings import REPO_ROOT as REPO
from stock_platform.platform.warehouse.duckdb import create_table_sql

RAW = DAILY_PRICES.dataset
ANALYTICS = "stock_analytics"
MARTS = ("fct_daily_stock_metrics", "market_daily_summary", "top_movers_daily", "fct_stock_features")
LOOKBACK_DAYS = {"fct_daily_stock_metrics": 364, "market_daily_summary": 364, "top_movers_daily": 0,
                 "fct_stock_features": 364}

# Contract columns (ARCHITECTURE.md, "dbt summary tables"), in order, and each mart's grain.
COLUMNS = {
    "fct_daily_stock_metrics": [
        "trade_date", "ticker", "name", "market", "close", "volume", "market_cap",
        "daily_return", "ma_5", "ma_20", "ma_60", "volatility_20", "high_52w", "low_52w",
    ],
    "market_daily_summary": [
        "trade_date", "market", "listings", "advancers", "decliners", "unchanged",
        "total_volume", "total_traded_value", "total_market_cap", "cap_weighted_return",
    ],
    "top_movers_daily": [
        "trade_date", "market", "direction", "rank", "ticker", "name", "change_pct", "close",
        "volume",
    ],
    "fct_stock_features": [
        "trade_date", "ticker", "market", "close", "return_1d", "return_5d", "return_20d",
        "volatility_20", "volume_ratio_20", "ma_ratio_5_20", "pct_from_52w_high",
    ],
}
KEYS = {
    "fct_daily_stock_metrics": ["trade_date", "ticker"],
    "market_daily_summary": ["trade_date", "market"],
    "top_movers_daily": ["trade_date", "market", "direction", "rank"],
    "fct_stock_features": ["trade_date", "ticker"],
}
FLOATS = {
    "fct_daily_stock_metrics": [
        "daily_return", "ma_5", "ma_20", "ma_60", "volatility_20",
    ],
    "market_daily_summary": ["cap_weighted_return"],
    "top_movers_daily": ["change_pct"],
    "fct_stock_features": [
        "return_1d", "return_5d", "return_20d", "volatility_20", "volume_ratio_20",
        "ma_ratio_5_20", "pct_from_52w_high",
    ],
}

# ---------------------------------------------------------------------------------------------
# The synthetic market
# ---------------------------------------------------------------------------------------------

FIRST_DAY = dt.date(2022, 10, 4)
LAST_DAY = dt.date(2024, 4, 30)
HOLIDAYS = {
    dt.date(2023, 1, 23), dt.date(2023, 3, 1), dt.date(2023, 5, 5), dt.date(2023, 8, 15),
    dt.date(2023, 12, 25), dt.date(2024, 1, 1), dt.date(2024, 2, 9), dt.date(2024, 4, 10),
}
# Incremental windows, inclusive.  W2 and W3 start on Tuesdays, so (start - 364 days) is a
# Tuesday session and (start - 365 days) a Monday session: the 52-week boundary is exercised, and
# their lookback (start - 364 days) cuts into the data, which begins 2023-01-02.
WINDOWS = [
    (FIRST_DAY, dt.date(2024, 2, 5)),
    (dt.date(2024, 2, 6), dt.date(2024, 3, 11)),
    (dt.date(2024, 3, 12), dt.date(2024, 4, 30)),
]
# Days after a window whose marts look back into it (the 52-week range, macro stock_52w_days).
LOOKAHEAD = dt.timedelta(days=364)
SPIKE_TICKER = "005930"  # extreme highs exactly 364 and 365 days before W2 starts
DIP_TICKER = "000660"  # extreme lows exactly 364 and 365 days before W3 starts
SUSPENDED_TICKER = "000106"
SUSPENDED = (dt.date(2023, 2, 1), dt.date(2024, 2, 20))  # no sessions from the first to the second
LAST_BEFORE_SUSPENSION = dt.date(2023, 1, 31)


def sessions() -> list[dt.date]:
    days, day = [], FIRST_DAY
    while day <= LAST_DAY:
        if day.weekday() < 5 and day not in HOLIDAYS:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def make_source() -> pd.DataFrame:
    """~25 listings over ~340 sessions: listings and a delisting mid-way, a 12-session listing,
    trading halts (one across a window boundary), a market transfer, a share-count change,
    unchanged closes, exact change_pct ties, planted 52-week extremes, all three markets."""
    rng = np.random.default_rng(20240501)
    days = sessions()
    n = len(days)
    idx = {d: i for i, d in enumerate(days)}
    listings = (
        [("005930", "삼성전자", "KOSPI"), ("000660", "SK하이닉스", "KOSPI")]
        + [(f"{100 + i:06d}", f"코스피{i}", "KOSPI") for i in range(10)]
        + [(f"{200000 + i:06d}", f"코스닥{i}", "KOSDAQ") for i in range(10)]
        + [(f"{300000 + i:06d}", f"코넥스{i}", "KONEX") for i in range(3)]
    )
    span = {ticker: (0, n) for ticker, _, _ in listings}
    span["200001"] = (idx[dt.date(2023, 9, 4)], n)  # lists mid-way
    span["200002"] = (0, idx[dt.date(2023, 8, 1)])  # delists
    span["300002"] = (100, 112)  # twelve sessions only
    span["000102"] = (idx[dt.date(2024, 3, 20)], n)  # lists inside W3
    halts = {
        "000103": (idx[dt.date(2023, 6, 1)], idx[dt.date(2023, 6, 22)]),
        "000104": (idx[dt.date(2024, 1, 25)], idx[dt.date(2024, 2, 14)]),  # across W2's start
        # Suspended for over a year, resuming inside W2: its previous session and last 60
        # sessions lie before W2's and W3's 364-day lookback.
        SUSPENDED_TICKER: (idx[SUSPENDED[0]], idx[SUSPENDED[1]]),
    }
    transfer_at = idx[dt.date(2023, 11, 1)]  # 200003 moves from KOSDAQ to KOSPI
    share_change_at = idx[dt.date(2023, 10, 10)]  # 000105 issues new shares

    rows = []
    for ticker, name, market in listings:
        first, end = span[ticker]
        price = float(rng.integers(2_000, 200_000))
        shares = int(rng.integers(5_000_000, 6_000_000_000))
        prev_close = None
        for i in range(first, end):
            if ticker in halts and halts[ticker][0] <= i < halts[ticker][1]:
                continue
            day = days[i]
            ret = rng.normal(0.0005, 0.025)
            close = max(10, int(round(price * (1 + ret), -1)))
            if prev_close is not None and rng.random() < 0.06:
                close = prev_close  # unchanged
            price = close
            open_ = max(10, int(round(close * (1 + rng.normal(0, 0.01)), -1)))
            high = int(max(open_, close) * (1 + abs(rng.normal(0, 0.01))))
            low = int(min(open_, close) * (1 - abs(rng.normal(0, 0.01))))
            base = prev_close if prev_close is not None else open_
            change = close - base
            change_pct = round(change / base * 100, 1)
            mkt = "KOSPI" if ticker == "200003" and i >= transfer_at else market
            if ticker == "000105" and i == share_change_at:
                shares += 1_000_000
            volume = int(rng.integers(1_000, 5_000_000))
            rows.append({
                "trade_date": day, "ticker": ticker, "isin": f"KR7{ticker}00{len(rows) % 10}",
                "name": name, "market": mkt, "open": open_, "high": high, "low": low,
                "close": close, "change": change, "change_pct": change_pct, "volume": volume,
                "traded_value": volume * close, "listed_shares": shares,
                "market_cap": close * shares,
                "ingested_at": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=28),
            })
            prev_close = close
    df = pd.DataFrame(rows)

    # Exact ties in change_pct across listings: limit-up / limit-down days, around the top-10 cut.
    for k, day in enumerate(days[5::9]):
        on_day = df.trade_date == day
        for market, pct in (("KOSPI", 30.0), ("KOSDAQ", -30.0), ("KOSPI", -7.5)):
            candidates = df.index[on_day & (df.market == market)]
            chosen = rng.choice(candidates, size=min(4, len(candidates)), replace=False)
            df.loc[chosen, "change_pct"] = pct if k % 2 == 0 else -pct
    # 52-week boundary: extremes at exactly d-364 (inside d's range) and d-365 (outside).
    w2, w3 = WINDOWS[1][0], WINDOWS[2][0]
    for ticker, day, column, factor in (
        (SPIKE_TICKER, w2 - dt.timedelta(days=364), "high", 10),
        (SPIKE_TICKER, w2 - dt.timedelta(days=365), "high", 20),
        (DIP_TICKER, w3 - dt.timedelta(days=364), "low", 0.02),
        (DIP_TICKER, w3 - dt.timedelta(days=365), "low", 0.01),
    ):
        hit = (df.ticker == ticker) & (df.trade_date == day)
        assert hit.sum() == 1, (ticker, day)
        df.loc[hit, column] = (df.loc[hit, column] * factor).astype("int64")
    return df[DAILY_PRICES.column_names].sort_values(["trade_date", "ticker"]).reset_index(drop=True)


def write_source(db_path: Path, source: pd.DataFrame) -> None:
    with duckdb.connect(str(db_path)) as con:
        con.execute(f"create schema if not exists {RAW}")
        con.execute(f"drop table if exists {DAILY_PRICES.qualified_name}")
        con.execute(create_table_sql(DAILY_PRICES))
        con.register("source_df", source)
        con.execute(f"insert into {RAW}.daily_prices select * from source_df")


# ---------------------------------------------------------------------------------------------
# Independent reference implementation (pandas / numpy, straight from the definitions)
# ---------------------------------------------------------------------------------------------


def reference_marts(source: pd.DataFrame) -> dict[str, pd.DataFrame]:
    src = source.copy()
    src["trade_date"] = pd.to_datetime(src["trade_date"])
    src = src.sort_values(["ticker", "trade_date"]).reset_index(drop=True)
    windows = np.lib.stride_tricks.sliding_window_view

    parts = []
    for _, g in src.groupby("ticker", sort=False):
        g = g.copy()
        n = len(g)
        close = g["close"].to_numpy(dtype=float)
        ret = np.full(n, np.nan)
        ret[1:] = close[1:] / close[:-1] - 1  # previous session's close
        g["daily_return"] = ret
        g["prev_market_cap"] = g["market_cap"].astype(float).shift(1)
        for sessions_ in (5, 20, 60):  # mean of the last N closes, NULL before N sessions
            ma = np.full(n, np.nan)
            if n >= sessions_:
                ma[sessions_ - 1 :] = windows(close, sessions_).mean(axis=1)
            g[f"ma_{sessions_}"] = ma
        vol = np.full(n, np.nan)  # sample stddev of the last 20 returns, all 20 non-null
        if n >= 20:
            last20 = windows(ret, 20)
            complete = ~np.isnan(last20).any(axis=1)
            vol[19:][complete] = last20[complete].std(axis=1, ddof=1)
        g["volatility_20"] = vol
        dates = g["trade_date"].to_numpy(dtype="datetime64[D]")
        start = np.searchsorted(dates, dates - np.timedelta64(364, "D"), side="left")
        highs, lows = g["high"].to_numpy(), g["low"].to_numpy()
        g["high_52w"] = [highs[start[i] : i + 1].max() for i in range(n)]
        g["low_52w"] = [lows[start[i] : i + 1].min() for i in range(n)]
        # Features: the close N sessions earlier, the mean volume of the 20 sessions before.
        for sessions_ in (5, 20):
            earlier = np.full(n, np.nan)
            earlier[sessions_:] = close[:-sessions_]
            g[f"return_{sessions_}d"] = close / earlier - 1
        volume = g["volume"].to_numpy(dtype=float)
        mean_before = np.full(n, np.nan)
        if n > 20:
            mean_before[20:] = windows(volume, 20)[:-1].mean(axis=1)
        g["volume_ratio_20"] = volume / np.where(mean_before == 0, np.nan, mean_before)
        parts.append(g)
    enriched = pd.concat(parts, ignore_index=True)
    fct = enriched[COLUMNS["fct_daily_stock_metrics"]]

    has_return = enriched["daily_return"].notna()
    enriched["weight"] = enriched["prev_market_cap"].where(has_return)
    enriched["weighted"] = enriched["weight"] * enriched["daily_return"]
    enriched["up"] = enriched["change"] > 0
    enriched["down"] = enriched["change"] < 0
    enriched["flat"] = enriched["change"] == 0
    summary = enriched.groupby(["trade_date", "market"], as_index=False).agg(
        listings=("ticker", "size"), advancers=("up", "sum"), decliners=("down", "sum"),
        unchanged=("flat", "sum"), total_volume=("volume", "sum"),
        total_traded_value=("traded_value", "sum"), total_market_cap=("market_cap", "sum"),
        weighted=("weighted", "sum"), weight=("weight", "sum"),
        returns=("daily_return", "count"),
    )
    summary["cap_weighted_return"] = np.where(
        (summary["returns"] > 0) & (summary["weight"] != 0),
        summary["weighted"] / summary["weight"].where(summary["weight"] != 0), np.nan,
    )

    movers = []
    ranked_source = src[src["change_pct"].notna()].assign(neg_pct=lambda f: -f["change_pct"])
    for direction, order in (("gainer", "neg_pct"), ("loser", "change_pct")):
        ranked = ranked_source.sort_values(["trade_date", "market", order, "ticker"])
        ranked["rank"] = ranked.groupby(["trade_date", "market"]).cumcount() + 1
        movers.append(ranked[ranked["rank"] <= 10].assign(direction=direction))
    movers = pd.concat(movers, ignore_index=True)
    features = enriched.assign(
        return_1d=enriched["daily_return"],
        ma_ratio_5_20=enriched["ma_5"] / enriched["ma_20"] - 1,
        pct_from_52w_high=enriched["close"] / enriched["high_52w"] - 1,
    )
    return {
        "fct_stock_features": normalize("fct_stock_features", features),
        "fct_daily_stock_metrics": normalize("fct_daily_stock_metrics", fct),
        "market_daily_summary": normalize("market_daily_summary", summary),
        "top_movers_daily": normalize("top_movers_daily", movers),
    }


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def normalize(model: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[COLUMNS[model]].copy()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.strftime("%Y-%m-%d")
    for column in frame.columns:
        if column in FLOATS[model]:
            frame[column] = frame[column].astype("float64")
        elif pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("int64")
    return frame.sort_values(KEYS[model]).reset_index(drop=True)


def read_marts(db_path: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        marts = {}
        for model in MARTS:
            frame = con.sql(f"select * from {ANALYTICS}.{model}").df()
            assert list(frame.columns) == COLUMNS[model], f"{model} columns"
            marts[model] = normalize(model, frame)
        return marts


def in_window(frame: pd.DataFrame, lo: dt.date | None, hi: dt.date | None) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    if lo is not None:
        keep &= frame["trade_date"] >= lo.isoformat()
    if hi is not None:
        keep &= frame["trade_date"] <= hi.isoformat()
    return frame[keep].reset_index(drop=True)


def assert_same(model: str, actual: pd.DataFrame, expected: pd.DataFrame, rtol: float) -> None:
    """Same key set, same values: floats within rtol with identical NULL patterns."""
    keys = KEYS[model]
    a_keys = set(map(tuple, actual[keys].to_numpy().tolist()))
    e_keys = set(map(tuple, expected[keys].to_numpy().tolist()))
    assert len(a_keys) == len(actual), f"{model}: duplicate keys"
    missing, extra = sorted(e_keys - a_keys)[:5], sorted(a_keys - e_keys)[:5]
    assert not missing and not extra, f"{model}: rows missing {missing}, unexpected {extra}"
    for column in COLUMNS[model]:
        a, e = actual[column].to_numpy(), expected[column].to_numpy()
        if column in FLOATS[model]:
            a_null, e_null = np.isnan(a), np.isnan(e)
            bad = a_null != e_null
            bad |= ~a_null & ~e_null & ~np.isclose(a, e, rtol=rtol, atol=1e-15)
        else:
            bad = a != e
        if bad.any():
            sample = actual.loc[bad, keys].head(3).to_dict("records")
            pytest.fail(
                f"{model}.{column}: {int(bad.sum())} rows differ, e.g. {sample}: "
                f"dbt {a[bad][:3].tolist()} != expected {e[bad][:3].tolist()}"
            )


class Dbt:
    """One dbt subprocess against data_dir/warehouse.duckdb, with its own target dir."""

    def __init__(self, data_dir: Path, label: str, *args: str, reuse: Path | None = None) -> None:
        self.args, self.target = args, data_dir / f"target-{label}"
        if reuse is not None:  # a target dir of a run with the same vars: dbt parses partially
            shutil.copytree(reuse, self.target)
        self.output = data_dir / f"dbt-{label}.log"
        env = {
            **os.environ,
            "STOCK_PLATFORM_DATA_DIR": str(data_dir),
            "BQ_RAW_DATASET": RAW,
            "BQ_ANALYTICS_DATASET": ANALYTICS,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        command = [
            # The stock models only: this warehouse has no web_raw.
            dbt_executable(), *args, "--select", "path:models/stock_prices",
            "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
            "--target", "local", "--target-path", str(self.target),
            "--log-path", str(data_dir / f"logs-{label}"),
        ]
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait(self) -> Path:
        """Wait for dbt to finish; fails unless it succeeded.  Returns the target dir."""
        try:
            code = self.process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert code == 0, f"dbt {' '.join(self.args)} failed ({code}):\n" + (
            self.output.read_text()[-8000:]
        )
        return self.target


def run_dbt(data_dir: Path, label: str, *args: str, reuse: Path | None = None) -> Path:
    return Dbt(data_dir, label, *args, reuse=reuse).wait()


def window_vars(lo: dt.date, hi: dt.date) -> tuple[str, str]:
    return "--vars", f'{{"min_date": "{lo.isoformat()}", "max_date": "{hi.isoformat()}"}}'


# ---------------------------------------------------------------------------------------------
# Fixtures: one full refresh, one window-by-window build
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    return make_source()


@pytest.fixture(scope="module")
def expected(source) -> dict[str, pd.DataFrame]:
    return reference_marts(source)


CHANGED_DAY = dt.date(2024, 1, 30)  # test 3 changes SPIKE_TICKER's row of this day (in W1)


@pytest.fixture(scope="module")
def builds(tmp_path_factory, source) -> dict:
    """All dbt runs of this module, in two independent lanes running side by side:
      full lane:    fresh warehouse, `dbt build --full-refresh` (models and data tests, no vars);
                    then a copy of it, one source row before W2 changed, `dbt run` W2
      windows lane: fresh warehouse, `dbt run --vars` W1, W2, W3 in turn, then W2 again
    """

    def fresh(name: str) -> Path:
        data_dir = tmp_path_factory.mktemp(name)
        write_source(data_dir / "warehouse.duckdb", source)
        return data_dir

    full_dir, windows_dir = fresh("dbt_full"), fresh("dbt_windows")
    changed_dir = tmp_path_factory.mktemp("dbt_changed")
    suspension_dir = tmp_path_factory.mktemp("dbt_suspension")

    def full_lane() -> dict:
        run_dbt(full_dir, "full", "build", "--full-refresh")
        shutil.copy(full_dir / "warehouse.duckdb", changed_dir / "warehouse.duckdb")
        with duckdb.connect(str(changed_dir / "warehouse.duckdb")) as con:
            updated = con.execute(
                f"update {RAW}.daily_prices set close = close * 3, high = high * 40, "
                "market_cap = market_cap * 3, change = 1, change_pct = 99.5, volume = 1 "
                "where ticker = ? and trade_date = ? returning ticker",
                [SPIKE_TICKER, CHANGED_DAY],
            ).fetchall()
            assert len(updated) == 1
            changed_source = con.sql(f"select * from {RAW}.daily_prices").df()
        run_dbt(changed_dir, "w2-changed", "run", *window_vars(*WINDOWS[1]))
        # The known limit: the last session before a suspension longer than the lookback changes.
        shutil.copy(full_dir / "warehouse.duckdb", suspension_dir / "warehouse.duckdb")
        with duckdb.connect(str(suspension_dir / "warehouse.duckdb")) as con:
            con.execute(
                f"update {RAW}.daily_prices set close = close * 3, high = high * 3, "
                "market_cap = market_cap * 3 where ticker = ? and trade_date = ?",
                [SUSPENDED_TICKER, LAST_BEFORE_SUSPENSION],
            )
            suspension_source = con.sql(f"select * from {RAW}.daily_prices").df()
        run_dbt(suspension_dir, "suspension", "run",
                *window_vars(LAST_BEFORE_SUSPENSION, LAST_BEFORE_SUSPENSION))
        return {
            "suspension_source": suspension_source,
            "suspension": read_marts(suspension_dir / "warehouse.duckdb"),
            "full": read_marts(full_dir / "warehouse.duckdb"),
            "changed_source": changed_source,
            "changed": read_marts(changed_dir / "warehouse.duckdb"),
        }

    def windows_lane() -> dict:
        db_path = windows_dir / "warehouse.duckdb"
        snapshots, targets = {}, {}
        for number, (lo, hi) in enumerate(WINDOWS, start=1):
            targets[number] = run_dbt(windows_dir, f"w{number}", "run", *window_vars(lo, hi))
            snapshots[number] = read_marts(db_path)
        run_dbt(windows_dir, "w2-again", "run", *window_vars(*WINDOWS[1]), reuse=targets[2])
        snapshots["rerun"] = read_marts(db_path)
        return {"windows_db": db_path, "snapshots": snapshots, "targets": targets}

    with ThreadPoolExecutor(max_workers=2) as pool:
        lanes = [pool.submit(full_lane), pool.submit(windows_lane)]
        return {key: value for lane in lanes for key, value in lane.result().items()}


@pytest.fixture(scope="module")
def full_refresh(builds) -> dict[str, pd.DataFrame]:
    return builds["full"]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_source_covers_the_edge_cases(source):
    """The generator really produces what the other tests rely on."""
    per_ticker = source.groupby("ticker")["trade_date"].agg(["min", "max", "count"])
    assert set(source["market"]) == {"KOSPI", "KOSDAQ", "KONEX"}
    assert per_ticker["min"].nunique() > 1 and per_ticker["max"].nunique() > 1
    assert (per_ticker["count"] < 20).any()
    assert source.groupby(["trade_date", "market"])["change_pct"].apply(
        lambda s: s.duplicated().any()
    ).sum() > 20
    assert (source["change"] == 0).sum() > 50
    assert source.groupby("ticker")["market"].nunique().max() == 2
    assert pd.Timestamp(WINDOWS[1][0] - dt.timedelta(days=364)) >= pd.Timestamp(FIRST_DAY)
    # A listing whose sessions before W2 and W3 all lie before their 364-day lookback.
    suspended = pd.to_datetime(source.loc[source["ticker"] == SUSPENDED_TICKER, "trade_date"])
    gap = suspended.diff().max()
    resumed = suspended[suspended.diff() == gap].iloc[0].date()
    assert gap > pd.Timedelta(days=364) and WINDOWS[1][0] < resumed <= WINDOWS[1][1]
    before_lookback = WINDOWS[2][0] - dt.timedelta(days=364)
    assert (suspended.dt.date < before_lookback).sum() > 60  # more than the 60 a window run reads
    assert ((suspended.dt.date >= before_lookback) & (suspended.dt.date < WINDOWS[2][0])).sum() < 60


def test_a_listing_back_from_a_long_suspension_continues_its_history(full_refresh, builds):
    """Its sessions before the suspension count in a window run as in a full refresh: the first
    return after resuming is from the last close before the suspension, and its moving averages
    span the gap (a read bounded by the 364-day lookback alone would leave them NULL)."""
    for snapshot in (builds["snapshots"][2], builds["snapshots"][3], full_refresh):
        fct = snapshot["fct_daily_stock_metrics"]
        rows = fct[fct["ticker"] == SUSPENDED_TICKER].reset_index(drop=True)
        at = rows.index[rows["trade_date"] > SUSPENDED[0].isoformat()][0]
        assert rows.loc[at, "daily_return"] == pytest.approx(rows.loc[at, "close"] / rows.loc[at - 1, "close"] - 1)
        assert rows.loc[at - 1, "trade_date"] < SUSPENDED[0].isoformat()
        assert rows.loc[at + 40:, "ma_60"].notna().all()


@pytest.mark.parametrize("model", MARTS)
def test_marts_match_independent_recomputation(model, expected, full_refresh):
    assert len(expected[model]) > 0
    assert_same(model, full_refresh[model], expected[model], rtol=1e-9)


def test_fct_null_patterns_and_52_week_boundary(source, full_refresh):
    """Spot checks that pin the contract independently of the reference implementation."""
    fct = full_refresh["fct_daily_stock_metrics"]
    assert fct.groupby("ticker").head(1)["daily_return"].isna().all()
    assert fct["daily_return"].isna().sum() == fct["ticker"].nunique()
    session = fct.groupby("ticker").cumcount()  # 0 on a ticker's first row
    for n_sessions in (5, 20, 60):
        assert (fct[f"ma_{n_sessions}"].isna() == (session < n_sessions - 1)).all()
    assert (fct["volatility_20"].isna() == (session < 20)).all()  # 20 returns need 21 sessions

    # The range is [d - 364 days, d]: on W2's first day the 20x spike of d-365 has dropped out
    # and the 10x spike of d-364 is the high; the day before still sees the 20x spike.
    w2 = WINDOWS[1][0]
    highs = source[source["ticker"] == SPIKE_TICKER].set_index("trade_date")["high"]
    high_52w = fct[fct["ticker"] == SPIKE_TICKER].set_index("trade_date")["high_52w"]
    assert high_52w[w2.isoformat()] == highs[w2 - dt.timedelta(days=364)]
    previous_session = high_52w.index[high_52w.index.get_loc(w2.isoformat()) - 1]
    assert high_52w[previous_session] == highs[w2 - dt.timedelta(days=365)]
    w3 = WINDOWS[2][0]
    lows = source[source["ticker"] == DIP_TICKER].set_index("trade_date")["low"]
    low_52w = fct[fct["ticker"] == DIP_TICKER].set_index("trade_date")["low_52w"]
    assert low_52w[w3.isoformat()] == lows[w3 - dt.timedelta(days=364)]


def test_features_use_only_earlier_sessions(source, full_refresh):
    """Spot checks of fct_stock_features against the source rows by hand: each value reads the
    ticker's sessions up to its own day only, and is NULL until enough of them exist."""
    features = full_refresh["fct_stock_features"]
    assert len(features) == len(full_refresh["fct_daily_stock_metrics"])
    session = features.groupby("ticker").cumcount()  # 0 on a ticker's first row
    assert (features["return_5d"].isna() == (session < 5)).all()
    assert (features["return_20d"].isna() == (session < 20)).all()
    assert (features["volume_ratio_20"].isna() == (session < 20)).all()
    rows = source[source["ticker"] == SPIKE_TICKER].sort_values("trade_date").reset_index(drop=True)
    mine = features[features["ticker"] == SPIKE_TICKER].reset_index(drop=True)
    at = 100
    assert mine.loc[at, "trade_date"] == rows.loc[at, "trade_date"].isoformat()
    assert mine.loc[at, "return_5d"] == pytest.approx(rows.loc[at, "close"] / rows.loc[at - 5, "close"] - 1)
    assert mine.loc[at, "return_20d"] == pytest.approx(rows.loc[at, "close"] / rows.loc[at - 20, "close"] - 1)
    previous_20 = rows.loc[at - 20 : at - 1, "volume"].mean()  # today excluded
    assert mine.loc[at, "volume_ratio_20"] == pytest.approx(rows.loc[at, "volume"] / previous_20)


def test_incremental_windows_equal_full_refresh(full_refresh, builds):
    snapshots = builds["snapshots"]
    # A window writes its days and every later day whose lookback reaches into it
    # (LOOKAHEAD): the source holds all three windows, so W1's run already writes W2 and W3.
    lo = WINDOWS[0][0]
    for number in (1, 2, 3):
        hi = WINDOWS[number - 1][1] + LOOKAHEAD
        for model in MARTS:
            assert_same(
                model, snapshots[number][model], in_window(full_refresh[model], lo, hi),
                rtol=1e-12,
            )
    # Re-running W2 changes nothing.
    for model in MARTS:
        assert_same(model, snapshots["rerun"][model], full_refresh[model], rtol=1e-12)
        assert_same(model, snapshots["rerun"][model], snapshots[3][model], rtol=0)


def test_window_run_writes_its_days_and_the_days_that_look_back_at_them(full_refresh, builds):
    """Seed the warehouse with a full refresh, change a source row before W2 but inside W2's
    lookback, run W2: rows before W2 and after its lookahead keep their old values, rows from
    W2's first day through LOOKAHEAD after its last see the change."""
    lo, hi = WINDOWS[1][0], WINDOWS[1][1] + LOOKAHEAD
    after = builds["changed"]
    expected = reference_marts(builds["changed_source"])
    for model in MARTS:
        outside = after[model][
            (after[model]["trade_date"] < lo.isoformat())
            | (after[model]["trade_date"] > hi.isoformat())
        ].reset_index(drop=True)
        full = full_refresh[model]
        full_outside = full[
            (full["trade_date"] < lo.isoformat()) | (full["trade_date"] > hi.isoformat())
        ].reset_index(drop=True)
        assert_same(model, outside, full_outside, rtol=0)
        assert_same(
            model, in_window(after[model], lo, hi), in_window(expected[model], lo, hi), rtol=1e-9
        )

    # The change shows on both sides of the window, so the assertions above can fail:
    fct_new = expected["fct_daily_stock_metrics"]
    fct_old = full_refresh["fct_daily_stock_metrics"]
    ticker = fct_old["ticker"] == SPIKE_TICKER
    row = ticker & (fct_old["trade_date"] == CHANGED_DAY.isoformat())
    assert row.sum() == 1 and (fct_new.loc[row, "close"] != fct_old.loc[row, "close"]).all()
    w2_lo, w2_hi = WINDOWS[1]
    in_w2 = ticker & fct_old["trade_date"].between(w2_lo.isoformat(), w2_hi.isoformat())
    assert (fct_new.loc[in_w2, "high_52w"] != fct_old.loc[in_w2, "high_52w"]).all()
    # ... and after W2 (in W3): the run rewrites those days because their 52 weeks reach it.
    after_w2 = ticker & (fct_old["trade_date"] > w2_hi.isoformat())
    assert (fct_new.loc[after_w2, "high_52w"] != fct_old.loc[after_w2, "high_52w"]).any()
    def top_gainer(movers: pd.DataFrame) -> pd.DataFrame:
        return movers[(movers["trade_date"] == CHANGED_DAY.isoformat())
                      & (movers["market"] == "KOSPI") & (movers["direction"] == "gainer")
                      & (movers["rank"] == 1)]

    assert top_gainer(expected["top_movers_daily"])["change_pct"].tolist() == [99.5]
    assert top_gainer(after["top_movers_daily"])["change_pct"].tolist() != [99.5]


def differing_keys(model: str, actual: pd.DataFrame, expected: pd.DataFrame) -> set[tuple]:
    """Keys of the rows whose values differ (floats beyond 1e-9 relative, or in NULL-ness)."""
    keys = KEYS[model]
    merged = actual.merge(expected, on=keys, suffixes=("_a", "_e"), how="outer", indicator=True)
    bad = merged["_merge"] != "both"
    for column in COLUMNS[model]:
        if column in keys:
            continue
        a, e = merged[f"{column}_a"], merged[f"{column}_e"]
        if column in FLOATS[model]:
            a, e = a.to_numpy(dtype=float), e.to_numpy(dtype=float)
            bad |= (np.isnan(a) != np.isnan(e)) | (~np.isnan(a) & ~np.isclose(a, e, rtol=1e-9, atol=1e-15))
        else:
            bad |= a.to_numpy() != e.to_numpy()
    return set(map(tuple, merged.loc[bad, keys].to_numpy().tolist()))


def test_known_limit_a_change_before_a_long_suspension_does_not_reach_the_rows_after_it(builds):
    """The one case a window run leaves different from a full refresh: the last session before a
    suspension longer than the lookback changes. The run rewrites that day and the 364 after it,
    but the listing's first sessions after resuming (more than 364 days later) take their previous
    close and moving averages from it and are not rewritten. Exactly those rows differ (and the
    market summary of the resumption day, whose cap-weighted return uses the listing's return);
    a full refresh, or a run over the resumption days, repairs them."""
    actual, expected = builds["suspension"], reference_marts(builds["suspension_source"])
    fct = expected["fct_daily_stock_metrics"]
    resumed = fct[(fct["ticker"] == SUSPENDED_TICKER) & (fct["trade_date"] > SUSPENDED[0].isoformat())]
    first_60 = set(resumed["trade_date"].head(60))  # sessions whose 60-session window reaches back
    fct_diff = differing_keys("fct_daily_stock_metrics", actual["fct_daily_stock_metrics"], fct)
    assert fct_diff and {ticker for _, ticker in fct_diff} == {SUSPENDED_TICKER}
    assert {day for day, _ in fct_diff} <= first_60
    assert min(day for day, _ in fct_diff) == resumed["trade_date"].iloc[0]  # its first return
    summary_diff = differing_keys("market_daily_summary", actual["market_daily_summary"],
                                  expected["market_daily_summary"])
    assert {day for day, _ in summary_diff} == {resumed["trade_date"].iloc[0]}
    assert differing_keys("top_movers_daily", actual["top_movers_daily"], expected["top_movers_daily"]) == set()


@pytest.mark.parametrize("model", MARTS)
def test_compiled_sql_bounds_the_source_scan(model, builds):
    """The compiled SQL of a window run reads daily_prices only from min_date minus the model's
    lookback to max_date plus the lookahead, and DuckDB pushes the lower bound into the table
    scan (the upper one lies after the test data, so DuckDB drops it as always true)."""
    # W2: its lower source bound lies inside the data, so DuckDB cannot drop that filter as
    # always true (it does so from table statistics).
    lo, hi = WINDOWS[1]
    lower = lo - dt.timedelta(days=LOOKBACK_DAYS[model])
    compiled_path = next(
        (builds["targets"][2] / "compiled").rglob(f"marts/{model}.sql")
    )
    sql = compiled_path.read_text()
    assert lo.isoformat() in sql and hi.isoformat() in sql
    bounds = re.findall(r"where\s+trade_date\s*>=\s*(.+?)\s+and\s+trade_date\s*<=\s*(.+?)\s*\n",
                        sql, flags=re.S)
    assert bounds, sql
    with duckdb.connect(str(builds["windows_db"]), read_only=True) as con:
        # The loosest lower bound in the SQL (the source read) is min_date - lookback ...
        lowers = [con.execute(f"select {lower_sql}").fetchall()[0][0] for lower_sql, _ in bounds]
        assert min(lowers) == lower
        uppers = [con.execute(f"select {upper_sql}").fetchall()[0][0] for _, upper_sql in bounds]
        assert max(uppers) == hi + LOOKAHEAD
        # ... and it bounds the scan of the source table itself.
        plan = con.sql(f"explain (format json) {sql}").fetchall()[0][1]
    scans = []

    def walk(node: dict) -> None:
        info = node.get("extra_info", {})
        if "SCAN" in node.get("name", "") and "daily_prices" in str(info.get("Table", "")):
            scans.append(str(info.get("Filters", "")))
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(plan):
        walk(node)
    assert scans, plan
    # The window read starts at the lookback; the read of older sessions (for listings with few
    # sessions in the lookback, see macros/prices_with_previous.sql) ends there.
    bounded = (f"trade_date >= '{lower.isoformat()}'::DATE", f"trade_date < '{lower.isoformat()}'::DATE")
    for filters in scans:
        assert any(bound in filters for bound in bounded), filters
