"""Marts stay correct whatever order days change in (issue: backfill order).

The whole graph runs through Dagster against the fake data.go.kr server, as a new team would use
it, in one data dir:

1. the team goes live: 2024-04-10..04-30 (04-10 is a KRX holiday);
2. it backfills the history 2024-04-01..04-19, overlapping (later range first, earlier second);
3. the API republishes 04-15 with other prices for some listings; 04-15 alone is re-run;
4. 04-17 is re-marked as closed (a closure announced late); 04-17 alone is re-run;
5. the API republishes 04-12, and only the raw data and the warehouse table are re-run for it
   (no marts): the lookback check names the mart partitions that are now out of date; then the
   whole graph for 04-12.

After every run the marts must equal a full refresh (`dbt build --full-refresh` on a copy of the
warehouse), and each change must show in the later days that look back at it, so the comparison
can fail.
"""

import contextlib
import datetime as dt

import dagster as dg
import pandas as pd
import pytest
from fixtures.data_go_kr import data_go_kr_definitions, failure_messages, run, use_fake_api
from fixtures.platform import assert_marts_equal_a_full_refresh, domain_job, settings_of

from stock_platform.defs.stock_prices.marts import LOOKBACK_KEYS
from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
from stock_platform.defs.stock_prices.warehouse import KEY as DAILY_PRICES
from stock_platform.platform import calendars
from stock_platform.platform.calendars import trading_sessions
from stock_platform.testing.fake_data_go_kr import FakeDataGoKr

KEY = "BackfillOrderKey=="
LIVE = ("2024-04-10", "2024-04-30")
HISTORY = ("2024-04-01", "2024-04-19")
CORRECTED = dt.date(2024, 4, 15)
CLOSED = dt.date(2024, 4, 17)
RAW_ONLY = dt.date(2024, 4, 12)
CHECK = "built_after_its_lookback"
PRICE_COLUMNS = ["mkp", "hipr", "lopr", "clpr", "mrktTotAmt"]  # open, high, low, close, market cap


def corrected(frame: pd.DataFrame, listings: int = 200) -> pd.DataFrame:
    """The day as the API republishes it: the first listings' prices (and market cap) doubled,
    which keeps every row valid (low <= open, close <= high; market_cap = close * shares)."""
    frame = frame.copy()
    rows = frame.index[:listings]
    for column in PRICE_COLUMNS:
        frame.loc[rows, column] = (frame.loc[rows, column].astype("int64") * 2).astype(str)
    return frame


def rows_on(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[frame["trade_date"].dt.date == day]


def checks_of(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dg.AssetCheckEvaluation]:
    return {e.asset_key: e for e in result.get_asset_check_evaluations() if e.check_name == CHECK}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("backfill_order")
    days = trading_sessions(dt.date(2024, 4, 1), dt.date(2024, 4, 30))
    frames = SyntheticMarket(7).frames(days)
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(FakeDataGoKr(frames, KEY))
        env = stack.enter_context(pytest.MonkeyPatch.context())
        use_fake_api(env, root / "data", api.url, KEY, DATA_GO_KR_MAX_RPS="100")
        settings = settings_of(root / "data")
        defs = data_go_kr_definitions(settings)
        instance = stack.enter_context(dg.instance_for_test())
        marts, results = {}, {}

        def step(name, *run_args, **run_kwargs):
            results[name] = result = run(defs, instance, *run_args, **run_kwargs)
            assert result.success, failure_messages(result)
            marts[name] = assert_marts_equal_a_full_refresh(settings.warehouse_path, root / f"full-{name}")

        step("live", *LIVE)
        step("history", *HISTORY)
        api.frames[f"{CORRECTED:%Y%m%d}"] = corrected(frames[CORRECTED])
        step("corrected", CORRECTED.isoformat(), CORRECTED.isoformat())
        env.setitem(calendars.EXTRA_HOLIDAYS, CLOSED, "closure announced late (test)")
        step("closed", CLOSED.isoformat(), CLOSED.isoformat())

        api.frames[f"{RAW_ONLY:%Y%m%d}"] = corrected(frames[RAW_ONLY], listings=50)
        job = domain_job(defs)
        tags = {"dagster/asset_partition_range_start": RAW_ONLY.isoformat(),
                "dagster/asset_partition_range_end": RAW_ONLY.isoformat()}
        raw_only = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False,
            asset_selection=[dg.AssetKey("raw_stock_prices"), dg.AssetKey("clean_stock_prices"), DAILY_PRICES],
        )
        assert raw_only.success, failure_messages(raw_only)
        # The check alone, as declarative automation launches it when only the upstream changed.
        checks_job = dg.define_asset_job(
            "lookback_checks", selection=dg.AssetSelection.checks(*(dg.AssetCheckKey(k, CHECK) for k in LOOKBACK_KEYS))
        )
        with_job = dg.Definitions.merge(defs, dg.Definitions(jobs=[checks_job]))
        stale = with_job.resolve_job_def("lookback_checks").execute_in_process(instance=instance)
        step("raw_only_then_marts", RAW_ONLY.isoformat(), RAW_ONLY.isoformat())
        yield {"settings": settings, "instance": instance, "marts": marts, "results": results,
               "stale": stale, "frames": frames}


