"""The data.go.kr stock price API (FSC getStockPriceInfo_V2): the production source.

One `fetch_days` call fetches every page of every requested day concurrently: days and pages share
one pool of at most `max_in_flight` requests and one global rate ceiling of `max_rps`
(aiolimiter's leaky bucket holding a single request, so request starts are spaced 1/max_rps apart
and never come in a burst), so a backfill takes about pages / max_rps. A day's first page gives
totalCount; its remaining pages are then requested at once.

Responses are classified by their body, not their HTTP status, because the gateway answers errors
as XML (`OpenAPI_ServiceResponse` / `returnReasonCode`) with 200, 401, 403, 429 or 5xx:
transient failures (network errors, timeouts, 5xx, truncated pages, the transient gateway codes)
are retried by tenacity up to `max_attempts` attempts, attempt n waiting between half and all of
min(max_backoff_s, backoff_s * 2 ** (n - 1)); permanent ones fail at once with what to do, and an
exhausted daily quota stops the whole fetch (nothing is returned, so the ingestion asset writes
nothing and a later run resumes).

The service key is added to the URL only inside the HTTP transport, so httpx's own logs and
exceptions never carry it, and every message and stored page is scrubbed of it anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import re
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import quote, unquote

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

from stock_platform.defs.stock_prices.settings import DATA_GO_KR_V2_URL
from stock_platform.defs.stock_prices.sources import FetchedPage
from stock_platform.defs.stock_prices.sources.wire import Page, WireFormatError, parse_page

KEY_VARIABLE = "DATA_GO_KR_SERVICE_KEY"
REDACTED = "<redacted>"

# Gateway / API result codes that end the fetch at once, with what the operator should do.
PERMANENT = {
    "10": ("INVALID_REQUEST_PARAMETER_ERROR", "a request parameter was rejected; check "
           "DATA_GO_KR_BASE_URL and DATA_GO_KR_PAGE_SIZE"),
    "11": ("NO_MANDATORY_REQUEST_PARAMETERS_ERROR", "a required parameter is missing; check "
           "DATA_GO_KR_BASE_URL"),
    "12": ("NO_OPENAPI_SERVICE_ERROR", "the service path does not exist or rejects this key "
           "(the legacy path rejects new keys); set DATA_GO_KR_BASE_URL to the V2 URL "
           f"{DATA_GO_KR_V2_URL}"),
    "20": ("SERVICE_ACCESS_DENIED_ERROR", "access denied: apply for (or wait for approval of) "
           "this API on data.go.kr for this key"),
    "30": ("SERVICE_KEY_IS_NOT_REGISTERED_ERROR", f"the key is not registered: check "
           f"{KEY_VARIABLE} (the 'encoding' or 'decoding' key from the portal); a new key takes "
           "up to a day to sync"),
    "31": ("DEADLINE_HAS_EXPIRED_ERROR", "the key's usage period has expired: extend it on "
           f"data.go.kr or set a new {KEY_VARIABLE}"),
    "32": ("UNREGISTERED_IP_ERROR", "this machine's IP is not registered for the key: add it on "
           "data.go.kr"),
    "33": ("UNSIGNED_CALL_ERROR", "the call was not signed as the service requires"),
}
QUOTA_EXHAUSTED = "22"  # LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR (daily quota)
# APPLICATION, DB, HTTP, SERVICETIMEOUT, per-second rate limit, UNKNOWN: worth another try.
TRANSIENT = {"1", "2", "4", "5", "23", "99"}
_XML_CODE = re.compile(rb"<returnReasonCode>\s*0*(\d+)\s*</returnReasonCode>")
_XML_MESSAGE = re.compile(rb"<returnAuthMsg>\s*([^<]*?)\s*</returnAuthMsg>")


class DataGoKrError(RuntimeError):
    """A fetch that cannot succeed now; the message is free of the service key."""


class PermanentError(DataGoKrError):
    """Retrying will not help until someone fixes the configuration or the key."""


class QuotaExhaustedError(DataGoKrError):
    """The key's daily request quota is used up."""


class TransientError(DataGoKrError):
    """Worth retrying; raised to the caller only once the attempts are used up."""


