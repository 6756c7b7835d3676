-- The mart's searches per force-month equal the current staged records (catches incremental
-- runs that missed a changed force-month).
with

monthly as (

    select * from {{ ref('stop_search_monthly') }}

),

stop_searches as (

    select * from {{ ref('stg_police__stop_searches') }}

),

staged as (

    select
        force_id,
        month,
        count(*) as searches

    from stop_searches
    group by force_id, month

),

mismatches as (

    select
        monthly.force_id,
        monthly.month,
        monthly.searches as mart_searches,
        staged.searches as staged_searches

    from monthly
    left join staged
        on
            monthly.force_id = staged.force_id
            and monthly.month = staged.month
    where
        monthly.coverage = 'published'
        and monthly.searches <> coalesce(staged.searches, 0)

)

select * from mismatches
