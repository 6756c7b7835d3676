{%- set measures = [
    'finished_consultant_episodes',
    'admissions',
    'emergency_admissions',
    'male',
    'female',
    'age_0_14',
    'age_15_59',
    'age_60_74',
    'age_75_plus',
] -%}

with

admissions as (

    select * from {{ ref('stg_nhs__sharp_object_admissions') }}

),

-- One row per financial year and geography: each measure's current figure in its own column.
-- Only X99 is loaded; the filter keeps the grain if another cause ever is.
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
        {% for measure in measures %}
            cast({{ measure }} as integer) as {{ measure }},
        {% endfor %}
        cast(withheld_figures as integer) as withheld_figures,
        is_revised,
        cast(edition_load_id as bigint) as edition_load_id

    from yearly

)

select * from final
