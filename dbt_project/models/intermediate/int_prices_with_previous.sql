-- Daily prices with each ticker's previous session, the one place daily_return is defined.
--
-- Ephemeral: compiled into each mart as a CTE.  With a run window it reads the source only for
-- trade_date in [min_date - 364 days, max_date] (see macros/window.sql): enough for the 52-week
-- range and, for any listing that traded in the past year, its previous session, last 20 returns
-- and last 60 sessions.  Rows before min_date are lookback; the marts drop them on output.

with prices as (

    -- Explicit columns (no *), so dagster-dbt can trace column lineage through this CTE.
    select trade_date, ticker, name, market, high, low, close, change, volume, traded_value, market_cap
    from {{ ref('stg_daily_prices') }}
    where {{ stock_window_filter('trade_date', lookback_days=stock_52w_days()) }}

),

with_previous as (

    select
        trade_date, ticker, name, market, high, low, close, change, volume, traded_value, market_cap,
        lag(close) over (partition by ticker order by trade_date) as prev_close,
        lag(market_cap) over (partition by ticker order by trade_date) as prev_market_cap
    from prices

)

select
    trade_date, ticker, name, market, high, low, close, change, volume, traded_value, market_cap,
    prev_close,
    prev_market_cap,
    -- close / previous session's close - 1; NULL on the ticker's first row
    close / nullif(prev_close, 0) - 1 as daily_return
from with_previous
