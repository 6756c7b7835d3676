with

knife_offences as (

    select * from {{ source('home_office', 'knife_offences') }}

),

editions as (

    select * from {{ source('audit', 'editions') }}

),

offence_groups as (

    select * from {{ ref('knife_offence_groups') }}

),

-- Only figures of editions the loader recorded count.
edition_figures as (

    select
        knife_offences.load_id,
        knife_offences.force_id,
        cast(knife_offences.fy_start as integer) as fy_start,
        cast(knife_offences.financial_quarter as integer) as financial_quarter,
        knife_offences.offence,
        knife_offences.offences,
        knife_offences.value_marker

    from knife_offences
    inner join editions
        on knife_offences.load_id = editions.load_id

),

-- Editions are kept side by side: an edition that omits a cell (e.g. older years) does not
-- delete it, so the current figure is the latest edition's that has the cell.
cell_editions as (

    select
        force_id,
        fy_start,
        financial_quarter,
        offence,
        min(load_id) as first_load_id,
        max(load_id) as current_load_id,
        count(distinct load_id) as editions

    from edition_figures
    group by force_id, fy_start, financial_quarter, offence

),

-- A cell published twice in one edition yields two rows here and fails the uniqueness test,
-- rather than one of the two figures being picked silently.
cells as (

    select
        cell_editions.force_id,
        cell_editions.fy_start,
        cell_editions.financial_quarter,
        cell_editions.offence,
        current_figures.offences,
        current_figures.value_marker,
        cell_editions.current_load_id as edition_load_id,
        first_figures.offences as first_published_offences,
        first_figures.value_marker as first_published_value_marker,
        cast(cell_editions.editions as integer) as editions

    from cell_editions
    inner join edition_figures as current_figures
        on
            cell_editions.force_id = current_figures.force_id
            and cell_editions.fy_start = current_figures.fy_start
            and cell_editions.financial_quarter = current_figures.financial_quarter
            and cell_editions.offence = current_figures.offence
            and cell_editions.current_load_id = current_figures.load_id
    inner join edition_figures as first_figures
        on
            cell_editions.force_id = first_figures.force_id
            and cell_editions.fy_start = first_figures.fy_start
            and cell_editions.financial_quarter = first_figures.financial_quarter
            and cell_editions.offence = first_figures.offence
            and cell_editions.first_load_id = first_figures.load_id

),

grouped as (

    select
        cells.*,
        offence_groups.offence_group

    from cells
    left join offence_groups
        on lower(trim(cells.offence)) = lower(trim(offence_groups.offence))

),

final as (

    select
        force_id,
        -- normalised from fy_start: 2019 -> '2019/20', 1999 -> '1999/00'
        cast(fy_start as text) || '/' || lpad(cast((fy_start + 1) % 100 as text), 2, '0')
        as financial_year,
        fy_start,
        financial_quarter,
        -- Q1 = 1 April fy_start, Q2 = 1 July, Q3 = 1 October, Q4 = 1 January fy_start + 1
        cast(
            make_date(fy_start, 4, 1) + (financial_quarter - 1) * interval '3 months'
            as date
        ) as quarter_start,
        offence,
        offence_group,
        offences,
        value_marker,
        offences is null as is_withheld,
        edition_load_id,
        first_published_offences,
        editions,
        offences is distinct from first_published_offences
        or value_marker is distinct from first_published_value_marker as is_revised

    from grouped

)

select * from final
