{#-
  SQL helpers of the web traffic models: settings read from the environment, and the few
  expressions whose spelling differs between DuckDB (target local) and BigQuery (target prod).
-#}

{#- The time zone of the partition days (WEB_LOGS_TIMEZONE, default Asia/Seoul): sessions end at
    midnight there and time_key counts seconds since that midnight. -#}
{% macro web_timezone() %}
  {%- set timezone = env_var('WEB_LOGS_TIMEZONE', 'Asia/Seoul') | trim -%}
  {%- if not modules.re.match('^[A-Za-z0-9_+/-]+$', timezone) -%}
    {{ exceptions.raise_compiler_error("WEB_LOGS_TIMEZONE is not a time zone name: '" ~ timezone ~ "'") }}
  {%- endif -%}
  {{ return(timezone) }}
{% endmacro %}


{#- The site's own hosts (WEB_SITE_HOSTS, comma-separated; by default the synthetic site's),
    lower-cased and without a leading 'www.', as they compare with referrer_domain. -#}
{% macro web_site_domains() %}
  {%- set hosts = env_var('WEB_SITE_HOSTS', 'www.example-shop.kr,example-shop.kr,m.example-shop.kr') -%}
  {%- set domains = [] -%}
  {%- for host in hosts.split(',') -%}
    {%- set domain = host | trim | lower -%}
    {%- if domain.startswith('www.') -%}
      {%- set domain = domain[4:] -%}
    {%- endif -%}
    {%- if domain -%}
      {%- if not modules.re.match('^[a-z0-9.:_-]+$', domain) -%}
        {{ exceptions.raise_compiler_error("WEB_SITE_HOSTS holds an invalid host: '" ~ host ~ "'") }}
      {%- endif -%}
      {%- if domain not in domains -%}
        {%- do domains.append(domain) -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(domains) }}
{% endmacro %}


{#- A boolean SQL expression: `domain_sql` is one of the site's own domains. -#}
{% macro web_is_site_domain(domain_sql) %}
  {%- set domains = web_site_domains() -%}
  {%- if domains -%}
    {{- domain_sql }} in ('{{ domains | join("', '") }}')
  {%- else -%}
    false
  {%- endif -%}
{% endmacro %}


{#- A 64-bit float type. -#}
{% macro web_type_double() %}
  {{- return(adapter.dispatch('web_type_double', 'stock_platform')()) -}}
{% endmacro %}
{% macro default__web_type_double() %}double{% endmacro %}
{% macro bigquery__web_type_double() %}float64{% endmacro %}


{#- A UTC TIMESTAMP as the wall-clock date and time in WEB_LOGS_TIMEZONE (DuckDB TIMESTAMP,
    BigQuery DATETIME). -#}
{% macro web_local_datetime(ts) %}
  {{- return(adapter.dispatch('web_local_datetime', 'stock_platform')(ts)) -}}
{% endmacro %}
{% macro default__web_local_datetime(ts) -%}
  (({{ ts }} at time zone 'UTC') at time zone '{{ web_timezone() }}')
{%- endmacro %}
{% macro bigquery__web_local_datetime(ts) -%}
  datetime({{ ts }}, '{{ web_timezone() }}')
{%- endmacro %}


{#- Microseconds since 1970-01-01 00:00:00 UTC of a UTC TIMESTAMP (an exact integer, the same
    on every adapter). -#}
{% macro web_epoch_us(ts) %}
  {{- return(adapter.dispatch('web_epoch_us', 'stock_platform')(ts)) -}}
{% endmacro %}
{% macro default__web_epoch_us(ts) %}epoch_us({{ ts }}){% endmacro %}
{% macro bigquery__web_epoch_us(ts) %}unix_micros({{ ts }}){% endmacro %}


{#- ISO day of the week of a DATE: 1 = Monday ... 7 = Sunday. -#}
{% macro web_iso_weekday(date_sql) %}
  {{- return(adapter.dispatch('web_iso_weekday', 'stock_platform')(date_sql)) -}}
{% endmacro %}
{% macro default__web_iso_weekday(date_sql) %}isodow({{ date_sql }}){% endmacro %}
{% macro bigquery__web_iso_weekday(date_sql) -%}
  mod(extract(dayofweek from {{ date_sql }}) + 5, 7) + 1
{%- endmacro %}


{#- `text_sql` matches the (RE2) regular expression `pattern` somewhere. Patterns are written
    without backslashes (character classes instead), so they read the same in both dialects. -#}
{% macro web_regexp_matches(text_sql, pattern) %}
  {{- return(adapter.dispatch('web_regexp_matches', 'stock_platform')(text_sql, pattern)) -}}
{% endmacro %}
{% macro default__web_regexp_matches(text_sql, pattern) -%}
  regexp_matches({{ text_sql }}, '{{ pattern }}')
{%- endmacro %}
{% macro bigquery__web_regexp_matches(text_sql, pattern) -%}
  regexp_contains({{ text_sql }}, r'{{ pattern }}')
{%- endmacro %}


{#- The first capturing group of `pattern` in `text_sql`; NULL when it does not match. -#}
{% macro web_regexp_extract(text_sql, pattern) %}
  {{- return(adapter.dispatch('web_regexp_extract', 'stock_platform')(text_sql, pattern)) -}}
{% endmacro %}
{% macro default__web_regexp_extract(text_sql, pattern) -%}
  case
      when regexp_matches({{ text_sql }}, '{{ pattern }}')
          then regexp_extract({{ text_sql }}, '{{ pattern }}', 1)
  end
{%- endmacro %}
{% macro bigquery__web_regexp_extract(text_sql, pattern) -%}
  regexp_extract({{ text_sql }}, r'{{ pattern }}')
{%- endmacro %}


{#- A deterministic key: the lowercase hex MD5 of an unambiguous text encoding of the values of
    `expressions` (each value as '<length>:<text>', NULL as '~', joined by '|'), so that distinct
    tuples, NULLs included, get distinct keys and the same tuple the same key on every run and
    every adapter. Values are cast to text: dates as YYYY-MM-DD, booleans as true/false;
    timestamps go in as web_epoch_us(). -#}
{% macro web_hash_key(expressions) %}
  {%- set parts = [] -%}
  {%- for expression in expressions -%}
    {%- set text = "cast(" ~ expression ~ " as " ~ dbt.type_string() ~ ")" -%}
    {%- do parts.append(
        "coalesce(cast(length(" ~ text ~ ") as " ~ dbt.type_string() ~ ") || ':' || " ~ text ~ ", '~')"
    ) -%}
  {%- endfor -%}
  {{- dbt.hash(parts | join(" || '|' || ")) -}}
{% endmacro %}
