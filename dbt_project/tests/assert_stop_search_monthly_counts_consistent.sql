-- Counts exist exactly for published force-months, and every subset count fits in searches.
with

monthly as (

    select * from {{ ref('stop_search_monthly') }}

),

inconsistent as (

    select *
    from monthly
    where
        (coverage = 'published') <> (searches is not null)
        or (coverage = 'published') <> (arrests is not null)
        or (coverage = 'published') <> (searches_white is not null)
        or s60_searches > weapon_searches
        or weapon_searches > searches
        or arrests > searches
        or outcome_linked_finds > searches
        or under_25_searches > searches
        or searches_black + searches_white > searches
        or outcome_linked_finds > searches_outcome_link_recorded
        or (searches = 0) <> (arrest_rate is null)
        or (searches = 0 and find_rate is not null)

)

select * from inconsistent
