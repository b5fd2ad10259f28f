{#-
  The run window of the web traffic models, and their incremental config.

  Every row of a web model for day D is computed from the access_logs of day D alone (sessions
  end at midnight in WEB_LOGS_TIMEZONE), so a run with
      --vars '{"min_date": "YYYY-MM-DD", "max_date": "YYYY-MM-DD"}'   (both inclusive)
  reads and rewrites exactly the log_date days of the window: no lookback, no lookahead.
  Without the vars (`dbt build --full-refresh`) every day is read and written.
  The vars are validated by stock_window() (macros/window.sql), shared by every domain.
-#}

{#- A boolean SQL expression: `column` lies in [min_date, max_date]; `true` without a window. -#}
{% macro web_window_filter(column='log_date') %}
  {{- return(stock_window_filter(column)) -}}
{% endmacro %}


{#- The day partitions a web model rewrites on BigQuery (insert_overwrite's static `partitions`):
    every day of [min_date, max_date] as a date literal, so that a day with no rows any more is
    emptied too.  None without both vars: then dbt replaces the days present in the new rows
    (and a full refresh rebuilds everything). -#}
{% macro web_write_partitions() %}
  {%- set window = stock_window() -%}
  {%- if not (window.min_date and window.max_date) -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set datetime = modules.datetime -%}
  {%- set first = datetime.date.fromisoformat(window.min_date) -%}
  {%- set last = datetime.date.fromisoformat(window.max_date) -%}
  {%- set days = [] -%}
  {%- for offset in range((last - first).days + 1) -%}
    {%- do days.append("date '" ~ (first + datetime.timedelta(days=offset)).isoformat() ~ "'") -%}
  {%- endfor -%}
  {{ return(days) }}
{% endmacro %}


{#-
  Incremental config of the per-day web models, per adapter.  Each replaces whole log_date days:
    duckdb:   the window's days deleted (pre_hook), then the window's rows appended, in the
              model's one transaction: a day that lost all its rows is emptied too
    bigquery: insert_overwrite of every day partition of the window (static partitions), one
              MERGE that deletes and inserts; partitioned by log_date, clustered by `cluster_by`
  Used as  {{ config(**web_incremental_config(cluster_by=['visitor_id'])) }}
-#}
{% macro web_incremental_config(cluster_by=none) %}
  {{ return(adapter.dispatch('web_incremental_config', 'stock_platform')(cluster_by)) }}
{% endmacro %}

{% macro default__web_incremental_config(cluster_by) %}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'append',
      'pre_hook': "{{ web_delete_write_window() }}",
  }) }}
{% endmacro %}

{% macro duckdb__web_incremental_config(cluster_by) %}
  {{ return(default__web_incremental_config(cluster_by)) }}
{% endmacro %}

{% macro bigquery__web_incremental_config(cluster_by) %}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'insert_overwrite',
      'partition_by': {'field': 'log_date', 'data_type': 'date', 'granularity': 'day'},
      'partitions': web_write_partitions(),
      'cluster_by': cluster_by,
  }) }}
{% endmacro %}

{% macro web_delete_write_window() %}
  {%- if is_incremental() -%}
    delete from {{ this }} where {{ web_window_filter('log_date') }}
  {%- endif -%}
{% endmacro %}
