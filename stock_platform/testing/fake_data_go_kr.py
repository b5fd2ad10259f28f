"""A real HTTP server on 127.0.0.1 that speaks the data.go.kr getStockPriceInfo_V2 wire format.

It serves the synthetic market's wire frames as JSON pages exactly like the API (items as a list,
a single object for one row, "" for none), checks the service key the way the gateway does
(one percent-decoding, `+` read as a space), and can misbehave on purpose:

- latency: every answer waits uniform(*latency) seconds;
- rate: more than `max_rps` requests per second (a token bucket holding one second's worth)
  are answered like the gateway does: HTTP 429 with XML code 23;
- daily quota: after `daily_quota` accepted requests, XML code 22 until `reset_quota()`;
- faults: `script(...)` names the faults of the next requests, in arrival order; `fault_rate`
  injects one of `random_faults` at random into any other request. FAULTS lists every kind.

Every request is recorded (`requests`), with the peak number being answered at once.

A day's rows are a DataFrame of wire fields, or a list of raw item objects served verbatim (keys
missing or extra, values of any JSON type), for corpora of malformed records.

    with FakeDataGoKr(SyntheticMarket(7).frames(days), key, latency=(0.2, 0.5), max_rps=10) as api:
        source = DataGoKrSource(DataGoKrConfig(key, base_url=api.url, max_rps=10))
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from stock_platform.defs.stock_prices.sources.wire import build_page

V2_PATH = "/1160100/GetStockSecuritiesInfoService_V2/getStockPriceInfo_V2"
LEGACY_PATH = "/1160100/service/GetStockSecuritiesInfoService/getStockPriceInfo"

# Gateway error codes and the names the gateway gives them.
GATEWAY_CODES = {
    1: "APPLICATION_ERROR",
    5: "SERVICETIMEOUT_ERROR",
    10: "INVALID_REQUEST_PARAMETER_ERROR",
    12: "NO_OPENAPI_SERVICE_ERROR",
    20: "SERVICE_ACCESS_DENIED_ERROR",
    22: "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR",
    23: "LIMITED_NUMBER_OF_SERVICE_REQUESTS_PER_SECOND_EXCEEDS_ERROR",
    30: "SERVICE_KEY_IS_NOT_REGISTERED_ERROR",
    31: "DEADLINE_HAS_EXPIRED_ERROR",
    32: "UNREGISTERED_IP_ERROR",
    99: "UNKNOWN_ERROR",
}


def gateway_error(code: int) -> bytes:
    """The XML the gateway sends for its errors, even when JSON was asked for."""
    return (
        "<OpenAPI_ServiceResponse>\n\t<cmmMsgHeader>\n\t\t<errMsg>SERVICE ERROR</errMsg>\n"
        f"\t\t<returnAuthMsg>{GATEWAY_CODES[code]}</returnAuthMsg>\n"
        f"\t\t<returnReasonCode>{code:02d}</returnReasonCode>\n"
        "\t</cmmMsgHeader>\n</OpenAPI_ServiceResponse>"
    ).encode()


def json_error(code: str, message: str) -> bytes:
    """An error the API backend itself reports inside the JSON envelope."""
    return json.dumps({"response": {"header": {"resultCode": code, "resultMsg": message}}}).encode()


@dataclass(frozen=True)
class Fault:
    status: int
    body: bytes | None = None  # None: derived from the normal page (see _apply_fault)
    transient: bool = True


# name -> how the server answers. "disconnect" and "stall" act on the connection instead.
FAULTS: dict[str, Fault] = {
    "disconnect": Fault(0),  # connection closed without an answer
    "stall": Fault(200),  # answers only after `stall_s` (clients time out first)
    "http_500": Fault(500, b"<html><body>500 Internal Server Error</body></html>"),
    "http_502": Fault(502, b"<html><body>502 Bad Gateway</body></html>"),
    "http_503_xml": Fault(503, gateway_error(99)),
    "code_1": Fault(200, gateway_error(1)),
    "code_99_json": Fault(200, json_error("99", "UNKNOWN_ERROR")),
    "service_timeout": Fault(504, gateway_error(5)),
    "rate_limited": Fault(429, gateway_error(23)),
    "truncated_json": Fault(200),  # the page cut in half
    "short_page": Fault(200),  # a valid page missing its last row
    "quota": Fault(429, gateway_error(22), transient=False),
    "code_10": Fault(200, gateway_error(10), transient=False),
    "code_12": Fault(200, gateway_error(12), transient=False),
    "code_20": Fault(403, gateway_error(20), transient=False),
    "code_30": Fault(401, gateway_error(30), transient=False),
    "code_30_http_200": Fault(200, gateway_error(30), transient=False),
    "code_31": Fault(401, gateway_error(31), transient=False),
    "code_32": Fault(403, gateway_error(32), transient=False),
}
TRANSIENT_FAULTS = tuple(name for name, fault in FAULTS.items() if fault.transient)


@dataclass(frozen=True)
class Served:
    at: float  # time.monotonic() on arrival
    bas_dt: str
    page_no: str
    status: int
    outcome: str  # "ok", a fault name, "rate_limited_by_server", "quota_exhausted", "bad_key", ...


class FakeDataGoKr:
    def __init__(
        self,
        frames: Mapping[dt.date, pd.DataFrame | Sequence[dict]],
        service_key: str,
        *,
        latency: tuple[float, float] = (0.0, 0.0),
        max_rps: float | None = None,
        daily_quota: int | None = None,
        fault_rate: float = 0.0,
        random_faults: tuple[str, ...] = TRANSIENT_FAULTS,
        echo_key: bool = False,
        stall_s: float = 3.0,
        seed: int = 0,
    ):
        self.frames = {f"{day:%Y%m%d}": frame for day, frame in frames.items()}
        self.service_key = service_key  # the raw ("decoding") form
        self.latency = latency
        self.max_rps = max_rps
        self.daily_quota = daily_quota
        self.fault_rate = fault_rate
        self.random_faults = random_faults
        self.echo_key = echo_key
        self.stall_s = stall_s
        self.requests: list[Served] = []
        self.peak_in_flight = 0
        self._rng = random.Random(seed)
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._accepted = 0
        self._tokens = max_rps or 0.0
        self._refilled = time.monotonic()
        self._server = _Server(("127.0.0.1", 0), _handler(self))

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeDataGoKr:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + V2_PATH

    @property
    def legacy_url(self) -> str:
        return self.origin + LEGACY_PATH

    # -- control and inspection ------------------------------------------------------------

    def script(self, *faults: str) -> None:
        """The next requests get these faults, in arrival order ("ok" for a normal answer)."""
        unknown = [f for f in faults if f != "ok" and f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._script.extend(faults)

    def reset_quota(self) -> None:
        """A new day at the gateway."""
        with self._lock:
            self._accepted = 0

    def count(self, outcome: str | None = None) -> int:
        return sum(1 for r in self.requests if outcome is None or r.outcome == outcome)

    def max_per_window(self, seconds: float = 1.0) -> int:
        """The most requests that arrived within any window of `seconds`."""
        times = sorted(r.at for r in self.requests)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- answering -------------------------------------------------------------------------

    def answer(self, path: str) -> tuple[int, bytes | None, str, float]:
        """(status, body or None to drop the connection, outcome, delay) for one request."""
        split = urlsplit(path)
        query = parse_qs(split.query, keep_blank_values=True)  # reads "+" as " ", like the gateway
        param = {name: values[0] for name, values in query.items()}
        with self._lock:
            arrived = time.monotonic()
            delay = self._rng.uniform(*self.latency)
            status, body, outcome = self._gate(split.path, param, arrived)
            if outcome == "ok":
                scripted = self._script.popleft() if self._script else None
                if scripted is None and self._rng.random() < self.fault_rate:
                    scripted = self._rng.choice(self.random_faults)
                if scripted is not None and scripted != "ok":
                    status, body, outcome = self._fault(scripted, param)
                    delay += self.stall_s if scripted == "stall" else 0.0
            self.requests.append(
                Served(arrived, param.get("basDt", ""), param.get("pageNo", ""), status, outcome)
            )
        if body is None and outcome == "ok":
            body = self._page(param)
        return status, body, outcome, delay

    def _gate(self, path: str, param: dict[str, str], now: float) -> tuple[int, bytes | None, str]:
        """What the gateway checks before the API sees the request (called under the lock)."""
        if path == LEGACY_PATH:
            return 200, gateway_error(12), "legacy_path"
        if path != V2_PATH:
            return 404, b"<html><body>404 Not Found</body></html>", "not_found"
        if param.get("serviceKey") != self.service_key:
            return 401, gateway_error(30), "bad_key"
        if self.max_rps is not None:
            self._tokens = min(self.max_rps, self._tokens + (now - self._refilled) * self.max_rps)
            self._refilled = now
            if self._tokens < 1:
                return 429, gateway_error(23), "rate_limited_by_server"
            self._tokens -= 1
        if self.daily_quota is not None and self._accepted >= self.daily_quota:
            return 429, gateway_error(22), "quota_exhausted"
        self._accepted += 1
        bad = [
            name
            for name, ok in (
                ("resultType", param.get("resultType") == "json"),
                ("basDt", len(param.get("basDt", "")) == 8 and param["basDt"].isdigit()),
                ("numOfRows", param.get("numOfRows", "").isdigit() and int(param["numOfRows"]) > 0),
                ("pageNo", param.get("pageNo", "").isdigit() and int(param["pageNo"]) > 0),
            )
            if not ok
        ]
        if bad:
            return 200, gateway_error(10), f"invalid_{'_'.join(bad)}"
        return 200, None, "ok"

    def _fault(self, name: str, param: dict[str, str]) -> tuple[int, bytes | None, str]:
        fault = FAULTS[name]
        if name == "disconnect":
            return 0, None, name
        if name == "stall":
            return 200, self._page(param), name  # a normal page, but late
        if name == "truncated_json":
            page = self._page(param)
            return 200, page[: len(page) // 2], name
        if name == "short_page":
            return 200, self._page(param, drop_last=True), name
        return fault.status, fault.body, name

    def _page(self, param: dict[str, str], drop_last: bool = False) -> bytes:
        size, page_no = int(param["numOfRows"]), int(param["pageNo"])
        frame = self.frames.get(param["basDt"])
        total = 0 if frame is None else len(frame)
        rows: Any = frame.iloc if isinstance(frame, pd.DataFrame) else frame
        chunk = rows[(page_no - 1) * size : page_no * size] if total else None
        if chunk is not None and drop_last:
            chunk = chunk[:-1]
        if chunk is None or len(chunk) == 0:
            items = None  # the API sends "items": "" for an empty page
        else:
            items = (
                chunk.to_json(orient="records", force_ascii=False)
                if isinstance(chunk, pd.DataFrame)
                else json.dumps(list(chunk), ensure_ascii=False, separators=(",", ":"))
            )
            if len(chunk) == 1:
                items = items[1:-1]  # one row comes as an object, not a list
        body = build_page(items, page_no, size, total)
        if self.echo_key:  # some gateways echo request parameters back
            key = json.dumps(param["serviceKey"])
            body = body.replace('"header":{', f'"header":{{"serviceKey":{key},', 1)
        return body.encode()

    def enter_request(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def leave_request(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler(api: FakeDataGoKr) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real gateway

        def do_GET(self) -> None:
            api.enter_request()
            try:
                status, body, _outcome, delay = api.answer(self.path)
                time.sleep(delay)
                if body is None:  # drop the connection without an answer
                    self.close_connection = True
                    return
                content_type = "application/xml" if body.lstrip().startswith(b"<") else "application/json"
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type};charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout); nothing to answer
            finally:
                api.leave_request()

        def log_message(self, format: str, *args) -> None:
            pass  # request lines carry the service key

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many connections open at once at the start of a fetch
    daemon_threads = True
