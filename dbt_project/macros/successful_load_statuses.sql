{#- The statuses of a load that changed raw: a new partition or edition, or a revised one.
    The twin of vru.feed.SUCCESSFUL_LOADS (tests/test_registry.py keeps them equal).
    Use: `where status in {{ successful_load_statuses() }}` -#}
{% macro successful_load_statuses() -%}
    ('loaded', 'replaced')
{%- endmacro %}
