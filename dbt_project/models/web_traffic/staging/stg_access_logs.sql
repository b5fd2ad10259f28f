-- One row per request of web_raw.access_logs, with the derived columns every web model uses:
-- the star schema's keys, the page and referrer classification, the local time of day and the
-- page-view flag.  A view over the whole source: the models that read it filter log_date by the
-- run window, and the filter is pushed down through the view to the partitioned source.  (The
-- window is not baked into the view: runs of different windows may overlap, and one would
-- replace the view under the other.)
{#- RE2 patterns, without backslashes (macros/web_sql.sql) -#}
{%- set referrer_host = '^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//(?:[^/?#@]*@)?([^/?#:]+)' -%}
{%- set search_domain = '(^|[.])(google|bing|naver|daum|yahoo|duckduckgo)([.]|$)' -%}
{%- set social_domain = '(^|[.])(facebook|instagram|twitter|youtube|linkedin|kakao)([.]|$)' -%}
{%- set social_short_domain = '(^|[.])(x[.]com|t[.]co)$' %}

with requests as (

    select
        log_date,
        ts,
        client_prefix,
        visitor_id,
        method,
        path,
        query,
        protocol,
        status,
        response_bytes,
        referrer,
        user_agent,
        browser_family,
        browser_major,
        os_family,
        device_family,
        -- no user agent (NULL): not a bot
        coalesce(is_bot, false) as is_bot,
        source_file,
        line_number,
        {{ web_local_datetime('ts') }} as local_ts,
        -- the host of an absolute referrer URL, lower-cased, without port and a leading 'www.'
        nullif(
            regexp_replace(
                lower({{ web_regexp_extract('referrer', referrer_host) }}),
                '^www[.]',
                ''
            ),
            ''
        ) as referrer_domain,
        -- 'page': the last path segment has no extension (text after its last dot) or html/htm
        case
            when path is null then null
            when
                not {{ web_regexp_matches('path', '[.][^/.]*$') }}
                or {{ web_regexp_matches('lower(path)', '[.]html?$') }}
                then 'page'
            else 'asset'
        end as page_type,
        -- the first segment of a path with two or more segments, else '/'
        case
            when path is null then null
            when {{ web_regexp_matches('path', '^/[^/]*/') }}
                then {{ web_regexp_extract('path', '^/([^/]*)/') }}
            when {{ web_regexp_matches('path', '^[^/]+/') }}
                then {{ web_regexp_extract('path', '^([^/]+)/') }}
            else '/'
        end as section
    from {{ source('web_raw', 'access_logs') }}

),

classified as (

    select
        *,
        case
            when referrer is null or trim(referrer) = '' then 'direct'
            when {{ web_is_site_domain('referrer_domain') }} then 'internal'
            when
                {{ web_regexp_matches('referrer_domain', search_domain) }}
                then 'search'
            when
                {{ web_regexp_matches('referrer_domain', social_domain) }}
                or {{ web_regexp_matches('referrer_domain', social_short_domain) }}
                then 'social'
            else 'other'
        end as referrer_type,
        coalesce(
            method = 'GET'
            and page_type = 'page'
            and (status between 200 and 299 or status = 304)
            and not is_bot,
            false
        ) as is_page_view
    from requests

)

select
    {{ web_hash_key(['log_date', 'source_file', 'line_number']) }} as request_id,
    log_date,
    ts,
    log_date as date_key,
    cast(
        extract(hour from local_ts) * 3600
        + extract(minute from local_ts) * 60
        + extract(second from local_ts)
        as {{ dbt.type_bigint() }}
    ) as time_key,
    client_prefix,
    visitor_id,
    method,
    path,
    query,
    protocol,
    status,
    concat(substr(cast(status as {{ dbt.type_string() }}), 1, 1), 'xx') as status_class,
    response_bytes,
    referrer,
    user_agent,
    browser_family,
    browser_major,
    os_family,
    device_family,
    is_bot,
    source_file,
    line_number,
    {{ web_hash_key(['path']) }} as page_key,
    page_type,
    section,
    {{ web_hash_key(['browser_family', 'browser_major', 'os_family', 'device_family', 'is_bot']) }} as ua_key,
    {{ web_hash_key(['referrer_domain', 'referrer_type']) }} as referrer_key,
    referrer_domain,
    referrer_type,
    is_page_view
from classified
