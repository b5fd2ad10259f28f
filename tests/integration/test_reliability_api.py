"""Issue #7, items 2 (a flaky API), 3 (bad rows) and 5 (secrets), with their figures.

The whole graph (API -> raw -> Spark -> warehouse -> dbt) runs in-process against the fake
data.go.kr server. One module-scoped set of runs shares one Dagster instance, lake and warehouse
(Spark and dbt are slow), all with one recognizable API key:

1. flaky: a 30-session backfill (2024-02-06..2024-03-21, three KRX holidays inside) as ONE run
   while the server fails 20% of requests with the transient faults the issue names: 5xx (500,
   502, 503 with gateway XML), XML SERVICETIMEOUT (code 5, HTTP 504), stalls the client's
   timeout cuts off, and truncated bodies (cut-off JSON, a page missing its last row);
2. quota: a run over that range's last 2 sessions and the next 4 in which the key's daily quota
   (code 22) runs out midway; then, the next "day", a run that resumes that range and goes on
   through the next 2 sessions;
3. bad rows: those 2 sessions' pages carry a corpus of malformed records among the market's
   rows (they ride in the resumed run: every dbt build costs over a minute here).

The last tests search everything these runs left behind for the key. Each scenario records its
figures (tests/fixtures/reliability.py); `make test` prints the table.
"""

import collections
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fixtures.data_go_kr import (
    data_go_kr_definitions,
    duplicate_keys,
    expected_warehouse,
    failure_messages,
    find_secret,
    frames_equal,
    rows_lost,
    run,
    to_warehouse,
    use_fake_api,
    warehouse_rows,
    wire_frame,
)
from fixtures.platform import settings_of
from fixtures.reliability import Outcome, record

from stock_platform.defs.stock_prices.schema import CLEAN, RAW, REJECTED
from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
from stock_platform.defs.stock_prices.spark.transform import RawPage, run_cleaning
from stock_platform.platform.calendars import trading_sessions
from stock_platform.platform.dbt import DBT_PROJECT_DIR
from stock_platform.platform.lake import Lake, new_version
from stock_platform.testing.fake_data_go_kr import FAULTS, FakeDataGoKr

MARKER = "ReliabilityCanary"  # survives percent-encoding: finds the key in any form
KEY = MARKER + "Api+K3y/9Qz=="
SESSIONS = trading_sessions(dt.date(2024, 2, 6), dt.date(2024, 4, 30))
FLAKY = SESSIONS[:30]  # 2024-02-06..2024-03-21; 02-09, 02-12 and 03-01 are KRX holidays
QUOTA = SESSIONS[28:34]  # FLAKY's last two sessions (already loaded) and the next four
BAD = SESSIONS[34:36]  # 2024-03-28, 2024-03-29: the bad-row corpus
RESUMED = QUOTA + BAD  # the run after the quota's reset
TRANSIENT = ("http_500", "http_502", "http_503_xml", "service_timeout", "stall", "truncated_json",
             "short_page")  # fmt: skip
FAULT_RATE = 0.20
PAGE_SIZE = 500  # about 6 pages per session: more requests, more faults
QUOTA_BUDGET = 18  # of the quota run's 36 pages: the quota runs out in the middle
# A short client timeout (stalls last 3 s), quick retries, and enough attempts that 20% faults
# never exhaust them (0.2 ** 10 per page).
CLIENT = dict(timeout_s=1.0, backoff_s=0.05, max_attempts=10)
QUOTA_MESSAGE = "daily quota exhausted, resume tomorrow"
DUPLICATE = "duplicate (trade_date, ticker): a later-ingested row was kept"

