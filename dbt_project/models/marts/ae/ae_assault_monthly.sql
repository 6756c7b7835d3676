{#-
    A&E assault attendances per force area, month and age band, suppressed, for BI tools.

    The small-number suppression (the four rules: primary 1-4, all-or-nothing secondary,
    publication lag, across builds) is int_ae_cells_suppressed's (its header says what each rule
    protects against); this mart only names the cells: the force, the financial year and quarter,
    VRU membership. Nothing here reads an unsuppressed count.

    The post-hook records this build's figures in restricted.ae_published_cells: the history
    rule 4 compares the next build with.

    Tests: tests/assert_ae_assault_monthly_disclosure_safe.sql, the marts suite
    (expectations/marts.ae.ae_assault_monthly.json) and tests/test_disclosure.py (the attacks).
-#}
{{ config(post_hook=["{{ record_ae_publication(this) }}"]) }}

with

cells as (

    select * from {{ ref('int_ae_cells_suppressed') }}

),

force_areas as (

    select * from {{ ref('force_areas') }}

),

final as (

    select
        cells.force_id,
        force_areas.force_name,
        cells.month,
        cast(
            fiscal.fy_start || '/' || lpad(cast(mod(fiscal.fy_start + 1, 100) as text), 2, '0')
            as text
        ) as financial_year,
        cast(fiscal.fy_start as integer) as fy_start,
        cast(mod(cast(extract(month from cells.month) as integer) + 8, 12) / 3 + 1 as integer)
            as financial_quarter,
        cells.age_band,
        cast(cells.attendances as integer) as attendances,
        cast(cells.knife_or_sharp_attendances as integer) as knife_or_sharp_attendances,
        cells.under_25_share,
        cells.attendances_suppressed,
        cells.knife_or_sharp_suppressed,
        cells.coverage,
        cast(cells.sites_expected as integer) as sites_expected,
        cast(cells.sites_reporting as integer) as sites_reporting,
        coalesce(
            force_areas.is_vru_area and force_areas.vru_start_date <= cells.month,
            false
        ) as is_vru_area

    from cells
    cross join
        lateral (
            select
                cast(extract(year from cells.month) as integer)
                - case when extract(month from cells.month) < 4 then 1 else 0 end as fy_start
        ) as fiscal
    left join force_areas
        on cells.force_id = force_areas.force_id

)

select * from final
