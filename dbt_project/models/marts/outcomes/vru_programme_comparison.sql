{#-
    VRU areas against non-VRU areas, per financial quarter, for BI tools.

    Groups: 'VRU areas' = the force areas of the VRU programme (force_areas.is_vru_area: the 18
    areas of 2019 plus Cleveland and Humberside, members from 2022), fixed for every quarter so that
    the 2018/19 baseline (before any VRU) exists; 'non-VRU areas' = the other areas;
    'England and Wales' = all 43.

    Aggregation: a group's count is the sum over the areas whose figure is shown and complete (A&E:
    coverage 'complete'; police recorded crime: coverage 'complete' and comparable; stop and search:
    all three months published); its rate is that sum over the sum of the same areas' populations
    (never a mean of area rates). *_areas_contributing / *_areas_excluded say how many areas were in
    or out.

    Index: the group's rate over its 2018/19 baseline rate x 100, where the baseline rate is the
    mean of the group's four 2018/19 quarterly rates (NULL unless all four exist). Rates, not
    counts, are indexed, so a quarter with fewer contributing areas is still comparable.
    *_index_gap_vru_vs_non_vru (every row of the quarter) = VRU index - non-VRU index, in index
    points: negative means VRU areas fell further (or rose less) than non-VRU areas against 2018/19.
-#}

