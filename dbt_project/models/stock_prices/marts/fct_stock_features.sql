-- Features for time-series models, one row per (trade_date, ticker), computed only from the
-- ticker's own sessions up to and including trade_date (no look-ahead). The columns that
-- fct_daily_stock_metrics defines (return, volatility, moving averages, 52-week high) come from
-- it; the lags and the volume mean are computed here over the same history.
{{ config(**stock_incremental_config(cluster_by=['market', 'ticker'])) }}

with lagged as (

    select
        trade_date,
        ticker,
        lag(close, 5) over by_session as close_5_back,
        lag(close, 20) over by_session as close_20_back,
        -- mean volume of the 20 previous sessions (today excluded); NULL while fewer exist
        case
            when count(*) over previous_20 = 20 then avg(volume) over previous_20
        end as mean_volume_20
    from ({{ stock_prices_with_previous() }}) as prices_with_previous
    window
        by_session as (partition by ticker order by trade_date),
        previous_20 as (
            partition by ticker order by trade_date rows between 20 preceding and 1 preceding
        )

),

features as (

    select
        metrics.trade_date,
        metrics.ticker,
        metrics.market,
        metrics.close,
        metrics.daily_return as return_1d,
        metrics.volatility_20,
        metrics.close / nullif(lagged.close_5_back, 0) - 1 as return_5d,
        metrics.close / nullif(lagged.close_20_back, 0) - 1 as return_20d,
        metrics.volume / nullif(lagged.mean_volume_20, 0) as volume_ratio_20,
        metrics.ma_5 / nullif(metrics.ma_20, 0) - 1 as ma_ratio_5_20,
        metrics.close / nullif(metrics.high_52w, 0) - 1 as pct_from_52w_high
    from {{ ref('fct_daily_stock_metrics') }} as metrics
    inner join lagged
        on metrics.ticker = lagged.ticker and metrics.trade_date = lagged.trade_date
    where {{ stock_write_filter('metrics.trade_date') }}

)

select
    trade_date,
    ticker,
    market,
    close,
    return_1d,
    return_5d,
    return_20d,
    volatility_20,
    volume_ratio_20,
    ma_ratio_5_20,
    pct_from_52w_high
from features
