-- One row per police force area, offence and 12-month period ending on a quarter end, from the
-- ONS police force area data tables. Not the programme's measure of knife crime: that is the Home
-- Office quarterly open data (knife_crime_quarterly); why, and how the two relate, is in
-- _ons__models.yml and docs/marts.md.
with

knife_figures as (

    select * from {{ ref('stg_ons__pfa_knife_offences') }}

),

-- The two measures of a force, offence and period side by side, each its cell's current figure.
-- The ONS publishes them as a pair, so both come from one edition
-- (tests/assert_pfa_knife_crime_pairs_from_one_edition.sql fails the build otherwise).
pairs as (

    select
        force_id,
        area_code,
        offence,
        period_end,
        max(value) filter (where measure = 'offences') as offences,
        max(value_marker) filter (where measure = 'offences') as offences_marker,
        max(value) filter (where measure = 'percent_knife') as percent_knife,
        max(value_marker) filter (where measure = 'percent_knife') as percent_knife_marker,
        max(first_published_value) filter (where measure = 'offences') as first_published_offences,
        max(first_published_value) filter (where measure = 'percent_knife') as first_published_percent_knife,
        bool_or(is_revised) as is_revised,
        max(edition_load_id) as edition_load_id,
        max(edition_period_end) as edition_period_end

    from knife_figures
    group by force_id, area_code, offence, period_end

),

final as (

    select
        force_id,
        area_code,
        offence,
        cast(period_end + interval '1 day' - interval '1 year' as date) as period_start,
        period_end,
        'year ending ' || to_char(period_end, 'FMMonth YYYY') as period_label,
        cast(offences as integer) as offences,
        offences_marker,
        cast(percent_knife as numeric) as percent_knife,
        percent_knife_marker,
        is_revised,
        cast(first_published_offences as integer) as first_published_offences,
        cast(first_published_percent_knife as numeric) as first_published_percent_knife,
        cast(edition_load_id as bigint) as edition_load_id,
        'year ending ' || to_char(edition_period_end, 'FMMonth YYYY') as edition

    from pairs

)

select * from final
