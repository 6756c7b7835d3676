-- Every force id in the seeds and models that name a force is one of the 43 force areas.
-- One test over all of them instead of a relationships test per table: Cosmos runs a test with
-- two parents as its own Airflow task, and each task costs about 8 s of dbt start-up on 2 cores
-- (seven such tasks per transform run). Fails listing each table and unknown id.
-- stg_police__stop_searches keeps its own relationships test: there an unknown id is a warning
-- (data.police.uk publishes British Transport Police, which is not a force area).

with

force_areas as (

    select force_id from {{ ref('force_areas') }}

),

named as (

    select 'force_name_variants' as in_table, force_id from {{ ref('force_name_variants') }}
    union all
    select 'knife_crime_series_breaks', force_id from {{ ref('knife_crime_series_breaks') }}
    where force_id is not null
    union all
    select 'population_census_2011', force_id from {{ ref('population_census_2011') }}
    union all
    select 'population_mid_year', force_id from {{ ref('population_mid_year') }}
    union all
    select 'vru_membership_years', force_id from {{ ref('vru_membership_years') }}
    union all
    select 'stg_home_office__knife_offences', force_id from {{ ref('stg_home_office__knife_offences') }}
    union all
    select 'stop_search_monthly', force_id from {{ ref('stop_search_monthly') }}
    union all
    select 'knife_crime_quarterly', force_id from {{ ref('knife_crime_quarterly') }}

),

final as (

    select in_table, force_id, count(*) as rows_with_it
    from named
    where force_id not in (select force_id from force_areas)
    group by in_table, force_id

)

select * from final
