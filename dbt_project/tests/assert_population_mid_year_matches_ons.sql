-- population_mid_year must hold, for every mid-year, all 43 force areas once, ages 0-24 no more
-- than all ages, one vintage, and England and Wales totals equal to ONS's own published totals
-- (pfa_mid_year/README.md). Returns one row per failing year (or per year missing from ONS's list).
with

population as (

    select * from {{ ref('population_mid_year') }}

),

ons_totals as (

    select *
    from (
        values
        (2018, 59115809),
        (2019, 59439840),
        (2020, 59719724),
        (2021, 59641829),
        (2022, 60245218),
        (2023, 60854727)
    ) as ons (mid_year, england_and_wales)

),

years as (

    select
        mid_year,
        count(*) as areas,
        count(distinct force_id) as distinct_areas,
        count(distinct area_code) as distinct_codes,
        count(distinct vintage) as vintages,
        count(*) filter (where age_0_24 > all_ages or age_0_24 <= 0) as bad_age_rows,
        sum(all_ages) as all_ages
    from population
    group by mid_year

),

final as (

    select
        coalesce(years.mid_year, ons_totals.mid_year) as mid_year,
        years.areas,
        years.all_ages,
        ons_totals.england_and_wales as ons_total
    from years
    full join ons_totals
        on years.mid_year = ons_totals.mid_year
    where
        years.mid_year is null
        or ons_totals.mid_year is null
        or years.areas <> 43
        or years.distinct_areas <> 43
        or years.distinct_codes <> 43
        or years.vintages <> 1
        or years.bad_age_rows <> 0
        or years.all_ages <> ons_totals.england_and_wales

)

select * from final
