-- The pages requested on each log_date, one row per (log_date, page_key): the members of
-- dim_page, kept per day so that re-running a day replaces its members (see dim_page).
{{ config(**web_incremental_config(cluster_by=['page_key'])) }}

select distinct
    log_date,
    page_key,
    path,
    page_type,
    section
from {{ ref('stg_access_logs') }}
where {{ web_window_filter('log_date') }}
