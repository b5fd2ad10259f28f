-- Market breadth per day, one row per (trade_date, market).
{{ config(**stock_incremental_config(cluster_by=['market'])) }}

with prices as (

    select
        trade_date,
        market,
        change,
        volume,
        traded_value,
        market_cap,
        prev_market_cap,
        daily_return
    from ({{ stock_prices_with_previous() }}) as prices_with_previous
    where {{ stock_write_filter('trade_date') }}

)

select
    trade_date,
    market,
    count(*) as listings,
    count(case when change > 0 then 1 end) as advancers,
    count(case when change < 0 then 1 end) as decliners,
    count(case when change = 0 then 1 end) as unchanged,
    cast(sum(volume) as {{ dbt.type_bigint() }}) as total_volume,
    cast(sum(traded_value) as {{ dbt.type_bigint() }}) as total_traded_value,
    cast(sum(market_cap) as {{ dbt.type_bigint() }}) as total_market_cap,
    -- sum(prev_market_cap * daily_return) / sum(prev_market_cap) over the market's tickers with a
    -- non-null daily_return; prev_market_cap is the ticker's market_cap on its previous session
    {{ stock_exact_sum('case when daily_return is not null then prev_market_cap * daily_return end') }}
    / nullif(sum(case when daily_return is not null then prev_market_cap end), 0)
        as cap_weighted_return
from prices
group by trade_date, market