# -- the bad-row corpus ------------------------------------------------------------------------
# (kind, case, change to a valid item, expected reason or None for a valid row). String values
# are formatted with day= and other= (the other bad session); DROP removes the field.
DROP = object()
PRICES = ("mkp", "hipr", "lopr", "clpr")
CASES = [
    ("non-numeric", "price with a thousands separator", {"clpr": "10,000"},
     "clpr is not an integer: '10,000'"),
    ("non-numeric", "volume as text", {"trqu": "N/A"}, "trqu is not an integer: 'N/A'"),
    ("non-numeric", "price in exponent notation", {"mkp": "9.9e3"}, "mkp is not an integer: '9.9e3'"),
    ("non-numeric", "full-width digits", {"clpr": "１００００"}, "clpr is not an integer: '１００００'"),
    ("non-numeric", "beyond INT64", {"lstgStCnt": "99999999999999999999"},
     "lstgStCnt is not an integer: '99999999999999999999'"),
    ("non-numeric", "rate with two points", {"fltRt": "1.0.1"}, "fltRt is not a number: '1.0.1'"),
    ("non-numeric", "an object where a number belongs", {"trPrc": {"value": "49950000"}},
     "trPrc is not an integer"),
    ("empty field", "empty volume", {"trqu": ""}, "trqu is not an integer: ''"),
    ("empty field", "dash for a missing close", {"clpr": "-"}, "clpr is not an integer: '-'"),
    ("empty field", "empty name", {"itmsNm": ""}, "itmsNm is empty"),
    ("empty field", "blank name", {"itmsNm": "   "}, "itmsNm is empty"),
    ("empty field", "empty ticker", {"srtnCd": ""}, "srtnCd is not a 6-character code: ''"),
    ("empty field", "empty market", {"mrktCtg": ""}, "mrktCtg is not one of KOSPI, KOSDAQ, KONEX: ''"),
    ("non-positive price", "zero open and low", {"mkp": "0", "lopr": "0"}, "non-positive price"),
    ("non-positive price", "negative close", {"clpr": "-100", "lopr": "-100"}, "non-positive price"),
    ("non-positive price", "all prices zero", dict.fromkeys(PRICES, "0"), "non-positive price"),
    ("OHLC violation", "high below close", {"hipr": "9950"}, "OHLC order violated"),
    ("OHLC violation", "low above open", {"lopr": "9950"}, "OHLC order violated"),
    ("OHLC violation", "high below low", {"hipr": "9700"}, "OHLC order violated"),
    ("basDt not the partition's", "another session's date", {"basDt": "{other:%Y%m%d}"},
     "basDt {other:%Y%m%d} is not the partition date {day}"),
    ("basDt not the partition's", "ISO date", {"basDt": "{day}"},
     "basDt is not a YYYYMMDD date: '{day}'"),
    ("basDt not the partition's", "empty date", {"basDt": ""}, "basDt is not a YYYYMMDD date: ''"),
    ("missing field", "no market cap", {"mrktTotAmt": DROP}, "missing mrktTotAmt"),
    ("missing field", "no name", {"itmsNm": DROP}, "missing itmsNm"),
    ("missing field", "null close", {"clpr": None}, "missing clpr"),
    ("missing field", "only date and ticker",
     {f: DROP for f in ("isinCd", "itmsNm", "mrktCtg", *PRICES, "vs", "fltRt", "trqu", "trPrc",
                        "lstgStCnt", "mrktTotAmt")}, "missing isinCd"),
    ("missing field", "empty object", "empty", "missing basDt; missing srtnCd"),
    ("extra fields", "an extra field", {"corpNm": "테스트", "sector": "x"}, None),
    ("extra fields", "nested extra fields", {"meta": {"src": ["a", 1, None]}, "flag": True}, None),
    ("extra fields", "thirty extra fields", {f"x{i}": str(i) for i in range(30)}, None),
    ("unusual Unicode name", "emoji", {"itmsNm": "로켓🚀전자 👍🏽 🇰🇷"}, None),
    ("unusual Unicode name", "combining marks", {"itmsNm": "Cafe\u0301 e\u0301clair"}, None),
    ("unusual Unicode name", "decomposed Hangul (NFD)",
     {"itmsNm": "\u1112\u1161\u11ab\u1100\u116e\u11a8\u110c\u1165\u11ab\u1100\u1175"}, None),
    ("unusual Unicode name", "right-to-left", {"itmsNm": "שלום عربي Holdings"}, None),
    ("unusual Unicode name", "CJK compatibility", {"itmsNm": "\uf900\u2f00 \u321c삼성 \u3397"}, None),
    ("unusual Unicode name", "zero-width joiner",
     {"itmsNm": "👩\u200d💻테크 👨\u200d👩\u200d👧"}, None),
    ("unusual Unicode name", "zero-width space and BOM", {"itmsNm": "삼성\u200b전자\ufeff"}, None),
    ("unusual Unicode name", "full-width Latin", {"itmsNm": "ＳＫ하이닉스"}, None),
    ("unusual Unicode name", "outside the BMP", {"itmsNm": "𠀋𡈽 홀딩스"}, None),
    ("unusual Unicode name", "quotes, backslash, edge spaces", {"itmsNm": ' 삼성 "우" \\ 전자 '}, None),
    ("unusual Unicode name", "no-break and ideographic spaces", {"itmsNm": "삼성\u00a0전자\u3000"}, None),
]  # fmt: skip
DUPLICATE_KIND = "duplicate ticker in a day"
DUPLICATE_CASES = ["same ticker twice on one page", "A-prefixed twin of a listed ticker",
                   "identical twin on another page"]  # fmt: skip
