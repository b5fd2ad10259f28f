-- The warehouse contract columns of stock_raw.daily_prices, one row per (trade_date, ticker).
-- A view: the marts' window filters are pushed down through it to the partitioned source.
select
    trade_date,
    ticker,
    isin,
    name,
    market,
    open,
    high,
    low,
    close,
    change,
    change_pct,
    volume,
    traded_value,
    listed_shares,
    market_cap,
    ingested_at
from {{ source('stock_raw', 'daily_prices') }}
