-- One row per day that has requests (the days of web_daily_traffic); date_key is the log_date.
select
    log_date as date_key,
    cast(extract(year from log_date) as {{ dbt.type_bigint() }}) as year,  -- noqa: RF04
    cast(extract(quarter from log_date) as {{ dbt.type_bigint() }}) as quarter,  -- noqa: RF04
    cast(extract(month from log_date) as {{ dbt.type_bigint() }}) as month,  -- noqa: RF04
    cast(extract(day from log_date) as {{ dbt.type_bigint() }}) as day,  -- noqa: RF04
    cast({{ web_iso_weekday('log_date') }} as {{ dbt.type_bigint() }}) as iso_weekday,
    {{ web_iso_weekday('log_date') }} >= 6 as is_weekend
from {{ ref('web_daily_traffic') }}
