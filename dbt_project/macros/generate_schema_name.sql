{#
    Use a model's custom schema verbatim (`staging`, `marts`), not dbt's default
    `<target_schema>_<custom_schema>`: the warehouse layout (plugins/vru/sql/warehouse.sql)
    owns these schema names and every environment has its own database.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
