with

pfa_knife_offences as (

    select * from {{ source('ons', 'pfa_knife_offences') }}

),

editions as (

    select * from {{ source('audit', 'editions') }}

),

-- Only figures of editions the loader recorded count. An edition is named by the 12-month period
-- of its table by offence (its latest period: "year ending December 2018").
edition_figures as (

    select
        pfa_knife_offences.load_id,
        pfa_knife_offences.area_code,
        pfa_knife_offences.area_name,
        pfa_knife_offences.force_id,
        pfa_knife_offences.offence,
        pfa_knife_offences.offence_name,
        pfa_knife_offences.period_end,
        pfa_knife_offences.period_label,
        pfa_knife_offences.table_kind,
        pfa_knife_offences.measure,
        pfa_knife_offences.value,
        pfa_knife_offences.value_marker,
        max(pfa_knife_offences.period_end) over (partition by pfa_knife_offences.load_id) as edition_period_end

    from pfa_knife_offences
    inner join editions
        on pfa_knife_offences.load_id = editions.load_id

),

-- The current figure of each cell across editions (macros/current_edition_figures.sql).
cells as (
{{ current_edition_figures(
    'edition_figures',
    cell=['area_code', 'offence', 'period_end', 'measure'],
    values=['value', 'value_marker'],
    carried=['force_id', 'area_name', 'offence_name', 'period_label', 'table_kind', 'edition_period_end'],
) }}
),

final as (

    select
        force_id,
        area_code,
        area_name,
        offence,
        offence_name,
        period_end,
        period_label,
        measure,
        value,
        value_marker,
        value is null as is_withheld,
        table_kind,
        edition_load_id,
        edition_period_end,
        first_published_value,
        first_published_value_marker,
        editions,
        (value is distinct from first_published_value)
        or (value_marker is distinct from first_published_value_marker) as is_revised

    from cells

)

select * from final
