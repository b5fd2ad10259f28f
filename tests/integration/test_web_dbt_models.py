"""The web traffic dbt models (dbt_project/models/web_traffic) against a real DuckDB warehouse.

web_raw.access_logs is filled with generated traffic plus hand-made edge cases (visitors crossing
the 30-minute gap and local midnight, bots, 304s, assets, 4xx/5xx, requests without path, user
agent or referrer, internal/search/social/other referrers, ties around the top-10 cut, a day with
requests but no page views); real `dbt build` subprocesses build the models. Checked:
  (a) window runs in any order, a day re-loaded with other rows and a day emptied give exactly
      the tables of a `dbt build --full-refresh` of the same source (every model, row for row),
      dimensions included (a member that no longer occurs disappears);
  (b) web_daily_traffic, fct_sessions and web_top_pages_daily equal the independent
      recomputation of tests/fixtures/web_metrics.py, and fct_requests and the dimensions agree
      with it (page views, sessions, time of day, page types);
  (c) re-running a window changes nothing;
  (d) the dbt data tests pass: on a full refresh, and scoped to the window on the first window run
      (no tables yet) and on the run that empties a day (`dbt build`; the other runs `dbt run`).

Seven dbt invocations in two lanes side by side (fixture `builds`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import random
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from fixtures import web_metrics

from stock_platform.defs.web_traffic.schema import ACCESS_LOGS
from stock_platform.defs.web_traffic.settings import SYNTHETIC_SITE_HOSTS
from stock_platform.platform.dbt import DBT_PROJECT_DIR as PROJECT_DIR
from stock_platform.platform.resources import dbt_executable
from stock_platform.platform.settings import REPO_ROOT as REPO
from stock_platform.platform.warehouse.duckdb import create_table_sql

TIMEZONE = "Asia/Seoul"
ZONE = ZoneInfo(TIMEZONE)
RAW = "web_raw"
ANALYTICS = "web_analytics"
SELECT = ("--select", "path:models/web_traffic")
TABLES = (
    "int_web_page_days", "int_web_user_agent_days", "int_web_referrer_days",
    "fct_requests", "fct_sessions", "web_daily_traffic", "web_top_pages_daily",
    "dim_date", "dim_time", "dim_page", "dim_user_agent", "dim_referrer",
)
COLUMNS = {
    "fct_requests": [
        "request_id", "log_date", "ts", "date_key", "time_key", "page_key", "ua_key",
        "referrer_key", "visitor_id", "session_id", "method", "status", "status_class",
        "response_bytes", "is_page_view",
    ],
    "fct_sessions": [
        "session_id", "visitor_id", "log_date", "session_start", "session_end", "page_views",
        "duration_s", "landing_path", "exit_path", "is_bounce",
    ],
    "web_daily_traffic": [
        "log_date", "requests", "page_views", "unique_visitors", "sessions", "bounce_rate",
        "avg_session_duration_s", "bytes_sent", "share_4xx", "share_5xx", "bot_request_share",
    ],
    "web_top_pages_daily": ["log_date", "rank", "path", "page_views", "unique_visitors"],
    "dim_date": ["date_key", "year", "quarter", "month", "day", "iso_weekday", "is_weekend"],
    "dim_time": ["time_key", "hour", "minute", "second"],
    "dim_page": ["page_key", "path", "page_type", "section"],
    "dim_user_agent": ["ua_key", "browser_family", "browser_major", "os_family", "device_family", "is_bot"],
    "dim_referrer": ["referrer_key", "referrer_domain", "referrer_type"],
}

D1, D2, D3, D4, D5 = (dt.date(2024, 3, 1) + dt.timedelta(days=n) for n in range(5))  # Fri..Tue
DAYS = (D1, D2, D3, D4, D5)

# ---------------------------------------------------------------------------------------------
# The source
# ---------------------------------------------------------------------------------------------

UAS = {  # user agent -> (browser_family, browser_major, os_family, device_family)
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/122.0": ("Chrome", "122", "Windows", "Other"),
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) Safari/604.1": ("Mobile Safari", "17", "iOS", "iPhone"),
    "Mozilla/5.0 (Macintosh) Firefox/123.0": ("Firefox", "123", "Mac OS X", "Mac"),
    "Mozilla/5.0 (compatible; Googlebot/2.1)": ("Googlebot", "2", "Other", "Spider"),
    "Mozilla/5.0 (compatible; bingbot/2.0)": ("bingbot", "2", "Other", "Spider"),
    "curl/8.4.0": ("curl", "8", "Other", "Other"),
    None: (None, None, None, None),
}
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/122.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1)"
ONLY_D2_UA = "Mozilla/5.0 (X11; Linux x86_64) Opera/99.0"  # only on D2, gone after its reload
UAS[ONLY_D2_UA] = ("Opera", "99", "Linux", "Other")

PAGES = ["/", "/index.html", "/products/1", "/products/2", "/products/3.html", "/cart",
         "/blog/2024/hello.htm", "/about", "/search", "/Products/4.HTML", "/help/faq", "/a.b/c"]
ASSETS = ["/static/app.css", "/static/app.js", "/img/logo.png", "/favicon.ico", "/robots.txt",
          "/static/font.woff2", "/download/report.pdf"]
REFERRERS = [
    None, None, None, "https://www.google.com/search?q=x", "https://search.naver.com/search.naver",
    "https://www.example-shop.kr/products/1", "https://m.example-shop.kr/", "http://example-shop.kr:8080/a",
    "https://l.facebook.com/l.php", "https://t.co/abc", "https://news.example.org/story",
    "https://WWW.Bing.com/search?q=y", "android-app://com.example.app/", "-x-", "",
]
# Referrers of the hand-made rows and the (referrer_domain, referrer_type) they must get.
REFERRER_TYPES = {
    None: (None, "direct"),
    "https://www.google.co.kr/search?q=1": ("google.co.kr", "search"),
    "https://m.search.naver.com/": ("m.search.naver.com", "search"),
    "https://duckduckgo.com/": ("duckduckgo.com", "search"),
    "https://www.example-shop.kr/cart": ("example-shop.kr", "internal"),
    "https://m.example-shop.kr/x": ("m.example-shop.kr", "internal"),
    "http://user@EXAMPLE-SHOP.KR:443/y": ("example-shop.kr", "internal"),
    "https://www.instagram.com/p/1": ("instagram.com", "social"),
    "https://x.com/someone": ("x.com", "social"),
    "https://story.kakao.com/": ("story.kakao.com", "social"),
    "https://www.youtube.com/watch?v=1": ("youtube.com", "social"),
    "https://blog.example.org/post": ("blog.example.org", "other"),
    "https://max.com/": ("max.com", "other"),
    "not a url": (None, "other"),
}
ONLY_D4_REFERRER = "https://only-d4.example.net/"  # only on D4, gone once D4 is emptied


def utc(day: dt.date, local_time: str) -> dt.datetime:
    """The naive UTC time of a wall-clock time of `day` in TIMEZONE ('HH:MM:SS')."""
    local = dt.datetime.combine(day, dt.time.fromisoformat(local_time), tzinfo=ZONE)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


class Day:
    """Rows of one log_date; line numbers count per source file."""

    def __init__(self, day: dt.date):
        self.day, self.rows, self.lines = day, [], {}

    def add(self, local_time: str | dt.datetime, visitor: str, path: str | None, *, method="GET",
            status=200, size=1000, referrer=None, user_agent=CHROME,
            source_file="a.log") -> dict:
        ts = utc(self.day, local_time) if isinstance(local_time, str) else local_time
        assert ts.replace(tzinfo=dt.UTC).astimezone(ZONE).date() == self.day
        self.lines[source_file] = self.lines.get(source_file, 0) + 1
        browser, major, os_family, device = UAS[user_agent]
        row = {
            "log_date": self.day, "ts": ts, "client_prefix": "203.0.113.0/24",
            "visitor_id": f"{visitor:0>32}"[-32:], "method": None if path is None else method,
            "path": path, "query": None, "protocol": None if path is None else "HTTP/1.1",
            "status": status, "response_bytes": size, "referrer": referrer,
            "user_agent": user_agent, "browser_family": browser, "browser_major": major,
            "os_family": os_family, "device_family": device,
            "is_bot": None if user_agent is None else device == "Spider",
            "source_file": source_file, "line_number": self.lines[source_file],
        }
        self.rows.append(row)
        return row


def generated(day: dt.date, seed: int, visitors: int = 40) -> Day:
    """Random traffic of one day: visitors who come back in bursts, Zipf-like page popularity,
    assets, bots, redirects and errors, two log files."""
    rng = random.Random(seed)
    out = Day(day)
    midnight = utc(day, "00:00:00")
    user_agents = [ua for ua in UAS if ua != ONLY_D2_UA]
    events = []
    for v in range(visitors):
        visitor, user_agent = f"g{seed}v{v}", rng.choice(user_agents)
        for _ in range(rng.randint(1, 4)):
            t = rng.randrange(0, 86400 - 3600)
            for _ in range(rng.randint(1, 8)):
                t += rng.choice([0, 5, 60, 300, 900, 1799, 1800, 1801, 2400])
                if t >= 86400:
                    break
                events.append((t, visitor, user_agent))
    for t, visitor, user_agent in events:
        if rng.random() < 0.7:
            path = PAGES[min(int(rng.paretovariate(1.2)) - 1, len(PAGES) - 1)]
        elif rng.random() < 0.97:
            path = rng.choice(ASSETS)
        else:
            path = None  # a TLS probe
        out.add(
            midnight + dt.timedelta(seconds=t), visitor, path,
            method=rng.choice(["GET"] * 12 + ["POST", "HEAD"]),
            status=rng.choice([200] * 14 + [304, 304, 301, 302, 404, 403, 500, 503, 206]),
            size=rng.choice([0, 512, 2048, 123456]), referrer=rng.choice(REFERRERS),
            user_agent=user_agent, source_file=rng.choice(["a.log", "b.log"]),
        )
    return out


def hand_made() -> dict[dt.date, Day]:
    days = {day: Day(day) for day in DAYS}
    d1, d2, d3, d4, d5 = (days[day] for day in DAYS)
    # The 30-minute gap: exactly 30 minutes continues the session, 30 min 1 s starts another.
    d1.add("10:00:00", "gap", "/", referrer="https://www.google.co.kr/search?q=1")
    d1.add("10:10:00", "gap", "/static/app.css")  # an asset between: not a page view
    d1.add("10:30:00", "gap", "/products/1")
    d1.add("11:00:01", "gap", "/cart", status=304)  # a 304 is a page view
    d1.add("11:05:00", "gap", "/cart", method="POST")  # not a page view
    d1.add("11:06:00", "gap", "/missing", status=404)
    d1.add("11:07:00", "gap", "/error", status=500)
    d1.add("11:08:00", "gap", "/moved", status=301)
    # Local midnight ends a session; the first and last second of the day.
    d1.add("23:50:00", "night", "/", user_agent=None)
    d1.add("23:59:59", "night", "/about", user_agent=None, referrer="https://m.search.naver.com/")
    d2.add("00:00:00", "night", "/products/2", user_agent=None)
    d2.add("00:05:00", "night", "/products/3.html", user_agent=None)
    # Same instant: ordered by source_file, then line_number (landing and exit paths).
    d2.add("09:00:00", "tie", "/z-landing", source_file="a.log")
    d2.add("09:00:00", "tie", "/y-second", source_file="a.log")
    d2.add("09:00:00", "tie", "/a-exit", source_file="b.log")
    # Bots are never page views; requests without a path; a page only on D2; a UA only on D2.
    d2.add("12:00:00", "bot", "/", user_agent=GOOGLEBOT)
    d2.add("12:00:01", "probe", None, status=400, size=0)
    d2.add("13:00:00", "only", "/only-d2.html", user_agent=ONLY_D2_UA, referrer="https://duckduckgo.com/")
    for n, referrer in enumerate(REFERRER_TYPES):
        d3.add(f"14:{n:02d}:00", f"ref{n}", "/", referrer=referrer, user_agent=CHROME)
    d3.add("15:00:00", "lower", "/Products/4.HTML")
    # D4: ties around the top-10 cut: /t/01 has 5 views, /t/02../t/13 two each (one visitor).
    d4.add("08:00:00", "t", "/only-d4.html", referrer=ONLY_D4_REFERRER)
    for k in range(5):
        d4.add(f"09:{k:02d}:00", f"t{k}", "/t/01")
    for n in range(2, 14):
        for k in range(2):
            d4.add(f"10:{n:02d}:{k:02d}", f"t{n}", f"/t/{n:02d}")
    # D5: requests but no page views.
    d5.add("09:00:00", "bot", "/", user_agent=GOOGLEBOT)
    d5.add("09:01:00", "asset", "/static/app.js")
    d5.add("09:02:00", "post", "/cart", method="POST")
    d5.add("09:03:00", "nf", "/nope", status=404)
    d5.add("09:04:00", "probe", None, status=400)
    return days


def source_v1() -> list[dict]:
    rows = []
    days = hand_made()
    for n, day in enumerate(DAYS):
        rows += days[day].rows
        if day not in (D4, D5):
            extra = generated(day, seed=n + 1)
            for row in extra.rows:  # own file names: line numbers stay unique per file
                row["source_file"] = "gen-" + row["source_file"]
            rows += extra.rows
    return rows


def source_v2(v1: list[dict]) -> list[dict]:
    """D2 re-loaded with other rows (its hand-made rows and /only-d2.html gone), D4 emptied."""
    rows = [r for r in v1 if r["log_date"] not in (D2, D4)]
    reloaded = generated(D2, seed=99, visitors=25)
    reloaded.add("20:00:00", "new", "/new-on-d2", referrer="https://www.example-shop.kr/cart")
    return rows + reloaded.rows


def write_source(db_path: Path, rows: list[dict]) -> None:
    names = ACCESS_LOGS.column_names
    with duckdb.connect(str(db_path)) as con:
        con.execute(f"create schema if not exists {RAW}")
        con.execute(f"drop table if exists {RAW}.access_logs")
        con.execute(create_table_sql(ACCESS_LOGS))
        con.executemany(
            f"insert into {RAW}.access_logs ({', '.join(names)}) values ({', '.join('?' * len(names))})",
            [[row[name] for name in names] for row in rows],
        )


def read_source(db_path: Path) -> list[dict]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        cursor = con.execute(f"select * from {RAW}.access_logs")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor.fetchall()]


# ---------------------------------------------------------------------------------------------
# dbt
# ---------------------------------------------------------------------------------------------


def run_dbt(data_dir: Path, label: str, *args: str) -> None:
    """One `dbt` subprocess (web models only) against data_dir/warehouse.duckdb; fails unless it
    succeeded (a failing data test fails it too)."""
    env = {k: v for k, v in os.environ.items() if k != "WEB_SITE_HOSTS"}  # the default hosts
    env.update(
        STOCK_PLATFORM_DATA_DIR=str(data_dir), BQ_WEB_RAW_DATASET=RAW,
        BQ_WEB_ANALYTICS_DATASET=ANALYTICS, WEB_LOGS_TIMEZONE=TIMEZONE,
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    command = [
        dbt_executable(), *args, *SELECT,
        "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR), "--target", "local",
        "--target-path", str(data_dir / "target"), "--log-path", str(data_dir / "logs"),
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"dbt {label} {' '.join(args)} failed:\n{result.stdout[-8000:]}{result.stderr[-2000:]}")


def window(lo: dt.date, hi: dt.date, command: str = "run") -> tuple[str, ...]:
    return (command, "--vars", f'{{"min_date": "{lo.isoformat()}", "max_date": "{hi.isoformat()}"}}')


def snapshot(db_path: Path) -> dict[str, list[tuple]]:
    """Every web table, rows sorted."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = {}
        for table in TABLES:
            cursor = con.execute(f"select * from {ANALYTICS}.{table}")
            if table in COLUMNS:
                assert [d[0] for d in cursor.description] == COLUMNS[table], table
            tables[table] = sorted(cursor.fetchall(), key=repr)
        return tables


