{#-
  The page views of the run window, each with its session: the one place a session is defined.

  A session is one visitor's page views on one log_date (sessions end at midnight in
  WEB_LOGS_TIMEZONE, and log_date is that day), ordered by (ts, source_file, line_number), where a
  gap of more than 30 minutes since the previous page view starts a new session. Its session_id
  is web_hash_key(visitor_id, session start in microseconds since the epoch).

  A subquery (`from ({{ web_sessionized_page_views() }}) as page_views`) used by fct_requests
  (session_id of each page view) and fct_sessions; a macro rather than an ephemeral model so that
  both read stg_access_logs directly (column lineage from the source).
-#}
{% macro web_session_gap_us() %}{{ return(30 * 60 * 1000000) }}{% endmacro %}

{% macro web_sessionized_page_views() %}
    select
        log_date,
        request_id,
        visitor_id,
        ts,
        source_file,
        line_number,
        path,
        session_number,
        {{ web_hash_key(['visitor_id', web_epoch_us('session_start')]) }} as session_id
    from (
        select
            log_date,
            request_id,
            visitor_id,
            ts,
            source_file,
            line_number,
            path,
            session_number,
            min(ts) over (partition by log_date, visitor_id, session_number) as session_start
        from (
            select
                log_date,
                request_id,
                visitor_id,
                ts,
                source_file,
                line_number,
                path,
                sum(starts_session) over (
                    partition by log_date, visitor_id
                    order by ts, source_file, line_number
                    rows between unbounded preceding and current row
                ) as session_number
            from (
                select
                    log_date,
                    request_id,
                    visitor_id,
                    ts,
                    source_file,
                    line_number,
                    path,
                    case
                        when previous_ts is null then 1
                        when {{ web_epoch_us('ts') }} - {{ web_epoch_us('previous_ts') }}
                            > {{ web_session_gap_us() }} then 1
                        else 0
                    end as starts_session
                from (
                    select
                        log_date,
                        request_id,
                        visitor_id,
                        ts,
                        source_file,
                        line_number,
                        path,
                        lag(ts) over (
                            partition by log_date, visitor_id order by ts, source_file, line_number
                        ) as previous_ts
                    from {{ ref('stg_access_logs') }}
                    where
                        {{ web_window_filter('log_date') }}
                        and is_page_view
                ) as with_previous
            ) as with_starts
        ) as numbered
    ) as with_start
{% endmacro %}
