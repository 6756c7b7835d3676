{#- Pre-hook of the incremental stg_police__stop_searches: delete the staged rows of every load
    that is no longer the current (latest successful) load of its force-month. delete+insert then
    adds the rows of the new current loads. Without this, a force-month revised to no rows, or no
    longer loaded at all, would keep its old rows. Reads the load ids through the index on load_id,
    never the whole table. -#}
{% macro delete_superseded_stop_searches() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where load_id in (
            select distinct staged.load_id from {{ this }} as staged
            except
            (
                select distinct on (force_id, month) load_id
                from {{ source('audit', 'loads') }}
                where
                    dataset = 'police.stop_searches'
                    and status in {{ successful_load_statuses() }}
                order by force_id, month, load_id desc
            )
        )
    {%- endif -%}
{%- endmacro %}
