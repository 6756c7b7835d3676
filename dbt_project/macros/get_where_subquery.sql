{#- dbt's own get_where_subquery (a data test's `where` config), plus one placeholder: a test whose
    `where` is __changed_police_partitions__ checks only the rows of the stop-and-search
    force-months loaded since the last publication, the gates' validation scope
    (vru.validation.scoped_query; overriding this macro for a `where` placeholder is dbt's
    documented pattern). Up to 100 changed force-months each is looked up by its key (a nested
    loop: the planner cannot tell how few changed, and a semi-join would read the whole table);
    above, the whole table is read once (vru.validation.LOOKUP_AT_MOST, why 100). -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == '__changed_police_partitions__' -%}
        {%- set filtered -%}
            (
                with changed as materialized ({{ changed_police_partitions() }})
                select * from {{ relation }}
                where (select count(*) from changed) > 100
                union all
                select t.* from changed
                cross join lateral (
                    select * from {{ relation }} as t
                    where t.force_id = changed.force_id and t.month = changed.month
                    offset 0
                ) as t
                where (select count(*) from changed) <= 100
            ) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- elif where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- The stop-and-search force-months loaded since the last publication: the view
    audit.changed_partitions (plugins/vru/sql/warehouse.sql) states the rule; vru.feeds.police
    FEED.changed_partitions selects the same (tests/test_registry.py keeps them equal). -#}
{% macro changed_police_partitions() -%}
    select force_id, month from audit.changed_partitions where dataset = 'police.stop_searches'
{%- endmacro %}
