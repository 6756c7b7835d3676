with

loads as (

    select * from {{ source('audit', 'loads') }}

),

stop_search_loads as (

    select
        load_id,
        force_id,
        cast(month as date) as month,
        origin,
        status,
        rows_read,
        rows_loaded,
        rows_quarantined,
        previous_load_id,
        started_at,
        finished_at,
        status in {{ successful_load_statuses() }} as is_successful

    from loads
    where dataset = 'police.stop_searches'

),

-- The current load of a force-month is its latest successful one; later failed or refused
-- attempts leave it current (macros/current_stop_search_loads.sql).
final as (

    select
        stop_search_loads.*,
        stop_search_loads.load_id in (
            select current_loads.load_id
            from ({{ current_stop_search_loads() }}) as current_loads
        ) as is_current

    from stop_search_loads

)

select * from final
