-- Every coded item of an A&E attendance is in the istv_codes seed (an unknown code would drop the
-- attendance from its age group or from the knife count). The raw suite
-- (expectations/raw.ae.attendances.json) stops unknown codes before dbt runs; this catches a seed
-- corrected after the suite. Fails with one row per unknown code and its number of attendances,
-- never the attendances themselves (row-level A&E data).

with

attendances as (

    select * from {{ ref('stg_istv__attendances') }}

),

unknown as (

    select 'assault_method' as value_set, assault_method as code
    from attendances
    where assault_method_description is null

    union all

    select 'assault_location_type', assault_location_type
    from attendances
    where assault_location_type_description is null

    union all

    select 'age_band', age_band
    from attendances
    where age_group is null

),

final as (

    select value_set, code, count(*) as attendances
    from unknown
    group by value_set, code

)

select * from final
