"""Where the domain's data lives: its lake datasets and the `stock_raw.daily_prices` contract."""

from __future__ import annotations

from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.platform.warehouse import Column, WarehouseTable

RAW = "raw/stock_prices"  # API pages as received (gzip JSON)
CLEAN = "clean/stock_prices"  # Parquet of the contract below
REJECTED = "rejected/stock_prices"  # rows failing validation, with their reasons

# (column, BigQuery type, DuckDB type, description)
_COLUMNS: list[tuple[str, str, str, str]] = [
    ("trade_date", "DATE", "DATE", "Trading date (basDt), Asia/Seoul"),
    ("ticker", "STRING", "VARCHAR", "6-character short code (srtnCd), leading zeros kept"),
    ("isin", "STRING", "VARCHAR", "12-character ISIN (isinCd)"),
    ("name", "STRING", "VARCHAR", "Korean issue name (itmsNm)"),
    ("market", "STRING", "VARCHAR", "KOSPI, KOSDAQ or KONEX (mrktCtg)"),
    ("open", "INT64", "BIGINT", "Opening price, KRW (mkp)"),
    ("high", "INT64", "BIGINT", "High price, KRW (hipr)"),
    ("low", "INT64", "BIGINT", "Low price, KRW (lopr)"),
    ("close", "INT64", "BIGINT", "Closing price, KRW (clpr)"),
    ("change", "INT64", "BIGINT", "Change vs previous close, KRW, signed (vs)"),
    ("change_pct", "FLOAT64", "DOUBLE", "Change vs previous close, percent (fltRt)"),
    ("volume", "INT64", "BIGINT", "Shares traded (trqu)"),
    ("traded_value", "INT64", "BIGINT", "Value traded, KRW (trPrc)"),
    ("listed_shares", "INT64", "BIGINT", "Listed shares (lstgStCnt)"),
    ("market_cap", "INT64", "BIGINT", "close * listed_shares, KRW (mrktTotAmt)"),
    ("ingested_at", "TIMESTAMP", "TIMESTAMPTZ", "When the raw API page was fetched"),
]
DAILY_PRICES = WarehouseTable(
    dataset=stock_settings().raw_dataset,
    name="daily_prices",
    partition_column="trade_date",
    columns=tuple(Column(*column) for column in _COLUMNS),
    clustering=("market", "ticker"),
)
