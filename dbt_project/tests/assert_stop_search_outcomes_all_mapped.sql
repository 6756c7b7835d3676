-- Warns when a published outcome text is not in the stop_search_outcomes seed: add it there.
{{ config(severity='warn') }}

with

stop_searches as (

    select * from {{ ref('stg_police__stop_searches') }}

),

unmapped as (

    select
        outcome,
        count(*) as searches

    from stop_searches
    where outcome_category = 'unmapped'
    group by outcome

)

select * from unmapped
