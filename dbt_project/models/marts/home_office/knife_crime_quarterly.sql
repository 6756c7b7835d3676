{%- set offence_groups = [
    'homicide',
    'attempted_murder',
    'threats_to_kill',
    'assault_injury_or_intent',
    'robbery',
    'rape',
    'sexual_assault',
] -%}

with

knife_offences as (

    select * from {{ ref('stg_home_office__knife_offences') }}

),

force_areas as (

    select * from {{ ref('force_areas') }}

),

series_breaks as (

    select * from {{ ref('knife_crime_series_breaks') }}

),

-- Figures count only through an offence group; an unmapped offence fails the build
-- (tests/assert_knife_offences_all_mapped.sql) before this model is built.
force_quarters as (

    select
        force_id,
        financial_year,
        fy_start,
        financial_quarter,
        quarter_start,
        sum(offences) filter (where offence_group is not null) as total_offences,
        {% for offence_group in offence_groups %}
            sum(offences) filter (where offence_group = '{{ offence_group }}') as {{ offence_group }},
        {% endfor %}
        count(*) filter (where is_withheld and offence_group is not null) as withheld_figures,
        bool_or(is_revised) as is_revised,
        max(edition_load_id) as edition_load_id

    from knife_offences
    group by force_id, financial_year, fy_start, financial_quarter, quarter_start

),

-- A non_comparable break covers the quarters its span [applies_from, applies_to] overlaps; a
-- method_change covers every quarter ending on or after applies_from. A break without a force
-- applies to all forces.
quarter_breaks as (

    select
        force_quarters.force_id,
        force_quarters.fy_start,
        force_quarters.financial_quarter,
        bool_or(series_breaks.kind = 'non_comparable') as has_non_comparable_break,
        string_agg(series_breaks.break_id, ',' order by series_breaks.break_id) as series_breaks

    from force_quarters
    inner join series_breaks
        on
            (series_breaks.force_id is null or series_breaks.force_id = force_quarters.force_id)
            and series_breaks.applies_from
            < force_quarters.quarter_start + interval '3 months'
            and (
                series_breaks.kind = 'method_change'
                or series_breaks.applies_to is null
                or series_breaks.applies_to >= force_quarters.quarter_start
            )
    group by force_quarters.force_id, force_quarters.fy_start, force_quarters.financial_quarter

),

final as (

    select
        force_quarters.force_id,
        force_quarters.financial_year,
        force_quarters.fy_start,
        force_quarters.financial_quarter,
        force_quarters.quarter_start,
        case
            when force_quarters.withheld_figures > 0 then 'partial'
            else 'complete'
        end as coverage,
        cast(force_quarters.total_offences as integer) as total_offences,
        {% for offence_group in offence_groups %}
            cast(force_quarters.{{ offence_group }} as integer) as {{ offence_group }},
        {% endfor %}
        cast(force_quarters.withheld_figures as integer) as withheld_figures,
        cast(population.all_ages as bigint) as population,
        case
            when population.all_ages is not null
                then population.vintage || ', by police force area'
                    || case
                        when force_quarters.fy_start > population.mid_year
                            then '; carried forward to ' || force_quarters.financial_year
                                || ' (no later estimate held)'
                        else ''
                    end
        end as population_source,
        -- cast outside the case: postgres drops the precision of a case result
        cast(
            case
                when force_quarters.withheld_figures = 0 and population.all_ages > 0
                    then round(
                            cast(force_quarters.total_offences as numeric) * 100000
                            / population.all_ages,
                            2
                        )
            end
            as numeric(10, 2)
        ) as rate_per_100k,
        coalesce(
            force_areas.is_vru_area and force_areas.vru_start_date <= force_quarters.quarter_start,
            false
        ) as is_vru_area,
        not coalesce(quarter_breaks.has_non_comparable_break, false) as is_comparable,
        quarter_breaks.series_breaks,
        force_quarters.is_revised,
        cast(force_quarters.edition_load_id as bigint) as edition_load_id

    from force_quarters
    {{ join_population_of_year('population', 'force_quarters.force_id', 'force_quarters.fy_start') }}
    left join force_areas
        on force_quarters.force_id = force_areas.force_id
    left join quarter_breaks
        on
            force_quarters.force_id = quarter_breaks.force_id
            and force_quarters.fy_start = quarter_breaks.fy_start
            and force_quarters.financial_quarter = quarter_breaks.financial_quarter

)

select * from final
