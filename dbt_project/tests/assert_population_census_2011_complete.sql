-- population_census_2011 must cover all 43 force areas, with all_residents the sum of the six
-- groups and England and Wales totalling 56,075,912 usual residents (2011 Census).
with

population as (

    select * from {{ ref('population_census_2011') }}

),

summary as (

    select
        count(*) as forces,
        count(distinct force_id) as distinct_forces,
        sum(all_residents) as all_residents,
        count(*) filter (
            where all_residents <> white + black + asian + chinese + mixed + other
        ) as forces_not_summing

    from population

)

select * from summary
where
    forces <> 43
    or distinct_forces <> 43
    or all_residents <> 56075912
    or forces_not_summing <> 0
