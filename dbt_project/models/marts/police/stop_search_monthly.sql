{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['force_id', 'month'],
        on_schema_change='fail',
    )
}}

with

force_areas as (

    select * from {{ ref('force_areas') }}

),

availability as (

    select * from {{ ref('stg_police__availability') }}

),

loads as (

    select * from {{ ref('stg_police__stop_search_loads') }}

),

stop_searches as (

    select * from {{ ref('stg_police__stop_searches') }}

),

-- Every month between the first and last month the source listed or we loaded.
month_spine as (

    select * from {{ ref('int_stop_search_months_spined') }}

),

current_loads as (

    select
        force_id,
        month

    from loads
    where is_current

),

{% if is_incremental() %}

-- Recompute only the months touched since the last build. The change set comes from the load
-- log, not from raw rows: a replaced force-month whose new load has no rows leaves no raw row
-- behind but still has to be recomputed. The overlap re-reads loads that committed while the
-- previous build was running (recomputing a month twice is harmless with delete+insert).
    last_build as (

        select
            max(built_at)
            - cast('{{ var("stop_search_monthly_overlap", "1 hour") }}' as interval) as watermark

        from {{ this }}

    ),

    changed_months as (

        select month
        from loads
        where finished_at > (select watermark from last_build)

        union

        -- newly listed force-months turn not_published into pending
        select month
        from availability
        where first_listed_at > (select watermark from last_build)

        union

        -- months the spine gained since the last build (all forces need a row)
        (
            select month from month_spine
            except
            select month from {{ this }}
        )

    ),

    months_to_build as (

        select month_spine.month

        from month_spine
        inner join changed_months
            on month_spine.month = changed_months.month

    ),

{% else %}

    months_to_build as (

        select month from month_spine

    ),

{% endif %}

force_months as (

    select
        force_areas.force_id,
        force_areas.force_name,
        force_areas.vru_start_date,
        force_areas.s60_relaxed_from,
        months_to_build.month

    from force_areas
    cross join months_to_build

),

monthly_counts as (

    select
        force_id,
        month,
        count(*) as searches,
        count(*) filter (where is_s60) as s60_searches,
        count(*) filter (where is_weapon_search) as weapon_searches,
        count(*) filter (where is_arrest) as arrests,
        count(*) filter (where is_outcome_linked_find) as outcome_linked_finds,
        count(outcome_linked_to_object_of_search) as searches_outcome_link_recorded,
        count(*) filter (where is_under_25) as under_25_searches,
        count(*) filter (where officer_defined_ethnicity = 'Black') as searches_black,
        count(*) filter (where officer_defined_ethnicity = 'White') as searches_white

    from stop_searches
    where month in (select month from months_to_build)
    group by force_id, month

),

force_month_coverage as (

    select
        force_months.force_id,
        force_months.force_name,
        force_months.month,
        case
            when current_loads.force_id is not null then 'published'
            when availability.force_id is not null then 'pending'
            else 'not_published'
        end as coverage,
        -- in force at any time during the month
        coalesce(
            force_months.vru_start_date < force_months.month + interval '1 month',
            false
        ) as is_vru_area,
        coalesce(
            force_months.s60_relaxed_from < force_months.month + interval '1 month',
            false
        ) as s60_relaxed

    from force_months
    left join current_loads
        on
            force_months.force_id = current_loads.force_id
            and force_months.month = current_loads.month
    left join availability
        on
            force_months.force_id = availability.force_id
            and force_months.month = availability.month

),

-- Counts only exist for published force-months: a published month without rows is a true zero,
-- anything else is unknown (NULL). Finds are also unknown when the force left "outcome linked to
-- object of search" blank on every record of the month (e.g. the 2016 Metropolitan files).
counted as (

    select
        force_month_coverage.*,
        {% for count_column in [
            'searches',
            's60_searches',
            'weapon_searches',
            'arrests',
            'under_25_searches',
            'searches_black',
            'searches_white',
            'searches_outcome_link_recorded',
        ] %}
            case
                when force_month_coverage.coverage = 'published'
                    then cast(coalesce(monthly_counts.{{ count_column }}, 0) as integer)
            end as {{ count_column }},
        {% endfor %}
        case
            when
                force_month_coverage.coverage = 'published'
                and not (
                    coalesce(monthly_counts.searches, 0) > 0
                    and coalesce(monthly_counts.searches_outcome_link_recorded, 0) = 0
                )
                then cast(coalesce(monthly_counts.outcome_linked_finds, 0) as integer)
        end as outcome_linked_finds

    from force_month_coverage
    left join monthly_counts
        on
            force_month_coverage.force_id = monthly_counts.force_id
            and force_month_coverage.month = monthly_counts.month

),

final as (

    select
        force_id,
        force_name,
        month,
        coverage,
        searches,
        s60_searches,
        weapon_searches,
        arrests,
        outcome_linked_finds,
        searches_outcome_link_recorded,
        under_25_searches,
        searches_black,
        searches_white,
        -- cast outside the case: postgres drops the precision of a case result
        cast(
            case
                when searches > 0 then round(cast(arrests as numeric) / searches, 4)
            end
            as numeric(6, 4)
        ) as arrest_rate,
        -- cast outside the case: postgres drops the precision of a case result
        cast(
            case
                when searches > 0 then round(cast(outcome_linked_finds as numeric) / searches, 4)
            end
            as numeric(6, 4)
        ) as find_rate,
        is_vru_area,
        s60_relaxed,
        cast(now() as timestamptz) as built_at

    from counted

)

select * from final
