{#-
  Daily prices with each ticker's previous session: the one place daily_return is defined.

  A subquery for the marts that need history (`from ({{ stock_prices_with_previous() }}) as p`).
  With a run window it reads the staging view for trade_date in
  [min_date - 364 days, max_date + 364 days] (stock_read_filter): the 52-week range of every row
  the mart writes. A listing that traded less than 60 sessions in the 364 days before min_date
  (suspended for most of a year) also gets its last 60 sessions before them, so that its previous
  session, last 20 returns and last 60 sessions are there whatever the gap: the rows equal a full
  refresh. Rows before min_date are lookback; each mart drops them on output.

  A macro rather than an ephemeral model so that each mart reads stg_daily_prices directly, which
  lets dagster-dbt trace column lineage from the source to the mart.
-#}
{% macro stock_prices_with_previous() %}
    {%- set columns -%}
        trade_date, ticker, name, market, high, low, close, change, volume, traded_value, market_cap
    {%- endset %}
    select
        trade_date, ticker, name, market, high, low, close, change, volume, traded_value,
        market_cap, prev_close, prev_market_cap,
        -- close / previous session's close - 1; NULL on the ticker's first row
        close / nullif(prev_close, 0) - 1 as daily_return
    from (
        select
            {{ columns }},
            lag(close) over (partition by ticker order by trade_date) as prev_close,
            lag(market_cap) over (partition by ticker order by trade_date) as prev_market_cap
        from (
            select {{ columns }}
            from {{ ref('stg_daily_prices') }}
            where {{ stock_read_filter('trade_date') }}
            {%- if stock_window().min_date %}
            union all
            {{ stock_sessions_before_lookback(columns) }}
            {%- endif %}
        ) as history
    ) as with_previous
{% endmacro %}


{#- Sessions a metric looks back over at most (ma_60). -#}
{% macro stock_sessions_lookback() %}{{ return(60) }}{% endmacro %}


{#- The last 60 sessions before min_date - 364 days of each listing that trades in the rows the
    mart writes and has fewer than 60 sessions in [min_date - 364 days, min_date): one back from a
    long suspension, or a recent listing (which has no older sessions). The read is bounded above
    only: it reads the older days of the source (on BigQuery, the columns below over every older
    partition) and sorts just those listings' rows. -#}
{% macro stock_sessions_before_lookback(columns) %}
    {%- set window = stock_window() -%}
    {%- set min_date = "cast('" ~ window.min_date ~ "' as date)" -%}
    {%- set lower = stock_date_add(min_date, -stock_52w_days()) -%}
            select {{ columns }}
            from (
                select
                    {{ columns }},
                    row_number() over (partition by ticker order by trade_date desc) as sessions_back
                from {{ ref('stg_daily_prices') }}
                where
                    trade_date < {{ lower }}
                    and ticker in (
                        select ticker
                        from {{ ref('stg_daily_prices') }}
                        where {{ stock_read_filter('trade_date') }}
                        group by ticker
                        having
                            count(case when trade_date >= {{ min_date }} then 1 end) > 0
                            and count(case when trade_date < {{ min_date }} then 1 end)
                            < {{ stock_sessions_lookback() }}
                    )
            ) as earlier
            where sessions_back <= {{ stock_sessions_lookback() }}
{%- endmacro %}
