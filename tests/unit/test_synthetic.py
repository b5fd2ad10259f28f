"""The synthetic market: wire format, determinism, realism and the KRX price rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket, format_rate, isin_check_digit
from stock_platform.defs.stock_prices.sources.wire import MARKETS, WIRE_FIELDS
from stock_platform.platform.calendars import is_trading_day, trading_sessions

SPAN = (dt.date(2001, 1, 2), dt.date(2002, 12, 31))  # two years near EPOCH: cheap to simulate
RECENT = (dt.date(2024, 2, 26), dt.date(2024, 3, 8))  # includes the 2024-03-01 holiday
NUMERIC = ["mkp", "hipr", "lopr", "clpr", "vs", "trqu", "trPrc", "lstgStCnt", "mrktTotAmt"]
LIMIT = {"KOSPI": 30, "KOSDAQ": 30, "KONEX": 15}


def calendar_days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(n) for n in range((end - start).days + 1)]


def krx_tick(price: np.ndarray) -> np.ndarray:
    """Written out from the KRX table, independently of the module's implementation."""
    below = [2_000, 5_000, 20_000, 50_000, 200_000, 500_000]
    return np.select([price < bound for bound in below], [1, 5, 10, 50, 100, 500], default=1_000)


def isin_check(payload: str) -> int:
    """Textbook ISIN check digit: letters to numbers (A=10), then Luhn over the digit string."""
    digits = "".join(str(int(ch, 36)) for ch in payload)
    total = 0
    for position, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if position % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10


def as_int64(column: pd.Series) -> np.ndarray:
    # Arrow's cast parses strict integer text and is far faster than pandas' astype here.
    return pc.cast(pa.array(column), pa.int64()).to_numpy()


def table(frames: dict[dt.date, pd.DataFrame]) -> pd.DataFrame:
    """All rows of the frames, numeric wire fields parsed to int64, plus prev = clpr - vs."""
    rows = pd.concat([f for f in frames.values() if len(f)], ignore_index=True)
    out = rows[["basDt", "srtnCd", "mrktCtg", "fltRt"]].copy()
    for field in NUMERIC:
        out[field] = as_int64(rows[field])
    out["prev"] = out["clpr"] - out["vs"]
    return out


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7)


@pytest.fixture(scope="module")
def span(market) -> dict[dt.date, pd.DataFrame]:
    return market.frames(calendar_days(*SPAN))


@pytest.fixture(scope="module")
def span_table(span) -> pd.DataFrame:
    return table(span)


@pytest.fixture(scope="module")
def recent(market) -> dict[dt.date, pd.DataFrame]:
    return market.frames(calendar_days(*RECENT))


@pytest.fixture(scope="module")
def recent_table(recent) -> pd.DataFrame:
    return table(recent)


def sessions_of(frames: dict[dt.date, pd.DataFrame]) -> list[dt.date]:
    return [day for day, frame in frames.items() if len(frame)]


def session_index(frames: dict[dt.date, pd.DataFrame], rows: pd.DataFrame) -> np.ndarray:
    """Each row's position among the sessions of `frames`."""
    sessions = [int(day.strftime("%Y%m%d")) for day in sessions_of(frames)]
    return np.searchsorted(sessions, as_int64(rows["basDt"]))


# --- interface ---------------------------------------------------------------------------------


def test_epoch_is_the_first_session_on_or_after_2000_01_04():
    assert trading_sessions(dt.date(2000, 1, 4), SyntheticMarket.EPOCH) == [SyntheticMarket.EPOCH]


def test_a_day_before_epoch_raises_naming_epoch(market):
    with pytest.raises(ValueError, match=str(SyntheticMarket.EPOCH)):
        market.frames([dt.date(2000, 1, 5), dt.date(1999, 12, 30)])


def test_every_requested_day_is_answered_and_non_sessions_are_empty(recent):
    assert list(recent) == calendar_days(*RECENT)
    for day, frame in recent.items():
        assert list(frame.columns) == WIRE_FIELDS
        assert (len(frame) > 0) == is_trading_day(day), day
    assert len(recent[dt.date(2024, 3, 1)]) == 0  # Independence Movement Day, a weekday holiday


def test_rows_are_sorted_by_unique_srtn_cd(recent):
    for frame in recent.values():
        codes = frame["srtnCd"].tolist()
        assert codes == sorted(set(codes))


def test_every_cell_is_a_non_empty_str(recent):
    for frame in recent.values():
        cells = frame.to_numpy(dtype=object).ravel()
        assert all(type(cell) is str and cell for cell in cells)
        assert not frame.isna().any().any()


def test_bas_dt_is_the_day(recent):
    for day, frame in recent.items():
        assert set(frame["basDt"]) <= {day.strftime("%Y%m%d")}


# --- determinism -------------------------------------------------------------------------------


