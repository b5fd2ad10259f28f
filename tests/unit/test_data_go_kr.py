"""The data.go.kr client against a real HTTP server on 127.0.0.1 (stock_platform.testing)."""

import datetime as dt
import itertools
import json
import logging
import re
import time
import traceback
from urllib.parse import quote

import dagster as dg
import pandas as pd
import pytest

from stock_platform.defs.stock_prices.resources import DataGoKrSourceResource, build_stock_source
from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.defs.stock_prices.sources.data_go_kr import (
    DataGoKrConfig,
    DataGoKrSource,
    PermanentError,
    QuotaExhaustedError,
    ServiceKey,
    TransientError,
    classify,
)
from stock_platform.defs.stock_prices.sources.wire import WIRE_FIELDS, parse_page
from stock_platform.platform.settings import load
from stock_platform.testing.fake_data_go_kr import (
    FAULTS,
    TRANSIENT_FAULTS,
    FakeDataGoKr,
    gateway_error,
    json_error,
)

# A raw ("decoding") key with + / =; the marker survives percent-encoding, so searching for it
# finds the key in any form.
MARKER = "LeakCanary"
KEY = MARKER + "7f3Q+Zx/9wKq2=="
ENCODED_KEY = quote(KEY, safe="")
DAYS = [dt.date(2024, 4, d) for d in (1, 2, 3, 4, 5)]
ROWS = {DAYS[0]: 25, DAYS[1]: 11, DAYS[2]: 30, DAYS[3]: 30}  # DAYS[4] is not published
PAGE = 10  # so 25 rows -> 10, 10, 5 and 11 rows -> 10, 1 (one row comes as an object)


def wire_rows(day: dt.date, count: int) -> pd.DataFrame:
    """`count` rows of wire fields, all strings as the API sends them (the client never reads
    them: it returns pages as received)."""
    return pd.DataFrame(
        [
            {
                **dict.fromkeys(WIRE_FIELDS, str(n)),
                "basDt": f"{day:%Y%m%d}",
                "srtnCd": f"A{n:06d}",
                "itmsNm": f"종목{n}",
                "fltRt": "-.19",
            }
            for n in range(count)
        ]
    )


@pytest.fixture(scope="module")
def frames():
    return {day: wire_rows(day, rows) for day, rows in ROWS.items()}


@pytest.fixture
def api(frames):
    with FakeDataGoKr(frames, KEY, stall_s=2.0) as server:
        yield server


def client(url: str, key: str = KEY, **overrides) -> DataGoKrSource:
    options = dict(page_size=PAGE, max_rps=500, backoff_s=0.01, timeout_s=1.0, max_attempts=4)
    return DataGoKrSource(DataGoKrConfig(key, base_url=url, **{**options, **overrides}))


def items_of(pages) -> list[dict]:
    return [item for page in pages for item in parse_page(page.body).items]


def assert_served_exactly(result, frames, days):
    for day in days:
        expected = frames[day].to_dict(orient="records") if day in frames else []
        assert items_of(result[day]) == expected, day
        assert sum(p.rows for p in result[day]) == len(expected)
        assert {p.total_count for p in result[day]} == {len(expected)}


@pytest.mark.parametrize("key", [KEY, ENCODED_KEY], ids=["decoding_key", "encoding_key"])
def test_fetches_every_page_of_every_day_with_either_key_form(api, frames, key):
    result = client(api.url, key).fetch_days(DAYS[:2])
    assert [p.page_no for p in result[DAYS[0]]] == [1, 2, 3]
    assert [p.rows for p in result[DAYS[1]]] == [10, 1]
    assert b'"item":{' in result[DAYS[1]][1].body  # the API's single-object shape, kept as sent
    assert_served_exactly(result, frames, DAYS[:2])
    assert api.count() == api.count("ok") == 5


def test_both_key_forms_are_encoded_exactly_once():
    assert ServiceKey(KEY).encoded == ServiceKey(ENCODED_KEY).encoded == ENCODED_KEY
    assert "%25" not in ServiceKey(ENCODED_KEY).encoded


def test_unpublished_day_is_returned_as_zero_rows_not_an_error(api):
    result = client(api.url).fetch_days([DAYS[4]])
    assert [(p.page_no, p.rows, p.total_count) for p in result[DAYS[4]]] == [(1, 0, 0)]
    assert b'"items":""' in result[DAYS[4]][0].body


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
def test_transient_faults_are_retried(api, frames, fault, caplog):
    api.script(fault)  # the first request, for page 1
    result = client(api.url).fetch_days([DAYS[0]])
    assert_served_exactly(result, frames, [DAYS[0]])
    assert api.count(fault) == 1 and api.count() == api.count("ok") + 1 == 4  # 3 pages, 1 retry
    assert "basDt=20240401 pageNo=1: attempt 1 failed" in caplog.text


