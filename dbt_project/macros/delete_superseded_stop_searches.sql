{#- Pre-hook of the incremental stg_police__stop_searches: delete the staged rows of every load
    that is no longer the current load of its force-month (current_stop_search_loads). delete+insert then
    adds the rows of the new current loads. Without this, a force-month revised to no rows, or no
    longer loaded at all, would keep its old rows. Reads the load ids through the index on load_id,
    never the whole table. -#}
{% macro delete_superseded_stop_searches() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where load_id in (
            select distinct staged.load_id from {{ this }} as staged
            except
            select current_loads.load_id from ({{ current_stop_search_loads() }}) as current_loads
        )
    {%- endif -%}
{%- endmacro %}