def test_every_run_leaves_marts_equal_to_a_full_refresh(platform):
    # Asserted after each run by the fixture; here, that each of them did run and compare.
    assert list(platform["marts"]) == ["live", "history", "corrected", "closed", "raw_only_then_marts"]


def test_the_earlier_backfill_rebuilt_the_days_computed_before_their_lookback_existed(platform):
    before = platform["marts"]["live"]["fct_daily_stock_metrics"]
    after = platform["marts"]["history"]["fct_daily_stock_metrics"]
    later = dt.date(2024, 4, 30)
    # Live first, the 30th had 14 sessions behind it; after the backfill, all 21 of April.
    assert rows_on(before, later)["ma_5"].notna().sum() > 2000
    assert rows_on(before, later)["ma_20"].isna().all()
    assert rows_on(after, later)["ma_20"].notna().sum() > 2000
    # The run recorded the later partitions it rewrote, so the lookback check passes.
    result = platform["results"]["history"]
    materializations = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    rewritten = {(m.asset_key, m.partition) for m in materializations if m.partition > HISTORY[1]}
    later_days = [d.date().isoformat() for d in pd.bdate_range("2024-04-22", "2024-04-30")]
    assert rewritten == {(key, day) for key in LOOKBACK_KEYS for day in later_days}
    assert all(check.passed for check in checks_of(result).values())


def test_a_corrected_day_updates_every_later_row_that_looks_back_at_it(platform):
    before = platform["marts"]["history"]["fct_daily_stock_metrics"]
    after = platform["marts"]["corrected"]["fct_daily_stock_metrics"]
    tickers = set(platform["frames"][CORRECTED]["srtnCd"].iloc[:200])
    last = dt.date(2024, 4, 30)
    ma_before = rows_on(before, last).set_index("ticker")["ma_20"]
    ma_after = rows_on(after, last).set_index("ticker")["ma_20"]
    changed = (ma_after - ma_before).abs() > 0  # NaN (fewer than 20 sessions) compares False
    assert set(changed[changed].index) == tickers & set(ma_before.dropna().index)
    assert changed.sum() > 150
    assert (rows_on(after, CORRECTED).set_index("ticker").loc[sorted(tickers), "close"]
            == 2 * rows_on(before, CORRECTED).set_index("ticker").loc[sorted(tickers), "close"]).all()


def test_a_day_re_marked_closed_leaves_the_marts_and_the_later_returns_follow(platform):
    marts = platform["marts"]["closed"]
    for name, frame in marts.items():
        assert rows_on(frame, CLOSED).empty, name
        assert not rows_on(platform["marts"]["corrected"][name], CLOSED).empty, name
    # The next session's return is now from 04-16's close.
    fct = marts["fct_daily_stock_metrics"].set_index(["trade_date", "ticker"])
    next_day, previous = pd.Timestamp("2024-04-18"), pd.Timestamp("2024-04-16")
    ret = fct.loc[next_day, "daily_return"]
    expected = fct.loc[next_day, "close"] / fct.loc[previous, "close"].reindex(ret.index) - 1
    pd.testing.assert_series_equal(ret.dropna(), expected.dropna(), check_names=False, rtol=1e-9)


def test_the_lookback_check_names_the_partitions_a_change_left_out_of_date(platform):
    stale = platform["stale"]
    assert stale.success
    evaluations = checks_of(stale)
    assert set(evaluations) == set(LOOKBACK_KEYS)
    later = [d.date().isoformat() for d in pd.bdate_range(RAW_ONLY, "2024-04-30")]
    for evaluation in evaluations.values():
        assert not evaluation.passed
        assert evaluation.metadata["stale_partitions"].value == len(later)
        assert f"- {RAW_ONLY} (input {RAW_ONLY} changed after it)" in evaluation.metadata["first_stale"].value
    # The whole graph for that day rebuilds them, and the check says so.
    assert all(check.passed for check in checks_of(platform["results"]["raw_only_then_marts"]).values())