@pytest.mark.parametrize(
    "backoff_s, max_backoff_s, delays",
    [(0.1, 60.0, [0.1, 0.2, 0.4]), (0.2, 0.2, [0.2, 0.2, 0.2, 0.2])],
    ids=["doubling", "capped"],
)
def test_retries_wait_between_half_and_all_of_the_backoff(api, backoff_s, max_backoff_s, delays):
    api.script(*["http_500"] * len(delays))
    client(
        api.url, backoff_s=backoff_s, max_backoff_s=max_backoff_s, max_attempts=len(delays) + 1
    ).fetch_days([DAYS[4]])  # one page
    waits = [after.at - before.at for before, after in itertools.pairwise(api.requests)]
    assert len(waits) == len(delays)
    for wait, delay in zip(waits, delays, strict=True):
        # Uncapped, the 4th wait would be at least 0.8 s: above the upper bound of "capped".
        assert delay / 2 <= wait <= delay + 0.3


@pytest.mark.parametrize(
    "fault, reason",
    [("http_502", "HTTP 502"), ("short_page", "truncated"), ("truncated_json", "invalid body")],
)
def test_transient_faults_give_up_after_max_attempts(api, fault, reason):
    api.script(*[fault] * 4)
    with pytest.raises(TransientError, match=reason) as failure:
        client(api.url).fetch_days([DAYS[0]])
    assert "basDt=20240401 pageNo=1: gave up after 4 attempts" in str(failure.value)
    assert api.count(fault) == 4


PERMANENT_MESSAGES = {
    "code_10": "10 INVALID_REQUEST_PARAMETER_ERROR",
    "code_12": "set DATA_GO_KR_BASE_URL to the V2 URL",
    "code_20": "20 SERVICE_ACCESS_DENIED_ERROR (HTTP 403): access denied",
    "code_30": "30 SERVICE_KEY_IS_NOT_REGISTERED_ERROR (HTTP 401)",
    "code_30_http_200": "a new key takes up to a day to sync",
    "code_31": "31 DEADLINE_HAS_EXPIRED_ERROR",
    "code_32": "32 UNREGISTERED_IP_ERROR",
}


@pytest.mark.parametrize("fault", sorted(PERMANENT_MESSAGES))
def test_permanent_errors_fail_at_once_saying_what_to_do(api, fault):
    api.script(fault)
    with pytest.raises(PermanentError, match=re.escape(PERMANENT_MESSAGES[fault])) as failure:
        client(api.url).fetch_days([DAYS[0]])
    assert "basDt=20240401 pageNo=1" in str(failure.value)
    assert MARKER not in str(failure.value)
    assert api.count() == 1  # no retry


def test_every_fault_kind_is_covered():
    permanent = {name for name, fault in FAULTS.items() if not fault.transient}
    assert permanent == set(PERMANENT_MESSAGES) | {"quota"}


def test_wrong_key_and_legacy_url_are_rejected_like_the_gateway(api):
    with pytest.raises(PermanentError, match="DATA_GO_KR_SERVICE_KEY") as wrong:
        client(api.url, key=MARKER + "other==").fetch_days([DAYS[0]])
    assert MARKER not in str(wrong.value)
    with pytest.raises(PermanentError, match="GetStockSecuritiesInfoService_V2"):
        client(api.legacy_url).fetch_days([DAYS[0]])
    assert [r.outcome for r in api.requests] == ["bad_key", "legacy_path"]


def test_quota_exhausted_stops_the_fetch_and_a_later_fetch_resumes(frames):
    with FakeDataGoKr(frames, KEY, daily_quota=3) as api:
        with pytest.raises(QuotaExhaustedError, match="daily quota exhausted, resume tomorrow"):
            client(api.url).fetch_days(DAYS[:2])
        assert api.count("quota_exhausted") >= 1
        api.reset_quota()  # the next day, the key's quota is fresh
        api.daily_quota = 5
        assert_served_exactly(client(api.url).fetch_days(DAYS[:2]), frames, DAYS[:2])


def test_random_faults_still_give_exactly_the_served_data(frames):
    with FakeDataGoKr(frames, KEY, fault_rate=0.3, seed=3, stall_s=2.0) as api:
        result = client(api.url, max_attempts=8).fetch_days(DAYS)
        assert api.count() > api.count("ok")  # faults were injected and retried
    assert_served_exactly(result, frames, DAYS)


def test_rate_ceiling_holds_while_pages_and_days_overlap(frames):
    # 4 days x 3 or 2 pages + an empty day = 12 requests at 10 per second: about 1.1 s at the bound,
    # about 12 x 0.2 = 2.4 s one at a time.
    with FakeDataGoKr(frames, KEY, latency=(0.15, 0.25), max_rps=10) as api:
        started = time.monotonic()
        client(api.url, max_rps=10, max_in_flight=4).fetch_days(DAYS)
        elapsed = time.monotonic() - started
        assert api.count() == 12 and api.count("rate_limited_by_server") == 0
        # Starts are 0.1 s apart, never in a burst; arrivals jitter by a request at most.
        assert api.max_per_window(1.0) <= 10 + 1 and api.max_per_window(0.5) <= 5 + 1
        assert 2 <= api.peak_in_flight <= 4
    assert elapsed < api.count() * 0.15  # one at a time could not be faster than this


