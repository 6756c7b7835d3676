{#-
    Every force area x every financial quarter the outcome marts report, with what each rate
    divides by and the area's VRU membership that quarter.

    Spine: every force area of the force_areas seed (43) x every financial quarter from the first
    to the last quarter that any upstream mart (ae_assault_monthly, knife_crime_quarterly,
    stop_search_monthly) has a period in.

    Denominators: ONS mid-year estimates by force area (population_mid_year), all ages and 0-24,
    of the mid-year in the quarter's financial year (mid-2019 for 2019/20), through the macro
    join_population_of_year. A financial year after the last estimate held uses the last one,
    flagged population_carried_forward; a year before the first (2018) has no population (and so
    no rates). population_source quotes the estimate's vintage. The Black/White search ratio keeps
    2011 Census residents by ethnic group (population_census_2011): no later population by ethnic
    group and force area is held. No measure reports London as one area, so Metropolitan and City
    of London keep their own populations.

    VRU membership and funding are the financial year's (vru_membership_years): Cleveland and
    Humberside are VRU areas from 2022/23 only. A year after the seed's last uses its last
    membership, flagged vru_membership_carried_forward, with no funding.
-#}

with

force_areas as (

    select * from {{ ref('force_areas') }}

),

census_2011 as (

    select * from {{ ref('population_census_2011') }}

),

vru_membership_years as (

    select * from {{ ref('vru_membership_years') }}

),

ae_monthly as (

    select * from {{ ref('ae_assault_monthly') }}

),

knife_quarterly as (

    select * from {{ ref('knife_crime_quarterly') }}

),

stop_search_monthly as (

    select * from {{ ref('stop_search_monthly') }}

),

periods as (

    select cast(date_trunc('quarter', month) as date) as quarter_start from ae_monthly
    union all
    select cast(date_trunc('quarter', month) as date) as quarter_start from stop_search_monthly
    union all
    select quarter_start from knife_quarterly

),

-- Financial quarters are calendar quarters (April-June is Q1), so date_trunc('quarter') finds them.
quarters as (

    select cast(series.quarter_start as date) as quarter_start
    from
        (
            select
                min(quarter_start) as first_quarter,
                max(quarter_start) as last_quarter
            from periods
        ) as span,
        generate_series(span.first_quarter, span.last_quarter, interval '3 months')
            as series (quarter_start)

),

fiscal_quarters as (

    select
        quarter_start,
        cast(extract(year from quarter_start - interval '3 months') as integer) as fy_start,
        cast(mod(cast(extract(month from quarter_start) as integer) + 8, 12) / 3 + 1 as integer)
            as financial_quarter,
        cast(quarter_start + interval '3 months' - interval '1 day' as date) as quarter_end
    from quarters

),

membership_spans as (

    select
        *,
        lead(fy_start) over (partition by force_id order by fy_start) as next_fy_start
    from vru_membership_years

),

spine as (

    select
        force_areas.force_id,
        force_areas.force_name,
        force_areas.is_vru_area as in_vru_programme,
        force_areas.s60_relaxed_from,
        fiscal_quarters.quarter_start,
        fiscal_quarters.quarter_end,
        fiscal_quarters.fy_start,
        fiscal_quarters.financial_quarter,
        fiscal_quarters.fy_start || '/'
        || lpad(cast(mod(fiscal_quarters.fy_start + 1, 100) as text), 2, '0') as financial_year
    from force_areas
    cross join fiscal_quarters

),

joined as (

    select
        spine.*,
        population_estimate.mid_year as population_year,
        population_estimate.all_ages as population,
        population_estimate.age_0_24 as population_0_24,
        population_estimate.vintage as population_vintage,
        census_2011.black as population_black,
        census_2011.white as population_white,
        membership_spans.fy_start as membership_fy_start,
        membership_spans.is_vru,
        membership_spans.allocation_gbp,
        membership_spans.allocation_is_approximate,
        membership_spans.allocation_note,
        membership_spans.allocation_source
    from spine
    -- each estimate serves the years from its mid-year to the next one's; the last, every later year
    {{ join_population_of_year('population_estimate', 'spine.force_id', 'spine.fy_start') }}
    left join census_2011
        on spine.force_id = census_2011.force_id
    left join membership_spans
        on
            spine.force_id = membership_spans.force_id
            and spine.fy_start >= membership_spans.fy_start
            and (membership_spans.next_fy_start is null or spine.fy_start < membership_spans.next_fy_start)

),

final as (

    select
        force_id,
        force_name,
        financial_year,
        fy_start,
        financial_quarter,
        quarter_start,
        coalesce(is_vru, false) as is_vru_area,
        in_vru_programme,
        coalesce(fy_start > membership_fy_start, false) as vru_membership_carried_forward,
        case
            when fy_start > membership_fy_start then null
            when not is_vru then 0
            else allocation_gbp
        end as vru_funding_gbp,
        case
            when fy_start > membership_fy_start then null
            when not is_vru then false
            else allocation_is_approximate
        end as vru_funding_is_approximate,
        case
            when fy_start > membership_fy_start
                then 'no allocation held for ' || financial_year
            when is_vru and allocation_gbp is not null
                then allocation_source || coalesce(' (' || nullif(allocation_note, '') || ')', '')
            when is_vru
                then 'no cited figure: ' || allocation_note
        end as vru_funding_source,
        s60_relaxed_from <= quarter_end as s60_relaxed,
        population,
        population_0_24,
        population_year,
        coalesce(fy_start > population_year, false) as population_carried_forward,
        population_black,
        population_white,
        case
            when population is not null
                then population_vintage || ', by police force area'
                    || case
                        when fy_start > population_year
                            then '; carried forward to ' || financial_year || ' (no later estimate held)'
                        else ''
                    end
                    || '; Black/White search ratio: Census 2011 residents by ethnic group'
        end as population_source
    from joined

)

select * from final
