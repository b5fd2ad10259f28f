"""The Dagster UI in a real browser, and the GraphQL API, against `make dev`'s webserver + daemon.

One server per module (`python -m stock_platform.cli dev`, the command behind `make dev`) with a
temporary data dir and Dagster home. Headless Chromium (Debian's /usr/bin/chromium, installed by
`make test`) drives the UI through Playwright. Screenshots go to test-artifacts/.
Slow: each run of the graph starts Spark and dbt (minutes on a busy 2-core machine).
"""

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from fixtures.dagster_dev import ASSET_KEYS, BACKFILL_STATUS, LAUNCH_BACKFILL, graphql, group_asset_keys, make_dev
from fixtures.platform import settings_of
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

from stock_platform.defs.stock_prices.schema import RAW
from stock_platform.defs.stock_prices.settings import StockSettings
from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
from stock_platform.platform.lake import Lake
from stock_platform.platform.settings import REPO_ROOT, parse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(REPO_ROOT) / "test-artifacts"
# The test's days open the partitions definition (2024-03-01 was a KRX holiday).
PARTITIONS_START = "2024-03-04"
ONE_PARTITION = "2024-03-04"
UI_BACKFILL = ("2024-03-05", "2024-03-07")  # Tue..Thu, all sessions
API_BACKFILL = ("2024-03-11", "2024-03-13")  # Mon..Wed, all sessions
RUN_TIMEOUT_S = 15 * 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ui")
    with make_dev(Path(REPO_ROOT), data_dir, STOCK_PARTITIONS_START=PARTITIONS_START) as port:
        # What `make dev` runs with: the data dir, and the domain's settings from this environment.
        settings = (settings_of(data_dir),
                    parse(StockSettings, {**os.environ, "STOCK_PARTITIONS_START": PARTITIONS_START}))
        yield {"port": port, "url": f"http://127.0.0.1:{port}", "settings": settings}


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page; when the test fails, a screenshot in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    failed_before = request.session.testsfailed
    yield page
    # The call phase is reported (and counted) before fixtures are torn down.
    if request.session.testsfailed > failed_before:
        page.screenshot(path=ARTIFACTS / f"ui-failure-{request.node.name}.png", full_page=True)
    context.close()


def open_asset_graph(page, url: str) -> None:
    """The stock_prices domain's asset lineage (its asset group; each domain has its own
    partitions, so a backfill is launched per group)."""
    page.goto(f"{url}/locations/stock_platform/asset-groups/stock_prices")
    page.get_by_role("button", name="Materialize all").wait_for()
    # A fresh instance greets with a newsletter dialog; it may appear a moment after the graph.
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except PlaywrightTimeoutError:
        pass


def expand_all_groups(page) -> None:
    page.keyboard.press("Alt+e")  # the graph's "Expand all groups" toggle (kept per browser)
    page.get_by_text("top_movers_daily", exact=True).first.wait_for()


def open_materialize_dialog(page):
    """From the domain's asset graph: "Materialize all" on the whole group."""
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Launch runs to materialize 8 assets").wait_for()
    # The dialog offers only the last 90 days until asked; our partitions start long before.
    show_all = dialog.get_by_text("Show all partitions")
    show_all.click()
    show_all.wait_for(state="detached")
    return dialog


def select_partitions(dialog, selection: str, expected_count: int) -> None:
    box = dialog.get_by_role("textbox").first
    box.fill(selection)
    box.press("Enter")
    label = "1 partition" if expected_count == 1 else f"{expected_count} partitions"
    dialog.get_by_text(label, exact=True).wait_for()


def launch(page, dialog, button: str, mutation: str) -> dict:
    """Click the dialog's launch button; the UI's launch mutation's answer, checked."""

    def is_launch(response) -> bool:
        if "/graphql" not in response.url or response.request.method != "POST":
            return False
        operation = json.loads(response.request.post_data or "{}").get("operationName", "")
        return operation.lower() == mutation.lower()

    with page.expect_response(is_launch) as response:
        dialog.get_by_role("button", name=button).click()
    answer = response.value.json()["data"][mutation]
    assert answer["__typename"] in ("LaunchRunSuccess", "LaunchBackfillSuccess"), answer
    return answer


