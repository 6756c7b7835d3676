{#-
    VRU outcome measures per force area and financial quarter, for BI tools.

    Spine: every force area of the force_areas seed (43) x every financial quarter from the first
    to the last quarter that any upstream mart (ae_assault_monthly, knife_crime_quarterly,
    stop_search_monthly) has a period in. A measure without data for the quarter is NULL with its
    coverage saying why, never 0.

    Denominators: ONS mid-year estimates by force area (population_mid_year), all ages and 0-24,
    of the mid-year in the quarter's financial year (mid-2019 for 2019/20). A financial year after
    the last estimate held uses the last one, flagged population_carried_forward; a year before the
    first (2018) has no population and no rates. population_source quotes the estimate's vintage.
    The Black/White search ratio keeps 2011 Census residents by ethnic group
    (population_census_2011): no later population by ethnic group and force area is held.
    None of these measures reports London as one area, so Metropolitan and City of London keep
    their own populations.

    VRU membership and funding are the financial year's (vru_membership_years): Cleveland and
    Humberside are VRU areas from 2022/23 only. A year after the seed's last uses its last
    membership, flagged vru_membership_carried_forward, with no funding.

    A&E suppression carried through: a quarter's count is the sum of its three months; if any
    month's cell is withheld (1-4, or withheld to protect one) the quarter's count is NULL and
    flagged suppressed, because a sum that includes a withheld cell would reveal it. A quarterly
    sum from 1 to 4 is withheld too (re-applying the 1-4 rule).

    Baseline: a measure's mean quarterly count over 2018/19 (fy_start 2018) for the area, only when
    all four 2018/19 quarters have a complete (and, for police recorded crime, comparable) figure;
    otherwise NULL and *_baseline_coverage 'no baseline'. change_pct = (count / baseline - 1) * 100,
    to 1 decimal place, on quarters whose own figure is complete (and comparable); NULL when the
    baseline is missing or 0 ('zero baseline'). The population is the same every quarter, so the
    change in the count equals the change in the rate. The three columns are written by the macro
    baseline_change (macros/baseline_change.sql), the same for every measure. The change is in the
    count: with a population that changes by year it is not the change in the rate (the
    population grew by about 3% from mid-2018 to mid-2023).
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

ae_forces as (

    select distinct force_id from ae_monthly

),

ae_quarters as (

    select
        force_id,
        cast(date_trunc('quarter', month) as date) as quarter_start,
        count(*) filter (where age_band = 'all ages' and coverage = 'complete') as months_complete,
        count(*) filter (where age_band = 'all ages' and coverage <> 'no extract') as months_with_extract,
        coalesce(bool_or(knife_or_sharp_suppressed) filter (where age_band = 'all ages'), false)
            as any_month_suppressed,
        sum(knife_or_sharp_attendances) filter (where age_band = 'all ages') as knife_sum,
        coalesce(bool_or(knife_or_sharp_suppressed) filter (where age_band = 'under 25'), false)
            as any_month_under_25_suppressed,
        sum(knife_or_sharp_attendances) filter (where age_band = 'under 25') as knife_under_25_sum
    from ae_monthly
    group by force_id, cast(date_trunc('quarter', month) as date)

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
        membership_spans.allocation_source,
        ae_forces.force_id is not null as has_ae_sites,
        coalesce(ae_quarters.months_complete, 0) as ae_months_complete,
        coalesce(ae_quarters.months_with_extract, 0) as ae_months_with_extract,
        coalesce(ae_quarters.any_month_suppressed, false) as ae_any_month_suppressed,
        ae_quarters.knife_sum as ae_knife_sum,
        coalesce(ae_quarters.any_month_under_25_suppressed, false) as ae_any_month_under_25_suppressed,
        ae_quarters.knife_under_25_sum as ae_knife_under_25_sum,
        knife_quarterly.total_offences as knife_offences,
        coalesce(knife_quarterly.coverage, 'no data') as knife_offences_coverage,
        knife_quarterly.is_comparable as knife_offences_is_comparable,
        knife_quarterly.homicide as knife_homicides,
        coalesce(stop_search_quarters.months_published, 0) as stop_search_months_published,
        stop_search_quarters.searches,
        stop_search_quarters.weapon_searches,
        stop_search_quarters.s60_searches,
        stop_search_quarters.arrests,
        stop_search_quarters.outcome_linked_finds,
        stop_search_quarters.searches_black,
        stop_search_quarters.searches_white
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
    left join ae_forces
        on spine.force_id = ae_forces.force_id
    left join ae_quarters
        on
            spine.force_id = ae_quarters.force_id
            and spine.quarter_start = ae_quarters.quarter_start
    left join knife_quarterly
        on
            spine.force_id = knife_quarterly.force_id
            and spine.fy_start = knife_quarterly.fy_start
            and spine.financial_quarter = knife_quarterly.financial_quarter
    left join stop_search_quarters
        on
            spine.force_id = stop_search_quarters.force_id
            and spine.quarter_start = stop_search_quarters.quarter_start

),

measures as (

    select
        *,
        case
            when not has_ae_sites then 'no A&E data for this area'
            when ae_months_with_extract = 0 then 'no extract'
            when ae_any_month_suppressed or ae_knife_sum between 1 and 4 then 'suppressed'
            when ae_months_complete = 3 then 'complete'
            else 'partial'
        end as ae_coverage,
        coalesce(
            has_ae_sites
            and ae_months_with_extract > 0
            and (ae_any_month_under_25_suppressed or ae_knife_under_25_sum between 1 and 4),
            false
        ) as ae_knife_under_25_suppressed,
        case
            when stop_search_months_published = 3 then 'complete'
            when stop_search_months_published > 0 then 'partial'
            else 'no data'
        end as stop_search_coverage
    from joined

),

shown as (

    select
        *,
        case
            when ae_coverage in ('complete', 'partial') then ae_knife_sum
        end as ae_knife_attendances,
        case
            when ae_months_with_extract > 0 and not ae_knife_under_25_suppressed
                then ae_knife_under_25_sum
        end as ae_knife_under_25,
        -- figures a baseline or a change may use
        ae_coverage = 'complete' as ae_is_complete,
        ae_months_complete = 3 and not ae_knife_under_25_suppressed as ae_under_25_is_complete,
        knife_offences_coverage = 'complete' and coalesce(knife_offences_is_comparable, false)
            as knife_is_usable
    from measures

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
    from shown
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
        coalesce(shown.is_vru, false) as is_vru_area,
        shown.in_vru_programme,
        coalesce(shown.fy_start > shown.membership_fy_start, false) as vru_membership_carried_forward,
        cast(
            case
                when shown.fy_start > shown.membership_fy_start then null
                when not shown.is_vru then 0
                else shown.allocation_gbp
            end
            as numeric(12, 2)
        ) as vru_funding_gbp,
        case
            when shown.fy_start > shown.membership_fy_start then null
            when not shown.is_vru then false
            else shown.allocation_is_approximate
        end as vru_funding_is_approximate,
        case
            when shown.fy_start > shown.membership_fy_start
                then 'no allocation held for ' || shown.financial_year
            when shown.is_vru and shown.allocation_gbp is not null
                then shown.allocation_source || coalesce(' (' || nullif(shown.allocation_note, '') || ')', '')
            when shown.is_vru
                then 'no cited figure: ' || shown.allocation_note
        end as vru_funding_source,
        shown.s60_relaxed_from <= shown.quarter_end as s60_relaxed,
        cast(shown.population as bigint) as population,
        cast(shown.population_0_24 as bigint) as population_0_24,
        cast(shown.population_year as integer) as population_year,
        coalesce(shown.fy_start > shown.population_year, false) as population_carried_forward,
        cast(shown.population_black as bigint) as population_black,
        cast(shown.population_white as bigint) as population_white,
        case
            when shown.population is not null
                then shown.population_vintage || ', by police force area'
                    || case
                        when shown.fy_start > shown.population_year
                            then '; carried forward to ' || shown.financial_year || ' (no later estimate held)'
                        else ''
                    end
                    || '; Black/White search ratio: Census 2011 residents by ethnic group'
        end as population_source,

        -- measure 1: A&E knife or sharp object assault attendances
        cast(shown.ae_knife_attendances as integer) as ae_knife_attendances,
        shown.ae_coverage = 'suppressed' as ae_knife_attendances_suppressed,
        cast(shown.ae_knife_under_25 as integer) as ae_knife_under_25,
        shown.ae_knife_under_25_suppressed,
        shown.ae_coverage,
        cast(shown.ae_months_complete as integer) as ae_months_complete,
        cast(
            case
                when shown.ae_is_complete and shown.population > 0
                    then round(cast(shown.ae_knife_attendances as numeric) * 100000 / shown.population, 2)
            end
            as numeric(10, 2)
        ) as ae_knife_rate_per_100k,
        cast(
            case
                when shown.ae_under_25_is_complete and shown.population_0_24 > 0
                    then round(cast(shown.ae_knife_under_25 as numeric) * 100000 / shown.population_0_24, 2)
            end
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
            case
                when shown.knife_offences_coverage = 'complete' and shown.population > 0
                    then round(cast(shown.knife_offences as numeric) * 100000 / shown.population, 2)
            end
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
            case
                when shown.stop_search_coverage = 'complete' and shown.population > 0
                    then round(cast(shown.searches as numeric) * 1000 / shown.population, 2)
            end
            as numeric(10, 2)
        ) as searches_per_1000,
        cast(shown.weapon_searches as integer) as weapon_searches,
        cast(shown.s60_searches as integer) as s60_searches,
        cast(shown.arrests as integer) as arrests,
        cast(shown.outcome_linked_finds as integer) as outcome_linked_finds,
        cast(
            case
                when shown.searches > 0 then round(cast(shown.outcome_linked_finds as numeric) / shown.searches, 4)
            end
            as numeric(6, 4)
        ) as find_rate,
        cast(
            case
                when shown.searches > 0 then round(cast(shown.arrests as numeric) / shown.searches, 4)
            end
            as numeric(6, 4)
        ) as arrest_rate,
        cast(shown.searches_black as integer) as searches_black,
        cast(shown.searches_white as integer) as searches_white,
        cast(
            case
                when shown.searches_white > 0 and shown.population_black > 0 and shown.population_white > 0
                    then round(
                            (cast(shown.searches_black as numeric) / shown.population_black)
                            / (cast(shown.searches_white as numeric) / shown.population_white),
                            2
                        )
            end
            as numeric(10, 2)
        ) as black_white_search_ratio

    from shown
    left join baselines
        on shown.force_id = baselines.force_id

)

select * from final
