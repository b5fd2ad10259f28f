{#- Models land in exactly the target schema (stock_analytics / BQ_ANALYTICS_DATASET).
    dbt's default would turn a custom schema into "<target>_<custom>"; here a custom schema,
    should one ever be configured, is used verbatim instead.  No model sets one today. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema }}
  {%- else -%}
    {{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}
