-- One combined check of the two outcome marts (one node, not many generic tests). Returns a row
-- per problem:
--  * missing_force_quarter: a force area of the seed without a row for a quarter of the span;
--  * small_ae_count_shown: an A&E count from 1 to 4 shown (must be withheld);
--  * group_total_mismatch: a comparison group's (members of the quarter) knife offences, A&E or
--    search total differs from the sum over its contributing areas in vru_outcomes_quarterly;
--  * england_and_wales_not_sum_of_groups: 'England and Wales' differs from VRU + non-VRU.
with

outcomes as (

    select * from {{ ref('vru_outcomes_quarterly') }}

),

comparison as (

    select * from {{ ref('vru_programme_comparison') }}

),

force_areas as (

    select * from {{ ref('force_areas') }}

),

quarters as (

    select distinct quarter_start from outcomes

),

missing_force_quarters as (

    select
        'missing_force_quarter' as problem,
        force_areas.force_id || ' ' || quarters.quarter_start as detail
    from force_areas
    cross join quarters
    left join outcomes
        on
            force_areas.force_id = outcomes.force_id
            and quarters.quarter_start = outcomes.quarter_start
    where outcomes.force_id is null

),

small_counts as (

    select
        'small_ae_count_shown' as problem,
        force_id || ' ' || quarter_start as detail
    from outcomes
    where ae_knife_attendances between 1 and 4 or ae_knife_under_25 between 1 and 4

),

area_sums as (

    select
        groups.group_name,
        outcomes.quarter_start,
        sum(outcomes.knife_offences) filter (
            where outcomes.knife_offences_coverage = 'complete' and outcomes.knife_offences_is_comparable
            and outcomes.population > 0
        ) as knife_offences,
        sum(outcomes.ae_knife_attendances) filter (
            where outcomes.ae_coverage = 'complete' and outcomes.population > 0
        ) as ae_knife_attendances,
        sum(outcomes.searches) filter (
            where outcomes.stop_search_coverage = 'complete' and outcomes.population > 0
        ) as searches
    from outcomes
    inner join
        (values ('VRU areas'), ('non-VRU areas'), ('England and Wales')) as groups (group_name)
        on
            groups.group_name = 'England and Wales'
            or (groups.group_name = 'VRU areas') = outcomes.is_vru_area
    group by groups.group_name, outcomes.quarter_start

),

group_mismatches as (

    select
        'group_total_mismatch' as problem,
        comparison.group_name || ' ' || comparison.quarter_start as detail
    from comparison
    left join area_sums
        on
            comparison.group_name = area_sums.group_name
            and comparison.quarter_start = area_sums.quarter_start
    where
        (comparison.knife_offences is distinct from area_sums.knife_offences)
        or (comparison.ae_knife_attendances is distinct from area_sums.ae_knife_attendances)
        or (comparison.searches is distinct from area_sums.searches)

),

national_mismatches as (

    select
        'england_and_wales_not_sum_of_groups' as problem,
        cast(quarter_start as text) as detail
    from comparison
    group by quarter_start
    having
        sum(coalesce(knife_offences, 0)) filter (where group_name <> 'England and Wales')
        <> sum(coalesce(knife_offences, 0)) filter (where group_name = 'England and Wales')
        or sum(areas_in_group) filter (where group_name <> 'England and Wales')
        <> sum(areas_in_group) filter (where group_name = 'England and Wales')

),

final as (

    select * from missing_force_quarters
    union all
    select * from small_counts
    union all
    select * from group_mismatches
    union all
    select * from national_mismatches

)

select * from final