{#- indexed measure (column prefix) -> its count column -#}
{%- set counts = {
    'ae_knife': 'ae_knife_attendances',
    'knife_offences': 'knife_offences',
    'knife_homicides': 'knife_homicides',
} -%}
{%- set indexed = ['ae_knife', 'knife_offences', 'knife_homicides'] -%}

with

outcomes as (

    select * from {{ ref('vru_outcomes_quarterly') }}

),

admissions as (

    select * from {{ ref('sharp_object_admissions_yearly') }}

),

area_groups as (

    select
        groups.group_name,
        outcomes.*,
        outcomes.ae_coverage = 'complete' and outcomes.population > 0 as ae_contributes,
        outcomes.ae_months_complete = 3 and outcomes.ae_knife_under_25 is not null as ae_under_25_contributes,
        outcomes.knife_offences_coverage = 'complete'
        and coalesce(outcomes.knife_offences_is_comparable, false)
        and outcomes.population > 0 as knife_offences_contributes,
        outcomes.knife_offences_coverage = 'complete'
        and coalesce(outcomes.knife_offences_is_comparable, false)
        and outcomes.knife_homicides is not null
        and outcomes.population > 0 as knife_homicides_contributes,
        outcomes.stop_search_coverage = 'complete' and outcomes.population > 0 as stop_search_contributes
    from outcomes
    inner join
        (values ('VRU areas'), ('non-VRU areas'), ('England and Wales')) as groups (group_name)
        on
            groups.group_name = 'England and Wales'
            or (groups.group_name = 'VRU areas') = outcomes.in_vru_programme

),

group_quarters as (

    select
        group_name,
        financial_year,
        fy_start,
        financial_quarter,
        quarter_start,
        count(*) as areas_in_group,
        sum(ae_knife_attendances) filter (where ae_contributes) as ae_knife_attendances,
        sum(population) filter (where ae_contributes) as ae_knife_population,
        count(*) filter (where ae_contributes) as ae_knife_areas_contributing,
        sum(ae_knife_under_25) filter (where ae_under_25_contributes) as ae_knife_under_25,
        count(*) filter (where ae_under_25_contributes) as ae_knife_under_25_areas_contributing,
        sum(knife_offences) filter (where knife_offences_contributes) as knife_offences,
        sum(population) filter (where knife_offences_contributes) as knife_offences_population,
        count(*) filter (where knife_offences_contributes) as knife_offences_areas_contributing,
        sum(knife_homicides) filter (where knife_homicides_contributes) as knife_homicides,
        sum(population) filter (where knife_homicides_contributes) as knife_homicides_population,
        count(*) filter (where knife_homicides_contributes) as knife_homicides_areas_contributing,
        sum(searches) filter (where stop_search_contributes) as searches,
        sum(population) filter (where stop_search_contributes) as searches_population,
        count(*) filter (where stop_search_contributes) as stop_search_areas_contributing,
        sum(weapon_searches) filter (where stop_search_contributes) as weapon_searches,
        sum(s60_searches) filter (where stop_search_contributes) as s60_searches,
        sum(arrests) filter (where stop_search_contributes) as arrests,
        sum(outcome_linked_finds) filter (
            where stop_search_contributes and outcome_linked_finds is not null
        ) as outcome_linked_finds,
        sum(searches) filter (
            where stop_search_contributes and outcome_linked_finds is not null
        ) as searches_find_recorded,
        sum(searches_black) filter (where stop_search_contributes) as searches_black,
        sum(population_black) filter (where stop_search_contributes) as population_black,
        sum(searches_white) filter (where stop_search_contributes) as searches_white,
        sum(population_white) filter (where stop_search_contributes) as population_white
    from area_groups
    group by group_name, financial_year, fy_start, financial_quarter, quarter_start

),

group_rates as (

    select
        *,
        {% for measure in indexed %}
            case
                when {{ measure }}_population > 0
                    then cast({{ counts[measure] }} as numeric) * 100000 / {{ measure }}_population
            end as {{ measure }}_rate,
        {% endfor %}
        case
            when searches_population > 0 then cast(searches as numeric) * 1000 / searches_population
        end as searches_rate
    from group_quarters

),

group_baselines as (

    select
        group_name,
    {% for measure in indexed %}
        case
            when count({{ measure }}_rate) filter (where fy_start = 2018) = 4
                then avg({{ measure }}_rate) filter (where fy_start = 2018)
        end as {{ measure }}_baseline_rate{{ ',' if not loop.last }}
    {% endfor %}
    from group_rates
    group by group_name

),

indexed as (

    select
        group_rates.*,
    {% for measure in indexed %}
        group_baselines.{{ measure }}_baseline_rate,
        case
            when group_baselines.{{ measure }}_baseline_rate > 0
                then group_rates.{{ measure }}_rate / group_baselines.{{ measure }}_baseline_rate * 100
        end as {{ measure }}_index{{ ',' if not loop.last }}
    {% endfor %}
    from group_rates
    left join group_baselines
        on group_rates.group_name = group_baselines.group_name

),

gaps as (

    select
        quarter_start,
    {% for measure in indexed %}
        max({{ measure }}_index) filter (where group_name = 'VRU areas')
        - max({{ measure }}_index) filter (where group_name = 'non-VRU areas')
            as {{ measure }}_index_gap{{ ',' if not loop.last }}
    {% endfor %}
    from indexed
    group by quarter_start

),

final as (

    select
        indexed.group_name,
        indexed.financial_year,
        cast(indexed.fy_start as integer) as fy_start,
        cast(indexed.financial_quarter as integer) as financial_quarter,
        indexed.quarter_start,
        cast(indexed.areas_in_group as integer) as areas_in_group,
        'Census 2011 usual residents (ONS), by police force area' as population_source,
        {% for measure in indexed %}
            cast(indexed.{{ counts[measure] }} as integer) as {{ counts[measure] }},
            cast(indexed.{{ measure }}_population as bigint) as {{ measure }}_population,
            cast(indexed.{{ measure }}_areas_contributing as integer) as {{ measure }}_areas_contributing,
            cast(indexed.areas_in_group - indexed.{{ measure }}_areas_contributing as integer)
                as {{ measure }}_areas_excluded,
            cast(round(indexed.{{ measure }}_rate, 4) as numeric(14, 4)) as {{ measure }}_rate_per_100k,
            cast(round(indexed.{{ measure }}_baseline_rate, 4) as numeric(14, 4))
                as {{ measure }}_baseline_rate_per_100k,
            cast(round(indexed.{{ measure }}_index, 1) as numeric(10, 1)) as {{ measure }}_index,
            cast(round(gaps.{{ measure }}_index_gap, 1) as numeric(10, 1)) as {{ measure }}_index_gap_vru_vs_non_vru,
        {% endfor %}
        cast(indexed.ae_knife_under_25 as integer) as ae_knife_under_25,
        cast(indexed.ae_knife_under_25_areas_contributing as integer) as ae_knife_under_25_areas_contributing,
        cast(indexed.searches as integer) as searches,
        cast(indexed.searches_population as bigint) as searches_population,
        cast(indexed.stop_search_areas_contributing as integer) as stop_search_areas_contributing,
        cast(indexed.areas_in_group - indexed.stop_search_areas_contributing as integer)
            as stop_search_areas_excluded,
        cast(round(indexed.searches_rate, 2) as numeric(10, 2)) as searches_per_1000,
        cast(indexed.weapon_searches as integer) as weapon_searches,
        cast(indexed.s60_searches as integer) as s60_searches,
        cast(
            case
                when indexed.searches_find_recorded > 0
                    then round(cast(indexed.outcome_linked_finds as numeric) / indexed.searches_find_recorded, 4)
            end
            as numeric(6, 4)
        ) as find_rate,
        cast(
            case
                when indexed.searches > 0 then round(cast(indexed.arrests as numeric) / indexed.searches, 4)
            end
            as numeric(6, 4)
        ) as arrest_rate,
        cast(
            case
                when indexed.searches_white > 0 and indexed.population_black > 0 and indexed.population_white > 0
                    then round(
                            (cast(indexed.searches_black as numeric) / indexed.population_black)
                            / (cast(indexed.searches_white as numeric) / indexed.population_white),
                            2
                        )
            end
            as numeric(10, 2)
        ) as black_white_search_ratio,
        cast(case when indexed.group_name = 'England and Wales' then admissions.admissions end as integer)
            as hes_england_admissions_fy,
        cast(
            case when indexed.group_name = 'England and Wales' then admissions.finished_consultant_episodes end
            as integer
        ) as hes_england_episodes_fy
    from indexed
    left join gaps
        on indexed.quarter_start = gaps.quarter_start
    left join admissions
        on
            indexed.fy_start = admissions.fy_start
            and admissions.geography_code = 'E92000001'

)

select * from final
