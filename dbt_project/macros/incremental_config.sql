{#-
  Incremental config of the models that replace whole days, per adapter.  A run window
  [min_date, max_date] (macros/window.sql) rewrites the days [min_date, max_date + lookahead_days]
  of `column` (the stock marts look 364 days ahead: their rows read a year back; the web models
  none: every row of day D comes from day D):
    duckdb:   the written days deleted (pre_hook), then the new rows appended, in the model's one
              transaction: a day with no rows any more (re-marked closed, emptied) is emptied too,
              which delete+insert on the column would miss (it deletes only the days of the new rows)
    bigquery: insert_overwrite of every day partition written (static `partitions`): one MERGE
              that deletes and inserts, partitioned by `column`, clustered by `cluster_by`.
              Without both window vars (a rebuild of every date) the table is replaced whole
              (`create or replace table`, atomic): insert_overwrite's dynamic partitions would
              replace only the days present in the new rows and keep an emptied day's old rows.
  Used through stock_incremental_config and web_incremental_config.
-#}
{% macro day_incremental_config(column, cluster_by, lookahead_days) %}
  {{ return(adapter.dispatch('day_incremental_config', 'stock_platform')(column, cluster_by, lookahead_days)) }}
{% endmacro %}

{% macro default__day_incremental_config(column, cluster_by, lookahead_days) %}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'append',
      'pre_hook': "{{ day_delete_write_window('" ~ column ~ "', " ~ lookahead_days ~ ") }}",
  }) }}
{% endmacro %}

{% macro duckdb__day_incremental_config(column, cluster_by, lookahead_days) %}
  {{ return(default__day_incremental_config(column, cluster_by, lookahead_days)) }}
{% endmacro %}

{% macro bigquery__day_incremental_config(column, cluster_by, lookahead_days) %}
  {%- set partitions = window_write_partitions(lookahead_days) -%}
  {{ return({
      'materialized': 'incremental' if partitions is not none else 'table',
      'incremental_strategy': 'insert_overwrite',
      'partition_by': {'field': column, 'data_type': 'date', 'granularity': 'day'},
      'partitions': partitions,
      'cluster_by': cluster_by,
  }) }}
{% endmacro %}

{% macro day_delete_write_window(column, lookahead_days) %}
  {%- if is_incremental() -%}
    delete from {{ this }} where {{ stock_window_filter(column, lookahead_days=lookahead_days) }}
  {%- endif -%}
{% endmacro %}

{#- The stock marts: trade_date days, the window and the 364 days after it. -#}
{% macro stock_incremental_config(cluster_by) %}
  {{ return(day_incremental_config('trade_date', cluster_by, stock_52w_days())) }}
{% endmacro %}
