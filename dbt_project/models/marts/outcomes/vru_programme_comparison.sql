{#-
    VRU areas against non-VRU areas, per financial quarter, for BI tools.

    Groups: membership of the quarter (vru_outcomes_quarterly.is_vru_area, from the
    vru_membership_years seed): 'VRU areas' = the areas with a VRU in the quarter's financial year
    (none before 2019/20, the 18 from 2019/20, 20 from 2022/23 with Cleveland and Humberside);
    'non-VRU areas' = the other areas (all 43 in 2018/19); 'England and Wales' = all 43. Every
    group has a row every quarter, with areas_in_group 0 when it has no member (VRU areas before
    2019/20).

    Aggregation: a group's count is the sum over the areas whose figure is shown and complete (A&E:
    coverage 'complete'; police recorded crime: coverage 'complete' and comparable; stop and search:
    all three months published); its rate is that sum over the sum of the same areas' populations
    (never a mean of area rates). *_areas_contributing / *_areas_excluded say how many areas were in
    or out.

    Index: the group's rate over its baseline rate x 100. Because membership changes, the baseline
    belongs to the quarter's members: it is the mean of the four 2018/19 quarterly rates (sum over
    sum, each over that quarter's contributing areas) of the areas in the group in this quarter
    (NULL unless all four exist). So a quarter's index always compares the same areas with their
    own 2018/19 level: from 2022/23 the VRU index includes Cleveland and Humberside against their
    2018/19 figures, and the non-VRU index leaves them out. Rates, not counts, are indexed, so a
    quarter with fewer contributing areas, or another year's population, is still comparable.
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
{#- indexed measure -> the area_groups flag saying an area's figure counts -#}
{%- set contributes = {
    'ae_knife': 'ae_contributes',
    'knife_offences': 'knife_offences_contributes',
    'knife_homicides': 'knife_homicides_contributes',
} -%}

with

outcomes as (

    select * from {{ ref('vru_outcomes_quarterly') }}

),

admissions as (

    select * from {{ ref('sharp_object_admissions_yearly') }}

),

force_areas as (

    select * from {{ ref('force_areas') }}

),

groups as (

    select group_name
    from (values ('VRU areas'), ('non-VRU areas'), ('England and Wales')) as names (group_name)

),

-- The quarters, with the denominators' vintage (every area of a quarter uses the same mid-year).
quarters as (

    select
        quarter_start,
        financial_year,
        fy_start,
        financial_quarter,
        max(population_source) as population_source,
        bool_or(population_carried_forward) as population_carried_forward
    from outcomes
    group by quarter_start, financial_year, fy_start, financial_quarter

),

-- England's population of the year, for HES (published for England only): the sum of the English
-- force areas' estimates.
england_population as (

    select
        outcomes.quarter_start,
        sum(outcomes.population) as population,
        sum(outcomes.population_0_24) as population_0_24
    from outcomes
    inner join force_areas
        on outcomes.force_id = force_areas.force_id
    where force_areas.country = 'England'
    group by outcomes.quarter_start

),

area_groups as (

    select
        groups.group_name,
        outcomes.*,
        outcomes.ae_coverage = 'complete' and outcomes.population > 0 as ae_contributes,
        outcomes.ae_months_complete = 3 and outcomes.ae_knife_under_25 is not null as ae_under_25_contributes,
        outcomes.ae_under_25_rate_coverage = 'complete' and outcomes.population_0_24 > 0
            as ae_under_25_rate_contributes,
        outcomes.knife_offences_coverage = 'complete'
        and coalesce(outcomes.knife_offences_is_comparable, false)
        and outcomes.population > 0 as knife_offences_contributes,
        outcomes.knife_offences_coverage = 'complete'
        and coalesce(outcomes.knife_offences_is_comparable, false)
        and outcomes.knife_homicides is not null
        and outcomes.population > 0 as knife_homicides_contributes,
        outcomes.stop_search_coverage = 'complete' and outcomes.population > 0 as stop_search_contributes
    from outcomes
    inner join groups
        on
            groups.group_name = 'England and Wales'
            or (groups.group_name = 'VRU areas') = outcomes.is_vru_area

),

group_sums as (

    select
        group_name,
        quarter_start,
        count(*) as areas_in_group,
        sum(ae_knife_attendances) filter (where ae_contributes) as ae_knife_attendances,
        sum(population) filter (where ae_contributes) as ae_knife_population,
        count(*) filter (where ae_contributes) as ae_knife_areas_contributing,
        sum(ae_knife_under_25) filter (where ae_under_25_contributes) as ae_knife_under_25,
        count(*) filter (where ae_under_25_contributes) as ae_knife_under_25_areas_contributing,
        sum(ae_knife_under_25) filter (where ae_under_25_rate_contributes) as ae_knife_under_25_rated,
        sum(population_0_24) filter (where ae_under_25_rate_contributes) as ae_knife_under_25_population,
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
    group by group_name, quarter_start

),

-- Every group every quarter, members or not.
group_quarters as (

    select
        groups.group_name,
        quarters.financial_year,
        quarters.fy_start,
        quarters.financial_quarter,
        quarters.quarter_start,
        quarters.population_source,
        quarters.population_carried_forward,
        coalesce(group_sums.areas_in_group, 0) as areas_in_group,
        {% for measure in indexed %}
            group_sums.{{ counts[measure] }},
            group_sums.{{ measure }}_population,
            coalesce(group_sums.{{ measure }}_areas_contributing, 0) as {{ measure }}_areas_contributing,
        {% endfor %}
        group_sums.ae_knife_under_25,
        coalesce(group_sums.ae_knife_under_25_areas_contributing, 0) as ae_knife_under_25_areas_contributing,
        group_sums.ae_knife_under_25_rated,
        group_sums.ae_knife_under_25_population,
        group_sums.searches,
        group_sums.searches_population,
        coalesce(group_sums.stop_search_areas_contributing, 0) as stop_search_areas_contributing,
        group_sums.weapon_searches,
        group_sums.s60_searches,
        group_sums.arrests,
        group_sums.outcome_linked_finds,
        group_sums.searches_find_recorded,
        group_sums.searches_black,
        group_sums.population_black,
        group_sums.searches_white,
        group_sums.population_white
    from groups
    cross join quarters
    left join group_sums
        on
            groups.group_name = group_sums.group_name
            and quarters.quarter_start = group_sums.quarter_start

),

group_rates as (

    select
        *,
        {% for measure in indexed %}
            {{ rate_per(counts[measure], measure ~ '_population', 100000) }} as {{ measure }}_rate,
        {% endfor %}
        {{ rate_per('searches', 'searches_population', 1000) }} as searches_rate
    from group_quarters

),

-- The baseline of a group in a quarter: its members of that quarter, each with its own 2018/19
-- quarters (the England and Wales rows of area_groups hold every area once).
baseline_members as (

    select
        members.group_name,
        members.quarter_start,
        base.quarter_start as baseline_quarter,
        {% for measure in indexed %}
            base.{{ contributes[measure] }} as {{ measure }}_contributes,
            base.{{ counts[measure] }},
        {% endfor %}
        base.population
    from area_groups as members
    inner join area_groups as base
        on
            members.force_id = base.force_id
            and base.group_name = 'England and Wales'
            and base.fy_start = 2018

),

baseline_quarters as (

    select
        group_name,
        quarter_start,
        baseline_quarter,
    {% for measure in indexed %}
        {{ rate_per(
            'sum(' ~ counts[measure] ~ ') filter (where ' ~ measure ~ '_contributes)',
            'sum(population) filter (where ' ~ measure ~ '_contributes)',
            100000
        ) }} as {{ measure }}_rate{{ ',' if not loop.last }}
    {% endfor %}
    from baseline_members
    group by group_name, quarter_start, baseline_quarter

),

group_baselines as (

    select
        group_name,
        quarter_start,
    {% for measure in indexed %}
        case
            when count({{ measure }}_rate) = 4 then avg({{ measure }}_rate)
        end as {{ measure }}_baseline_rate{{ ',' if not loop.last }}
    {% endfor %}
    from baseline_quarters
    group by group_name, quarter_start

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
        on
            group_rates.group_name = group_baselines.group_name
            and group_rates.quarter_start = group_baselines.quarter_start

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
        coalesce(
            indexed.population_source, 'no population estimate held for ' || indexed.financial_year || ': no rates'
        ) as population_source,
        indexed.population_carried_forward,
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
        cast(indexed.ae_knife_under_25_population as bigint) as ae_knife_under_25_population,
        cast(
            {{ rate_per('indexed.ae_knife_under_25_rated', 'indexed.ae_knife_under_25_population', 100000, 4) }}
            as numeric(14, 4)
        ) as ae_knife_under_25_rate_per_100k,
        cast(indexed.searches as integer) as searches,
        cast(indexed.searches_population as bigint) as searches_population,
        cast(indexed.stop_search_areas_contributing as integer) as stop_search_areas_contributing,
        cast(indexed.areas_in_group - indexed.stop_search_areas_contributing as integer)
            as stop_search_areas_excluded,
        cast(round(indexed.searches_rate, 2) as numeric(10, 2)) as searches_per_1000,
        cast(indexed.weapon_searches as integer) as weapon_searches,
        cast(indexed.s60_searches as integer) as s60_searches,
        cast(
            {{ rate_per('indexed.outcome_linked_finds', 'indexed.searches_find_recorded', 1, 4) }} as numeric(6, 4)
        ) as find_rate,
        cast({{ rate_per('indexed.arrests', 'indexed.searches', 1, 4) }} as numeric(6, 4)) as arrest_rate,
        {{ black_white_search_ratio(
            'indexed.searches_black', 'indexed.population_black', 'indexed.searches_white', 'indexed.population_white'
        ) }} as black_white_search_ratio,
        cast(case when indexed.group_name = 'England and Wales' then admissions.admissions end as integer)
            as hes_england_admissions_fy,
        cast(
            case when indexed.group_name = 'England and Wales' then admissions.finished_consultant_episodes end
            as integer
        ) as hes_england_episodes_fy,
        cast(case when indexed.group_name = 'England and Wales' then admissions.age_0_24 end as integer)
            as hes_england_episodes_0_24_fy,
        cast(case when indexed.group_name = 'England and Wales' then england_population.population end as bigint)
            as hes_england_population,
        cast(
            case when indexed.group_name = 'England and Wales' then england_population.population_0_24 end as bigint
        ) as hes_england_population_0_24,
        cast(
            {{ rate_per(
                'admissions.admissions', 'england_population.population', 100000, 2,
                "indexed.group_name = 'England and Wales'"
            ) }}
            as numeric(10, 2)
        ) as hes_england_admissions_per_100k_fy,
        cast(
            {{ rate_per(
                'admissions.age_0_24', 'england_population.population_0_24', 100000, 2,
                "indexed.group_name = 'England and Wales'"
            ) }}
            as numeric(10, 2)
        ) as hes_england_episodes_0_24_per_100k_fy
    from indexed
    left join gaps
        on indexed.quarter_start = gaps.quarter_start
    left join admissions
        on
            indexed.fy_start = admissions.fy_start
            and admissions.geography_code = 'E92000001'
    left join england_population
        on indexed.quarter_start = england_population.quarter_start

)

select * from final