def records(db_path: Path, sql: str) -> list[dict]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor.fetchall()]


@pytest.fixture(scope="module")
def sources() -> dict[str, list[dict]]:
    v1 = source_v1()
    return {"v1": v1, "v2": source_v2(v1)}


@pytest.fixture(scope="module")
def builds(tmp_path_factory, sources) -> dict:
    """Two lanes side by side:
      full:    `dbt build --full-refresh` of source v1; `dbt run --full-refresh` of source v2 in a
               fresh warehouse
      windows: source v1, `dbt build` of [D3, D5] (no tables yet), `dbt run` of [D1, D2];
               [D3, D5] again; D2 re-loaded (v2), [D2, D2]; D4 emptied (v2), `dbt build` of
               [D4, D4]
    """

    def full_lane() -> dict:
        result = {}
        for version in ("v1", "v2"):
            data_dir = tmp_path_factory.mktemp(f"web_full_{version}")
            write_source(data_dir / "warehouse.duckdb", sources[version])
            run_dbt(data_dir, f"full-{version}", "build" if version == "v1" else "run", "--full-refresh")
            result[f"full_{version}"] = snapshot(data_dir / "warehouse.duckdb")
            result[f"full_{version}_db"] = data_dir / "warehouse.duckdb"
        return result

    def windows_lane() -> dict:
        data_dir = tmp_path_factory.mktemp("web_windows")
        db_path = data_dir / "warehouse.duckdb"
        write_source(db_path, sources["v1"])
        result = {}
        run_dbt(data_dir, "d3..d5", *window(D3, D5, "build"))  # no tables yet
        result["after_d3_d5"] = snapshot(db_path)
        first_target = data_dir / "target-d3..d5"
        shutil.copytree(data_dir / "target", first_target)
        run_dbt(data_dir, "d1..d2", *window(D1, D2))
        result["after_d1_d2"] = snapshot(db_path)
        # The same vars as the first run: with its target dir, dbt parses partially (faster).
        shutil.rmtree(data_dir / "target")
        shutil.copytree(first_target, data_dir / "target")
        run_dbt(data_dir, "again", *window(D3, D5))
        result["again"] = snapshot(db_path)
        with duckdb.connect(str(db_path)) as con:  # the pipeline replaces a whole day
            con.execute(f"delete from {RAW}.access_logs where log_date = ?", [D2])
        reloaded = [row for row in sources["v2"] if row["log_date"] == D2]
        with duckdb.connect(str(db_path)) as con:
            names = ACCESS_LOGS.column_names
            con.executemany(
                f"insert into {RAW}.access_logs ({', '.join(names)}) values ({', '.join('?' * len(names))})",
                [[row[name] for name in names] for row in reloaded],
            )
        run_dbt(data_dir, "reload-d2", *window(D2, D2))
        result["reloaded"] = snapshot(db_path)
        with duckdb.connect(str(db_path)) as con:
            con.execute(f"delete from {RAW}.access_logs where log_date = ?", [D4])
        run_dbt(data_dir, "empty-d4", *window(D4, D4, "build"))
        result["final"] = snapshot(db_path)
        result["windows_db"] = db_path
        return result

    with ThreadPoolExecutor(max_workers=2) as pool:
        lanes = [pool.submit(full_lane), pool.submit(windows_lane)]
        return {key: value for lane in lanes for key, value in lane.result().items()}


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------