def test_requests_in_flight_never_exceed_max_in_flight(frames):
    # 4 days' first pages at once, then their 7 other pages: 11 requests of 0.1 s each.
    with FakeDataGoKr(frames, KEY, latency=(0.1, 0.1)) as api:
        result = client(api.url, max_in_flight=3).fetch_days(DAYS[:4])
        assert api.count() == 11 and api.peak_in_flight == 3
    assert_served_exactly(result, frames, DAYS[:4])


def test_the_server_rejects_a_client_above_its_ceiling_and_the_client_recovers(frames):
    with FakeDataGoKr(frames, KEY, max_rps=5) as api:  # 8 requests, 5 at once at most
        result = client(api.url, max_rps=1000, max_attempts=10, backoff_s=0.2).fetch_days(DAYS[:3])
        assert api.count("rate_limited_by_server") > 0
    assert_served_exactly(result, frames, DAYS[:3])


@pytest.mark.parametrize(
    "status, body, error",
    [
        (200, gateway_error(30), PermanentError),
        (401, gateway_error(30), PermanentError),
        (403, gateway_error(20), PermanentError),
        (200, gateway_error(12), PermanentError),
        (429, gateway_error(22), QuotaExhaustedError),
        (200, gateway_error(22), QuotaExhaustedError),
        (429, gateway_error(23), TransientError),
        (500, gateway_error(1), TransientError),
        (200, gateway_error(5), TransientError),
        (200, json_error("99", "UNKNOWN_ERROR"), TransientError),
        (200, json_error("30", "SERVICE_KEY_IS_NOT_REGISTERED_ERROR"), PermanentError),
        (200, json_error("77", "SOMETHING_NEW"), PermanentError),
        (503, b"<html>Service Unavailable</html>", TransientError),
        (200, b'{"response":{"header":{"resultCode":"00"', TransientError),
        (404, b"<html>Not Found</html>", PermanentError),
    ],
)
def test_responses_are_classified_by_their_body(status, body, error):
    with pytest.raises(error):
        classify(status, body)


def test_numbers_as_strings_pass_through_unchanged():
    body = json.dumps(
        {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL SERVICE."},
                      "body": {"numOfRows": 10, "pageNo": 1, "totalCount": 1,
                               "items": {"item": {"fltRt": "-.19", "vs": "", "trqu": "-"}}}}}
    ).encode()
    assert classify(200, body).items == [{"fltRt": "-.19", "vs": "", "trqu": "-"}]


def test_key_never_appears_in_errors_logs_or_pages(frames, caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG/INFO
    with FakeDataGoKr(frames, KEY, echo_key=True) as api:
        api.script("http_502", "disconnect")
        pages = client(api.url, ENCODED_KEY).fetch_days(DAYS[:2])
        api.script(*["stall"] * 4)
        with pytest.raises(TransientError) as timeout:
            client(api.url, ENCODED_KEY, timeout_s=0.2).fetch_days([DAYS[0]])
        port = api.origin.rsplit(":", 1)[1]
    with pytest.raises(TransientError) as refused:  # nothing listens there any more
        client(f"http://127.0.0.1:{port}/x", KEY).fetch_days([DAYS[0]])
    texts = [caplog.text] + [
        "".join(traceback.format_exception(failure.value)) + repr(failure.value)
        for failure in (timeout, refused)
    ]
    assert "ConnectError" in texts[2] and "HTTP Request: GET" in caplog.text
    for text in texts:
        assert MARKER not in text
    bodies = [page.body for day in pages.values() for page in day]
    assert all(b'"serviceKey":"<redacted>"' in body for body in bodies)
    assert not any(MARKER.encode() in body for body in bodies)


def test_missing_key_is_named():
    with pytest.raises(PermanentError, match="DATA_GO_KR_SERVICE_KEY is empty"):
        DataGoKrConfig(" ")


@pytest.fixture
def environment(monkeypatch):
    """monkeypatch.setenv, with settings read afresh from the environment in the test and after."""
    load.cache_clear()
    yield monkeypatch
    load.cache_clear()  # runs before monkeypatch restores the environment


def test_resource_reads_the_key_from_the_environment_at_run_time(environment):
    environment.setenv("STOCK_SOURCE", "data_go_kr")
    environment.setenv("DATA_GO_KR_SERVICE_KEY", KEY)
    settings = stock_settings()
    source = build_stock_source()
    assert isinstance(source, DataGoKrSourceResource)
    assert source.service_key == dg.EnvVar("DATA_GO_KR_SERVICE_KEY")  # the name, not the value
    assert (source.base_url, source.max_rps, source.page_size) == (
        settings.base_url,
        settings.max_rps,
        settings.page_size,
    )
    assert MARKER not in repr(source)