BAD_CASES = [(kind, case) for kind, case, _, reason in CASES if reason is not None]
BAD_CASES += [(DUPLICATE_KIND, case) for case in DUPLICATE_CASES]


def corpus_item(ticker: str, day: dt.date) -> dict:
    """A valid item (market_cap = close * listed_shares) for a ticker outside the market's."""
    return {
        "basDt": f"{day:%Y%m%d}", "srtnCd": ticker, "isinCd": f"KR7{ticker}003",
        "itmsNm": f"코퍼스{ticker}", "mrktCtg": "KOSDAQ", "clpr": "10000", "vs": "100",
        "fltRt": "1.01", "mkp": "9900", "hipr": "10100", "lopr": "9800", "trqu": "5000",
        "trPrc": "49950000", "lstgStCnt": "1234567", "mrktTotAmt": str(10000 * 1234567),
    }  # fmt: skip


def build_bad_day(day: dt.date, other: dt.date, market: pd.DataFrame):
    """The session's items as served (corpus first, the market's rows, two twins last) and what
    each corpus row must become: [(kind, case, position, reason or None, twin position)]."""
    market_rows = market.astype(object).to_dict("records")
    head, cases = [], []
    for number, (kind, case, change, reason) in enumerate(CASES, start=1):
        item = {} if change == "empty" else corpus_item(f"ZC{number:04d}", day)
        for field, value in ({} if change == "empty" else change).items():
            if value is DROP:
                del item[field]
            else:
                is_text = isinstance(value, str)
                item[field] = value.format(day=day, other=other) if is_text else value
        cases.append((kind, case, len(head), reason and reason.format(day=day, other=other), None))
        head.append(item)
    # Duplicates: the earlier row on a page loses to the later one; across pages, either may win.
    cases.append((DUPLICATE_KIND, DUPLICATE_CASES[0], len(head), DUPLICATE, None))
    head.append({**corpus_item("ZD0001", day), "trqu": "1"})
    head.append(corpus_item("ZD0001", day))  # the later one: valid, kept
    cases.append((DUPLICATE_KIND, DUPLICATE_CASES[1], len(head), DUPLICATE, None))
    head.append({**market_rows[3], "srtnCd": "A" + market_rows[3]["srtnCd"]})
    items = head + market_rows
    cases.append((DUPLICATE_KIND, DUPLICATE_CASES[2], len(items), DUPLICATE, len(head) + 5))
    items.append(dict(market_rows[5]))
    assert (len(head) + 3) // PAGE_SIZE == (len(head) - 1) // PAGE_SIZE  # same page
    assert (len(items) - 1) // PAGE_SIZE != (len(head) + 5) // PAGE_SIZE  # another page
    valid = [head[position] for _, _, position, reason, _ in cases if reason is None]
    valid += [head[-2], *market_rows]  # the kept ZD0001; the twins' values are the market's
    return items, cases, valid


# -- the runs ------------------------------------------------------------------------------------


@contextlib.contextmanager
def captured_output(log_path: Path):
    """Everything written to Python's stdout/stderr, the file descriptors (subprocesses) and
    logging (httpx and httpcore at DEBUG: they log every request) while the runs execute."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    chatty = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in chatty]
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "wb") as sink, contextlib.ExitStack() as stack:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        logging.getLogger().addHandler(handler)
        for logger in chatty:
            logger.setLevel(logging.DEBUG)
        try:
            stack.enter_context(contextlib.redirect_stdout(text))
            stack.enter_context(contextlib.redirect_stderr(text))
            yield text
        finally:
            stack.close()
            for logger, level in zip(chatty, levels, strict=True):
                logger.setLevel(level)
            logging.getLogger().removeHandler(handler)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def lake_state(lake_root: str, days) -> dict[str, str]:
    """Every file of these days' raw, clean and rejected partitions, with its content hash."""
    state = {}
    for dataset in (RAW, CLEAN, REJECTED):
        for day in days:
            folder = Path(lake_root) / Lake.partition_dir(dataset, day)
            for path in sorted(folder.rglob("*")) if folder.exists() else []:
                if path.is_file():
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    state[str(path.relative_to(lake_root))] = digest
    return state


