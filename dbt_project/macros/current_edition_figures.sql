{#-
    The current figure of every cell of an edition feed (a publisher's whole table re-published
    from time to time: the Home Office knife crime table, the HES sharp object table, the ONS
    police force area knife tables).

    Editions are kept side by side: an edition that omits a cell (e.g. older years) does not delete
    it, so a cell's current figure is the one of the latest edition that has the cell; its first
    published figure and the number of editions that had it keep the revision history visible.
    A cell published twice in one edition yields two rows and fails the staging model's uniqueness
    test, rather than one of the two figures being picked silently.

    `figures` is a CTE of the edition's figures (load_id and the columns named here), already
    limited to editions recorded in audit.editions. Returns one select (a CTE body) with the cell
    columns, the `carried` columns and the `values` of the current edition, edition_load_id,
    first_published_<value> for each value, and editions.
-#}
{% macro current_edition_figures(figures, cell, values, carried=[]) -%}
    
    select
        {% for column in cell %}
        cell_editions.{{ column }},
        {% endfor %}
    {% for column in carried + values %}
        current_figures.{{ column }},
        {% endfor %}
        cell_editions.current_load_id as edition_load_id,
        {% for column in values %}
        first_figures.{{ column }} as first_published_{{ column }},
        {% endfor %}
        cast(cell_editions.editions as integer) as editions

    from (
        select
            {% for column in cell %}
    {{ column }},
            {% endfor %}
            min(load_id) as first_load_id,
            max(load_id) as current_load_id,
            count(distinct load_id) as editions

        from {{ figures }}
        group by {{ cell | join(', ') }}
    ) as cell_editions
    inner join {{ figures }} as current_figures
        on
            {% for column in cell %}
            cell_editions.{{ column }} = current_figures.{{ column }}
            and {% endfor %}cell_editions.current_load_id = current_figures.load_id
    inner join {{ figures }} as first_figures
        on
            {% for column in cell %}
            cell_editions.{{ column }} = first_figures.{{ column }}
            and {% endfor %}cell_editions.first_load_id = first_figures.load_id
{%- endmacro %}
