-- The A&E reference seeds (ae_sites, istv_codes) in one test instead of a unique/not_null test
-- per column: every dbt node is an Airflow task of about 8 s. Fails with one row per problem,
-- naming the seed, the key and what is wrong.

with

ae_sites as (

    select * from {{ ref('ae_sites') }}

),

istv_codes as (

    select * from {{ ref('istv_codes') }}

),

force_areas as (

    select force_id from {{ ref('force_areas') }}

),

problems as (

    select 'ae_sites' as seed, site_code as code_key, 'site_code repeated' as problem
    from ae_sites
    group by site_code
    having count(*) > 1

    union all

    select 'ae_sites', coalesce(site_code, '(null)'), 'site_code or force_id missing'
    from ae_sites
    where site_code is null or force_id is null

    union all

    select 'ae_sites', site_code, 'force_id ' || force_id || ' is not in force_areas'
    from ae_sites
    where force_id not in (select force_id from force_areas)

    union all

    select 'istv_codes', value_set || ':' || code, '(value_set, code) repeated'
    from istv_codes
    group by value_set, code
    having count(*) > 1

    union all

    select
        'istv_codes', coalesce(value_set, '(null)') || ':' || coalesce(code, '(null)'),
        'value_set unknown or code/description missing'
    from istv_codes
    where
        value_set is null
        or value_set not in ('assault_method', 'assault_location_type', 'age_band', 'sex')
        or code is null
        or description is null

    union all

    select 'istv_codes', value_set || ':' || code, 'assault method without is_knife_or_sharp'
    from istv_codes
    where value_set = 'assault_method' and is_knife_or_sharp is null

)

select * from problems
