{#- Whole days since 1970-01-01: an integer to order a RANGE window frame by, so that
    "the last 364 days" is `range between 364 preceding and current row` on every adapter
    (BigQuery allows RANGE frames only over numeric order keys). -#}
{% macro stock_day_number(date_column) %}
  {{- dbt.datediff("cast('1970-01-01' as date)", date_column, 'day') -}}
{% endmacro %}
