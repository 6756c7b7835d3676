{#
    The three columns every outcome measure has against its 2018/19 baseline (the mean quarter of
    that year, from the `baselines` CTE): the baseline, the change from it in per cent, and why a
    change may be missing. `name` prefixes the columns, `value` is the quarter's count, `usable`
    says when that count may be compared (complete, comparable). The change is NULL whenever the
    baseline is missing or 0, or the quarter is not usable.
#}
{% macro baseline_change(name, value, usable) %}
        cast(round(baselines.{{ name }}_baseline, 2) as numeric(12, 2)) as {{ name }}_baseline,
        cast(
            case
                when {{ usable }} and baselines.{{ name }}_baseline > 0
                    then round(({{ value }} / baselines.{{ name }}_baseline - 1) * 100, 1)
            end
            as numeric(10, 1)
        ) as {{ name }}_change_pct,
        case
            when baselines.{{ name }}_baseline is null then 'no baseline'
            when baselines.{{ name }}_baseline = 0 then 'zero baseline'
            else 'complete'
        end as {{ name }}_baseline_coverage
{%- endmacro %}
