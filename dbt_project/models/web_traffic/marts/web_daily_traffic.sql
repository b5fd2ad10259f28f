-- Traffic totals per day, one row per log_date with at least one request.
{{ config(**web_incremental_config(cluster_by=none)) }}

with requests as (

    select
        log_date,
        count(*) as requests,
        count(case when is_page_view then 1 end) as page_views,
        count(distinct case when is_page_view then visitor_id end) as unique_visitors,
        cast(sum(response_bytes) as {{ dbt.type_bigint() }}) as bytes_sent,
        count(case when status between 400 and 499 then 1 end) as requests_4xx,
        count(case when status between 500 and 599 then 1 end) as requests_5xx,
        count(case when is_bot then 1 end) as bot_requests
    from {{ ref('stg_access_logs') }}
    where {{ web_window_filter('log_date') }}
    group by log_date

),

sessions as (

    select
        log_date,
        count(*) as sessions,
        count(case when is_bounce then 1 end) as bounced_sessions,
        {{ stock_exact_sum('duration_s') }} as total_duration_s
    from {{ ref('fct_sessions') }}
    where {{ web_window_filter('log_date') }}
    group by log_date

)

select
    requests.log_date,
    requests.requests,
    requests.page_views,
    requests.unique_visitors,
    coalesce(sessions.sessions, 0) as sessions,
    -- NULL on a day without sessions
    cast(sessions.bounced_sessions as {{ web_type_double() }}) / sessions.sessions as bounce_rate,
    sessions.total_duration_s / sessions.sessions as avg_session_duration_s,
    requests.bytes_sent,
    cast(requests.requests_4xx as {{ web_type_double() }}) / requests.requests as share_4xx,
    cast(requests.requests_5xx as {{ web_type_double() }}) / requests.requests as share_5xx,
    cast(requests.bot_requests as {{ web_type_double() }}) / requests.requests as bot_request_share
from requests
left join sessions
    on requests.log_date = sessions.log_date