def test_a_day_does_not_depend_on_the_other_days_requested(market):
    day = dt.date(2001, 6, 15)
    alone = market.frames([day])[day]
    fresh = SyntheticMarket(seed=7)
    together = fresh.frames(iter([dt.date(2001, 7, 2), day, dt.date(2000, 2, 1), day]))
    assert list(together) == [dt.date(2000, 2, 1), day, dt.date(2001, 7, 2)]
    pd.testing.assert_frame_equal(alone, together[day])


def test_a_different_seed_gives_different_data(market):
    day = dt.date(2000, 3, 2)
    ours, theirs = market.frames([day])[day], SyntheticMarket(seed=8).frames([day])[day]
    assert ours["srtnCd"].tolist() != theirs["srtnCd"].tolist()
    assert ours["clpr"].tolist() != theirs["clpr"].tolist()


# --- universe ----------------------------------------------------------------------------------


def test_about_2700_listings_split_by_market(span, recent):
    for frame in [*span.values(), *recent.values()]:
        if len(frame):
            counts = frame["mrktCtg"].value_counts()
            assert 2_500 <= len(frame) <= 2_900
            assert 850 <= counts["KOSPI"] <= 1_050
            assert 1_500 <= counts["KOSDAQ"] <= 1_800
            assert 90 <= counts["KONEX"] <= 150


def test_listings_and_delistings_churn_and_delisted_never_return(span, span_table):
    sessions = sessions_of(span)
    first, last = set(span[sessions[0]]["srtnCd"]), set(span[sessions[-1]]["srtnCd"])
    assert len(first - last) >= 100  # about 100 delistings a year
    assert len(last - first) >= 100  # about 100 listings a year

    seen = pd.Series(session_index(span, span_table)).groupby(span_table["srtnCd"].to_numpy())
    seen = seen.agg(["min", "max", "count"])
    assert (seen["max"] - seen["min"] + 1 == seen["count"]).all()  # one unbroken run per ticker


def test_a_new_listing_starts_from_a_base_price(span, span_table):
    sessions = sessions_of(span)
    debuts = span_table.drop_duplicates("srtnCd")
    debuts = debuts[debuts["basDt"] != sessions[0].strftime("%Y%m%d")]
    assert len(debuts) >= 100
    assert (debuts["prev"] > 0).all()
    assert (debuts["prev"] % krx_tick(debuts["prev"]) == 0).all()
    assert (debuts["vs"] != 0).mean() > 0.8


def test_srtn_cd_is_six_digits_often_with_leading_zeros(recent):
    for frame in recent.values():
        if not len(frame):
            continue
        codes = frame["srtnCd"]
        assert codes.str.fullmatch(r"\d{6}").all()
        assert codes.str.startswith("0").mean() > 0.1


def test_isin_check_digit_reference_implementation_on_real_isins():
    assert isin_check("KR700593000") == 3  # Samsung Electronics, KR7005930003
    assert isin_check("KR700066000") == 1  # SK hynix, KR7000660001
    assert isin_check("US037833100") == 5  # Apple, US0378331005
    assert isin_check_digit(np.array([5930, 660])).tolist() == [3, 1]


def test_isin_is_kr7_code_00_and_check_digit(recent):
    frame = next(f for f in recent.values() if len(f))
    for code, isin in zip(frame["srtnCd"], frame["isinCd"], strict=True):
        assert isin == f"KR7{code}00{isin_check(f'KR7{code}00')}"


def test_names_are_korean_with_company_suffixes_and_markets_are_known(recent):
    frame = next(f for f in recent.values() if len(f))
    names = frame["itmsNm"]
    assert names.str.fullmatch(r"[가-힣]{2,12}").all()
    assert names.nunique() == len(names)
    common = ["전자", "바이오", "화학", "홀딩스", "제약", "건설", "금융", "에너지", "테크"]
    assert all(names.str.endswith(suffix).any() for suffix in common)
    assert set(frame["mrktCtg"]) == set(MARKETS)


# --- prices ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["span_table", "recent_table"])
def test_prices_are_positive_and_on_the_tick_grid(which, request):
    rows = request.getfixturevalue(which)
    for field in ["mkp", "hipr", "lopr", "clpr", "prev"]:
        prices = rows[field].to_numpy()
        assert (prices > 0).all()
        assert (prices % krx_tick(prices) == 0).all(), field
    assert len(np.unique(krx_tick(rows["clpr"].to_numpy()))) >= 5  # many bands exercised


@pytest.mark.parametrize("which", ["span_table", "recent_table"])
def test_ohlc_is_consistent(which, request):
    r = request.getfixturevalue(which)
    assert (r["lopr"] <= np.minimum(r["mkp"], r["clpr"])).all()
    assert (np.maximum(r["mkp"], r["clpr"]) <= r["hipr"]).all()


