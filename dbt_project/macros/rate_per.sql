{#
    A rate of the outcome marts: `count` per `per` of `denominator` (100000 for a rate per
    100,000 residents, 1000 per 1,000, 1 for a share), rounded to `digits` decimal places (none:
    unrounded, for a rate computed on), or NULL when the denominator is not above 0 or the figure
    may not be used (`usable`, a boolean SQL expression: complete coverage, say). The arithmetic is
    numeric: no integer division; round(numeric) rounds half away from zero.
#}
{% macro rate_per(count, denominator, per, digits=none, usable='true') %}
    {%- set rate = 'cast(' ~ count ~ ' as numeric) * ' ~ per ~ ' / ' ~ denominator -%}
    case
        when {{ usable }} and {{ denominator }} > 0
            then {% if digits is none %}{{ rate }}{% else %}round({{ rate }}, {{ digits }}){% endif %}
    end
{%- endmacro %}
