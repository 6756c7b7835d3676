-- Warns when a force-quarter's current cells come from different editions: a later edition
-- published the force-quarter but without an offence an earlier one had (a renamed or dropped
-- offence). The older figure stays current (an edition that omits a cell does not delete it), so
-- a renamed offence would be counted twice in knife_crime_quarterly: check the editions named here.
{{ config(severity='warn') }}

with

knife_offences as (

    select * from {{ ref('stg_home_office__knife_offences') }}

),

cells as (

    select
        force_id,
        financial_year,
        fy_start,
        financial_quarter,
        offence,
        edition_load_id,
        max(edition_load_id) over (
            partition by force_id, fy_start, financial_quarter
        ) as latest_edition_load_id

    from knife_offences

),

stale_cells as (

    select
        force_id,
        financial_year,
        financial_quarter,
        latest_edition_load_id,
        count(*) as cells_not_in_latest_edition,
        string_agg(
            offence || ' (edition ' || cast(edition_load_id as text) || ')',
            ', ' order by offence
        ) as offences_not_in_latest_edition

    from cells
    where edition_load_id < latest_edition_load_id
    group by force_id, financial_year, fy_start, financial_quarter, latest_edition_load_id

)

select * from stale_cells
