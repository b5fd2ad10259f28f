-- For each (trade_date, market) the 10 highest change_pct (direction 'gainer') and the 10 lowest
-- ('loser'), rank 1..10, ties broken by ticker ascending.  Rows without change_pct are not ranked.
-- Needs no history: reads only the window's days.
{{ config(**stock_incremental_config(cluster_by=['market', 'direction'])) }}

with prices as (

    select
        trade_date,
        market,
        ticker,
        name,
        change_pct,
        close,
        volume
    from {{ ref('stg_daily_prices') }}
    where
        {{ stock_write_filter('trade_date') }}
        and change_pct is not null

),

ranked as (

    select
        trade_date,
        market,
        ticker,
        name,
        change_pct,
        close,
        volume,
        row_number() over (
            partition by trade_date, market order by change_pct desc, ticker asc
        ) as gainer_rank,
        row_number() over (
            partition by trade_date, market order by change_pct asc, ticker asc
        ) as loser_rank
    from prices

)

select
    trade_date,
    market,
    'gainer' as direction,
    gainer_rank as rank,
    ticker,
    name,
    change_pct,
    close,
    volume
from ranked
where gainer_rank <= 10

union all

select
    trade_date,
    market,
    'loser' as direction,
    loser_rank as rank,
    ticker,
    name,
    change_pct,
    close,
    volume
from ranked
where loser_rank <= 10
