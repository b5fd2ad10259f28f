{#-
  The run window of the web traffic models, and their incremental config.

  Every row of a web model for day D is computed from the access_logs of day D alone (sessions
  end at midnight in WEB_LOGS_TIMEZONE), so a run with
      --vars '{"min_date": "YYYY-MM-DD", "max_date": "YYYY-MM-DD"}'   (both inclusive)
  reads and rewrites exactly the log_date days of the window: no lookback, no lookahead.
  Without the vars (`dbt build --full-refresh`) every day is read and written.
  The vars are validated by stock_window() (macros/window.sql), shared by every domain.
-#}

{#- A boolean SQL expression: `column` lies in [min_date, max_date]; every date without a window. -#}
{% macro web_window_filter(column='log_date') %}
  {{- return(stock_window_filter(column)) -}}
{% endmacro %}


{#- Incremental config of the per-day web models: whole log_date days, the window's only
    (macros/incremental_config.sql).  Used as
    {{ config(**web_incremental_config(cluster_by=['visitor_id'])) }} -#}
{% macro web_incremental_config(cluster_by=none) %}
  {{ return(day_incremental_config('log_date', cluster_by, 0)) }}
{% endmacro %}
