{#-
    Small-number suppression (statistical disclosure control) of A&E assault attendances.

    Each force-month has two measures (attendances, knife_or_sharp_attendances) and for each one
    equation: 'all ages' = 'under 25' + '25 and over' + 'not known'. That equation is the only
    one inside this mart: every other published number is another force or month, which no sum of
    published cells links. knife_or_sharp_attendances is a subset of attendances, but 'attendances
    minus knife or sharp' is published nowhere, so the two measures share no equation; knife <=
    attendances gives a bound, never a value.

    1. Primary: a count from 1 to 4 is suppressed (shown as NULL, *_suppressed true). Zero is shown.
    2. Secondary: when an equation has exactly one suppressed cell, it could be recovered by
       subtraction, so the smallest other band cell that is shown and not zero is suppressed too
       (ties: under 25, then 25 and over, then not known). Zeros are skipped: a zero is often
       structural ('not known' is always 0 for a department that shares ages), so suppressing it
       would still let the primary cell be recovered.
       - The single suppressed cell is always a band cell: if 'all ages' is 1-4, every band is
         at most 4 and at least one is 1-4, so at least two cells are primary.
       - A candidate always exists: 'all ages' is then shown and, not being 1-4 while at least
         the suppressed band's 1, is 5 or more; the other two bands sum to at least 1, so one of
         them is non-zero, and it is shown (only one cell was primary).
    3. "Repeat until no equation has exactly one suppressed cell": after step 2 the equation has
       two suppressed cells, equations with 0 or >= 2 were not touched, and no cell belongs to a
       second equation, so no equation changes again. The fixed point is reached after one
       secondary pass: no recursion needed. tests/assert_ae_assault_monthly_disclosure_safe.sql
       and the marts suite (expectations/marts.ae.ae_assault_monthly.json) check the result.
-#}
{%- set measures = ['attendances', 'knife_or_sharp_attendances'] -%}

with

attendances as (

    select * from {{ ref('stg_istv__attendances') }}

),

extracts as (

    select * from {{ ref('stg_istv__extracts') }}

),

ae_sites as (

    select * from {{ ref('ae_sites') }}

),

force_areas as (

    select * from {{ ref('force_areas') }}

),

age_bands as (

    select *
    from (
        values
        ('all ages', 0),
        ('under 25', 1),
        ('25 and over', 2),
        ('not known', 3)
    ) as bands (age_band, band_order)

),

-- Sites and periods reported: the landing log's extracts, plus any with attendances (an extract
-- with no attendances is a reported zero, so the landing log is the main source).
site_periods as (

    select site_code, reporting_period_start, reporting_period_end from extracts
    union
    select site_code, reporting_period_start, reporting_period_end from attendances

),

site_days as (

    select distinct
        ae_sites.force_id,
        site_periods.site_code,
        cast(covered.day as date) as day

    from site_periods
    inner join ae_sites
        on site_periods.site_code = ae_sites.site_code
    cross join lateral generate_series(
        site_periods.reporting_period_start,
        site_periods.reporting_period_end,
        interval '1 day'
    ) as covered (day)

),

site_months as (

    select
        force_id,
        site_code,
        cast(date_trunc('month', day) as date) as month,
        count(*) as days_covered

    from site_days
    group by force_id, site_code, cast(date_trunc('month', day) as date)

),

-- A site reports a month when its extracts cover every day of it.
force_month_extracts as (

    select
        force_id,
        month,
        count(*) filter (
            where days_covered = cast(month + interval '1 month' as date) - month
        ) as sites_reporting

    from site_months
    group by force_id, month

),

-- The span of loaded data: first to last month any extract covers.
months as (

    select cast(span.month as date) as month
    from generate_series(
        (select min(month) from site_months),
        (select max(month) from site_months),
        interval '1 month'
    ) as span (month)

),

force_sites as (

    select
        force_id,
        count(*) as sites_expected

    from ae_sites
    group by force_id

),

force_months as (

    select
        force_sites.force_id,
        months.month,
        force_sites.sites_expected,
        coalesce(force_month_extracts.sites_reporting, 0) as sites_reporting,
        case
            when force_month_extracts.force_id is null then 'no extract'
            when force_month_extracts.sites_reporting = force_sites.sites_expected then 'complete'
            else 'partial'
        end as coverage

    from force_sites
    cross join months
    left join force_month_extracts
        on
            force_sites.force_id = force_month_extracts.force_id
            and months.month = force_month_extracts.month

),

