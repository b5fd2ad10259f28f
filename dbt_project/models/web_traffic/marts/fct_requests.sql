-- One row per request, keyed to the star schema's dimensions; session_id on page views only.
{{ config(**web_incremental_config(cluster_by=['page_key', 'visitor_id'])) }}

with requests as (

    select
        request_id,
        log_date,
        ts,
        date_key,
        time_key,
        page_key,
        ua_key,
        referrer_key,
        visitor_id,
        method,
        status,
        status_class,
        response_bytes,
        is_page_view
    from {{ ref('stg_access_logs') }}
    where {{ web_window_filter('log_date') }}

),

page_views as (

    select
        request_id,
        session_id
    from ({{ web_sessionized_page_views() }}) as sessionized

)

select
    requests.request_id,
    requests.log_date,
    requests.ts,
    requests.date_key,
    requests.time_key,
    requests.page_key,
    requests.ua_key,
    requests.referrer_key,
    requests.visitor_id,
    page_views.session_id,
    requests.method,
    requests.status,
    requests.status_class,
    requests.response_bytes,
    requests.is_page_view
from requests
left join page_views
    on requests.request_id = page_views.request_id
