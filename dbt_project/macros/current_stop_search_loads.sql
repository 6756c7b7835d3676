{#- The current load of each stop-and-search force-month: its latest successful load (a later
    failed or refused attempt leaves it current). The one statement of that rule in dbt: the
    incremental stg_police__stop_searches stages these loads, its pre-hook
    (delete_superseded_stop_searches) deletes the staged rows of every other load, and
    stg_police__stop_search_loads marks them is_current. -#}
{% macro current_stop_search_loads() -%}
    select distinct on (force_id, month)
        load_id,
        force_id,
        month,
        origin
    from {{ source('audit', 'loads') }}
    where
        dataset = 'police.stop_searches'
        and status in {{ successful_load_statuses() }}
    order by force_id, month, load_id desc
{%- endmacro %}
