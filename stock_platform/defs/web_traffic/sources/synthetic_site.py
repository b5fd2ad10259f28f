"""A deterministic synthetic web shop that writes a day of access logs as two servers would.

`SyntheticSite(seed, requests_per_day, timezone, hosts).day_files(day)` returns the files delivered
for one partition day:

- ``web-1.log``: the combined format, timestamps in the site's zone with its offset (``+0900`` in
  Asia/Seoul), LF line endings, plus an uptime monitor's HEAD requests.
- ``web-2.log.gz``: gzip (mtime 0, so the bytes are reproducible) of a mix of the combined and
  common formats with UTC timestamps (``+0000``) and the legacy format in local time, CRLF line
  endings.

The traffic: visitors from a fixed population (IPv4, some IPv6, a few IPv4-mapped IPv6 addresses,
each with a stable user agent; some visitors are much more active than others) come in sessions.
Sessions start on a daily rhythm (quiet at night, busy at lunch and in the evening; weekends
lighter), hold a few page views with gaps mostly under and sometimes over 30 minutes, and each
page view pulls static assets (fewer once cached, answered 304 then). Page popularity is Zipf-like
over a few hundred pages (products, categories, blog posts, search with query strings); the first
page of a session comes from search (Google, Naver, Daum, Bing), social networks (Facebook,
Instagram, t.co, Kakao), other sites or nowhere, later ones from the site itself. Crawlers
(Googlebot, bingbot, Naver's Yeti, Daum, Ahrefs) spread over the whole day, scanners probe for
admin pages, a monitor polls every few minutes. Responses include redirects, 304, 4xx and 5xx.

Each day also carries the lines a real log has: TLS handshakes sent to the HTTP port and empty
requests (``"-"``), quoted fields with escaped quotes and backslashes, a few malformed lines (garbage,
a truncated line, an invalid address, impossible timestamps, status 777, a non-numeric size, an
invalid UTF-8 sequence), empty lines, and lines of the neighbouring days from log rotation lag.

Determinism: the site (pages, visitors, crawlers) comes from a generator keyed by the seed; a day
draws only from a generator keyed by (seed, day), so the same seed and day give the same bytes
whichever other days were generated. Lines are built column-wise with numpy and Arrow compute: a
100,000-request day takes a fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import ipaddress
import zoneinfo
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BIN = pa.large_binary()
SITE, DAY = range(2)  # random streams
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Relative volume by weekday (Monday first) and session starts by local hour.
WEEKDAY_VOLUME = np.array([1.06, 1.04, 1.04, 1.02, 1.0, 0.8, 0.78])
WEEKDAY_VOLUME /= WEEKDAY_VOLUME.mean()
HOURLY = np.array(
    [1.4, 0.9, 0.55, 0.38, 0.3, 0.35, 0.6, 1.2, 2.0, 2.6, 2.9, 3.0,
     3.5, 3.2, 2.9, 2.9, 2.9, 3.0, 3.1, 3.5, 3.9, 4.2, 3.8, 2.5]
)  # fmt: skip
HOURLY /= HOURLY.sum()

BOT_SHARE, SCANNER_SHARE = 0.09, 0.002  # of a day's requests
LONG_GAP = 0.05  # share of gaps between page views longer than 30 minutes
SECONDS_BETWEEN_POLLS = 300  # the uptime monitor (every 30 minutes on small sites)

# User agents people browse with: (text, weight, mobile).
WEBKIT, SAFARI_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)", "AppleWebKit/605.1.15 (KHTML, like Gecko)"
WINDOWS, MAC, IPHONE = "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "iPhone; CPU iPhone OS"
BROWSERS: list[tuple[str, float, bool]] = [
    (f"Mozilla/5.0 ({WINDOWS}) {WEBKIT} Chrome/122.0.0.0 Safari/537.36", 16, False),
    (f"Mozilla/5.0 ({WINDOWS}) {WEBKIT} Chrome/121.0.0.0 Safari/537.36", 6, False),
    (f"Mozilla/5.0 ({MAC}) {WEBKIT} Chrome/122.0.0.0 Safari/537.36", 5, False),
    (f"Mozilla/5.0 ({MAC}) {SAFARI_WEBKIT} Version/17.3 Safari/605.1.15", 3, False),
    (f"Mozilla/5.0 ({WINDOWS}) {WEBKIT} Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.66", 6, False),
    (f"Mozilla/5.0 ({WINDOWS}; rv:123.0) Gecko/20100101 Firefox/123.0", 2, False),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0", 0.5, False),
    (f"Mozilla/5.0 ({WINDOWS}) {WEBKIT} Chrome/120.0.0.0 Whale/3.24.223.21 Safari/537.36", 3, False),
    (f"Mozilla/5.0 ({IPHONE} 17_3_1 like Mac OS X) {SAFARI_WEBKIT} Version/17.3 Mobile/15E148 Safari/604.1", 14, True),
    (f"Mozilla/5.0 ({IPHONE} 16_6 like Mac OS X) {SAFARI_WEBKIT} Version/16.6 Mobile/15E148 Safari/604.1", 5, True),
    (f"Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) {SAFARI_WEBKIT} Version/17.2 Mobile/15E148 Safari/604.1", 2, True),
    (
        f"Mozilla/5.0 (Linux; Android 14; SM-S921N) {WEBKIT} SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        9,
        True,
    ),
    (
        f"Mozilla/5.0 (Linux; Android 13; SM-A536N) {WEBKIT} SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        5,
        True,
    ),
    (f"Mozilla/5.0 (Linux; Android 10; K) {WEBKIT} Chrome/122.0.0.0 Mobile Safari/537.36", 14, True),
    (
        f"Mozilla/5.0 ({IPHONE} 17_3 like Mac OS X) {SAFARI_WEBKIT} Mobile/15E148 NAVER(inapp; search; 2000; 12.3.1)",
        3,
        True,
    ),
    (
        f"Mozilla/5.0 (Linux; Android 13; SM-G991N Build/TP1A.220624.014; wv) {WEBKIT} Version/4.0 "
        "Chrome/121.0.6167.101 Mobile Safari/537.36;KAKAOTALK 2410420",
        3,
        True,
    ),
    (
        f'Mozilla/5.0 (Linux; Android 12; SM-F711N) {WEBKIT} Chrome/120.0.0.0 Mobile Safari/537.36 "ShopApp/3.2"',
        0.3,
        True,
    ),
    ("curl/8.4.0", 0.2, False),
    ("-", 0.3, False),  # no User-Agent header
]
# Crawlers: (user agent, weight, networks their addresses come from).
GOOGLEBOT = "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
NEXUS = f"Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {WEBKIT} Chrome/122.0.6261.94 Mobile Safari/537.36"
CRAWLERS: list[tuple[str, float, tuple[str, ...]]] = [
    (f"Mozilla/5.0 {GOOGLEBOT}", 22, ("66.249.66.0/24", "66.249.79.0/24")),
    (f"Mozilla/5.0 ({NEXUS} {GOOGLEBOT}", 18, ("66.249.68.0/24", "2001:4860:4801:10::/64")),
    ("Googlebot-Image/1.0", 4, ("66.249.70.0/24",)),
    ("Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)", 25, ("211.249.40.0/24", "110.93.150.0/24")),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        14,
        ("40.77.167.0/24", "157.55.39.0/24"),
    ),
    ("Mozilla/5.0 (compatible; Daum/4.1; +http://cs.daum.net/faq/15/4118.html?faqId=28966)", 9, ("203.133.168.0/24",)),
    (
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        8,
        ("54.36.148.0/24", "2001:41d0:303:5::/64"),
    ),
]
MONITOR = ("69.162.124.235", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)")
SCANNER_AGENTS = ["python-requests/2.31.0", "Mozilla/5.0 zgrab/0.x", "-", 'Mozilla/5.0 (compatible; "Nuclei")']
SCANNER_ADDRESSES = ["45.148.10.83", "185.224.128.17", "2a06:4880:4000::65", "::ffff:193.35.18.61"]
SCANNER_TARGETS: list[tuple[str, str, int]] = [
    ("GET", "/wp-login.php", 404), ("GET", "/.env", 404), ("POST", "/xmlrpc.php", 404),
    ("GET", "/phpmyadmin/index.php", 404), ("GET", "/.git/config", 404), ("GET", "/admin/", 403),
    ("GET", "/cgi-bin/luci/;stok=/locale?form=country", 404), ("GET", "/..\\..\\..\\windows\\win.ini", 400),
    ("GET", "/actuator/health", 404), ("GET", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404),
]  # fmt: skip
IPV4_NETWORKS = [
    1,
    14,
    27,
    39,
    49,
    58,
    59,
    61,
    106,
    110,
    112,
    114,
    115,
    116,
    117,
    118,
    119,
    121,
    122,
    124,
    125,
    175,
    180,
    182,
    183,
    203,
    210,
    211,
    218,
    220,
    221,
    222,
    223,
]  # first octets of Korean providers' blocks
IPV6_NETWORKS = ["2001:2d8", "2001:e60", "2406:5900", "2001:4430", "2404:8e00"]

SEARCH_REFERRERS = [
    ("https://www.google.com/", 30), ("https://www.google.co.kr/", 12),
    ("https://search.naver.com/search.naver?where=nexearch&query=%EC%97%AC%EB%A6%84+%EC%9B%90%ED%94%BC%EC%8A%A4", 16),
    ("https://m.search.naver.com/search.naver?query=%EC%8B%A0%EB%B0%9C", 14),
    ("https://search.daum.net/search?w=tot&q=%EA%B0%80%EB%B0%A9", 8), ("https://m.search.daum.net/search?q=shop", 3),
    ("https://www.bing.com/search?q=example+shop", 8), ("https://www.bing.com/", 2),
]  # fmt: skip
SOCIAL_REFERRERS = [
    ("https://l.facebook.com/", 10), ("http://m.facebook.com/", 6), ("https://www.instagram.com/", 14),
    ("https://l.instagram.com/", 6), ("https://t.co/a8Xk2LmQ9z", 5), ("https://talk.kakao.com/", 4),
    ("https://story.kakao.com/", 2), ("https://www.youtube.com/", 3),
]  # fmt: skip
OTHER_REFERRERS = [
    ("https://www.ppomppu.co.kr/zboard/view.php?id=ppomppu&no=512345", 6),
    ("https://clien.net/service/board/jirum/18543210", 4),
    ("https://news.example.com/articles/2024/shopping-guide", 2), ("android-app://com.google.android.gm/", 2),
]  # fmt: skip
SEARCH_TERMS = [
    "%EC%9B%90%ED%94%BC%EC%8A%A4", "%EC%8B%A0%EB%B0%9C", "%EA%B0%80%EB%B0%A9", "sale", "jacket", "linen+shirt",
    "%ED%96%87%EB%B9%9B+%EA%B0%80%EB%A6%AC%EA%B0%9C", 'kids+"rain+boots"', "gift&page=2", "",
]  # fmt: skip
LANDING_QUERIES = [
    "?utm_source=naver&utm_medium=cpc&utm_campaign=spring", "?utm_source=facebook&utm_medium=social",
    "?ref=mail", "?fbclid=IwAR2xYz", "?gclid=Cj0KCQiA", "?",
]  # fmt: skip
ASSETS: list[tuple[str, int]] = [
    ("/static/css/main.css", 48_211), ("/static/js/app.js", 183_942), ("/static/js/vendor.js", 412_007),
    ("/favicon.ico", 5_430), ("/static/img/logo.png", 12_884), ("/static/img/sprite.png", 61_203),
    ("/static/fonts/NanumSquare.woff2", 215_338), ("/static/js/analytics.js", 22_514),
    ("/static/css/print.css", 3_120), ("/apple-touch-icon.png", 9_981), ("/static/img/banner-spring.png", 240_553),
    ("/static/js/app.js?v=20240301", 183_942), ("/static/img/icons/cart.png", 1_455),
]  # fmt: skip


def _escape(text: str) -> str:
    """A header or request written inside quotes, as servers do: \\ and " escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _binary(values: list[str] | list[bytes]) -> pa.Array:
    return pa.array([v.encode() if isinstance(v, str) else v for v in values], BIN)


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text.encode(), BIN)