def marts(warehouse: Path, days) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT * FROM stock_analytics.fct_daily_stock_metrics "
            "WHERE trade_date BETWEEN ? AND ? ORDER BY trade_date, ticker",
            [days[0], days[-1]],
        ).df()


def injected(requests) -> dict[str, int]:
    """Faults the server injected, by kind, from its request log."""
    return dict(collections.Counter(r.outcome for r in requests if r.outcome in FAULTS))


def count_outcomes(requests) -> dict[str, int]:
    return dict(collections.Counter(r.outcome for r in requests))


@pytest.fixture(scope="module")
def platform(tmp_path_factory, spark):
    started = time.time()
    root = tmp_path_factory.mktemp("reliability_api")
    market = SyntheticMarket(7).frames(FLAKY + QUOTA[2:] + BAD)
    frames = {day: market[day] for day in FLAKY + QUOTA[2:]}
    bad = {day: build_bad_day(day, other, market[day]) for day, other in zip(BAD, BAD[::-1], strict=True)}
    served = {**frames, **{day: items for day, (items, _, _) in bad.items()}}
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            FakeDataGoKr(served, KEY, latency=(0.005, 0.02), random_faults=TRANSIENT, stall_s=3.0,
                         seed=7, echo_key=True)
        )
        env = stack.enter_context(pytest.MonkeyPatch.context())
        use_fake_api(env, root / "data", api.url, KEY, DATA_GO_KR_MAX_RPS="100",
                     DATA_GO_KR_PAGE_SIZE=str(PAGE_SIZE))
        settings = settings_of(root / "data")
        defs = data_go_kr_definitions(settings, **CLIENT)
        (root / "instance").mkdir()  # so that its sqlite files can be searched afterwards
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(root / "instance")))
        results, windows, timings, duplicates = {}, {}, {}, {}

        def scenario(name, first, last):
            start, clock = len(api.requests), time.monotonic()
            results[name] = run(defs, instance, first.isoformat(), last.isoformat())
            windows[name] = api.requests[start:]  # the server's log of this run's requests
            timings[name] = round(time.monotonic() - clock, 1)
            duplicates[name] = duplicate_keys(settings.warehouse_path)

        with captured_output(root / "captured-fds.log") as text:
            # 1. The flaky backfill: every transient kind once, then 20% at random.
            api.script(*TRANSIENT)
            api.fault_rate = FAULT_RATE
            scenario("flaky", FLAKY[0], FLAKY[-1])
            api.fault_rate = 0.0
            flaky_warehouse = warehouse_rows(settings.warehouse_path, FLAKY[0], FLAKY[-1])

            # 2. The key's daily quota runs out in the middle of a run; the next day it resumes.
            before = lake_state(settings.lake_root, QUOTA)
            warehouse_before = warehouse_rows(settings.warehouse_path, QUOTA[0], QUOTA[-1])
            marts_before = marts(settings.warehouse_path, QUOTA)
            api.reset_quota()
            api.daily_quota = QUOTA_BUDGET
            scenario("quota", QUOTA[0], QUOTA[-1])
            after = lake_state(settings.lake_root, QUOTA)
            warehouse_after = warehouse_rows(settings.warehouse_path, QUOTA[0], QUOTA[-1])
            marts_after = marts(settings.warehouse_path, QUOTA)
            api.reset_quota()  # the next day at the gateway
            api.daily_quota = None
            # 3. ... and goes on through the sessions that carry the bad-row corpus.
            scenario("resumed", RESUMED[0], RESUMED[-1])
        captured = text.getvalue()
        yield {
            "settings": settings, "instance": instance, "api": api, "frames": frames, "bad": bad,
            "root": root, "results": results, "windows": windows, "timings": timings,
            "duplicates": duplicates,
            "flaky_warehouse": flaky_warehouse,
            "quota_lake": (before, after), "quota_warehouse": (warehouse_before, warehouse_after),
            "quota_marts": (marts_before, marts_after),
            "captured": captured + (root / "captured-fds.log").read_text(errors="replace"),
            "started": started, "spark_local_dir": spark.conf.get("spark.local.dir"),
        }  # fmt: skip


