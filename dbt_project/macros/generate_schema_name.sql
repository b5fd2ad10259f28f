{#- A model lands in exactly the target schema (stock_analytics / BQ_ANALYTICS_DATASET), or in
    exactly its custom schema when one is configured: the web traffic models set
    `+schema: web_analytics` (BQ_WEB_ANALYTICS_DATASET) in dbt_project.yml.  dbt's default would
    turn a custom schema into "<target>_<custom>". -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema }}
  {%- else -%}
    {{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}
