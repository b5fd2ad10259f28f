{#-
  Incremental config of the marts, per adapter.  Every mart replaces whole trade_date days:
    duckdb:   the write window (stock_write_filter) deleted, then the window's rows appended,
              in one transaction
    bigquery: insert_overwrite of every day partition of the write window (static partitions,
              stock_write_partitions): one MERGE that deletes and inserts, clustered
  Used as  {{ config(**stock_incremental_config(cluster_by=['market', 'ticker'])) }}
-#}
{% macro stock_incremental_config(cluster_by) %}
  {{ return(adapter.dispatch('stock_incremental_config', 'stock_platform')(cluster_by)) }}
{% endmacro %}

{% macro default__stock_incremental_config(cluster_by) %}
  {#- The whole write window is deleted, then the window's rows appended, in the model's one
      transaction: a day with no rows any more (re-marked closed) is emptied too, which
      delete+insert on trade_date would miss (it deletes only the days of the new rows). -#}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'append',
      'pre_hook': "{{ stock_delete_write_window() }}",
  }) }}
{% endmacro %}

{% macro stock_delete_write_window() %}
  {%- if is_incremental() -%}
    delete from {{ this }} where {{ stock_write_filter('trade_date') }}
  {%- endif -%}
{% endmacro %}

{% macro duckdb__stock_incremental_config(cluster_by) %}
  {{ return(default__stock_incremental_config(cluster_by)) }}
{% endmacro %}

{% macro bigquery__stock_incremental_config(cluster_by) %}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'insert_overwrite',
      'partition_by': {'field': 'trade_date', 'data_type': 'date', 'granularity': 'day'},
      'partitions': stock_write_partitions(),
      'cluster_by': cluster_by,
  }) }}
{% endmacro %}
