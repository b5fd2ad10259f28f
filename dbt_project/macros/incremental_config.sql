{#-
  Incremental config of the marts, per adapter.  Every mart replaces whole trade_date days:
    duckdb:   delete+insert keyed on trade_date (all rows of each day in the new data are
              deleted, then the new rows inserted, in one transaction)
    bigquery: insert_overwrite of the day partitions present in the new data, clustered
  Used as  {{ config(**stock_incremental_config(cluster_by=['market', 'ticker'])) }}
-#}
{% macro stock_incremental_config(cluster_by) %}
  {{ return(adapter.dispatch('stock_incremental_config', 'stock_platform')(cluster_by)) }}
{% endmacro %}

{% macro default__stock_incremental_config(cluster_by) %}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'delete+insert',
      'unique_key': 'trade_date',
  }) }}
{% endmacro %}

{% macro duckdb__stock_incremental_config(cluster_by) %}
  {{ return(default__stock_incremental_config(cluster_by)) }}
{% endmacro %}

{% macro bigquery__stock_incremental_config(cluster_by) %}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': 'insert_overwrite',
      'partition_by': {'field': 'trade_date', 'data_type': 'date', 'granularity': 'day'},
      'cluster_by': cluster_by,
  }) }}
{% endmacro %}
