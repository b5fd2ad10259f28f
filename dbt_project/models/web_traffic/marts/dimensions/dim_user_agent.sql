-- One row per user agent family combination ever seen, plus the member for requests without a
-- user agent (every family NULL, not a bot).  Rebuilt as a whole from the per-day members
-- (int_web_user_agent_days).
with members as (

    select
        ua_key,
        browser_family,
        browser_major,
        os_family,
        device_family,
        is_bot
    from {{ ref('int_web_user_agent_days') }}

    union all

    -- the absent member: no user agent
    select
        {{ web_hash_key([
            'cast(null as ' ~ dbt.type_string() ~ ')',
            'cast(null as ' ~ dbt.type_string() ~ ')',
            'cast(null as ' ~ dbt.type_string() ~ ')',
            'cast(null as ' ~ dbt.type_string() ~ ')',
            'false',
        ]) }} as ua_key,
        cast(null as {{ dbt.type_string() }}) as browser_family,
        cast(null as {{ dbt.type_string() }}) as browser_major,
        cast(null as {{ dbt.type_string() }}) as os_family,
        cast(null as {{ dbt.type_string() }}) as device_family,
        false as is_bot

)

select distinct
    ua_key,
    browser_family,
    browser_major,
    os_family,
    device_family,
    is_bot
from members
