-- One row per page (path) ever requested, plus the member for requests without a path.
-- Rebuilt as a whole from the per-day members (int_web_page_days): a path that no longer occurs
-- on any day disappears, as in a full refresh.
with members as (

    select
        page_key,
        path,
        page_type,
        section
    from {{ ref('int_web_page_days') }}

    union all

    -- the absent member: a request of another shape (a TLS probe) has no path
    select
        {{ web_hash_key(['cast(null as ' ~ dbt.type_string() ~ ')']) }} as page_key,
        cast(null as {{ dbt.type_string() }}) as path,  -- noqa: RF04
        cast(null as {{ dbt.type_string() }}) as page_type,
        cast(null as {{ dbt.type_string() }}) as section

)

select distinct
    page_key,
    path,
    page_type,
    section
from members