def materializations(result, asset: str) -> list[dg.AssetMaterialization]:
    return [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(asset.split("/"))
    ]


# -- 2. a flaky API ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flaky(platform):
    result = platform["results"]["flaky"]
    expected = expected_warehouse(platform["frames"], FLAKY)
    actual = platform["flaky_warehouse"]
    figures = record(Outcome(
        f"flaky API: {len(FLAKY)}-session backfill in one run, {FAULT_RATE:.0%} transient faults",
        faults=injected(platform["windows"]["flaky"]), runs=1,
        survived=int(result.success and frames_equal(actual, expected)),
        rows_lost=rows_lost(expected, actual), duplicates=platform["duplicates"]["flaky"],
    ))  # fmt: skip
    return result, expected, actual, figures


def test_flaky_backfill_succeeds_in_one_run_through_dbt(platform, flaky):
    result, expected, _, figures = flaky
    assert result.success, failure_messages(result)
    partitions = {m.partition for m in materializations(result, "raw_stock_prices")}
    assert len(partitions) == 33  # 30 sessions + 3 holidays ("market closed"), in this one run
    assert materializations(result, "stock_analytics/fct_daily_stock_metrics")
    assert marts(platform["settings"].warehouse_path, FLAKY).shape[0] == len(expected)
    # The client's retries absorbed every fault: Dagster never had to retry a step.
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert (figures.rows_lost, figures.duplicates, figures.survived) == (0, 0, 1)


def test_flaky_backfill_warehouse_equals_exactly_what_the_server_served(flaky):
    _, expected, actual, _ = flaky
    assert len(expected) > 30 * 2_500
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)


def test_flaky_backfill_met_every_named_fault(platform, flaky):
    requests = platform["windows"]["flaky"]
    faults = flaky[3].faults
    assert set(faults) == set(TRANSIENT), count_outcomes(requests)  # exactly the named kinds
    random_share = (sum(faults.values()) - len(TRANSIENT)) / (len(requests) - len(TRANSIENT))
    assert 0.08 < random_share < 0.35, count_outcomes(requests)  # about FAULT_RATE
    # Each page was answered correctly once at least; every fault was followed by a retry.
    pages = {(r.bas_dt, r.page_no) for r in requests}
    ok = {(r.bas_dt, r.page_no) for r in requests if r.outcome == "ok"}
    assert ok == pages and len(pages) >= 30 * 5
    # The client saw each kind for what it is, and retried (its warnings are in the event log).
    run_id = platform["results"]["flaky"].run_id
    warnings = "\n".join(e.user_message for e in platform["instance"].all_logs(run_id))
    for seen in ("(HTTP 500); retrying", "(HTTP 502); retrying",
                 "resultCode 99 UNKNOWN_ERROR (HTTP 503)",
                 "resultCode 5 SERVICETIMEOUT_ERROR (HTTP 504)", "(ReadTimeout: ",
                 "(HTTP 200, invalid body: ", "(truncated: "):  # fmt: skip
        assert seen in warnings, seen


# -- 2. quota in the middle ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def quota(platform):
    results = platform["results"]
    before, after = platform["quota_lake"]
    warehouse = platform["settings"].warehouse_path
    expected = expected_warehouse(platform["frames"], QUOTA)
    actual = warehouse_rows(warehouse, QUOTA[0], QUOTA[-1])
    untouched = (
        before == after
        and frames_equal(*platform["quota_warehouse"])
        and frames_equal(*platform["quota_marts"])
    )
    resumed = results["resumed"].success and frames_equal(actual, expected)
    refused = count_outcomes(platform["windows"]["quota"]).get("quota_exhausted", 0)
    figures = record(Outcome(
        "quota (code 22) runs out mid-run; the next run resumes",
        faults={"quota (code 22)": refused}, runs=2,
        survived=int(not results["quota"].success and untouched) + int(resumed),
        rows_lost=rows_lost(expected, actual),
        duplicates=max(platform["duplicates"]["quota"], platform["duplicates"]["resumed"]),
    ))  # fmt: skip
    return expected, actual, figures