def test_moves_stay_within_the_daily_price_limit(span_table, recent_table):
    r = pd.concat([span_table, recent_table])
    pct = r["mrktCtg"].map(LIMIT).to_numpy()
    for field in ["mkp", "hipr", "lopr", "clpr"]:
        assert (r[field] * 100 <= r["prev"] * (100 + pct)).all(), field
        assert (r[field] * 100 >= r["prev"] * (100 - pct)).all(), field


def test_some_closes_hit_the_limit_price(span_table):
    r = span_table
    pct = r["mrktCtg"].map(LIMIT).to_numpy()
    up_raw = r["prev"].to_numpy() * (100 + pct) // 100
    down_raw = -(-r["prev"].to_numpy() * (100 - pct) // 100)
    upper = up_raw // krx_tick(up_raw) * krx_tick(up_raw)  # rounded toward the previous close
    lower = -(-down_raw // krx_tick(down_raw)) * krx_tick(down_raw)
    assert (r["clpr"] == upper).sum() >= 50
    assert (r["clpr"] == lower).sum() >= 20
    assert (r["hipr"] <= upper).all() and (r["lopr"] >= lower).all()


def test_most_moves_are_small(span_table, recent_table):
    for r in (span_table, recent_table):
        returns = r["vs"] / r["prev"]
        assert 0.005 < returns.abs().median() < 0.03
        assert 0.01 < returns.groupby(r["srtnCd"]).std().median() < 0.04


def test_previous_close_is_clpr_minus_vs(span, span_table):
    r = span_table.assign(code=as_int64(span_table["srtnCd"]), at=session_index(span, span_table))
    r = r.sort_values(["code", "at"])
    same = (r["code"] == r["code"].shift()) & (r["at"] == r["at"].shift() + 1)
    assert same.sum() > 0.99 * len(r)  # nearly every row follows the ticker's previous session
    assert (r["prev"] == r["clpr"].shift())[same].all()


def test_vs_is_a_plain_signed_integer(recent):
    for frame in recent.values():
        assert frame["vs"].str.fullmatch(r"0|-?[1-9]\d*").all()


def test_flt_rt_is_formatted_like_the_api(recent_table):
    r = recent_table
    assert r["fltRt"].str.fullmatch(r"0|-?([1-9]\d*)?\.\d\d").all()
    assert ((r["fltRt"] == "0") == (r["vs"] == 0)).all()
    exact = r["vs"] / r["prev"] * 100
    assert ((r["fltRt"].astype(float) - exact).abs() <= 0.005 + 1e-9).all()
    assert r["fltRt"].str.match(r"-?\.").any()  # |x| < 1 appears without a leading zero


def test_format_rate_examples():
    vs = np.array([-19, 5, 0, 205, -2_997, -100, 1_234])
    prev = np.array([10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 1_000])
    expected = ["-.19", ".05", "0", "2.05", "-29.97", "-1.00", "123.40"]
    assert format_rate(vs, prev).to_pylist() == expected


# --- volume, shares, market cap ----------------------------------------------------------------


def test_volume_and_traded_value(span_table):
    r = span_table
    assert (r["trqu"] >= 0).all()
    assert (r["trPrc"] >= r["trqu"] * r["lopr"]).all()
    assert (r["trPrc"] <= r["trqu"] * r["hipr"]).all()


def test_market_cap_is_close_times_listed_shares_exactly(recent):
    for frame in recent.values():
        rows = zip(frame["clpr"], frame["lstgStCnt"], frame["mrktTotAmt"], strict=True)
        assert all(int(cap) == int(close) * int(shares) for close, shares, cap in rows)


def test_some_listings_have_more_than_int32_shares(recent_table):
    assert (recent_table["lstgStCnt"] > 2**31).groupby(recent_table["basDt"]).sum().min() >= 2


def test_listed_shares_change_now_and_then(span_table):
    changing = span_table.groupby("srtnCd")["lstgStCnt"].nunique() > 1
    assert 50 <= changing.sum() < 0.5 * len(changing)


def test_chunks_equal_one_fetch():
    from stock_platform.defs.stock_prices.sources.synthetic_source import SyntheticSource

    days = [dt.date(2000, 2, 1) + dt.timedelta(days=n) for n in range(45)]
    whole = SyntheticSource(seed=7, page_size=1000).fetch_days(days)
    chunks = list(SyntheticSource(seed=7, page_size=1000).fetch_chunks(days, 10))
    assert [len(chunk) for chunk in chunks] == [10, 10, 10, 10, 5]
    merged = {day: pages for chunk in chunks for day, pages in chunk.items()}
    assert list(merged) == sorted(whole)
    assert {d: [p.body for p in pages] for d, pages in merged.items()} == {
        d: [p.body for p in pages] for d, pages in whole.items()}
