{#-
  sum() of a floating-point expression that does not depend on row order.

  Floating-point addition is not associative, so a parallel sum can differ in its last bits from
  run to run, and re-running a partition would not give an identical table.  Each term is rounded
  to a fixed-point decimal first, where addition is exact, and the total is cast back to a float.
-#}
{% macro stock_exact_sum(expression) %}
  {{- return(adapter.dispatch('stock_exact_sum', 'stock_platform')(expression)) -}}
{% endmacro %}

{% macro default__stock_exact_sum(expression) -%}
  cast(sum(cast({{ expression }} as decimal(38, 6))) as double)
{%- endmacro %}

{% macro bigquery__stock_exact_sum(expression) -%}
  cast(sum(cast({{ expression }} as bignumeric)) as float64)
{%- endmacro %}