def test_quota_stops_the_run_in_the_middle_with_the_quota_message(platform, quota):
    result = platform["results"]["quota"]
    assert not result.success
    message = failure_messages(result)
    assert "resultCode 22 LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR" in message
    assert QUOTA_MESSAGE in message
    outcomes = count_outcomes(platform["windows"]["quota"])
    assert outcomes["ok"] == QUOTA_BUDGET and outcomes["quota_exhausted"] >= 1, outcomes
    # No retry could help today: the step failed once, and nothing after it ran.
    assert result.retry_attempts_for_node("raw_stock_prices") == 0
    assert result.get_asset_materialization_events() == []


def test_quota_leaves_no_partial_partition(platform, quota):
    before, after = platform["quota_lake"]
    assert after == before  # not a file added, changed or removed in raw/, clean/, rejected/
    new_days = [f"dt={day}" for day in QUOTA[2:]]
    assert not [path for path in after if any(day in path for day in new_days)]
    assert {path.split("/")[0] for path in before} == {"raw", "clean", "rejected"}  # old days
    warehouse_before, warehouse_after = platform["quota_warehouse"]
    pd.testing.assert_frame_equal(warehouse_after, warehouse_before)
    assert set(warehouse_after["trade_date"]) == set(QUOTA[:2])
    pd.testing.assert_frame_equal(*platform["quota_marts"])


def test_next_run_resumes_and_completes_with_correct_data(platform, quota):
    result = platform["results"]["resumed"]
    assert result.success, failure_messages(result)
    expected, actual, figures = quota
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    lake = Lake(platform["settings"].lake_root)
    for day in QUOTA:
        assert lake.manifest(RAW, day).rows == len(platform["frames"][day])
        assert lake.manifest(CLEAN, day).rows == len(platform["frames"][day])
    assert (figures.rows_lost, figures.duplicates, figures.survived) == (0, 0, 2)


# -- 3. bad rows ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_rows(platform):
    """rejected/ of the bad sessions, and the figures."""
    lake = Lake(platform["settings"].lake_root)
    rejected = {day: pd.concat([_read(lake, uri) for uri in lake.files(REJECTED, day)])
                for day in BAD}  # fmt: skip
    expected = to_warehouse(
        pd.concat([wire_frame(valid) for _, _, valid in platform["bad"].values()])
    )
    warehouse = platform["settings"].warehouse_path
    actual = warehouse_rows(warehouse, BAD[0], BAD[-1])
    kinds = collections.Counter(
        kind for _, cases, _ in platform["bad"].values() for kind, *_ in cases
    )
    result = platform["results"]["resumed"]
    figures = record(Outcome(
        "bad rows: a corpus of malformed records through the pipeline (in the resumed run)",
        faults=dict(kinds), runs=1, survived=int(result.success and frames_equal(actual, expected)),
        rows_lost=rows_lost(expected, actual), duplicates=platform["duplicates"]["resumed"],
    ))  # fmt: skip
    return rejected, expected, actual, figures


def _read(lake: Lake, uri: str) -> pd.DataFrame:
    with lake.fs.open(uri, "rb") as handle:
        return pq.read_table(handle).to_pandas()


def test_bad_rows_run_succeeds_through_dbt(platform, bad_rows):
    result = platform["results"]["resumed"]
    assert result.success, failure_messages(result)  # nothing crashed
    assert materializations(result, "stock_analytics/fct_daily_stock_metrics")
    assert bad_rows[3].survived == 1


@pytest.mark.parametrize("kind, case", BAD_CASES)
def test_each_bad_row_lands_in_rejected_with_its_reason(platform, bad_rows, kind, case):
    rejected = bad_rows[0]
    for day in BAD:
        _, cases, _ = platform["bad"][day]
        [(_, _, position, reason, twin)] = [c for c in cases if c[:2] == (kind, case)]
        at = {(row.source_page, row.source_row): row for row in rejected[day].itertuples()}
        candidates = [position] if twin is None else [position, twin]
        found = [at[where] for where in map(_page_row, candidates) if where in at]
        assert len(found) == 1, (day, case, candidates, sorted(at))
        assert reason in found[0].reject_reason, (day, case, found[0].reject_reason)


def _page_row(position: int) -> tuple[str, int]:
    return f"page-{position // PAGE_SIZE + 1:05d}.json.gz", position % PAGE_SIZE


def test_every_valid_row_reaches_the_warehouse_exactly(bad_rows):
    _, expected, actual, figures = bad_rows
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    assert (figures.rows_lost, figures.duplicates) == (0, 0)


