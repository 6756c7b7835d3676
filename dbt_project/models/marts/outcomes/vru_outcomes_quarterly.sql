{#-
    VRU outcome measures per force area and financial quarter, for BI tools.

    Spine, denominators and VRU membership: int_force_area_quarters_spined (every force area x
    every quarter any upstream mart has a period in; ONS mid-year estimates of the quarter's
    financial year; membership and funding of that year). A measure without data for the quarter
    is NULL with its coverage saying why, never 0.

    A&E suppression carried through: int_ae_quarters_suppressed sums the three months of
    ae_assault_monthly's already suppressed figures, withholds a quarter when any month is
    withheld and re-applies the 1-4 rule to the sum.

    Rates: the macro rate_per (count per 100,000 of the year's population, NULL unless the count
    is complete); the Black/White search ratio: the macro black_white_search_ratio.

    Baseline: a measure's mean quarterly count over 2018/19 (fy_start 2018) for the area, only when
    all four 2018/19 quarters have a complete (and, for police recorded crime, comparable) figure;
    otherwise NULL and *_baseline_coverage 'no baseline'. change_pct = (count / baseline - 1) * 100,
    to 1 decimal place, on quarters whose own figure is complete (and comparable); NULL when the
    baseline is missing or 0 ('zero baseline'). The three columns are written by the macro
    baseline_change (macros/baseline_change.sql), the same for every measure. The change is in the
    count: with a population that changes by year it is not the change in the rate (the
    population grew by about 3% from mid-2018 to mid-2023).
-#}

with

force_area_quarters as (

    select * from {{ ref('int_force_area_quarters_spined') }}

),

ae_quarters as (

    select * from {{ ref('int_ae_quarters_suppressed') }}

),

knife_quarterly as (

    select * from {{ ref('knife_crime_quarterly') }}

),

stop_search_monthly as (

    select * from {{ ref('stop_search_monthly') }}

),

-- the force areas with A&E sites: every one has quarters in the A&E mart
ae_forces as (

    select distinct force_id from ae_quarters

),

stop_search_quarters as (

    select
        force_id,
        cast(date_trunc('quarter', month) as date) as quarter_start,
        count(*) filter (where coverage = 'published') as months_published,
        sum(searches) as searches,
        sum(weapon_searches) as weapon_searches,
        sum(s60_searches) as s60_searches,
        sum(arrests) as arrests,
        -- NULL when a published month has no recorded find at all (the force left the field blank)
        case
            when count(*) filter (where coverage = 'published' and outcome_linked_finds is null) = 0
                then sum(outcome_linked_finds)
        end as outcome_linked_finds,
        sum(searches_black) as searches_black,
        sum(searches_white) as searches_white
    from stop_search_monthly
    group by force_id, cast(date_trunc('quarter', month) as date)

),

joined as (

    select
        force_area_quarters.*,
        case
            when ae_forces.force_id is null then 'no A&E data for this area'
            else coalesce(ae_quarters.coverage, 'no extract')
        end as ae_coverage,
        ae_quarters.knife_or_sharp_attendances as ae_knife_attendances,
        coalesce(ae_quarters.knife_or_sharp_suppressed, false) as ae_knife_attendances_suppressed,
        ae_quarters.knife_or_sharp_under_25 as ae_knife_under_25,
        coalesce(ae_quarters.knife_or_sharp_under_25_suppressed, false) as ae_knife_under_25_suppressed,
        coalesce(ae_quarters.months_complete, 0) as ae_months_complete,
        -- figures a baseline, a change or a rate may use
        coalesce(ae_quarters.is_complete, false) as ae_is_complete,
        coalesce(ae_quarters.under_25_is_complete, false) as ae_under_25_is_complete,
        knife_quarterly.total_offences as knife_offences,
        coalesce(knife_quarterly.coverage, 'no data') as knife_offences_coverage,
        knife_quarterly.is_comparable as knife_offences_is_comparable,
        knife_quarterly.homicide as knife_homicides,
        coalesce(knife_quarterly.coverage, 'no data') = 'complete' and coalesce(knife_quarterly.is_comparable, false)
            as knife_is_usable,
        coalesce(stop_search_quarters.months_published, 0) as stop_search_months_published,
        case
            when stop_search_quarters.months_published = 3 then 'complete'
            when stop_search_quarters.months_published > 0 then 'partial'
            else 'no data'
        end as stop_search_coverage,
        stop_search_quarters.searches,
        stop_search_quarters.weapon_searches,
        stop_search_quarters.s60_searches,
        stop_search_quarters.arrests,
        stop_search_quarters.outcome_linked_finds,
        stop_search_quarters.searches_black,
        stop_search_quarters.searches_white
    from force_area_quarters
    left join ae_forces
        on force_area_quarters.force_id = ae_forces.force_id
    left join ae_quarters
        on
            force_area_quarters.force_id = ae_quarters.force_id
            and force_area_quarters.quarter_start = ae_quarters.quarter_start
    left join knife_quarterly
        on
            force_area_quarters.force_id = knife_quarterly.force_id
            and force_area_quarters.fy_start = knife_quarterly.fy_start
            and force_area_quarters.financial_quarter = knife_quarterly.financial_quarter
    left join stop_search_quarters
        on
            force_area_quarters.force_id = stop_search_quarters.force_id
            and force_area_quarters.quarter_start = stop_search_quarters.quarter_start

),

baselines as (

    select
        force_id,
        case
            when count(*) filter (where fy_start = 2018 and ae_is_complete) = 4
                then avg(ae_knife_attendances) filter (where fy_start = 2018 and ae_is_complete)
        end as ae_knife_baseline,
        case
            when count(*) filter (where fy_start = 2018 and ae_under_25_is_complete) = 4
                then avg(ae_knife_under_25) filter (where fy_start = 2018 and ae_under_25_is_complete)
        end as ae_knife_under_25_baseline,
        case
            when count(*) filter (where fy_start = 2018 and knife_is_usable) = 4
                then avg(knife_offences) filter (where fy_start = 2018 and knife_is_usable)
        end as knife_offences_baseline,
        case
            when
                count(*) filter (
                    where fy_start = 2018 and knife_is_usable and knife_homicides is not null
                ) = 4
                then avg(knife_homicides) filter (where fy_start = 2018 and knife_is_usable)
        end as knife_homicides_baseline
    from joined
    group by force_id

),

final as (

    select
        shown.force_id,
        shown.force_name,
        shown.financial_year,
        cast(shown.fy_start as integer) as fy_start,
        cast(shown.financial_quarter as integer) as financial_quarter,
        shown.quarter_start,
        shown.is_vru_area,
        shown.in_vru_programme,
        shown.vru_membership_carried_forward,
        cast(shown.vru_funding_gbp as numeric(12, 2)) as vru_funding_gbp,
        shown.vru_funding_is_approximate,
        shown.vru_funding_source,
        shown.s60_relaxed,
        cast(shown.population as bigint) as population,
        cast(shown.population_0_24 as bigint) as population_0_24,
        cast(shown.population_year as integer) as population_year,
        shown.population_carried_forward,
        cast(shown.population_black as bigint) as population_black,
        cast(shown.population_white as bigint) as population_white,
        shown.population_source,

        -- measure 1: A&E knife or sharp object assault attendances
        cast(shown.ae_knife_attendances as integer) as ae_knife_attendances,
        shown.ae_knife_attendances_suppressed,
        cast(shown.ae_knife_under_25 as integer) as ae_knife_under_25,
        shown.ae_knife_under_25_suppressed,
        shown.ae_coverage,
        cast(shown.ae_months_complete as integer) as ae_months_complete,
        cast(
            {{ rate_per('shown.ae_knife_attendances', 'shown.population', 100000, 2, 'shown.ae_is_complete') }}
            as numeric(10, 2)
        ) as ae_knife_rate_per_100k,
        cast(
            {{ rate_per(
                'shown.ae_knife_under_25', 'shown.population_0_24', 100000, 2, 'shown.ae_under_25_is_complete'
            ) }}
            as numeric(10, 2)
        ) as ae_knife_under_25_rate_per_100k,
        case
            when shown.population_0_24 is null then 'no under-25 population'
            when shown.ae_under_25_is_complete then 'complete'
            else 'no complete count'
        end as ae_under_25_rate_coverage,
        {{ baseline_change('ae_knife', 'shown.ae_knife_attendances', 'shown.ae_is_complete') }},
        {{ baseline_change('ae_knife_under_25', 'shown.ae_knife_under_25', 'shown.ae_under_25_is_complete') }},

        -- measure 2: police recorded knife or sharp instrument offences
        cast(shown.knife_offences as integer) as knife_offences,
        shown.knife_offences_coverage,
        shown.knife_offences_is_comparable,
        cast(
            {{ rate_per(
                'shown.knife_offences', 'shown.population', 100000, 2, "shown.knife_offences_coverage = 'complete'"
            ) }}
            as numeric(10, 2)
        ) as knife_offences_rate_per_100k,
        {{ baseline_change('knife_offences', 'shown.knife_offences', 'shown.knife_is_usable') }},

        -- measure 3: homicides involving a knife or sharp instrument
        cast(shown.knife_homicides as integer) as knife_homicides,
        {{ baseline_change(
            'knife_homicides', 'shown.knife_homicides',
            'shown.knife_is_usable and shown.knife_homicides is not null'
        ) }},

        -- context: stop and search
        cast(shown.searches as integer) as searches,
        cast(shown.stop_search_months_published as integer) as stop_search_months_published,
        shown.stop_search_coverage,
        cast(
            {{ rate_per('shown.searches', 'shown.population', 1000, 2, "shown.stop_search_coverage = 'complete'") }}
            as numeric(10, 2)
        ) as searches_per_1000,
        cast(shown.weapon_searches as integer) as weapon_searches,
        cast(shown.s60_searches as integer) as s60_searches,
        cast(shown.arrests as integer) as arrests,
        cast(shown.outcome_linked_finds as integer) as outcome_linked_finds,
        cast({{ rate_per('shown.outcome_linked_finds', 'shown.searches', 1, 4) }} as numeric(6, 4)) as find_rate,
        cast({{ rate_per('shown.arrests', 'shown.searches', 1, 4) }} as numeric(6, 4)) as arrest_rate,
        cast(shown.searches_black as integer) as searches_black,
        cast(shown.searches_white as integer) as searches_white,
        {{ black_white_search_ratio(
            'shown.searches_black', 'shown.population_black', 'shown.searches_white', 'shown.population_white'
        ) }} as black_white_search_ratio

    from joined as shown
    left join baselines
        on shown.force_id = baselines.force_id

)

select * from final
