with

availability as (

    select * from {{ source('police', 'police_availability') }}

),

final as (

    select
        force_id,
        cast(month as date) as month,
        first_listed_at,
        last_listed_at

    from availability

)

select * from final
