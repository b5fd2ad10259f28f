-- One row per (referrer_domain, referrer_type) ever seen, plus the member for requests without a
-- referrer ('direct').  Rebuilt as a whole from the per-day members (int_web_referrer_days).
with members as (

    select
        referrer_key,
        referrer_domain,
        referrer_type
    from {{ ref('int_web_referrer_days') }}

    union all

    -- the absent member: no referrer
    select
        {{ web_hash_key(['cast(null as ' ~ dbt.type_string() ~ ')', "'direct'"]) }} as referrer_key,
        cast(null as {{ dbt.type_string() }}) as referrer_domain,
        'direct' as referrer_type

)

select distinct
    referrer_key,
    referrer_domain,
    referrer_type
from members
