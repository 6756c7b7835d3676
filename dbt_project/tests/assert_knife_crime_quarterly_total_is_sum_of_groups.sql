-- total_offences is the sum of the seven offence groups (a group with no published figure counts
-- as 0), and is null exactly when every group is null.
with

quarterly as (

    select * from {{ ref('knife_crime_quarterly') }}

),

mismatches as (

    select
        force_id,
        fy_start,
        financial_quarter,
        total_offences,
        coalesce(homicide, 0)
        + coalesce(attempted_murder, 0)
        + coalesce(threats_to_kill, 0)
        + coalesce(assault_injury_or_intent, 0)
        + coalesce(robbery, 0)
        + coalesce(rape, 0)
        + coalesce(sexual_assault, 0) as sum_of_groups,
        coalesce(
            homicide,
            attempted_murder,
            threats_to_kill,
            assault_injury_or_intent,
            robbery,
            rape,
            sexual_assault
        ) is null as all_groups_null

    from quarterly

)

select * from mismatches
where
    coalesce(total_offences, 0) <> sum_of_groups
    or (total_offences is null) <> all_groups_null
