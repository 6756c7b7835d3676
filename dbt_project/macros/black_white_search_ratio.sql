{#
    The Black/White search ratio of the outcome marts (an area's, a group's): Black people's
    searches per Black resident over White people's searches per White resident, to 2 decimal
    places; NULL unless White searches and both populations are above 0. The populations are the
    2011 Census residents by ethnic group (population_census_2011). One rule for
    vru_outcomes_quarterly and vru_programme_comparison; the arguments are column expressions.
#}
{% macro black_white_search_ratio(searches_black, population_black, searches_white, population_white) %}
    cast(
        case
            when {{ searches_white }} > 0 and {{ population_black }} > 0 and {{ population_white }} > 0
                then round(
                        (cast({{ searches_black }} as numeric) / {{ population_black }})
                        / (cast({{ searches_white }} as numeric) / {{ population_white }}),
                        2
                    )
        end
        as numeric(10, 2)
    )
{%- endmacro %}