counts as (

    select
        force_id,
        month,
        case when grouping(age_group) = 1 then 'all ages' else age_group end as age_band,
        count(*) as attendances,
        count(*) filter (where is_knife_or_sharp) as knife_or_sharp_attendances

    from attendances
    group by grouping sets ((force_id, month, age_group), (force_id, month))

),

-- Counts are NULL only where no extract covers the force-month; otherwise no row means 0.
cells as (

    select
        force_months.*,
        age_bands.age_band,
        age_bands.band_order,
        {% for measure in measures %}
        case
            when force_months.coverage <> 'no extract' then coalesce(counts.{{ measure }}, 0)
        end as {{ measure }}{{ "," if not loop.last }}
        {% endfor %}

    from force_months
    cross join age_bands
    left join counts
        on
            force_months.force_id = counts.force_id
            and force_months.month = counts.month
            and age_bands.age_band = counts.age_band

),

primary_suppression as (

    select
        *,
        {% for measure in measures %}
        coalesce({{ measure }} between 1 and 4, false) as {{ measure }}_is_primary{{ "," if not loop.last }}
        {% endfor %}

    from cells

),

-- Per equation (force-month and measure): how many cells are primary-suppressed, and the band
-- cells ranked for secondary suppression (shown, non-zero band cells first, smallest first).
complement_candidates as (

    select
        *,
        {% for measure in measures %}
        count(*) filter (where {{ measure }}_is_primary) over force_month as {{ measure }}_primary_cells,
        row_number() over (
            partition by force_id, month
            order by
                age_band = 'all ages' or {{ measure }}_is_primary or coalesce({{ measure }}, 0) = 0,
                {{ measure }},
                band_order
        ) as {{ measure }}_complement_rank{{ "," if not loop.last }}
        {% endfor %}

    from primary_suppression
    window force_month as (partition by force_id, month)

),

suppression as (

    select
        *,
        {% for measure in measures %}
        {{ measure }}_is_primary
        or (
            {{ measure }}_primary_cells = 1
            and {{ measure }}_complement_rank = 1
            and age_band <> 'all ages'
            and not {{ measure }}_is_primary
            and {{ measure }} > 0
        ) as {{ measure }}_suppressed{{ "," if not loop.last }}
        {% endfor %}

    from complement_candidates

),

shown as (

    select
        *,
        {% for measure in measures %}
        case when not {{ measure }}_suppressed then {{ measure }} end as {{ measure }}_shown,
        {% endfor %}
        -- the shown under-25 count of the force-month, for the share on the 'all ages' row
        max(case when age_band = 'under 25' and not attendances_suppressed then attendances end)
            over (partition by force_id, month) as under_25_shown

    from suppression

),

final as (

    select
        shown.force_id,
        force_areas.force_name,
        shown.month,
        cast(
            fiscal.fy_start || '/' || lpad(cast(mod(fiscal.fy_start + 1, 100) as text), 2, '0')
            as text
        ) as financial_year,
        cast(fiscal.fy_start as integer) as fy_start,
        cast(mod(cast(extract(month from shown.month) as integer) + 8, 12) / 3 + 1 as integer)
            as financial_quarter,
        shown.age_band,
        cast(shown.attendances_shown as integer) as attendances,
        cast(shown.knife_or_sharp_attendances_shown as integer) as knife_or_sharp_attendances,
        -- cast outside the case: postgres drops the precision of a case result
        cast(
            case
                when shown.age_band = 'all ages' and shown.attendances_shown > 0
                    then round(cast(shown.under_25_shown as numeric) / shown.attendances_shown, 4)
            end
            as numeric(5, 4)
        ) as under_25_share,
        shown.attendances_suppressed,
        shown.knife_or_sharp_attendances_suppressed as knife_or_sharp_suppressed,
        shown.coverage,
        cast(shown.sites_expected as integer) as sites_expected,
        cast(shown.sites_reporting as integer) as sites_reporting,
        coalesce(
            force_areas.is_vru_area and force_areas.vru_start_date <= shown.month,
            false
        ) as is_vru_area

    from shown
    cross join lateral (
        select
            cast(extract(year from shown.month) as integer)
            - case when extract(month from shown.month) < 4 then 1 else 0 end as fy_start
    ) as fiscal
    left join force_areas
        on shown.force_id = force_areas.force_id

)

select * from final
