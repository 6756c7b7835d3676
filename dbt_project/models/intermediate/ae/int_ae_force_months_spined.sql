-- Built in `restricted` if ever materialised (dbt_project.yml, models.vru.intermediate.ae): it
-- reads the row-level A&E staging, although it carries no attendance counts.

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

)

select * from force_months
