-- Built in the `restricted` schema (dbt_project.yml, models.vru.staging.istv): row-level A&E data.
-- The free-text items (other method, location description) are not carried: nothing downstream
-- needs them and they are the items most likely to identify someone.

with

attendances as (

    select * from {{ source('istv', 'ae_attendances') }}

),

istv_codes as (

    select * from {{ ref('istv_codes') }}

),

assault_methods as (

    select code, description, is_knife_or_sharp
    from istv_codes
    where value_set = 'assault_method'

),

location_types as (

    select code, description
    from istv_codes
    where value_set = 'assault_location_type'

),

-- Age groups of the mart. A code outside the seed gets a null age_group, which fails
-- tests/assert_istv_attendances_codes_known.sql (the raw suite stops such a code first).
categorised as (

    select
        attendances.load_id,
        attendances.line_no,
        attendances.site_code,
        attendances.force_id,
        attendances.reporting_period_start,
        attendances.reporting_period_end,
        attendances.arrival_at,
        cast(date_trunc('month', attendances.arrival_at) as date) as month,
        attendances.assault_date,
        attendances.assault_time,
        attendances.assault_method,
        assault_methods.description as assault_method_description,
        assault_methods.is_knife_or_sharp,
        attendances.assault_location_type,
        location_types.description as assault_location_type_description,
        attendances.age_band,
        case
            when attendances.age_band is null then 'not known'
            when attendances.age_band in ('0-15', '16-17', '18-24') then 'under 25'
            when
                attendances.age_band in ('25-34', '35-44', '45-54', '55-64', '65+')
                then '25 and over'
        end as age_group,
        attendances.sex

    from attendances
    left join assault_methods
        on attendances.assault_method = assault_methods.code
    left join location_types
        on attendances.assault_location_type = location_types.code

)

select * from categorised
