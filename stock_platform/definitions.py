"""The code location: assets, checks, jobs, schedules and the resources of this environment."""

from __future__ import annotations

import dagster as dg

from stock_platform.assets.cleaning import clean_stock_prices
from stock_platform.assets.dbt import stock_analytics_dbt
from stock_platform.assets.ingestion import raw_stock_prices
from stock_platform.assets.warehouse import daily_prices
from stock_platform.resources import build_resources
from stock_platform.settings import load_settings

defs = dg.Definitions(
    assets=[raw_stock_prices, clean_stock_prices, daily_prices, stock_analytics_dbt],
    resources=build_resources(load_settings()),
)
