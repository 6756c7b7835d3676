{#- Incremental by force-month: a night stages only the force-months whose current load is not
    staged yet (a new month, a revision), not the whole history. State, not a watermark: what is
    staged is compared with audit.loads, so a run that failed part-way or whose gate failed leaves
    nothing behind that the next run would miss. The pre-hook removes the rows of loads that are no
    longer current (a revision with fewer or no rows, a force-month no longer loaded), which
    delete+insert alone cannot: it deletes only the force-months the new batch has rows for.
    `dbt build --full-refresh` rebuilds it whole and gives the same rows (tests/test_dbt_police.py).
    A change to this SQL is deployed with --full-refresh; a wording added to the outcomes seed is
    picked up without one (force-months with an unmapped outcome are staged again every run). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['force_id', 'month'],
        on_schema_change='fail',
        indexes=[
            {'columns': ['load_id']},
            {'columns': ['month', 'force_id']},
        ],
        pre_hook="{{ delete_superseded_stop_searches() }}",
    )
}}

with

stop_searches as (

    select * from {{ source('police', 'stop_searches') }}

),

outcomes as (

    select * from {{ ref('stop_search_outcomes') }}

),

-- A force-month's current data is its latest successful load (macros/current_stop_search_loads.sql).
-- The loader already replaces rows, so this only guards against leftovers of superseded loads.
current_loads as (

    {{ current_stop_search_loads() }}

),

{% if is_incremental() %}

    -- The current loads not staged yet, and those staged with an outcome the seed did not map.
    loads_to_stage as (

        select
            load_id,
            force_id,
            month,
            origin

        from current_loads
        where
            load_id not in (select distinct load_id from {{ this }})
            or load_id in (
                select distinct load_id from {{ this }}
                where outcome_category = 'unmapped'
            )

    ),

{% else %}

    loads_to_stage as (

        select * from current_loads

    ),

{% endif %}

current_stop_searches as (

    -- where a row came from is its load's (audit.loads), not repeated on every raw row
    select
        stop_searches.*,
        current_loads.origin

    from stop_searches
    inner join loads_to_stage as current_loads
        on
            stop_searches.load_id = current_loads.load_id
            and stop_searches.force_id = current_loads.force_id
            and stop_searches.month = current_loads.month

),

renamed as (

    select
        md5(
            force_id || '|' || cast(month as text) || '|' || origin || '|' || cast(line_no as text)
        ) as stop_search_id,
        load_id,
        force_id,
        cast(month as date) as month,
        origin,
        line_no,
        datetime as searched_at,
        nullif(trim(type), '') as search_type,
        involved_person as is_person_involved,
        operation as is_part_of_operation,
        nullif(trim(operation_name), '') as operation_name,
        nullif(trim(gender), '') as gender,
        nullif(trim(age_range), '') as age_range,
        nullif(trim(self_defined_ethnicity), '') as self_defined_ethnicity,
        nullif(trim(officer_defined_ethnicity), '') as officer_defined_ethnicity,
        -- collapse runs of spaces and drop spaces inside brackets:
        -- 'Environmental Protection Act 1990 (section 34B )' -> '... (section 34B)'
        nullif(
            trim(
                regexp_replace(
                    regexp_replace(
                        regexp_replace(legislation, '\s+', ' ', 'g'),
                        '\(\s+', '(', 'g'
                    ),
                    '\s+\)', ')', 'g'
                )
            ),
            ''
        ) as legislation,
        nullif(trim(object_of_search), '') as object_of_search,
        nullif(trim(outcome), '') as outcome,
        nullif(trim(outcome_id), '') as outcome_id,
        outcome_linked_to_object_of_search,
        removal_of_more_than_outer_clothing as is_more_than_outer_clothing_removed,
        latitude,
        longitude,
        street_id,
        nullif(trim(street_name), '') as street_name,
        loaded_at

    from current_stop_searches

),

mapped as (

    select
        renamed.*,
        case
            when renamed.outcome is null then 'not_recorded'
            when outcomes.outcome is null then 'unmapped'
            else outcomes.outcome_category
        end as outcome_category,
        outcomes.is_arrest,
        outcomes.is_no_further_action

    from renamed
    left join outcomes
        on lower(renamed.outcome) = lower(trim(outcomes.outcome))

),

final as (

    select
        stop_search_id,
        load_id,
        force_id,
        month,
        origin,
        line_no,
        searched_at,
        search_type,
        is_person_involved,
        is_part_of_operation,
        operation_name,
        gender,
        age_range,
        self_defined_ethnicity,
        officer_defined_ethnicity,
        legislation,
        object_of_search,
        outcome,
        outcome_id,
        outcome_category,
        is_arrest,
        is_no_further_action,
        coalesce(
            legislation = 'Criminal Justice and Public Order Act 1994 (section 60)',
            false
        ) as is_s60,
        coalesce(
            object_of_search in (
                'Offensive weapons',
                'Anything to threaten or harm anyone',
                'Firearms'
            )
            or legislation in (
                'Criminal Justice and Public Order Act 1994 (section 60)',
                'Criminal Justice Act 1988 (section 139B)'
            ),
            false
        ) as is_weapon_search,
        case
            when age_range is null then null
            else age_range in ('under 10', '10-17', '18-24')
        end as is_under_25,
        coalesce(outcome_linked_to_object_of_search, false) as is_outcome_linked_find,
        outcome_linked_to_object_of_search,
        is_more_than_outer_clothing_removed,
        latitude is not null and longitude is not null as has_location,
        latitude,
        longitude,
        street_id,
        street_name,
        loaded_at

    from mapped

)

select * from final