def test_unusual_unicode_names_arrive_byte_identical(platform, bad_rows):
    names = {change["itmsNm"] for kind, _, change, _ in CASES if kind == "unusual Unicode name"}
    warehouse = platform["settings"].warehouse_path
    with duckdb.connect(str(warehouse), read_only=True) as con:
        loaded = con.execute(
            "SELECT trade_date, name FROM stock_raw.daily_prices WHERE ticker LIKE 'ZC%'"
        ).fetchall()
        in_marts = con.execute(
            "SELECT trade_date, name FROM stock_analytics.fct_daily_stock_metrics "
            "WHERE ticker LIKE 'ZC%'"
        ).fetchall()
    for rows in (loaded, in_marts):
        for day in BAD:
            got = {name.encode() for trade_date, name in rows if trade_date == day}
            assert {name.encode() for name in names} <= got


def test_nothing_is_lost_clean_plus_rejected_equals_served(platform, bad_rows):
    lake = Lake(platform["settings"].lake_root)
    for day in BAD:
        items, cases, _ = platform["bad"][day]
        raw, clean = lake.manifest(RAW, day), lake.manifest(CLEAN, day)
        assert raw.rows == len(items)
        assert clean.rows + len(bad_rows[0][day]) == len(items)
        assert lake.manifest(REJECTED, day).rows == len(bad_rows[0][day])
        assert len(bad_rows[0][day]) == sum(1 for case in cases if case[3] is not None)


def test_the_counts_are_in_the_metadata(platform, bad_rows):
    result = platform["results"]["resumed"]
    rejected = {day: len(bad_rows[0].get(day, ())) for day in RESUMED}  # none before BAD
    lake = Lake(platform["settings"].lake_root)
    clean = {day: lake.manifest(CLEAN, day).rows for day in RESUMED}
    served = {day: len(platform["bad"][day][0] if day in BAD else platform["frames"][day])
              for day in RESUMED}  # fmt: skip
    events = materializations(result, "clean_stock_prices")
    assert sorted(m.partition for m in events) == [day.isoformat() for day in RESUMED]
    assert sum(rejected.values()) == 2 * len(BAD_CASES)
    for materialization in events:  # a range run records one event per partition, with its figures
        day = dt.date.fromisoformat(materialization.partition)
        metadata = materialization.metadata
        assert metadata["status"].value == "ok"
        assert metadata["rejected_rows"].value == rejected[day]
        assert metadata["dagster/row_count"].value == clean[day]
    raw = {dt.date.fromisoformat(m.partition): m.metadata["dagster/row_count"].value
           for m in materializations(result, "raw_stock_prices")}
    assert raw == served


