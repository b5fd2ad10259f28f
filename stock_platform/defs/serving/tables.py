"""The serving tables and the warehouse marts they copy (column names and types of the marts'
contracts). Types map DATE -> date, STRING -> text, INT64 -> bigint, FLOAT64 -> double precision
(migrations/versions/0001_serving_tables.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.warehouse import Column, WarehouseTable


def _columns(spec: str) -> tuple[Column, ...]:
    """'name TYPE, ...' (BigQuery types) as warehouse columns."""
    columns = []
    for item in spec.split(","):
        name, bigquery_type = item.split()
        duckdb_type = {"DATE": "DATE", "STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE"}[bigquery_type]
        columns.append(Column(name, bigquery_type, duckdb_type, ""))
    return tuple(columns)


def _mart(dataset: str, name: str, date_column: str, spec: str) -> WarehouseTable:
    return WarehouseTable(dataset=dataset, name=name, partition_column=date_column, columns=_columns(spec))


STOCK_ANALYTICS = stock_settings().analytics_dataset
WEB_ANALYTICS = web_settings().analytics_dataset

DAILY_METRICS = _mart(
    STOCK_ANALYTICS, "fct_daily_stock_metrics", "trade_date",
    "trade_date DATE, ticker STRING, name STRING, market STRING, close INT64, volume INT64, "
    "market_cap INT64, daily_return FLOAT64, ma_5 FLOAT64, ma_20 FLOAT64, ma_60 FLOAT64, "
    "volatility_20 FLOAT64, high_52w INT64, low_52w INT64",
)
# The feature columns stock_daily_metrics adds, with the key they are joined on.
FEATURES = _mart(
    STOCK_ANALYTICS, "fct_stock_features", "trade_date",
    "trade_date DATE, ticker STRING, return_5d FLOAT64, return_20d FLOAT64, volume_ratio_20 FLOAT64, "
    "ma_ratio_5_20 FLOAT64, pct_from_52w_high FLOAT64",
)
MARKET_SUMMARY = _mart(
    STOCK_ANALYTICS, "market_daily_summary", "trade_date",
    "trade_date DATE, market STRING, listings INT64, advancers INT64, decliners INT64, unchanged INT64, "
    "total_volume INT64, total_traded_value INT64, total_market_cap INT64, cap_weighted_return FLOAT64",
)
WEB_TRAFFIC = _mart(
    WEB_ANALYTICS, "web_daily_traffic", "log_date",
    "log_date DATE, requests INT64, page_views INT64, unique_visitors INT64, sessions INT64, "
    "bounce_rate FLOAT64, avg_session_duration_s FLOAT64, bytes_sent INT64, share_4xx FLOAT64, "
    "share_5xx FLOAT64, bot_request_share FLOAT64",
)


@dataclass(frozen=True)
class ServingTable:
    """serving.<name>: the rows of `marts` (joined on `key` when there are several) for the days
    of a run, and the mart assets it is downstream of."""

    name: str
    key: tuple[str, ...]
    marts: tuple[WarehouseTable, ...]
    upstream: tuple[dg.AssetKey, ...]
    # Days after a run's window that its marts rewrote too (their lookback reaches the window).
    lookahead: dt.timedelta = dt.timedelta(0)

    @property
    def qualified_name(self) -> str:
        return f"serving.{self.name}"

    @property
    def date_column(self) -> str:
        return self.marts[0].partition_column

    @property
    def column_names(self) -> list[str]:
        """The marts' columns, each once, in the order of the serving table."""
        return list(dict.fromkeys(name for mart in self.marts for name in mart.column_names))


def _stock_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["stock_analytics", name])


# A stock mart row reads the 364 days before it (its 52-week range), so a mart run rewrites the
# 364 days after its window too (tests/unit/test_serving_domain.py holds this to the marts' LOOKBACK).
STOCK_LOOKAHEAD = dt.timedelta(days=364)

STOCK_DAILY_METRICS = ServingTable(
    "stock_daily_metrics", ("ticker", "trade_date"), (DAILY_METRICS, FEATURES),
    (_stock_key("fct_daily_stock_metrics"), _stock_key("fct_stock_features")), STOCK_LOOKAHEAD,
)
MARKET_DAILY_SUMMARY = ServingTable(
    "market_daily_summary", ("trade_date", "market"), (MARKET_SUMMARY,),
    (_stock_key("market_daily_summary"),), STOCK_LOOKAHEAD,
)
WEB_DAILY_TRAFFIC = ServingTable(
    "web_daily_traffic", ("log_date",), (WEB_TRAFFIC,), (dg.AssetKey(["web_analytics", "web_daily_traffic"]),),
)
