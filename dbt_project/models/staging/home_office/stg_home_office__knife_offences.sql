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

-- The current figure of each cell across editions (macros/current_edition_figures.sql).
cells as (
{{ current_edition_figures(
    'edition_figures',
    cell=['force_id', 'fy_start', 'financial_quarter', 'offence'],
    values=['offences', 'value_marker'],
) }}
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
        (offences is distinct from first_published_offences)
        or (value_marker is distinct from first_published_value_marker) as is_revised

    from grouped

)

select * from final
