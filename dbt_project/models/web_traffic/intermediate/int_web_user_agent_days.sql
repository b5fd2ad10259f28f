-- The user agent families seen on each log_date, one row per (log_date, ua_key): the members of
-- dim_user_agent, kept per day so that re-running a day replaces its members.
{{ config(**web_incremental_config(cluster_by=['ua_key'])) }}

select distinct
    log_date,
    ua_key,
    browser_family,
    browser_major,
    os_family,
    device_family,
    is_bot
from {{ ref('stg_access_logs') }}
where {{ web_window_filter('log_date') }}
