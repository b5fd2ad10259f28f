{#-
  Daily prices with each ticker's previous session: the one place daily_return is defined.

  A subquery for the marts that need history (`from ({{ stock_prices_with_previous() }}) as p`).
  With a run window it reads the staging view only for trade_date in
  [min_date - 364 days, max_date]: enough for the 52-week range and, for any listing that traded
  in the past year, its previous session, last 20 returns and last 60 sessions. Rows before
  min_date are lookback; each mart drops them on output.

  A macro rather than an ephemeral model so that each mart reads stg_daily_prices directly, which
  lets dagster-dbt trace column lineage from the source to the mart.
-#}
{% macro stock_prices_with_previous() %}
    select
        trade_date, ticker, name, market, high, low, close, change, volume, traded_value,
        market_cap, prev_close, prev_market_cap,
        -- close / previous session's close - 1; NULL on the ticker's first row
        close / nullif(prev_close, 0) - 1 as daily_return
    from (
        select
            trade_date, ticker, name, market, high, low, close, change, volume, traded_value,
            market_cap,
            lag(close) over (partition by ticker order by trade_date) as prev_close,
            lag(market_cap) over (partition by ticker order by trade_date) as prev_market_cap
        from {{ ref('stg_daily_prices') }}
        where {{ stock_read_filter('trade_date') }}
    ) as with_previous
{% endmacro %}