def close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def assert_rows_match(name: str, actual: list[dict], expected: list[dict], key: tuple[str, ...]) -> None:
    by_key = {tuple(r[k] for k in key): r for r in actual}
    assert len(by_key) == len(actual), f"{name}: duplicate keys"
    want = {tuple(r[k] for k in key): r for r in expected}
    missing, extra = sorted(set(want) - set(by_key), key=repr), sorted(set(by_key) - set(want), key=repr)
    assert not missing and not extra, f"{name}: missing {missing[:3]}, unexpected {extra[:3]}"
    for k, row in want.items():
        for column, value in row.items():
            assert close(by_key[k][column], value), f"{name} {k} {column}: dbt {by_key[k][column]!r} != {value!r}"


def assert_same_tables(actual: dict, expected: dict, label: str) -> None:
    for table in TABLES:
        assert actual[table] == expected[table], (
            f"{label}: {table} differs from a full refresh: "
            f"{len(set(actual[table]) - set(expected[table]))} rows unexpected, "
            f"{len(set(expected[table]) - set(actual[table]))} missing, e.g. "
            f"{sorted(set(actual[table]) ^ set(expected[table]), key=repr)[:2]}"
        )


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_the_source_covers_the_edge_cases(sources):
    v1 = sources["v1"]
    views = [r for r in v1 if web_metrics.is_page_view(r)]
    assert {r["log_date"] for r in v1} == set(DAYS)
    assert not any(r["log_date"] == D5 for r in views)  # D5: requests, no page views
    assert any(r["status"] == 304 for r in views)
    assert any(web_metrics.is_bot(r) for r in v1) and any(r["user_agent"] is None for r in v1)
    assert any(r["path"] is None for r in v1) and any(r["referrer"] is None for r in v1)
    assert {r["status"] // 100 for r in v1} >= {2, 3, 4, 5}
    assert {web_metrics.page_type(r["path"]) for r in v1} == {"page", "asset", None}
    sessions = web_metrics.sessions(v1, TIMEZONE)
    assert any(s["page_views"] == 1 for s in sessions) and any(s["page_views"] > 3 for s in sessions)
    gaps = {(b["ts"] - a["ts"]).total_seconds() for a, b in itertools.pairwise(views)
            if a["visitor_id"] == b["visitor_id"] and a["log_date"] == b["log_date"]}
    assert {1800.0, 1801.0} <= gaps
    top = [t for t in web_metrics.top_pages(v1, TIMEZONE) if t["log_date"] == D4]
    assert [t["page_views"] for t in top] == [5] + [2] * 9  # the cut falls inside a tie


def test_web_site_hosts_default_is_the_synthetic_sites():
    macro = (PROJECT_DIR / "macros" / "web_sql.sql").read_text()
    assert f"env_var('WEB_SITE_HOSTS', '{SYNTHETIC_SITE_HOSTS}')" in macro


def test_web_metrics_rules():
    assert web_metrics.page_type("/") == "page" and web_metrics.page_type("/a/b") == "page"
    assert web_metrics.page_type("/a/B.HtM") == "page" and web_metrics.page_type("/a.b/c") == "page"
    assert web_metrics.page_type("/x/app.css") == "asset" and web_metrics.page_type("/x.") == "asset"
    assert web_metrics.page_type(None) is None
    assert web_metrics.section("/") == "/" and web_metrics.section("/about") == "/"
    assert web_metrics.section("/products/1") == "products" and web_metrics.section("/blog/") == "blog"
    assert web_metrics.time_key(utc(D1, "00:00:00"), TIMEZONE) == 0
    assert web_metrics.time_key(utc(D1, "23:59:59"), TIMEZONE) == 86399


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_marts_match_the_independent_recomputation(builds, sources, version):
    db_path, rows = builds[f"full_{version}_db"], sources[version]
    assert rows and records(db_path, f"select count(*) as n from {RAW}.access_logs")[0]["n"] == len(rows)
    daily = records(db_path, f"select * from {ANALYTICS}.web_daily_traffic")
    expected = [{"log_date": day, **values} for day, values in web_metrics.daily_traffic(rows, TIMEZONE).items()]
    assert_rows_match("web_daily_traffic", daily, expected, ("log_date",))

    actual_sessions = records(db_path, f"select * from {ANALYTICS}.fct_sessions")
    assert_rows_match("fct_sessions", [{k: v for k, v in s.items() if k != "session_id"} for s in actual_sessions],
                      web_metrics.sessions(rows, TIMEZONE), ("visitor_id", "session_start"))

    top = records(db_path, f"select * from {ANALYTICS}.web_top_pages_daily")
    assert_rows_match("web_top_pages_daily", top, web_metrics.top_pages(rows, TIMEZONE), ("log_date", "rank"))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_requests_and_dimensions_agree_with_the_definitions(builds, sources, version):
    db_path, rows = builds[f"full_{version}_db"], sources[version]
    facts = records(db_path, f"""
        select r.*, src.source_file, src.line_number, p.path, p.page_type, p.section, u.browser_family, u.is_bot,
               d.referrer_domain, d.referrer_type, s.session_start, t.hour, t.minute, t.second,
               dd.iso_weekday
        from {ANALYTICS}.fct_requests as r
        join {ANALYTICS}.stg_access_logs as src on r.request_id = src.request_id
        join {ANALYTICS}.dim_page as p on r.page_key = p.page_key
        join {ANALYTICS}.dim_user_agent as u on r.ua_key = u.ua_key
        join {ANALYTICS}.dim_referrer as d on r.referrer_key = d.referrer_key
        join {ANALYTICS}.dim_time as t on r.time_key = t.time_key
        join {ANALYTICS}.dim_date as dd on r.date_key = dd.date_key
        left join {ANALYTICS}.fct_sessions as s on r.session_id = s.session_id
    """)
    assert len(facts) == len(rows)  # every fact key finds its dimension member
    by_key = {(f["log_date"], f["source_file"], f["line_number"]): f for f in facts}
    assert len(by_key) == len(facts)
    session_start = {}
    for session in web_metrics.sessions(rows, TIMEZONE):
        for row in rows:
            if (web_metrics.is_page_view(row) and row["visitor_id"] == session["visitor_id"]
                    and session["session_start"] <= row["ts"] <= session["session_end"]
                    and row["log_date"] == session["log_date"]):
                session_start[id(row)] = session["session_start"]
    for row in rows:
        fact = by_key[(row["log_date"], row["source_file"], row["line_number"])]
        assert (fact["ts"], fact["visitor_id"], fact["path"], fact["status"]) == (
            row["ts"], row["visitor_id"], row["path"], row["status"])
        assert fact["is_page_view"] == web_metrics.is_page_view(row), row
        assert fact["page_type"] == web_metrics.page_type(row["path"]), row
        assert fact["section"] == web_metrics.section(row["path"]), row
        assert fact["is_bot"] == web_metrics.is_bot(row) and fact["browser_family"] == row["browser_family"]
        assert fact["time_key"] == web_metrics.time_key(row["ts"], TIMEZONE) == (
            fact["hour"] * 3600 + fact["minute"] * 60 + fact["second"])
        assert fact["status_class"] == f"{row['status'] // 100}xx" and fact["date_key"] == row["log_date"]
        assert fact["iso_weekday"] == row["log_date"].isoweekday()
        assert fact["session_start"] == session_start.get(id(row))  # NULL unless a page view
        if row["referrer"] in REFERRER_TYPES:
            assert (fact["referrer_domain"], fact["referrer_type"]) == REFERRER_TYPES[row["referrer"]], row
    # Keys: deterministic hashes, distinct per natural key.
    assert len({f["request_id"] for f in facts}) == len(facts)
    for table, key, natural in (
        ("dim_page", "page_key", "path"),
        ("dim_referrer", "referrer_key", "referrer_domain, referrer_type"),
        ("dim_user_agent", "ua_key", "browser_family, browser_major, os_family, device_family, is_bot"),
    ):
        relation = f"{ANALYTICS}.{table}"
        counts = records(db_path, f"select (select count(*) from {relation}) as n, "
                                  f"(select count(distinct {key}) from {relation}) as k, "
                                  f"(select count(*) from (select distinct {natural} from {relation})) as m")[0]
        assert counts["n"] == counts["k"] == counts["m"], table
    # The absent members exist even when unused.
    assert records(db_path, f"select count(*) as n from {ANALYTICS}.dim_page where path is null")[0]["n"] == 1
    assert records(db_path, f"select count(*) as n from {ANALYTICS}.dim_referrer "
                            "where referrer_type = 'direct' and referrer_domain is null")[0]["n"] == 1
    assert records(db_path, f"select count(*) as n from {ANALYTICS}.dim_user_agent "
                            "where browser_family is null and not is_bot")[0]["n"] == 1
    dates = records(db_path, f"select * from {ANALYTICS}.dim_date order by date_key")
    assert [d["date_key"] for d in dates] == sorted({r["log_date"] for r in rows})
    for d in dates:
        day = d["date_key"]
        assert (d["year"], d["quarter"], d["month"], d["day"]) == (day.year, (day.month + 2) // 3, day.month, day.day)
        assert d["is_weekend"] == (day.isoweekday() >= 6)
    assert records(db_path, f"select count(*) as n from {ANALYTICS}.dim_time")[0]["n"] == 86400


def test_a_day_without_sessions_has_null_rates(builds):
    daily = {r["log_date"]: r for r in records(builds["full_v1_db"], f"select * from {ANALYTICS}.web_daily_traffic")}
    assert daily[D5]["requests"] == 5 and daily[D5]["page_views"] == 0 and daily[D5]["sessions"] == 0
    assert daily[D5]["bounce_rate"] is None and daily[D5]["avg_session_duration_s"] is None
    assert daily[D5]["bot_request_share"] == pytest.approx(0.2)


def test_window_runs_in_any_order_equal_a_full_refresh(builds):
    full = builds["full_v1"]
    # After [D3, D5] alone (the tables did not exist), the facts and marts hold exactly its days.
    for table in ("fct_requests", "fct_sessions", "web_daily_traffic", "web_top_pages_daily",
                  "int_web_page_days", "dim_date"):
        day_column = 0 if table.startswith("int_") else COLUMNS[table].index(
            "date_key" if table == "dim_date" else "log_date")
        assert builds["after_d3_d5"][table] == [r for r in full[table] if r[day_column] >= D3], table
    # Then [D1, D2], the earlier days: everything equals a full refresh.
    assert_same_tables(builds["after_d1_d2"], full, "after windows [D3, D5], [D1, D2]")


def test_rerunning_a_window_changes_nothing(builds):
    assert_same_tables(builds["again"], builds["after_d1_d2"], "re-run of [D3, D5]")


def test_reloaded_and_emptied_days_equal_a_full_refresh(builds):
    assert_same_tables(builds["final"], builds["full_v2"], "after D2 re-loaded and D4 emptied")
    # The members only D2 (before its reload) and D4 had are gone from the dimensions.
    before, after = builds["again"], builds["final"]
    page_paths = lambda tables: {row[1] for row in tables["dim_page"]}  # noqa: E731
    assert {"/only-d2.html", "/only-d4.html"} <= page_paths(before)
    assert not {"/only-d2.html", "/only-d4.html", "/z-landing"} & page_paths(after)
    assert "/new-on-d2" in page_paths(after)
    assert ("Opera", "99") in {row[1:3] for row in before["dim_user_agent"]}
    assert ("Opera", "99") not in {row[1:3] for row in after["dim_user_agent"]}
    assert "only-d4.example.net" in {row[1] for row in before["dim_referrer"]}
    assert "only-d4.example.net" not in {row[1] for row in after["dim_referrer"]}
    assert D4 in {row[0] for row in before["dim_date"]} and D4 not in {row[0] for row in after["dim_date"]}
    assert D4 not in {row[0] for row in after["web_daily_traffic"]}


def test_window_runs_read_only_their_days(builds):
    """In the compiled SQL of the last window run ([D4, D4]) every read of stg_access_logs (a view
    over the source) is bounded by the window's days, and the models reading it are all per-day."""
    compiled = builds["windows_db"].parent / "target" / "compiled"
    readers = set()
    for path in compiled.rglob("models/web_traffic/**/*.sql"):
        if path.parent.suffix == ".yml":  # a data test
            continue
        sql = path.read_text()
        reads = list(re.finditer(r"\bfrom\s+\"?[a-z_]+\"?\.\"?web_analytics\"?\.\"?stg_access_logs\"?", sql))
        if reads:
            readers.add(path.stem)
        for read in reads:  # the WHERE right after it
            where = sql[read.end():read.end() + 200]
            bounds = re.findall(
                r"^\s*where\s+log_date >= cast\('([0-9-]+)' as date\) and log_date <= cast\('([0-9-]+)' as date\)",
                where)
            assert bounds == [(D4.isoformat(), D4.isoformat())], (path, where)
    assert readers == {"int_web_page_days", "int_web_user_agent_days", "int_web_referrer_days",
                       "fct_requests", "fct_sessions", "web_daily_traffic", "web_top_pages_daily"}