def test_the_check_warns_with_the_numbers(platform, bad_rows):
    result = platform["results"]["resumed"]
    evaluations = result.get_asset_check_evaluations()
    [check] = [c for c in evaluations if c.check_name == "no_rejected_rows"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    rejected = pd.concat(bad_rows[0].values())
    lake = Lake(platform["settings"].lake_root)
    assert check.metadata["rejected_rows"].value == len(rejected) == 2 * len(BAD_CASES)
    assert check.metadata["clean_rows"].value == sum(lake.manifest(CLEAN, d).rows for d in RESUMED)
    by_reason = check.metadata["by_reason"].value
    counts = collections.Counter(rejected["reject_reason"])
    assert len(by_reason) == min(20, len(counts))  # the 20 most frequent reasons
    assert all(counts[reason] == n for reason, n in by_reason.items())
    assert by_reason[DUPLICATE] == 2 * len(DUPLICATE_CASES)


def test_a_lone_surrogate_in_a_name_is_quarantined(spark, tmp_path):
    """A name with an unpaired UTF-16 surrogate (legal JSON: "\\ud800") cannot be written as
    UTF-8: it lands in rejected/, escaped, with its reason, instead of failing the whole step."""
    day = BAD[0]
    body = json.dumps({"response": {
        "header": {"resultCode": "00", "resultMsg": "NORMAL SERVICE."},
        "body": {"items": {"item": [{**corpus_item("ZS0001", day), "itmsNm": "깨진\ud800이름"},
                                    corpus_item("ZS0002", day)]},
                 "numOfRows": 1000, "pageNo": 1, "totalCount": 2}}})  # fmt: skip
    assert "\\ud800" in body  # what the wire carries: ASCII JSON with the escape
    lake = Lake(str(tmp_path))
    name = f"{Lake.partition_dir(RAW, day)}/v={new_version()}/page-00001.json.gz"
    lake.write_bytes(name, gzip.compress(body.encode()))
    fetched = dt.datetime(2024, 3, 29, 5, tzinfo=dt.UTC)
    run_cleaning(spark, [RawPage(lake.uri(name), day, fetched)], str(tmp_path / "out"))
    clean = pd.read_parquet(tmp_path / "out" / "clean")
    rejected = pd.read_parquet(tmp_path / "out" / "rejected")
    assert list(clean["ticker"]) == ["ZS0002"]
    assert list(rejected["srtnCd"]) == ["ZS0001"]
    assert list(rejected["itmsNm"]) == ["깨진\\ud800이름"]
    assert rejected["reject_reason"].iloc[0] == (
        "not valid Unicode text (a lone surrogate, shown escaped) in itmsNm")


# -- 5. secrets ----------------------------------------------------------------------------------


def searched_files(platform) -> list[Path]:
    """Every file the runs left: the data dir (lake, warehouse), the instance (sqlite event log
    and run storage, compute logs), the captured file descriptors, the dbt invocations' target
    folders (logs, run results, compiled SQL) and Spark's local dir."""
    files = [p for p in platform["root"].rglob("*") if p.is_file()]
    target = Path(DBT_PROJECT_DIR) / "target"
    for folder in target.iterdir():
        if folder.is_dir() and folder.stat().st_mtime >= platform["started"]:
            files += [p for p in folder.rglob("*") if p.is_file()]
    files += [Path(DBT_PROJECT_DIR) / "logs" / "dbt.log"]
    files += [p for p in Path(platform["spark_local_dir"]).rglob("*") if p.is_file()]
    return files


def test_key_appears_nowhere(platform):
    api, instance = platform["api"], platform["instance"]
    assert api.count("ok") > 0 and api.count("bad_key") == 0  # the server did receive the key
    captured = platform["captured"]
    assert "HTTP Request: GET" in captured and "retrying in" in captured  # the capture works
    runs = instance.get_run_records()
    assert len(runs) == len(platform["results"]) == 3
    files = searched_files(platform)
    suffixes = collections.Counter(p.suffix for p in files)
    assert all(suffixes[s] for s in (".gz", ".parquet", ".duckdb", ".db", ".log", ".json"))
    assert any("compute_logs" in str(p) for p in files)
    assert any(f"stock_analytics_dbt-{r.dagster_run.run_id[:7]}" in str(p) for p in files
               for r in runs)  # fmt: skip
    leaks = find_secret(MARKER, texts={"captured output and logs": captured}, instance=instance,
                        files=files)  # fmt: skip
    assert leaks == []


def test_the_search_finds_a_planted_key(tmp_path):
    """The same search, over one of each kind of place with the key planted in it."""

    @dg.asset(check_specs=[dg.AssetCheckSpec("planted_check", asset="planted")])
    def planted(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        context.log.info("the key is " + quote(KEY, safe=""))
        return dg.MaterializeResult(
            metadata={"key": KEY},
            check_results=[dg.AssetCheckResult(passed=False, metadata={"key": KEY})],
        )

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "page-00001.json.gz").write_bytes(gzip.compress(json.dumps({"k": KEY}).encode()))
    pd.DataFrame({"x": [KEY]}).to_parquet(lake / "part-00000.zstd.parquet", compression="zstd")
    (lake / "_manifest.json").write_text(json.dumps({"details": quote(KEY, safe="")}))
    with duckdb.connect(str(lake / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA stock_raw")
        con.execute("CREATE TABLE stock_raw.daily_prices AS SELECT ? AS name", [KEY])
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        assert dg.materialize([planted], instance=instance).success
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        found = find_secret(MARKER, texts={"logs": "GET ?serviceKey=" + quote(KEY)},
                            instance=instance, files=files)  # fmt: skip
    for place in ("text logs", "event log of run", "materialization metadata of planted",
                  "check evaluation of planted", "page-00001.json.gz", "part-00000.zstd.parquet",
                  "_manifest.json", "warehouse.duckdb", ".db"):  # fmt: skip
        assert any(place in where for where in found), (place, found)