def _join(*parts: pa.Array | pa.Scalar) -> pa.Array:
    return pc.binary_join_element_wise(*parts, _lit(""))


def _numbers(values: np.ndarray) -> pa.Array:
    return pc.cast(pc.cast(pa.array(values), pa.large_string()), BIN)


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


@functools.cache
def _clock() -> pa.Array:
    """HH:MM:SS of every second of a day."""
    return _binary([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)])


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


@dataclass
class Requests:
    """Requests column-wise. Text columns are written forms (escaped, '-' for absent)."""

    t: np.ndarray  # UTC epoch seconds (float) at which the request arrived
    done: np.ndarray  # when it was logged (arrival + duration): the line order in a file
    server: np.ndarray  # 0 or 1
    client: pa.Array
    user: pa.Array
    method: pa.Array
    target: pa.Array
    protocol: pa.Array
    status: np.ndarray
    size: np.ndarray  # -1 for none
    referrer: pa.Array
    agent: pa.Array

    @staticmethod
    def concat(parts: list[Requests]) -> Requests:
        arrays: dict[str, Any] = {}
        for name in Requests.__dataclass_fields__:
            values = [getattr(p, name) for p in parts]
            if isinstance(values[0], np.ndarray):
                arrays[name] = np.concatenate(values)
            else:
                arrays[name] = pa.concat_arrays(values)
        return Requests(**arrays)

    def take(self, rows: np.ndarray) -> Requests:
        arrays: dict[str, Any] = {}
        for name in Requests.__dataclass_fields__:
            value = getattr(self, name)
            arrays[name] = value[rows] if isinstance(value, np.ndarray) else value.take(pa.array(rows))
        return Requests(**arrays)


