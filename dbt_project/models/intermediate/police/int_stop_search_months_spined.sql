with

availability as (

    select * from {{ ref('stg_police__availability') }}

),

loads as (

    select * from {{ ref('stg_police__stop_search_loads') }}

),

current_loads as (

    select
        force_id,
        month

    from loads
    where is_current

),

listed_or_loaded_months as (

    select month from availability
    union
    select month from current_loads

),

-- Every month between the first and last month the source listed or we loaded, so that a
-- force-month nobody published still gets a row (shown as missing, never as zero).
month_spine as (

    select cast(spine.month_start as date) as month

    from (
        select
            cast(min(month) as timestamp) as first_month,
            cast(max(month) as timestamp) as last_month

        from listed_or_loaded_months
    ) as bounds
    cross join
        lateral
        generate_series(bounds.first_month, bounds.last_month, interval '1 month')
            as spine (month_start)

)

select * from month_spine