@dataclass(frozen=True)
class DataGoKrConfig:
    # The portal's "encoding" (percent-encoded) or "decoding" (raw) form; never in repr().
    service_key: str = field(repr=False)
    base_url: str = DATA_GO_KR_V2_URL
    max_rps: float = 30.0
    page_size: int = 1000
    max_in_flight: int = 32
    max_attempts: int = 6
    backoff_s: float = 1.0  # first retry delay; doubles per attempt, with jitter
    max_backoff_s: float = 60.0
    timeout_s: float = 30.0

    def __post_init__(self):
        if not self.service_key.strip():
            raise PermanentError(
                f"{KEY_VARIABLE} is empty; it is required when STOCK_SOURCE=data_go_kr"
            )
        for name in ("max_rps", "page_size", "max_in_flight", "max_attempts", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"data.go.kr client: {name} must be positive")


class ServiceKey:
    """The key in the one form the wire needs, plus every form that must never be shown.

    The portal offers the key percent-encoded ("encoding") and raw ("decoding"; base64, so it may
    contain + / =). Unquoting the encoded form gives the raw one, and unquoting a raw key is a
    no-op (it has no %), so both normalize to the raw key, which is then encoded exactly once.
    """

    def __init__(self, given: str):
        self.raw = unquote(given.strip())
        self.encoded = quote(self.raw, safe="")
        lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), self.encoded)
        forms = {self.raw, self.encoded, lower_hex, given.strip(), quote(self.raw, safe="/")}
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers

    def redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        for form in self._forms:
            data = data.replace(form.encode(), REDACTED.encode())
        return data


class _KeyTransport(httpx.AsyncBaseTransport):
    """Appends serviceKey on the way out. The client's request object (used by httpx's logging
    and its exceptions) never holds the key; the key is percent-encoded exactly once here."""

    def __init__(self, inner: httpx.AsyncBaseTransport, key: ServiceKey):
        self._inner = inner
        self._param = f"serviceKey={key.encoded}".encode()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(query=request.url.query + b"&" + self._param)
        keyed = httpx.Request(
            request.method, url, headers=request.headers, extensions=request.extensions
        )
        return await self._inner.handle_async_request(keyed)

    async def aclose(self) -> None:
        await self._inner.aclose()


