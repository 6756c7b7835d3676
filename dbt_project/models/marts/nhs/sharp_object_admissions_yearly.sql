{#- The published measures (raw.sharp_object_admissions.measure), each pivoted to its column:
    the age columns are HES's own bands; 0-24 and 25+ are sums of them (plugins/vru/feeds/hes.py). -#}
{%- set counts = [
    'finished_consultant_episodes',
    'admissions',
    'emergency_admissions',
    'male',
    'female',
    'gender_unknown',
] -%}
{%- set bands_0_24 = [
    'age_0', 'age_1_4', 'age_5_9', 'age_10_14', 'age_15', 'age_16', 'age_17', 'age_18', 'age_19',
    'age_20_24',
] -%}
{%- set bands_25_plus = [
    'age_25_29', 'age_30_34', 'age_35_39', 'age_40_44', 'age_45_49', 'age_50_54', 'age_55_59',
    'age_60_64', 'age_65_69', 'age_70_74', 'age_75_79', 'age_80_84', 'age_85_89', 'age_90_plus',
] -%}
{%- set measures = counts + bands_0_24 + bands_25_plus -%}

with

admissions as (

    select * from {{ ref('stg_nhs__sharp_object_admissions') }}

),

-- One row per financial year and geography: each measure's current figure in its own column.
-- Raw holds every assault code (X85-Y09) for context; this table is X99 only.
yearly as (

    select
        geography_code,
        max(geography_name) as geography_name,
        financial_year,
        fy_start,
        {% for measure in measures %}
            max(value) filter (where measure = '{{ measure }}') as {{ measure }},
        {% endfor %}
        count(*) filter (where is_withheld) as withheld_figures,
        bool_or(is_revised) as is_revised,
        max(edition_load_id) as edition_load_id

    from admissions
    where cause_code = 'X99'
    group by geography_code, financial_year, fy_start

),

final as (

    select
        geography_code,
        geography_name,
        financial_year,
        fy_start,
        {% for measure in counts %}
            cast({{ measure }} as integer) as {{ measure }},
        {% endfor %}
        -- a sum of published bands: null when any of them is withheld (never a partial sum)
        cast({{ bands_0_24 | join(' + ') }} as integer) as age_0_24,
        cast({{ bands_25_plus | join(' + ') }} as integer) as age_25_plus,
        {% for measure in bands_0_24 + bands_25_plus %}
            cast({{ measure }} as integer) as {{ measure }},
        {% endfor %}
        cast(withheld_figures as integer) as withheld_figures,
        is_revised,
        cast(edition_load_id as bigint) as edition_load_id

    from yearly

)

select * from final
