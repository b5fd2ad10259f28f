-- One row per second of the day: time_key 0..86399 is the seconds since midnight in
-- WEB_LOGS_TIMEZONE.  Generated, not read from the source.
with digits as (

    select 0 as digit
    union all
    select 1
    union all
    select 2
    union all
    select 3
    union all
    select 4
    union all
    select 5
    union all
    select 6
    union all
    select 7
    union all
    select 8
    union all
    select 9

),

seconds as (

    select
        ten_thousands.digit * 10000
        + thousands.digit * 1000
        + hundreds.digit * 100
        + tens.digit * 10
        + ones.digit as time_key
    from digits as ten_thousands
    cross join digits as thousands
    cross join digits as hundreds
    cross join digits as tens
    cross join digits as ones

)

select
    cast(time_key as {{ dbt.type_bigint() }}) as time_key,
    cast(floor(time_key / 3600) as {{ dbt.type_bigint() }}) as hour,  -- noqa: RF04
    cast(floor(mod(time_key, 3600) / 60) as {{ dbt.type_bigint() }}) as minute,  -- noqa: RF04
    cast(mod(time_key, 60) as {{ dbt.type_bigint() }}) as second  -- noqa: RF04
from seconds
where time_key < 86400
