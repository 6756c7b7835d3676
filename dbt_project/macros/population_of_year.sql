{#
    The ONS mid-year estimate (population_mid_year seed) a rate of a force area's financial year
    divides by, joined as `alias`: the estimate of that year (mid-2019 for 2019/20), the latest one
    for a later year (carried forward: the caller compares `alias.mid_year` with the year), none
    for a year before the first estimate (no rate). One rule for every mart with rates.
#}
{% macro join_population_of_year(alias, force_id, fy_start) %}
    left join lateral (
        select *
        from {{ ref('population_mid_year') }} as estimates
        where
            estimates.force_id = {{ force_id }}
            and estimates.mid_year <= {{ fy_start }}
        order by estimates.mid_year desc
        limit 1
    ) as {{ alias }} on true
{% endmacro %}
