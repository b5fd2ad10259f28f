-- One row per session: a visitor's page views on one day with no gap of more than 30 minutes
-- (macros/web_sessions.sql).  Sessions end at midnight in WEB_LOGS_TIMEZONE.
{{ config(**web_incremental_config(cluster_by=['visitor_id'])) }}

with page_views as (

    select
        log_date,
        visitor_id,
        session_id,
        ts,
        path,
        row_number() over (
            partition by session_id order by ts asc, source_file asc, line_number asc
        ) as position_from_start,
        row_number() over (
            partition by session_id order by ts desc, source_file desc, line_number desc
        ) as position_from_end
    from ({{ web_sessionized_page_views() }}) as sessionized

),

sessions as (

    select
        session_id,
        visitor_id,
        log_date,
        min(ts) as session_start,
        max(ts) as session_end,
        count(*) as page_views,
        max(case when position_from_start = 1 then path end) as landing_path,
        max(case when position_from_end = 1 then path end) as exit_path
    from page_views
    group by session_id, visitor_id, log_date

)

select
    session_id,
    visitor_id,
    log_date,
    session_start,
    session_end,
    page_views,
    cast({{ web_epoch_us('session_end') }} - {{ web_epoch_us('session_start') }} as {{ web_type_double() }})
    / 1000000 as duration_s,
    landing_path,
    exit_path,
    page_views = 1 as is_bounce
from sessions