class DataGoKrSource:
    def __init__(self, config: DataGoKrConfig, log: logging.Logger | None = None):
        self.config = config
        self.key = ServiceKey(config.service_key)
        self.log = log or logging.getLogger(__name__)

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        """All pages of each day; a day not published yet comes back as one page with 0 rows."""
        return asyncio.run(self._fetch_days(days))

    async def _fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        cfg = self.config
        # Per fetch: asyncio primitives belong to the event loop of this asyncio.run. The limiter
        # holds one request and drains at max_rps: no burst, even after an idle spell.
        self._limiter = AsyncLimiter(1, 1 / cfg.max_rps)
        self._in_flight = asyncio.Semaphore(cfg.max_in_flight)
        pool = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=cfg.max_in_flight))
        transport = _KeyTransport(pool, self.key)
        async with httpx.AsyncClient(transport=transport, timeout=cfg.timeout_s) as client:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = {day: group.create_task(self._fetch_day(client, day)) for day in days}
            except BaseExceptionGroup as failures:
                # The first failure cancelled the rest; report the one that matters most.
                raise _most_severe(failures) from None
        return {day: task.result() for day, task in tasks.items()}

    async def _fetch_day(self, client: httpx.AsyncClient, day: dt.date) -> list[FetchedPage]:
        first = await self._fetch_page(client, day, 1, expected_total=None)
        pages = math.ceil(first.total_count / self.config.page_size)
        rest = await asyncio.gather(
            *(self._fetch_page(client, day, n, first.total_count) for n in range(2, pages + 1))
        )
        return [first, *rest]

    async def _fetch_page(
        self, client: httpx.AsyncClient, day: dt.date, page_no: int, expected_total: int | None
    ) -> FetchedPage:
        cfg = self.config
        where = f"data.go.kr {cfg.base_url} basDt={day:%Y%m%d} pageNo={page_no}"
        params = {"resultType": "json", "basDt": f"{day:%Y%m%d}", "numOfRows": cfg.page_size,
                  "pageNo": page_no}  # fmt: skip
        # Equal jitter: half the exponential delay for sure, the other half at random.
        half = wait_exponential(cfg.backoff_s / 2, max=cfg.max_backoff_s / 2)
        jitter = wait_random_exponential(cfg.backoff_s / 2, max=cfg.max_backoff_s / 2)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(cfg.max_attempts),
            wait=half + jitter,
            before_sleep=lambda state: self._log_retry(where, state),
            retry_error_callback=_give_up,
        )
        try:
            return await retrying(self._attempt, client, params, page_no, expected_total)
        except DataGoKrError as exc:
            raise type(exc)(self.key.redact(f"{where}: {exc}")) from None

    def _log_retry(self, where: str, state: RetryCallState) -> None:
        message = (
            f"{where}: attempt {state.attempt_number} failed ({_error(state)}); "
            f"retrying in {state.upcoming_sleep:.2f}s"
        )
        self.log.warning(self.key.redact(message))

    async def _attempt(
        self, client: httpx.AsyncClient, params: dict, page_no: int, expected_total: int | None
    ) -> FetchedPage:
        async with self._in_flight, self._limiter:
            try:
                response = await client.get(self.config.base_url, params=params)
            except httpx.RequestError as exc:  # network errors and timeouts
                raise TransientError(f"{type(exc).__name__}: {exc}") from None
        return self._page(response, page_no, expected_total)

    def _page(
        self, response: httpx.Response, page_no: int, expected_total: int | None
    ) -> FetchedPage:
        body = self.key.redact_bytes(response.content)  # some gateways echo the request
        page = classify(response.status_code, body)
        total = page.total_count if expected_total is None else expected_total
        size = self.config.page_size
        expected_rows = max(0, min(size, total - (page_no - 1) * size))
        if page.total_count != total or len(page.items) != expected_rows:
            raise TransientError(
                f"truncated: {len(page.items)} rows of totalCount {page.total_count}, expected "
                f"{expected_rows} rows of totalCount {total}"
            )
        return FetchedPage(page_no, body, dt.datetime.now(dt.UTC), len(page.items), total)


def classify(status: int, body: bytes) -> Page:
    """The page of a normal response; otherwise raise its error class, judged by the body."""
    if b"OpenAPI_ServiceResponse" in body:
        code = _XML_CODE.search(body)
        message = _XML_MESSAGE.search(body)
        _raise_for_code(
            code.group(1).decode() if code else "99",
            message.group(1).decode() if message else "",
            status,
        )
    try:
        page = parse_page(body)
    except WireFormatError as exc:
        if status >= 500 or status == 429:
            raise TransientError(f"HTTP {status}") from None
        if status >= 300:
            raise PermanentError(
                f"HTTP {status} without a data.go.kr error body; check DATA_GO_KR_BASE_URL"
            ) from None
        # HTTP 200 with a cut-off or garbled body: the connection or the backend failed.
        raise TransientError(f"HTTP {status}, invalid body: {exc}") from None
    if page.result_code.lstrip("0"):
        _raise_for_code(page.result_code, page.result_msg, status)
    return page


def _raise_for_code(code: str, message: str, status: int) -> NoReturn:
    code = code.lstrip("0") or "0"
    if code == QUOTA_EXHAUSTED:
        raise QuotaExhaustedError(
            f"resultCode 22 {message or 'LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR'} "
            f"(HTTP {status}): daily quota exhausted, resume tomorrow (nothing was written; the "
            "next run fetches these days again)"
        )
    if code in PERMANENT:
        name, action = PERMANENT[code]
        raise PermanentError(f"resultCode {code} {name} (HTTP {status}): {action}")
    label = f"resultCode {code} {message} (HTTP {status})"
    if code in TRANSIENT:
        raise TransientError(label)
    raise PermanentError(f"{label}: unknown result code; see the API's documentation")


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


def _give_up(state: RetryCallState) -> NoReturn:
    raise TransientError(f"gave up after {state.attempt_number} attempts: {_error(state)}")


def _most_severe(failures: BaseExceptionGroup) -> BaseException:
    leaves = _leaves(failures)
    for kind in (QuotaExhaustedError, PermanentError, DataGoKrError):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return failures  # a bug, not an API failure: keep every traceback


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]
