-- Every series break ends on or after it starts, and a method change has no end (the new method
-- applies from applies_from on).
with

series_breaks as (

    select * from {{ ref('knife_crime_series_breaks') }}

),

invalid as (

    select *
    from series_breaks
    where
        applies_to < applies_from
        or (kind = 'method_change' and applies_to is not null)

)

select * from invalid
