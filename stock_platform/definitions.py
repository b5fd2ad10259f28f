"""The code location: assets, checks, jobs, schedules and the resources of this environment."""

import dagster as dg

from stock_platform.assets.cleaning import clean_stock_prices
from stock_platform.assets.dbt import stock_analytics_dbt
from stock_platform.assets.ingestion import raw_stock_prices
from stock_platform.assets.warehouse import daily_prices
from stock_platform.automation import (
    daily_job,
    daily_schedule,
    notify_run_failure,
    with_marts_freshness,
)
from stock_platform.resources import build_executor, build_resources
from stock_platform.settings import Settings, load_settings

ASSETS = [
    raw_stock_prices,
    clean_stock_prices,
    daily_prices,
    with_marts_freshness(stock_analytics_dbt),
]


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        jobs=[daily_job],
        schedules=[daily_schedule],
        sensors=[notify_run_failure],
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


defs = build_definitions(load_settings())