RUN_STATUSES = ["Success", "Failure", "Canceled", "Canceling"]


def run_status(page) -> str | None:
    """The status tag in a run page's header."""
    return next((s for s in RUN_STATUSES if page.get_by_text(s, exact=True).first.is_visible()),
                None)


def backfill_status(page) -> str | None:
    """The tag under the "Status" label of a backfill page (the table has "Succeeded" columns)."""
    tag = page.get_by_text("Status", exact=True).first.locator("xpath=following-sibling::*[1]")
    return tag.inner_text().strip() if tag.count() else None


def wait_for_status(page, url: str, read_status, done: str, what: str) -> None:
    """Reload `url` until its status is `done`; fail at once on any other final status."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    page.goto(url)
    status = None
    while time.monotonic() < deadline:
        page.wait_for_load_state("networkidle")
        status = read_status(page)
        if status == done:
            return
        assert status not in ("Failure", "Failed", "Canceled", "Canceling", "Failing"), (
            f"{what} is {status!r}; see {url}"
        )
        page.wait_for_timeout(10_000)
        page.reload()
    pytest.fail(f"{what} not {done!r} after {RUN_TIMEOUT_S}s (last status {status!r}); see {url}")


def weekdays(first: str, last: str) -> list[dt.date]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    days = (start + dt.timedelta(n) for n in range((end - start).days + 1))
    return [day for day in days if day.weekday() < 5]


def assert_warehouse_has_exactly(settings, days: list[dt.date]) -> None:
    """Exactly `days` in the warehouse, each with the synthetic market's rows (= lake manifest)."""
    platform, stock = settings
    expected = {day: len(frame) for day, frame in SyntheticMarket(stock.synthetic_seed)
                .frames(days).items()}
    lake = Lake(platform.lake_root)
    with duckdb.connect(str(platform.warehouse_path), read_only=True) as con:
        prices = dict(con.execute(
            f"SELECT trade_date, count(*) FROM {stock.raw_dataset}.daily_prices GROUP BY 1"
        ).fetchall())
        listings = dict(con.execute(
            f"SELECT trade_date, sum(listings) FROM "
            f"{stock.analytics_dataset}.market_daily_summary GROUP BY 1"
        ).fetchall())
    assert prices == expected, f"warehouse rows per day {prices} != synthetic market {expected}"
    assert {day: lake.manifest(RAW, day).rows for day in days} == expected
    assert listings == expected, f"market_daily_summary listings {listings} != {expected}"


def test_the_global_lineage_shows_each_domain_as_an_asset_group(server, page):
    page.goto(f"{server['url']}/asset-groups")
    page.get_by_text("web_traffic", exact=True).first.wait_for()
    for group in ("stock_prices", "web_traffic", "serving"):
        assert page.get_by_text(group, exact=True).first.is_visible(), group
    page.screenshot(path=ARTIFACTS / "ui-global-lineage-domains.png")
    keys = {tuple(node["assetKey"]["path"]): node["groupName"]
            for node in graphql(server["port"], ASSET_KEYS)["assetNodes"]}
    assert keys[("web_analytics", "web_daily_traffic")] == "web_traffic"
    assert keys[("stock_analytics", "market_daily_summary")] == "stock_prices"
    assert keys[("serving", "market_daily_summary")] == "serving"


def test_ui_materializes_one_partition_of_the_whole_graph(server, page):
    open_asset_graph(page, server["url"])
    expand_all_groups(page)
    for name in ["raw_stock_prices", "clean_stock_prices", "daily_prices", "stg_daily_prices"]:
        assert page.get_by_text(name, exact=True).first.is_visible(), name
    page.screenshot(path=ARTIFACTS / "ui-asset-graph.png")
    dialog = open_materialize_dialog(page)
    select_partitions(dialog, ONE_PARTITION, 1)
    run_id = launch(page, dialog, "Launch 1 run", "launchPipelineExecution")["run"]["id"]

    run_url = f"{server['url']}/runs/{run_id}"
    wait_for_status(page, run_url, run_status, "Success", f"run {run_id}")
    page.screenshot(path=ARTIFACTS / "ui-one-partition-run.png")
    assert_warehouse_has_exactly(server["settings"], [dt.date.fromisoformat(ONE_PARTITION)])


