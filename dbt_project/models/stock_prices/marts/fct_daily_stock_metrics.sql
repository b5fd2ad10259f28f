-- Per-stock daily metrics, one row per (trade_date, ticker).  Windows are per ticker over its own
-- rows ("sessions") ordered by trade_date.
{{ config(**stock_incremental_config(cluster_by=['market', 'ticker'])) }}

with prices as (

    select
        trade_date,
        ticker,
        name,
        market,
        high,
        low,
        close,
        volume,
        market_cap,
        daily_return,
        {{ stock_day_number('trade_date') }} as day_number
    from ({{ stock_prices_with_previous() }}) as prices_with_previous

),

metrics as (

    select
        trade_date,
        ticker,
        name,
        market,
        close,
        volume,
        market_cap,
        daily_return,
        -- mean close over the last N sessions; NULL while fewer than N exist
        case when count(close) over last_5 = 5 then avg(close) over last_5 end as ma_5,
        case when count(close) over last_20 = 20 then avg(close) over last_20 end as ma_20,
        case when count(close) over last_60 = 60 then avg(close) over last_60 end as ma_60,
        -- sample stddev of the last 20 sessions' returns; NULL while fewer than 20 non-null returns
        case
            when count(daily_return) over last_20 = 20 then stddev_samp(daily_return) over last_20
        end as volatility_20,
        -- sessions with trade_date in [trade_date - 364 days, trade_date]
        max(high) over last_52w as high_52w,
        min(low) over last_52w as low_52w
    from prices
    -- All four windows order by day_number (the same order as trade_date), so the warehouse sorts
    -- the rows once for all of them instead of twice (DuckDB: a quarter of the model's time).
    window
        last_5 as (partition by ticker order by day_number rows between 4 preceding and current row),
        last_20 as (partition by ticker order by day_number rows between 19 preceding and current row),
        last_60 as (partition by ticker order by day_number rows between 59 preceding and current row),
        last_52w as (
            partition by ticker order by day_number
            range between {{ stock_52w_days() }} preceding and current row
        )

)

select
    trade_date,
    ticker,
    name,
    market,
    close,
    volume,
    market_cap,
    daily_return,
    ma_5,
    ma_20,
    ma_60,
    volatility_20,
    high_52w,
    low_52w
from metrics
where {{ stock_write_filter('trade_date') }}