class SyntheticSite:
    """A web shop's traffic; identical bytes for the same seed, settings and day."""

    def __init__(self, seed: int, requests_per_day: int, timezone: str, hosts: list[str]):
        self.seed = seed
        self.requests_per_day = requests_per_day
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.hosts = [h.strip().lower() for h in hosts if h.strip()] or ["www.example-shop.kr"]
        rng = np.random.default_rng([seed, SITE])
        self._build_pages(rng)
        self._build_visitors(rng)
        self._build_crawlers(rng)

    # -- the site ---------------------------------------------------------------------------

    def _build_pages(self, rng: np.random.Generator) -> None:
        products = np.sort(rng.choice(np.arange(100, 9_999), 170, replace=False))
        categories = ["women", "men", "kids", "shoes", "bags", "beauty", "home", "sale", "new", "outlet"]
        words = ["spring", "lookbook", "linen", "care", "guide", "styling", "gift", "review", "trend", "size"]
        slugs = {f"{rng.choice(words)}-{rng.choice(words)}-{n}" for n in range(60)}
        fixed = ["/", "/products/", "/search", "/cart", "/index.html", "/login", "/event/", "/mypage/orders"]
        pages = [f"/products/{p}" for p in products]
        pages += [f"/category/{c}/" for c in categories] + [f"/category/{c}/new" for c in categories[:6]]
        pages += ["/blog/"] + [f"/blog/{s}" for s in sorted(slugs)]
        pages += [f"/notice/{n}" for n in range(1, 16)] + ["/about", "/about/company.html", "/contact"]
        pages += ["/help/faq.html", "/help/shipping.htm", "/help/returns.html", "/signup", "/event/2024-spring.html"]
        # Popularity: the fixed pages lead, the rest in a random order.
        order = rng.permutation(len(pages))
        self.pages = fixed + [pages[i] for i in order]
        self.page_weights = _zipf(len(self.pages), 1.05)
        self.page_text = _binary([_escape(p) for p in self.pages])
        page_size = rng.lognormal(np.log(24_000), 0.5, len(self.pages)).astype(np.int64)
        self.page_size = page_size
        self.search_page = self.pages.index("/search")
        self.form_pages = np.array([self.pages.index("/cart"), self.pages.index("/login")])
        self.queries = _binary(
            ["", *[_escape(q) for q in LANDING_QUERIES], *(f"?q={_escape(t)}" for t in SEARCH_TERMS)]
        )
        self.asset_text = _binary([_escape(a) for a, _ in ASSETS])
        self.asset_size = np.array([s for _, s in ASSETS], dtype=np.int64)
        self.asset_weights = _zipf(len(ASSETS), 0.8)
        referrers = [("-", 38.0)]
        for group, share in ((SEARCH_REFERRERS, 34.0), (SOCIAL_REFERRERS, 14.0), (OTHER_REFERRERS, 6.0)):
            total = sum(w for _, w in group)
            referrers += [(r, share * w / total) for r, w in group]
        self.referrers = _binary([_escape(r) for r, _ in referrers])
        weights = np.array([w for _, w in referrers])
        self.referrer_weights = weights / weights.sum()

    def _build_visitors(self, rng: np.random.Generator) -> None:
        """A population of visitors, each with an address, a user agent and an activity level."""
        n = max(300, self.requests_per_day // 6)
        kind = rng.choice(3, n, p=[0.85, 0.12, 0.03])  # IPv4, IPv6, IPv4-mapped IPv6
        first = rng.choice(IPV4_NETWORKS, n)
        octets = rng.integers(0, 256, (n, 3))
        octets[:, 2] = rng.integers(1, 255, n)
        v6_network = rng.choice(len(IPV6_NETWORKS), n)
        v6_groups = rng.integers(0, 65_536, (n, 6))
        addresses = []
        for i in range(n):
            v4 = f"{first[i]}.{octets[i, 0]}.{octets[i, 1]}.{octets[i, 2]}"
            if kind[i] == 0:
                addresses.append(v4)
            elif kind[i] == 2:
                addresses.append("::ffff:" + v4)
            else:
                text = IPV6_NETWORKS[v6_network[i]] + ":" + ":".join(f"{g:x}" for g in v6_groups[i])
                addresses.append(ipaddress.IPv6Address(text).compressed)
        weights = np.array([w for _, w, _ in BROWSERS])
        agent = rng.choice(len(BROWSERS), n, p=weights / weights.sum())
        self.visitor_client = _binary(addresses)
        self.visitor_agent = agent
        self.agent_text = _binary([_escape(a) for a, _, _ in BROWSERS])
        self.agent_mobile = np.array([m for _, _, m in BROWSERS])
        activity = rng.lognormal(0, 1.2, n)
        self.visitor_weights = activity / activity.sum()
        self.visitor_http2 = rng.random(n) < 0.6

    def _build_crawlers(self, rng: np.random.Generator) -> None:
        clients, agents, weights = [], [], []
        for agent, weight, networks in CRAWLERS:
            hosts = []
            for network in networks:
                net = ipaddress.ip_network(network)
                hosts += [str(net[int(h)]) for h in rng.integers(2, 250, 3)]
            clients += hosts
            agents += [_escape(agent)] * len(hosts)
            weights += [weight / len(hosts)] * len(hosts)
        self.crawler_client = _binary(clients)
        self.crawler_agent = _binary(agents)
        w = np.array(weights)
        self.crawler_weights = w / w.sum()

    # -- a day ------------------------------------------------------------------------------

    def day_files(self, day: dt.date) -> dict[str, bytes]:
        """The day's log files by name, as delivered."""
        rng = np.random.default_rng([self.seed, DAY, day.toordinal()])
        start = dt.datetime.combine(day, dt.time(), self.zone).timestamp()
        end = dt.datetime.combine(day + dt.timedelta(1), dt.time(), self.zone).timestamp()
        volume = self.requests_per_day * WEEKDAY_VOLUME[day.weekday()] * np.exp(rng.normal(0, 0.04))
        requests = Requests.concat(
            [
                self._visits(rng, start, end, volume * (1 - BOT_SHARE - SCANNER_SHARE)),
                self._crawls(rng, start, end, volume * BOT_SHARE),
                self._scans(rng, start, end, volume * SCANNER_SHARE),
                self._polls(rng, start, end),
            ]
        )
        keep = (requests.t >= start) & (requests.t < end)  # sessions running past midnight stop
        requests = requests.take(np.flatnonzero(keep))
        extra = self._odd_lines(rng, day, start, end)

        web1 = self._write(rng, requests.take(np.flatnonzero(requests.server == 0)), extra[0], 0, crlf=False)
        web2 = self._write(rng, requests.take(np.flatnonzero(requests.server == 1)), extra[1], 1, crlf=True)
        return {"web-1.log": web1, "web-2.log.gz": gzip.compress(web2, compresslevel=6, mtime=0)}

    def _visits(self, rng: np.random.Generator, start: float, end: float, volume: float) -> Requests:
        """People: sessions of page views, each page view with its assets."""
        # About 8.7 requests a session: 3.7 page views, 3 assets on landing, 0.8 per later view.
        sessions = max(1, int(volume / 8.7))
        visitor = rng.choice(len(self.visitor_weights), sessions, p=self.visitor_weights)
        hour = rng.choice(24, sessions, p=HOURLY)
        first_view = start + np.minimum(hour * 3600 + rng.random(sessions) * 3600, end - start - 1)
        views = np.where(rng.random(sessions) < 0.4, 1, 1 + rng.geometric(0.22, sessions))
        views = np.minimum(views, 60)

        session = np.repeat(np.arange(sessions), views)
        n = len(session)
        offsets = np.cumsum(views) - views  # index of each session's first view
        position = np.arange(n) - offsets[session]
        landing = position == 0
        gap = rng.lognormal(np.log(50), 1.1, n)
        long_gap = rng.random(n) < LONG_GAP
        gap[long_gap] = rng.uniform(1_860, 7_200, long_gap.sum())
        gap[landing] = 0
        elapsed = np.cumsum(gap)
        t = first_view[session] + elapsed - elapsed[offsets[session]]

        page = rng.choice(len(self.pages), n, p=self.page_weights)
        query = np.zeros(n, dtype=np.int64)
        tagged = landing & (rng.random(n) < 0.12)
        query[tagged] = rng.integers(1, 1 + len(LANDING_QUERIES), tagged.sum())
        searching = page == self.search_page
        query[searching] = 1 + len(LANDING_QUERIES) + rng.integers(0, len(SEARCH_TERMS), searching.sum())
        target = _join(self.page_text.take(pa.array(page)), self.queries.take(pa.array(query)))

        status = np.full(n, 200)
        size = self.page_size[page] + rng.integers(-400, 400, n)
        roll = rng.random(n)
        method = np.zeros(n, dtype=np.int64)  # GET, POST, HEAD
        form = np.isin(page, self.form_pages) & (roll < 0.35)
        method[form] = 1
        status[form] = 302
        status[(roll >= 0.35) & (roll < 0.37) & ~landing] = 304
        status[(roll >= 0.40) & (roll < 0.408)] = 404
        status[(roll >= 0.45) & (roll < 0.455)] = 301
        status[(roll >= 0.5) & (roll < 0.5015)] = 500
        status[(roll >= 0.51) & (roll < 0.5115)] = 502
        status[(roll >= 0.52) & (roll < 0.5205)] = 503
        status[(roll >= 0.53) & (roll < 0.531)] = 499
        size[status == 304] = 0
        size[(status == 301) | (status == 302)] = 162
        size[status == 404] = 555
        size[status >= 500] = 157
        size[status == 499] = 0

        agent = self.visitor_agent[visitor[session]]
        host = np.where(self.agent_mobile[agent], min(2, len(self.hosts) - 1), 0)
        host[rng.random(n) < 0.05] = min(1, len(self.hosts) - 1)
        origin = _join(_lit("https://"), _binary(self.hosts).take(pa.array(host)))
        page_url = _join(origin, target)
        # The first view's referrer comes from outside; every later one is the previous view.
        external = self.referrers.take(pa.array(rng.choice(len(self.referrers), n, p=self.referrer_weights)))
        previous = page_url.take(pa.array(np.maximum(np.arange(n) - 1, 0)))
        referrer = pc.if_else(pa.array(landing), external, previous)

        protocol = np.where(self.visitor_http2[visitor[session]], 1, 0)
        views_part = Requests(
            t=t,
            done=t + rng.exponential(0.15, n),
            server=(visitor[session] + session) % 2,  # sticky per session
            client=self.visitor_client.take(pa.array(visitor[session])),
            user=pa.repeat(_lit("-"), n),
            method=_binary(["GET", "POST", "HEAD"]).take(pa.array(method)),
            target=target,
            protocol=_binary(["HTTP/1.1", "HTTP/2.0"]).take(pa.array(protocol)),
            status=status,
            size=size,
            referrer=referrer,
            agent=self.agent_text.take(pa.array(agent)),
        )

        # Assets follow their page view within a second or two; later views find them cached.
        count = rng.poisson(np.where(landing, 3.0, 0.8))
        count[status >= 300] = 0
        owner = np.repeat(np.arange(n), count)
        m = len(owner)
        asset = rng.choice(len(ASSETS), m, p=self.asset_weights)
        asset_status = np.where(landing[owner] | (rng.random(m) < 0.5), 200, 304)
        asset_status[rng.random(m) < 0.002] = 404
        asset_size = np.where(asset_status == 200, self.asset_size[asset], 0)
        asset_t = t[owner] + rng.uniform(0.05, 1.5, m)
        assets_part = Requests(
            t=asset_t,
            done=asset_t + rng.exponential(0.05, m),
            server=views_part.server[owner],
            client=views_part.client.take(pa.array(owner)),
            user=pa.repeat(_lit("-"), m),
            method=pa.repeat(_lit("GET"), m),
            target=self.asset_text.take(pa.array(asset)),
            protocol=views_part.protocol.take(pa.array(owner)),
            status=asset_status,
            size=asset_size,
            referrer=page_url.take(pa.array(owner)),
            agent=views_part.agent.take(pa.array(owner)),
        )
        return Requests.concat([views_part, assets_part])

    def _crawls(self, rng: np.random.Generator, start: float, end: float, volume: float) -> Requests:
        """Crawlers: pages with little regard to popularity, all day long; robots.txt now and then."""
        n = rng.poisson(volume)
        crawler = rng.choice(len(self.crawler_weights), n, p=self.crawler_weights)
        page = rng.choice(len(self.pages), n, p=_zipf(len(self.pages), 0.35))
        target = self.page_text.take(pa.array(page))
        robots = rng.random(n) < 0.03
        target = pc.if_else(pa.array(robots), _lit("/robots.txt"), target)
        status = np.where(rng.random(n) < 0.02, 404, 200)
        status[robots] = 200
        size = np.where(status == 200, self.page_size[page], 555)
        size[robots] = 67
        t = start + rng.random(n) * (end - start)
        return Requests(
            t=t,
            done=t + rng.exponential(0.2, n),
            server=rng.integers(0, 2, n),
            client=self.crawler_client.take(pa.array(crawler)),
            user=pa.repeat(_lit("-"), n),
            method=pa.repeat(_lit("GET"), n),
            target=target,
            protocol=pa.repeat(_lit("HTTP/1.1"), n),
            status=status,
            size=size,
            referrer=pa.repeat(_lit("-"), n),
            agent=self.crawler_agent.take(pa.array(crawler)),
        )

    def _scans(self, rng: np.random.Generator, start: float, end: float, volume: float) -> Requests:
        """Scanners probing for software the site does not run, in short bursts; and a staff
        member in the admin pages (a basic-auth user name)."""
        bursts = 2 + rng.poisson(volume / 8)
        size = rng.integers(3, 12, bursts)
        n = int(size.sum())
        burst = np.repeat(np.arange(bursts), size)
        t = (start + rng.random(bursts) * (end - start))[burst] + np.arange(n) * 0.4
        probe = rng.integers(0, len(SCANNER_TARGETS), n)
        who = rng.integers(0, len(SCANNER_ADDRESSES), bursts)[burst]
        agent = rng.integers(0, len(SCANNER_AGENTS), bursts)[burst]
        status = np.array([s for _, _, s in SCANNER_TARGETS])[probe]
        staff = rng.random(n) < 0.1  # the admin pages, signed in
        client = _binary(SCANNER_ADDRESSES).take(pa.array(who))
        client = pc.if_else(pa.array(staff), _lit("121.134.77.201"), client)
        target = _binary([_escape(p) for _, p, _ in SCANNER_TARGETS]).take(pa.array(probe))
        target = pc.if_else(pa.array(staff), _lit("/admin/orders"), target)
        status[staff] = 200
        agents = _binary([_escape(a) for a in SCANNER_AGENTS]).take(pa.array(agent))
        agents = pc.if_else(pa.array(staff), self.agent_text[0], agents)
        return Requests(
            t=t,
            done=t + 0.01,
            server=burst % 2,
            client=client,
            user=pc.if_else(pa.array(staff), _lit("admin"), _lit("-")),
            method=_binary([m for m, _, _ in SCANNER_TARGETS]).take(pa.array(probe)),
            target=target,
            protocol=pa.repeat(_lit("HTTP/1.1"), n),
            status=status,
            size=np.where(staff, 18_220, np.where(status == 404, 555, 153)),
            referrer=pa.repeat(_lit("-"), n),
            agent=agents,
        )

    def _polls(self, rng: np.random.Generator, start: float, end: float) -> Requests:
        """An uptime monitor's HEAD / on server 1."""
        every = SECONDS_BETWEEN_POLLS if self.requests_per_day >= 30_000 else 1_800
        t = np.arange(start + rng.uniform(0, every), end, every)
        n = len(t)
        return Requests(
            t=t,
            done=t + 0.003,
            server=np.zeros(n, dtype=np.int64),
            client=pa.repeat(_lit(MONITOR[0]), n),
            user=pa.repeat(_lit("-"), n),
            method=pa.repeat(_lit("HEAD"), n),
            target=pa.repeat(_lit("/"), n),
            protocol=pa.repeat(_lit("HTTP/1.1"), n),
            status=np.full(n, 200),
            size=np.zeros(n, dtype=np.int64),
            referrer=pa.repeat(_lit("-"), n),
            agent=pa.repeat(_lit(MONITOR[1]), n),
        )

    # -- odd lines --------------------------------------------------------------------------

    def _stamp(self, moment: float, style: str) -> str:
        """A timestamp as written: 'local' (with the zone's offset), 'utc' or 'legacy'."""
        when = dt.datetime.fromtimestamp(int(moment), self.zone if style != "utc" else dt.UTC)
        if style == "legacy":
            return f"{when:%Y-%m-%d %H:%M:%S}"
        offset = _offset_text(int(when.utcoffset().total_seconds()))  # type: ignore[union-attr]
        return f"{when:%d}/{MONTHS[when.month - 1]}/{when:%Y:%H:%M:%S} {offset}"

    def _odd_lines(
        self, rng: np.random.Generator, day: dt.date, start: float, end: float
    ) -> list[list[tuple[float, bytes]]]:
        """(time, line) per server of what is not an ordinary request: probes, malformed lines,
        empty lines and the neighbouring days' lines."""
        span = end - start

        def when() -> float:
            return start + 60 + float(rng.random()) * (span - 120)

        def client() -> str:
            return str(self.visitor_client[int(rng.integers(0, len(self.visitor_client)))].as_py().decode())

        agent = str(self.agent_text[0].as_py().decode())
        out: list[list[tuple[float, bytes]]] = [[], []]
        probes = 1 + rng.poisson(self.requests_per_day / 50_000, 2)
        for server, style in ((0, "local"), (1, "utc")):
            for _ in range(int(probes[server])):
                t = when()
                tls = r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                out[server].append((t, f'{client()} - - [{self._stamp(t, style)}] "{tls}" 400 157 "-" "-"'.encode()))
                t = when()
                out[server].append((t, f'{client()} - - [{self._stamp(t, style)}] "-" 408 0 "-" "-"'.encode()))

        def line(
            t: float, style: str, *, ip: str = "", stamp: str = "", status: str = "200", size: str = "5123"
        ) -> str:
            stamp = stamp or self._stamp(t, style)
            ref = "https://www.google.com/"
            return f'{ip or client()} - - [{stamp}] "GET /products/ HTTP/1.1" {status} {size} "{ref}" "{agent}"'

        # Log rotation lag: the previous day's last seconds open web-1.log, the next day's first
        # seconds close web-2.log.
        for k in range(2 + int(rng.integers(0, 3))):
            t = start - 1 - k * float(rng.uniform(0.5, 3))
            out[0].append((t, line(t, "local").encode()))
        for k in range(1 + int(rng.integers(0, 3))):
            t = end + k * float(rng.uniform(0.5, 3))
            out[1].append((t, line(t, "utc").encode()))

        times = [when() for _ in range(10)]
        out[0].append((times[0], b"<html><head><title>502 Bad Gateway</title></head>"))
        out[0].append((times[1], line(times[1], "local", ip="999.1.1.1").encode()))
        out[0].append((times[2], line(times[2], "local", status="777").encode()))
        out[0].append((times[3], b""))
        truncated = line(times[4], "utc")
        out[1].append((times[4], truncated[: len(truncated) * 2 // 3].encode()))
        legacy_day = dt.datetime.fromtimestamp(int(times[5]), self.zone)
        out[1].append(
            (times[5], f'{client()} - - [{legacy_day:%Y-%m-%d} 24:00:07] "GET /cart" 200 5123 "{agent}"'.encode())
        )
        out[1].append((times[6], line(times[6], "utc", size="12KB").encode()))
        broken = f'{client()} - - [{self._stamp(times[7], "legacy")}] "GET /search?q=\xed\x95" 200 5123 "{agent}"'
        out[1].append((times[7], broken.encode("latin-1")))  # half a Hangul syllable: invalid UTF-8
        out[1].append((times[8], b""))
        no_offset = self._stamp(times[9], "local")[:-6]  # an offset is required in this format
        out[1].append((times[9], line(times[9], "utc", stamp=no_offset).encode()))
        if rng.random() < 0.5:
            out[1].append((when(), b""))
        return out

    # -- writing ----------------------------------------------------------------------------

    def _write(
        self, rng: np.random.Generator, r: Requests, extra: list[tuple[float, bytes]], server: int, *, crlf: bool
    ) -> bytes:
        n = len(r.t)
        second = np.floor(r.t).astype(np.int64)
        offset = self._offsets(second)
        if server == 0:
            fmt = np.zeros(n, dtype=np.int64)  # combined, local time with its offset
        else:
            fmt = rng.choice(3, n, p=[0.6, 0.25, 0.15])  # combined, common (both UTC), legacy (local)
        local = np.where(fmt == 2, True, server == 0)
        wall = second + np.where(local, offset, 0)
        day_number, clock = np.divmod(wall, 86_400)
        numbers, index = np.unique(day_number, return_inverse=True)
        dates = [dt.date(1970, 1, 1) + dt.timedelta(int(d)) for d in numbers]
        apache = _binary([f"{d:%d}/{MONTHS[d.month - 1]}/{d:%Y}:" for d in dates]).take(pa.array(index))
        iso = _binary([f"{d:%Y-%m-%d} " for d in dates]).take(pa.array(index))
        zones, zone_index = np.unique(np.where(local, offset, 0), return_inverse=True)
        zone_text = _binary([" " + _offset_text(int(z)) for z in zones]).take(pa.array(zone_index))
        is_legacy = pa.array(fmt == 2)
        stamp = pc.if_else(
            is_legacy,
            _join(iso, _clock().take(pa.array(clock))),
            _join(apache, _clock().take(pa.array(clock)), zone_text),
        )
        request = _join(r.method, _lit(" "), r.target)
        request = pc.if_else(is_legacy, request, _join(request, _lit(" "), r.protocol))
        size = pc.if_else(pa.array(r.size < 0), _lit("-"), _numbers(np.maximum(r.size, 0)))
        if server == 1:  # this server writes '-' for an empty body
            size = pc.if_else(pa.array(r.size == 0), _lit("-"), size)
        tail = pc.if_else(
            pa.array(fmt == 0),
            _join(_lit(' "'), r.referrer, _lit('" "'), r.agent, _lit('"')),
            pc.if_else(is_legacy, _join(_lit(' "'), r.agent, _lit('"')), _lit("")),
        )
        lines = _join(
            r.client, _lit(" - "), r.user, _lit(" ["), stamp, _lit('] "'), request, _lit('" '),
            _numbers(r.status), _lit(" "), size, tail,
        )  # fmt: skip
        ending = _lit("\r\n" if crlf else "\n")
        done = np.concatenate([r.done, np.array([t for t, _ in extra])])
        every = pa.concat_arrays([lines, _binary([text for _, text in extra])])
        every = _join(every, ending).take(pa.array(np.argsort(done, kind="stable")))
        offsets = np.frombuffer(every.buffers()[1], dtype=np.int64, count=len(every) + 1, offset=every.offset * 8)
        return every.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]

    def _offsets(self, seconds: np.ndarray) -> np.ndarray:
        """The zone's UTC offset in seconds at each instant (at most one change within a day)."""
        if len(seconds) == 0:
            return np.zeros(0, dtype=np.int64)
        low, high = int(seconds.min()), int(seconds.max())

        def offset(t: int) -> int:
            return int(dt.datetime.fromtimestamp(t, self.zone).utcoffset().total_seconds())  # type: ignore[union-attr]

        first, last = offset(low), offset(high)
        if first == last:
            return np.full(len(seconds), first, dtype=np.int64)
        while high - low > 1:  # the change: offset(low) == first, offset(high) == last
            middle = (low + high) // 2
            low, high = (middle, high) if offset(middle) == first else (low, middle)
        return np.where(seconds < high, first, last).astype(np.int64)