RUNS_OF_BACKFILL = """
query($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status tags { key value } assetSelection { path } } }
  }
}
"""
MARTS = {"stock_analytics/fct_daily_stock_metrics", "stock_analytics/market_daily_summary",
         "stock_analytics/top_movers_daily", "stock_analytics/fct_stock_features"}


def runs_of(port: int, backfill_id: str) -> dict[tuple[str, str], set[str]]:
    """{(first, last partition): the assets} of each run of a backfill; every run succeeded."""
    runs = graphql(port, RUNS_OF_BACKFILL, {"id": backfill_id})["runsOrError"]["results"]
    ranges = {}
    for run in runs:
        assert run["status"] == "SUCCESS", run
        tags = {t["key"]: t["value"] for t in run["tags"]}
        span = (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
        ranges[span] = {"/".join(key["path"]) for key in run["assetSelection"]}
    return ranges


def single_run_of(port: int, backfill_id: str, first: str, last: str) -> None:
    runs = runs_of(port, backfill_id)
    assert list(runs) == [(first, last)], f"backfill {backfill_id} ran as {runs}, expected one run"


SUMMARY_PREVIEW = """
{ assetNodeOrError(assetKey: {path: ["stock_analytics", "market_daily_summary"]}) {
  ... on AssetNode { assetMaterializations(limit: 1) {
    metadataEntries { label ... on MarkdownMetadataEntry { mdStr } }
  } }
} }
"""


def test_ui_backfills_a_range_and_the_mart_partitions_that_look_back_at_it(server, page):
    """"Materialize all" for a range: Dagster maps the range forward through the marts' lookback
    (their partitions whose 364 days reach it), so the backfill is two single runs: the range up to
    the staging view, then the marts for the range and the 260 weekday partitions after it."""
    first, last = UI_BACKFILL
    open_asset_graph(page, server["url"])
    dialog = open_materialize_dialog(page)
    select_partitions(dialog, f"[{first}...{last}]", 3)
    backfill_id = launch(page, dialog, "Launch backfill", "launchPartitionBackfill")["backfillId"]

    wait_for_status(page, f"{server['url']}/runs/b/{backfill_id}", backfill_status, "Succeeded",
                    f"backfill {backfill_id}")
    page.screenshot(path=ARTIFACTS / "ui-backfill-finished.png", full_page=True)
    later = (pd.Timestamp(last) + pd.offsets.BDay(260)).date().isoformat()
    runs = runs_of(server["port"], backfill_id)
    assert set(runs) == {(first, last), (first, later)}, runs
    assert runs[(first, later)] == MARTS
    assert runs[(first, last)] & MARTS == set() and len(runs[(first, last)]) == 4
    assert_warehouse_has_exactly(
        server["settings"], [dt.date.fromisoformat(ONE_PARTITION), *weekdays(first, last)]
    )

    # The summary asset carries a Markdown preview of the range's last day.
    preview = graphql(server["port"], SUMMARY_PREVIEW)["assetNodeOrError"]
    latest = preview["assetMaterializations"][0]
    entries = {e["label"]: e.get("mdStr") for e in latest["metadataEntries"]}
    assert f"**Market summary {last}**" in (entries.get("preview") or ""), entries
    page.goto(f"{server['url']}/assets/stock_analytics/market_daily_summary")
    summary = page.get_by_text(f"Market summary {last}").first
    summary.wait_for()
    summary.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "ui-market-summary-preview.png", full_page=True)


