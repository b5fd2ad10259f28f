{#-
  The run window.  A Dagster partition run passes
      --vars '{"min_date": "YYYY-MM-DD", "max_date": "YYYY-MM-DD"}'   (both inclusive)
  (the days that changed) and every mart then
    * writes the rows with trade_date in [min_date, max_date + 364 days]: the window and every
      later day whose lookback reaches into it (stock_write_filter), and
    * reads the source from min_date - 364 days to max_date + 364 days (stock_read_filter),
  whether or not the target table exists yet.  Without the vars (e.g. `dbt build --full-refresh`)
  both filters admit every date and everything is built.

  Date arithmetic goes through dbt's cross-database macros, so the same model SQL compiles on
  DuckDB and BigQuery; the bounds are constant expressions, so BigQuery prunes partitions.
-#}

{#- Days in the 52-week range [trade_date - 364 days, trade_date]; also the source lookback of
    the metrics models: a listing that traded in the past year has its previous session, its
    last 20 returns and (at ~245 sessions a year) its last 60 sessions inside this range. -#}
{% macro stock_52w_days() %}{{ return(364) }}{% endmacro %}


{#- The window vars, validated: {'min_date': 'YYYY-MM-DD' or none, 'max_date': ... or none}. -#}
{% macro stock_window() %}
  {%- set bounds = {} -%}
  {%- for name in ['min_date', 'max_date'] -%}
    {%- set value = var(name, none) -%}
    {%- if value is not none and (value | string | trim) != '' -%}
      {%- set value = value | string | trim -%}
      {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a date 'YYYY-MM-DD', got '" ~ value ~ "'") }}
      {%- endif -%}
      {%- do modules.datetime.datetime.strptime(value, '%Y-%m-%d') -%}  {#- a real calendar date -#}
      {%- do bounds.update({name: value}) -%}
    {%- else -%}
      {%- do bounds.update({name: none}) -%}
    {%- endif -%}
  {%- endfor -%}
  {#- One bound alone would make a run that rewrites an open-ended range: on BigQuery, whose
      window is the list of days written, that has no list. -#}
  {%- if (bounds.min_date is none) != (bounds.max_date is none) -%}
    {{ exceptions.raise_compiler_error("give both vars min_date and max_date, or neither (a rebuild of every date)") }}
  {%- endif -%}
  {%- if bounds.min_date and bounds.max_date and bounds.min_date > bounds.max_date -%}
    {{ exceptions.raise_compiler_error("min_date " ~ bounds.min_date ~ " is after max_date " ~ bounds.max_date) }}
  {%- endif -%}
  {#- A full refresh rebuilds the tables from scratch; with a window they would keep only the
      window's rows. -#}
  {%- if flags.FULL_REFRESH and (bounds.min_date or bounds.max_date) -%}
    {{ exceptions.raise_compiler_error("--full-refresh rebuilds every date: run it without the min_date/max_date vars") }}
  {%- endif -%}
  {{ return(bounds) }}
{% endmacro %}


{#- A boolean SQL expression: `column` lies in [min_date - lookback_days, max_date + lookahead_days].
    Without a window it is still a constant bound on `column` (the first date BigQuery has):
    BigQuery rejects a query over a source with require_partition_filter that has no filter on
    its partition column, also through a view and also for a full rebuild. -#}
{% macro stock_window_filter(column='trade_date', lookback_days=0, lookahead_days=0) %}
  {%- set window = stock_window() -%}
  {%- set conditions = [] -%}
  {%- if window.min_date -%}
    {%- set lower = stock_date_add("cast('" ~ window.min_date ~ "' as date)", -(lookback_days | int)) -%}
    {%- do conditions.append(column ~ " >= " ~ lower) -%}
  {%- endif -%}
  {%- if window.max_date -%}
    {%- set upper = stock_date_add("cast('" ~ window.max_date ~ "' as date)", lookahead_days | int) -%}
    {%- do conditions.append(column ~ " <= " ~ upper) -%}
  {%- endif -%}
  {%- if not conditions -%}
    {%- do conditions.append(column ~ " >= cast('0001-01-01' as date)") -%}
  {%- endif -%}
  {{- return(conditions | join(' and ')) -}}
{% endmacro %}


{#- The SQL date expression `date_sql` plus `days` days (a constant expression when date_sql is). -#}
{% macro stock_date_add(date_sql, days) %}
  {%- if days == 0 -%}
    {{- return(date_sql) -}}
  {%- endif -%}
  {{- return("cast(" ~ (dbt.dateadd("day", days, date_sql) | trim) ~ " as date)") -}}
{% endmacro %}


{#- The days a mart rewrites for a run window: the window and every later day whose lookback
    reaches into it (stock_52w_days after max_date), so that a changed day refreshes every row
    computed from it, whatever order the windows run in. -#}
{% macro stock_write_filter(column='trade_date') %}
  {{- return(stock_window_filter(column, lookahead_days=stock_52w_days())) -}}
{% endmacro %}


{#- What the marts read from staging for a run window: the rows they write plus their lookback. -#}
{% macro stock_read_filter(column='trade_date') %}
  {{- return(stock_window_filter(column, lookback_days=stock_52w_days(), lookahead_days=stock_52w_days())) -}}
{% endmacro %}


{#- The day partitions a run window rewrites on BigQuery (insert_overwrite's static `partitions`):
    every day of [min_date, max_date + lookahead_days] as a date literal, so that a day with no
    rows any more (re-marked closed) is emptied too. None without the vars: then the model
    replaces the whole table (macros/incremental_config.sql). -#}
{% macro window_write_partitions(lookahead_days) %}
  {%- set window = stock_window() -%}
  {%- if not (window.min_date and window.max_date) -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set datetime = modules.datetime -%}
  {%- set first = datetime.date.fromisoformat(window.min_date) -%}
  {%- set last = datetime.date.fromisoformat(window.max_date) + datetime.timedelta(days=lookahead_days) -%}
  {%- set days = [] -%}
  {%- for offset in range((last - first).days + 1) -%}
    {%- do days.append("date '" ~ (first + datetime.timedelta(days=offset)).isoformat() ~ "'") -%}
  {%- endfor -%}
  {{ return(days) }}
{% endmacro %}
