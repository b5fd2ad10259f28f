"""A deterministic synthetic Korean stock market that speaks the data.go.kr wire format.

Every listing has a fundamental log price: an anchor that grows at its own rate plus an AR(1)
deviation driven by market factors, stochastic volatility, idiosyncratic noise and rare jumps. That
part is linear, so it is computed in blocks of weekdays for all listings at once. The only
path-dependent step, snapping the fundamental onto the KRX tick grid and clamping it to the daily
price limit around the previous close, runs once per session, vectorized across listings.

Determinism: every random draw comes from a generator keyed by (seed, stream, block or weekday),
and the simulation always runs from EPOCH, so a day's rows never depend on which other days were
requested. Open, high, low and volume do not feed back into the path; they are drawn only for
requested days, from a generator keyed by that day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stock_platform.defs.stock_prices.sources.wire import MARKETS, WIRE_FIELDS
from stock_platform.platform.calendars import trading_sessions

# KRX tick sizes since 2023, the same in every market: TICK_SIZES[i] applies below TICK_BOUNDS[i].
TICK_BOUNDS = np.array([2_000, 5_000, 20_000, 50_000, 200_000, 500_000])
TICK_SIZES = np.array([1, 5, 10, 50, 100, 500, 1_000])

KOSPI, KOSDAQ, KONEX = range(3)  # indices into wire.MARKETS
TARGET_LISTINGS = np.array([950, 1_650, 120])
NEW_LISTINGS_PER_YEAR = np.array([25, 65, 12])
LIMIT_PCT = np.array([30, 30, 15])  # daily price limit, percent of the previous close
LAST_YEAR = 2035  # listing events are drawn up to here, beyond the packaged XKRX calendar
MEGA_CAPS = 4  # KOSPI listings with billions of shares that never delist

BLOCK = 130  # weekdays per block of the fundamental path (about half a year)
WEEKDAYS_PER_YEAR = 261
AR_PHI = 0.5 ** (1 / WEEKDAYS_PER_YEAR)  # deviations from the anchor halve in about a year
REGIME_PHI, REGIME_SHOCK = 0.985, 0.05  # per-market log-volatility, slowly varying
MARKET_VOL = np.array([0.010, 0.012, 0.006])
JUMP_RATE, JUMP_SCALE, JUMP_SKEW = 0.004, 0.10, 0.015  # news jumps: Laplace sized, tilted upward
SHARE_EVENTS_PER_YEAR = 0.25

# Random streams, so that adding draws to one stream never shifts another.
UNIVERSE, PATH, DAY = range(3)

NAME_HEADS = list(
    "삼현엘한대동신세아우코에케지오유태광진영일금성화미서남경국"
    "보디비제이파씨티넥카네셀휴메바알솔하인정명천호덕창풍조효두롯종율"
)
NAME_TAILS = list("성대양진원신한화림광우영일산흥동아지스텍온엘리크트비코젠켐맥로피닉나라메랩솔윈")
NAME_SUFFIXES = [
    "전자", "바이오", "화학", "홀딩스", "제약", "건설", "금융", "에너지", "테크", "산업", "소재",
    "중공업", "반도체", "통신", "식품", "증권", "시스템", "정밀", "물산", "로직스", "게임즈",
    "모빌리티", "바이오텍", "케미칼", "머티리얼즈", "디스플레이", "솔루션", "네트웍스", "생명", "해운",
]  # fmt: skip
# Frames use pandas' Arrow-backed string dtype ("string[pyarrow]"): every cell reads back as a
# Python str, and a year of rows costs neither millions of Python objects nor the time to build
# them. Its storage type is large_string; building that directly saves a cast per column.
TEXT = pa.large_string()
FRACTIONS = pa.array([f".{cents:02d}" for cents in range(100)], TEXT)
MARKET_NAMES = pa.array(MARKETS, TEXT)
FAR_FUTURE = np.datetime64("9999-12-31", "D")


def tick_size(price: np.ndarray) -> np.ndarray:
    # A chain of comparisons is several times faster than np.searchsorted on large arrays.
    band = np.zeros(np.shape(price), dtype=np.intp)
    for bound in TICK_BOUNDS:
        band += price >= bound
    return TICK_SIZES[band]


def round_to_tick(price: np.ndarray) -> np.ndarray:
    """Nearest price on the tick grid (at least 1). Rounding across a band boundary lands on the
    boundary itself, which is on both grids."""
    tick = tick_size(price)
    return np.maximum(np.rint(price / tick) * tick, 1).astype(np.int64)


def limit_prices(prev: np.ndarray, pct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limit prices: prev * (1 -/+ pct%) rounded toward prev onto the grid.
    Integer arithmetic, so prev * 1.3 never becomes 1300.0000000000002."""
    up = prev * (100 + pct) // 100
    up -= up % tick_size(up)
    down = -(-prev * (100 - pct) // 100)
    down += -down % tick_size(down)
    return down, up


def isin_check_digit(codes: np.ndarray) -> np.ndarray:
    """ISIN check digits of "KR7" + code + "00" (letters as numbers, K=20 R=27, then Luhn)."""
    digits = np.concatenate(
        [
            np.broadcast_to([2, 0, 2, 7, 7], (len(codes), 5)),
            codes[:, None] // 10 ** np.arange(5, -1, -1) % 10,
            np.zeros((len(codes), 2), dtype=np.int64),
        ],
        axis=1,
    )
    doubled = digits[:, ::-1][:, ::2] * 2  # every other digit, starting at the rightmost
    total = (doubled // 10 + doubled % 10).sum(axis=1) + digits[:, ::-1][:, 1::2].sum(axis=1)
    return (10 - total % 10) % 10


def format_rate(vs: np.ndarray, prev: np.ndarray) -> pa.Array:
    """fltRt as the API writes it: "2.05", "-.19", ".05", and "0" for no change."""
    cents = np.rint(vs * 10_000 / prev).astype(np.int64)
    whole, frac = np.divmod(np.abs(cents), 100)
    text = pc.binary_join_element_wise(
        pc.if_else(pa.array(cents < 0), pa.scalar("-", TEXT), pa.scalar("", TEXT)),
        pc.if_else(pa.array(whole > 0), _text(whole), pa.scalar("", TEXT)),
        FRACTIONS.take(frac),
        pa.scalar("", TEXT),  # the separator
    )
    return pc.if_else(pa.array(vs == 0), pa.scalar("0", TEXT), text)


def _text(numbers: np.ndarray) -> pa.Array:
    """Integers as decimal strings. Arrow's cast avoids a Python object per cell."""
    return pc.cast(pa.array(numbers), TEXT)


def weekday_ordinal(days: np.ndarray, epoch: dt.date) -> np.ndarray:
    return np.busday_count(np.datetime64(epoch, "D"), days)


def ar1(start: np.ndarray, shocks: np.ndarray, phi: float) -> np.ndarray:
    """Rows of x_t = phi * x_(t-1) + shock_t from x_0 = start, without a Python loop."""
    decay = phi ** np.arange(1, len(shocks) + 1)[:, None]
    return decay * (start + np.cumsum(shocks / decay, axis=0))


@dataclass(frozen=True)
class Universe:
    """Static attributes of every listing that ever exists, one slot each, ordered by listing
    date. Codes are assigned in the same order (older companies have smaller codes, as on KRX),
    so slot order is srtnCd order."""

    srtn: pa.Array
    isin: pa.Array
    name: pa.Array
    market: np.ndarray  # index into MARKETS
    listed: np.ndarray  # datetime64[D]: first day it can trade
    delisted: np.ndarray  # datetime64[D]: first day it no longer trades
    anchor: np.ndarray  # log price at listing
    growth: np.ndarray  # anchor growth per weekday
    origin: np.ndarray  # weekday ordinal of the listing date
    sigma: np.ndarray  # idiosyncratic daily volatility
    beta: np.ndarray
    debut: np.ndarray  # base price of the first session / fundamental price
    turnover: np.ndarray  # share of listed shares traded on an ordinary day
    shares: np.ndarray  # listed shares at listing
    event_day: np.ndarray  # share count changes (rights issues, cancellations), by date
    event_slot: np.ndarray
    event_delta: np.ndarray


def build_universe(rng: np.random.Generator, epoch: dt.date) -> Universe:
    market, listed, delisted, mega = _listing_history(rng, epoch)
    order = np.argsort(listed, kind="stable")
    market, listed, delisted, mega = market[order], listed[order], delisted[order], mega[order]
    n = len(market)

    codes = np.sort(rng.choice(np.arange(1, 50_000), n, replace=False)) * 10
    srtn = np.strings.zfill(codes.astype(str), 6)
    check = isin_check_digit(codes).astype(str)
    isin = np.strings.add(np.strings.add("KR7", srtn), np.strings.add("00", check))

    median_price = np.array([15_000.0, 6_000.0, 4_000.0])[market]
    anchor = np.log(np.clip(median_price * rng.lognormal(0, 1.0, n), 500, 800_000))
    anchor[mega] = np.log(rng.uniform(15_000, 60_000, mega.sum()))
    growth = rng.normal(0.02, 0.03, n) / WEEKDAYS_PER_YEAR
    sigma = np.clip(np.array([0.015, 0.022, 0.02])[market] * rng.lognormal(0, 0.35, n), 0.008, 0.06)
    sigma[mega] = 0.014
    # Companies listed before EPOCH start from "yesterday's close"; new listings from an offering
    # price below the fundamental, so first days tend to pop.
    initial = listed == listed[0]
    debut = np.where(initial, np.exp(rng.normal(0, sigma)), rng.uniform(0.7, 1.0, n))

    # Share counts follow from a market cap at listing, so expensive stocks have fewer shares.
    cap = np.array([2e11, 6e10, 1.5e10])[market] * rng.lognormal(0, 1.2, n)
    shares = np.clip(cap / np.exp(anchor), 2e5, 3e9)
    shares[mega] = rng.uniform(2.2e9, 6e9, mega.sum())  # beyond int32, like Samsung Electronics
    turnover = np.array([0.003, 0.01, 0.0005])[market] * rng.lognormal(0, 0.8, n)
    turnover[mega] = 0.0015
    shares = shares.astype(np.int64)

    return Universe(
        srtn=pa.array(srtn, TEXT),
        isin=pa.array(isin, TEXT),
        name=pa.array(_names(rng, n), TEXT),
        market=market,
        listed=listed,
        delisted=delisted,
        anchor=anchor,
        growth=growth,
        origin=weekday_ordinal(listed, epoch),
        sigma=sigma,
        beta=rng.uniform(0.6, 1.4, n),
        debut=debut,
        turnover=turnover,
        shares=shares,
        **_share_events(rng, listed, delisted, shares),
    )


def _listing_history(rng: np.random.Generator, epoch: dt.date) -> tuple[np.ndarray, ...]:
    """Market, listing date, delisting date and mega-cap flag of every slot. Yearly delistings
    pull each market's count back toward its target, so the universe churns but stays near 2,700.
    """
    start = np.datetime64(epoch, "D")
    market = np.repeat(np.arange(3), TARGET_LISTINGS)
    listed = np.full(len(market), start)
    delisted = np.full(len(market), FAR_FUTURE)
    mega = np.zeros(len(market), dtype=bool)
    mega[:MEGA_CAPS] = True  # the first KOSPI listings; they never delist
    fragility = rng.normal(0, 1, len(market))
    for year in range(epoch.year, LAST_YEAR + 1):
        first = max(np.datetime64(f"{year}-01-01", "D"), start + 1)
        span = (np.datetime64(f"{year}-12-31", "D") - first).astype(int) + 1
        seasoned_by = max(np.datetime64(f"{year - 1}-01-01", "D"), start)
        for m in range(3):
            seasoned = listed <= seasoned_by  # delist only companies listed for a year or more
            alive = (market == m) & (listed <= first) & (delisted > first)
            n_new = rng.poisson(NEW_LISTINGS_PER_YEAR[m])
            wanted = (NEW_LISTINGS_PER_YEAR[m] + alive.sum() + n_new - TARGET_LISTINGS[m]) / 2
            candidates = np.flatnonzero(alive & seasoned & ~mega)
            n_del = min(rng.poisson(max(wanted, 0.0)), len(candidates))
            weight = np.exp(fragility[candidates])  # some companies are likelier to fail
            gone = rng.choice(candidates, n_del, replace=False, p=weight / weight.sum())
            delisted[gone] = first + rng.integers(0, span, n_del)
            market = np.append(market, np.full(n_new, m))
            listed = np.append(listed, first + rng.integers(0, span, n_new))
            delisted = np.append(delisted, np.full(n_new, FAR_FUTURE))
            mega = np.append(mega, np.zeros(n_new, dtype=bool))
            fragility = np.append(fragility, rng.normal(0, 1, n_new))
    return market, listed, delisted, mega


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct names: two or three syllables and, usually, an industry suffix."""
    names = np.array([], dtype=str)
    while len(names) < n:
        k = 2 * n
        third = np.where(rng.random(k) < 0.25, rng.choice(NAME_TAILS, k), "")
        suffix = np.where(rng.random(k) < 0.9, rng.choice(NAME_SUFFIXES, k), "")
        stem = np.strings.add(rng.choice(NAME_HEADS, k), rng.choice(NAME_TAILS, k))
        drawn = np.strings.add(np.strings.add(stem, third), suffix)
        names = np.concatenate([names, drawn])
        _, first = np.unique(names, return_index=True)
        names = names[np.sort(first)]
    return names[:n]


def _share_events(
    rng: np.random.Generator, listed: np.ndarray, delisted: np.ndarray, shares: np.ndarray
) -> dict[str, np.ndarray]:
    """Occasional changes of the listed share count: mostly issues (+1..10%), some cancellations."""
    end = np.minimum(delisted, np.datetime64(f"{LAST_YEAR}-12-31", "D"))
    days = (end - listed).astype(np.int64)
    slot = np.repeat(np.arange(len(listed)), rng.poisson(days / 365 * SHARE_EVENTS_PER_YEAR))
    day = listed[slot] + (rng.random(len(slot)) * days[slot]).astype(np.int64) + 1
    n = len(slot)
    change = np.where(rng.random(n) < 0.85, rng.uniform(0.01, 0.1, n), -rng.uniform(0.005, 0.03, n))
    order = np.argsort(day, kind="stable")
    delta = np.rint(shares[slot] * change).astype(np.int64)
    return {"event_day": day[order], "event_slot": slot[order], "event_delta": delta[order]}


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({f: pd.arrays.ArrowStringArray(pa.array([], TEXT)) for f in WIRE_FIELDS})


class SyntheticMarket:
    """About 2,700 KOSPI, KOSDAQ and KONEX listings from EPOCH on, identical for the same seed."""

    # The first XKRX session on/after 2000-01-04, where the packaged calendar starts. A constant,
    # so importing this module does not build the calendar.
    EPOCH: dt.date = dt.date(2000, 1, 4)

    def __init__(self, seed: int = 7):
        self.seed = seed
        self.universe = build_universe(np.random.default_rng([seed, UNIVERSE]), self.EPOCH)

    def frames(self, days: Iterable[dt.date]) -> dict[dt.date, pd.DataFrame]:
        """Wire rows (all str, columns WIRE_FIELDS, sorted by srtnCd) for each requested day;
        an empty frame for a day without a session. Simulates once, from EPOCH to max(days)."""
        requested = sorted(set(days))
        frames = dict(self.iter_frames(requested))
        return {day: frames[day] if day in frames else empty_frame() for day in requested}

    def iter_frames(self, days: Iterable[dt.date]) -> Iterator[tuple[dt.date, pd.DataFrame]]:
        """(day, wire rows) for each requested session, oldest first, as one simulation from
        EPOCH reaches it: a long range is never held in memory at once."""
        requested = sorted(set(days))
        if not requested:
            return
        if requested[0] < self.EPOCH:
            raise ValueError(f"{requested[0]} is before the synthetic market's EPOCH {self.EPOCH}")
        sessions = trading_sessions(self.EPOCH, requested[-1])
        yield from self._simulate(np.array(sessions, dtype="datetime64[D]"), set(requested))

    def _simulate(self, sessions: np.ndarray, wanted: set[dt.date]) -> Iterator[tuple[dt.date, pd.DataFrame]]:
        u = self.universe
        n = len(u.market)
        deviation = np.zeros(n)  # AR(1) part of the log fundamental, carried across blocks
        close = np.zeros(n, dtype=np.int64)  # last close (for slots not yet listed: unused)
        regime = np.zeros(3)  # per-market log volatility
        upper, lower = 100 + LIMIT_PCT[u.market], 100 - LIMIT_PCT[u.market]
        weekday = weekday_ordinal(sessions, self.EPOCH)
        listed_by = np.searchsorted(u.listed, sessions, side="right")  # slots listed, a prefix
        dates = sessions.astype(object)
        for block in range(weekday[-1] // BLOCK + 1):
            first, last = np.searchsorted(weekday // BLOCK, [block, block + 1])
            slots, target, regime = self._block(block, deviation, regime)
            prev, up_mul, down_mul = close[slots], upper[slots], lower[slots]
            known = np.searchsorted(slots, listed_by[first - 1]) if first else 0
            for i in range(first, last):
                k = np.searchsorted(slots, listed_by[i])  # this block's slots listed by now
                row = target[weekday[i] - block * BLOCK, :k]
                if k > known:  # debuts: the base price the first change is measured against
                    prev[known:k] = round_to_tick(row[known:] * u.debut[slots[known:k]])
                    known = k
                p = prev[:k]
                today = row.copy()
                # Exact limit prices are needed only where the target is beyond +-pct of prev.
                beyond = (row * 100 > p * up_mul[:k]) | (row * 100 < p * down_mul[:k])
                beyond = np.flatnonzero(beyond)
                if beyond.size:
                    down, up = limit_prices(p[beyond], LIMIT_PCT[u.market[slots[beyond]]])
                    today[beyond] = np.clip(row[beyond], down, up)
                if dates[i] in wanted:
                    yield dates[i], self._frame(sessions[i], slots[:k], p, today)
                prev[:k] = today
            close[slots] = prev

    def _block(self, block: int, deviation: np.ndarray, regime: np.ndarray):
        """Tick-rounded fundamental prices for BLOCK weekdays of the slots alive in them.
        Updates `deviation` in place; returns (slots, prices[weekday, slot], new regime)."""
        u = self.universe
        rng = np.random.default_rng([self.seed, PATH, block])
        epoch = np.datetime64(self.EPOCH, "D")
        start = np.busday_offset(epoch, block * BLOCK)
        end = np.busday_offset(epoch, block * BLOCK + BLOCK - 1)
        slots = np.flatnonzero((u.listed <= end) & (u.delisted > start))
        market = u.market[slots]

        vol_path = ar1(regime, rng.normal(0, REGIME_SHOCK, (BLOCK, 3)), REGIME_PHI)
        scale = np.exp(vol_path)
        factor = rng.standard_normal((BLOCK, 3)) * MARKET_VOL * scale
        idio = u.sigma[slots] * rng.lognormal(0, 0.25, len(slots))  # this half-year's volatility
        noise = rng.standard_normal((BLOCK, len(slots)), dtype=np.float32)
        shocks = noise * idio * scale[:, market]
        shocks += u.beta[slots] * factor[:, market]
        jumps = rng.poisson(JUMP_RATE * shocks.size)
        where = (rng.integers(0, BLOCK, jumps), rng.integers(0, len(slots), jumps))
        np.add.at(shocks, where, rng.laplace(JUMP_SKEW, JUMP_SCALE, jumps))

        path = ar1(deviation[slots], shocks, AR_PHI)
        deviation[slots] = path[-1]
        age = block * BLOCK + np.arange(BLOCK)[:, None] - u.origin[slots]
        log_price = u.anchor[slots] + u.growth[slots] * age + path
        return slots, round_to_tick(np.exp(log_price)), vol_path[-1]

    def _frame(
        self, session: np.datetime64, slots: np.ndarray, prev: np.ndarray, close: np.ndarray
    ) -> pd.DataFrame:
        """The wire rows of one session. Draws open, high, low and volume from the day's own
        generator; `prev` and `close` are the path's closes, aligned with `slots`."""
        u = self.universe
        active = u.delisted[slots] > session
        slots, prev, close = slots[active], prev[active], close[active]
        day_number = int(weekday_ordinal(session, self.EPOCH))  # type: ignore[arg-type]
        rng = np.random.default_rng([self.seed, DAY, day_number])
        z = rng.standard_normal((4, len(slots)))
        sigma = u.sigma[slots]
        ret = np.log(close / prev)

        down, up = limit_prices(prev, LIMIT_PCT[u.market[slots]])
        open_ = np.clip(round_to_tick(prev * np.exp(0.35 * ret + 0.4 * sigma * z[0])), down, up)
        top, bottom = np.maximum(open_, close), np.minimum(open_, close)
        high = np.clip(round_to_tick(top * np.exp(0.6 * sigma * np.abs(z[1]))), top, up)
        low = np.clip(round_to_tick(bottom * np.exp(-0.6 * sigma * np.abs(z[2]))), down, bottom)

        k = np.searchsorted(u.event_day, session, side="right")
        issued = np.bincount(u.event_slot[:k], weights=u.event_delta[:k], minlength=len(u.shares))
        shares = u.shares[slots] + np.rint(issued[slots]).astype(np.int64)
        # Big moves draw volume; the traded value is priced somewhere inside the day's range.
        activity = u.turnover[slots] * np.exp(0.5 * z[3]) * (1 + 20 * np.abs(ret))
        volume = np.maximum(1, np.rint(shares * activity)).astype(np.int64)
        value = np.rint(volume * (low + rng.random(len(slots)) * (high - low))).astype(np.int64)
        vs = close - prev

        columns = {
            "basDt": pa.repeat(pa.scalar(f"{session.astype(dt.date):%Y%m%d}", TEXT), len(slots)),
            "srtnCd": u.srtn.take(slots),
            "isinCd": u.isin.take(slots),
            "itmsNm": u.name.take(slots),
            "mrktCtg": MARKET_NAMES.take(u.market[slots]),
            "mkp": _text(open_),
            "hipr": _text(high),
            "lopr": _text(low),
            "clpr": _text(close),
            "vs": _text(vs),
            "fltRt": format_rate(vs, prev),
            "trqu": _text(volume),
            "trPrc": _text(value),
            "lstgStCnt": _text(shares),
            "mrktTotAmt": _text(close * shares),
        }
        return pd.DataFrame({f: pd.arrays.ArrowStringArray(columns[f]) for f in WIRE_FIELDS})