def test_graphql_api_backfills_a_range_in_one_run(server):
    first, last = API_BACKFILL
    port = server["port"]
    keys = group_asset_keys(port, "stock_prices")
    assert len(keys) == 8, keys
    params = {"partitionsByAssets": [
        {"assetKey": key, "partitions": {"range": {"start": first, "end": last}}} for key in keys
    ]}
    launched = graphql(port, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        status = graphql(port, BACKFILL_STATUS, {"id": backfill_id})[
            "partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        time.sleep(5)
    assert status == "COMPLETED_SUCCESS", f"backfill {backfill_id} ended as {status}"
    single_run_of(port, backfill_id, first, last)
    assert_warehouse_has_exactly(server["settings"], [
        dt.date.fromisoformat(ONE_PARTITION), *weekdays(*UI_BACKFILL), *weekdays(*API_BACKFILL)
    ])


CHECK_EXECUTIONS = """
query($path: [String!]!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: "built_after_its_lookback", limit: 5) {
    runId status
    evaluation { success description }
    run { tags { key value } }
  }
}
"""
RAW_ASSETS = [["raw_stock_prices"], ["clean_stock_prices"], ["stock_raw", "daily_prices"]]
CHANGED_DAY = "2024-03-05"  # in the UI backfill; the later partitions of both backfills look back at it


def test_the_ui_shows_mart_partitions_out_of_date_after_an_earlier_day_changes(server, page):
    """Re-materialize only the raw data and the warehouse table of an earlier day: the daemon's
    declarative automation runs the marts' lookback check by itself, and the UI shows it failed,
    naming the later partitions built before the change."""
    port = server["port"]
    params = {"partitionsByAssets": [
        {"assetKey": {"path": path}, "partitions": {"range": {"start": CHANGED_DAY, "end": CHANGED_DAY}}}
        for path in RAW_ASSETS
    ]}
    launched = graphql(port, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    mart = ["stock_analytics", "fct_daily_stock_metrics"]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    latest = None
    while time.monotonic() < deadline:
        executions = graphql(port, CHECK_EXECUTIONS, {"path": mart})["assetCheckExecutions"]
        latest = executions[0] if executions else None
        if latest and latest["status"] in ("FAILED", "EXECUTION_FAILED"):
            break
        time.sleep(5)
    assert latest and latest["status"] == "FAILED", latest
    tags = {t["key"]: t["value"] for t in latest["run"]["tags"]}
    assert "dagster/from_automation_condition" in tags or "dagster/sensor_name" in tags, tags
    # Every mart partition from 03-05 to 03-05 + 364 days: the UI backfill built them (its
    # forward-mapped run), before this change.
    assert latest["evaluation"]["description"].startswith("261 partition(s)"), latest["evaluation"]

    page.goto(f"{server['url']}/assets/{'/'.join(mart)}?view=checks")
    page.get_by_text("built_after_its_lookback").first.wait_for()
    page.get_by_text("Failed").first.wait_for()
    page.screenshot(path=ARTIFACTS / "ui-lookback-check-failed.png", full_page=True)


def test_make_dev_shows_a_new_dbt_model_on_reload(page, tmp_path):
    """The dbt loop of the README: with `make dev` running, add a model, "Reload definitions"."""
    repo = tmp_path / "repo"  # a copy: the new model must not leak into the shared dbt project
    for name in ["stock_platform", "dbt_project"]:
        shutil.copytree(Path(REPO_ROOT) / name, repo / name,
                        ignore=shutil.ignore_patterns("target", "logs", "__pycache__"))
    # pyproject.toml: where dg finds defs/; the dbt manifest: what `make dev` builds first.
    for name in ["workspace.yaml", "pyproject.toml", "dbt_project/target/manifest.json"]:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(REPO_ROOT) / name, repo / name)
    (tmp_path / "data").mkdir()
    with make_dev(repo, tmp_path / "data", STOCK_PARTITIONS_START=PARTITIONS_START) as port:
        url = f"http://127.0.0.1:{port}"
        open_asset_graph(page, url)
        expand_all_groups(page)
        assert not page.get_by_text("my_new_model", exact=True).count()

        (repo / "dbt_project/models/stock_prices/marts/my_new_model.sql").write_text(
            "select trade_date, market, listings from {{ ref('market_daily_summary') }}\n"
        )
        page.get_by_role("button", name="Reload definitions").click()
        page.get_by_text("my_new_model", exact=True).first.wait_for(timeout=180_000)
        page.screenshot(path=ARTIFACTS / "make-dev-reload-new-dbt-model.png")
        keys = [n["assetKey"]["path"] for n in graphql(port, ASSET_KEYS)["assetNodes"]]
        assert ["stock_analytics", "my_new_model"] in keys, keys
