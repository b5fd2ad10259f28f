-- Per log_date the 10 paths with the most page views, rank 1..10, ties broken by path ascending.
-- A day without page views has no rows.
{{ config(**web_incremental_config(cluster_by=none)) }}

with pages as (

    select
        log_date,
        path,
        count(*) as page_views,
        count(distinct visitor_id) as unique_visitors
    from {{ ref('stg_access_logs') }}
    where
        {{ web_window_filter('log_date') }}
        and is_page_view
    group by log_date, path

),

ranked as (

    select
        log_date,
        path,
        page_views,
        unique_visitors,
        row_number() over (partition by log_date order by page_views desc, path asc) as rank
    from pages

)

select
    log_date,
    rank,
    path,
    page_views,
    unique_visitors
from ranked
where rank <= 10
