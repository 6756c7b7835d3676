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

-- Editions are kept side by side: an edition that omits a cell (e.g. older years) does not
-- delete it, so the current figure is the latest edition's that has the cell.
cell_editions as (

    select
        fy_start,
        geography_code,
        cause_code,
        measure,
        min(load_id) as first_load_id,
        max(load_id) as current_load_id,
        count(distinct load_id) as editions

    from edition_figures
    group by fy_start, geography_code, cause_code, measure

),

-- A cell published twice in one edition yields two rows here and fails the uniqueness test,
-- rather than one of the two figures being picked silently.
cells as (

    select
        cell_editions.fy_start,
        cell_editions.geography_code,
        current_figures.geography_name,
        cell_editions.cause_code,
        cell_editions.measure,
        current_figures.value,
        current_figures.value_marker,
        cell_editions.current_load_id as edition_load_id,
        first_figures.value as first_published_value,
        first_figures.value_marker as first_published_value_marker,
        cast(cell_editions.editions as integer) as editions

    from cell_editions
    inner join edition_figures as current_figures
        on
            cell_editions.fy_start = current_figures.fy_start
            and cell_editions.geography_code = current_figures.geography_code
            and cell_editions.cause_code = current_figures.cause_code
            and cell_editions.measure = current_figures.measure
            and cell_editions.current_load_id = current_figures.load_id
    inner join edition_figures as first_figures
        on
            cell_editions.fy_start = first_figures.fy_start
            and cell_editions.geography_code = first_figures.geography_code
            and cell_editions.cause_code = first_figures.cause_code
            and cell_editions.measure = first_figures.measure
            and cell_editions.first_load_id = first_figures.load_id

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
        value is distinct from first_published_value
        or value_marker is distinct from first_published_value_marker as is_revised

    from cells

)

select * from final
