"""The `stock_raw.daily_prices` contract (DESIGN.md): column names and types, in order."""

from __future__ import annotations

# (column, BigQuery type, DuckDB type, description)
DAILY_PRICES_COLUMNS: list[tuple[str, str, str, str]] = [
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
COLUMN_NAMES: list[str] = [name for name, *_ in DAILY_PRICES_COLUMNS]


def duckdb_create_table_sql(schema: str, table: str = "daily_prices") -> str:
    columns = ",\n  ".join(f'"{name}" {duck}' for name, _, duck, _ in DAILY_PRICES_COLUMNS)
    # No PRIMARY KEY: uniqueness of (trade_date, ticker) is enforced by the load (delete + insert
    # of whole partitions) and checked by dbt tests; an ART index would slow big backfills.
    return f"CREATE TABLE IF NOT EXISTS {schema}.{table} (\n  {columns}\n)"
