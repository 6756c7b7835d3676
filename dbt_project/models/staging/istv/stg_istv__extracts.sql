-- One row per site and reporting period that has been loaded (an extract), from the A&E landing
-- log. A re-sent extract for the same site and period replaces the earlier one, so the periods
-- covered do not depend on which of the loads is current; the latest is kept for reference.
-- Built in `restricted` with the rest of the ISTV staging (no row-level data here, though).

with

landed_files as (

    select * from {{ source('audit', 'landed_files') }}

),

final as (

    select
        site_code,
        reporting_period_start,
        reporting_period_end,
        max(load_id) as current_load_id,
        count(*) as loads

    from landed_files
    where
        dataset = 'ae.attendances'
        and outcome in {{ successful_load_statuses() }}
    group by site_code, reporting_period_start, reporting_period_end

)

select * from final
