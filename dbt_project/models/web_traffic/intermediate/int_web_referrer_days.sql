-- The referrer domains and types seen on each log_date, one row per (log_date, referrer_key):
-- the members of dim_referrer, kept per day so that re-running a day replaces its members.
{{ config(**web_incremental_config(cluster_by=['referrer_key'])) }}

select distinct
    log_date,
    referrer_key,
    referrer_domain,
    referrer_type
from {{ ref('stg_access_logs') }}
where {{ web_window_filter('log_date') }}
