with

sharp_object_admissions as (

    select * from {{ source('nhs', 'sharp_object_admissions') }}

),

editions as (

    select * from {{ source('audit', 'editions') }}

),

-- Only figures of editions the loader recorded count.
edition_figures as (

    select
        sharp_object_admissions.load_id,
        cast(sharp_object_admissions.fy_start as integer) as fy_start,
        sharp_object_admissions.geography_code,
        sharp_object_admissions.geography_name,
        sharp_object_admissions.cause_code,
        sharp_object_admissions.measure,
        sharp_object_admissions.value,
        sharp_object_admissions.value_marker

    from sharp_object_admissions
    inner join editions
        on sharp_object_admissions.load_id = editions.load_id

),

-- The current figure of each cell across editions (macros/current_edition_figures.sql).
cells as (
{{ current_edition_figures(
    'edition_figures',
    cell=['fy_start', 'geography_code', 'cause_code', 'measure'],
    values=['value', 'value_marker'],
    carried=['geography_name'],
) }}
),

final as (

    select
        geography_code,
        geography_name,
        -- normalised from fy_start: 2019 -> '2019/20', 1999 -> '1999/00'
        cast(fy_start as text) || '/' || lpad(cast((fy_start + 1) % 100 as text), 2, '0')
            as financial_year,
        fy_start,
        cause_code,
        measure,
        value,
        value_marker,
        value is null as is_withheld,
        edition_load_id,
        first_published_value,
        editions,
        (value is distinct from first_published_value)
        or (value_marker is distinct from first_published_value_marker) as is_revised

    from cells

)

select * from final
