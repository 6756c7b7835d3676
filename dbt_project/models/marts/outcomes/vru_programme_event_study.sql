{#-
    The programme's event study, for charts: one row per measure, method and quarter relative to
    the funding quarter (-8 to +12; -1, the quarter before funding, is the reference at 0), with
    the estimated change in the rate per resident and its 95% interval. A relative quarter
    without any funded area-quarter has no estimate (NULL: a gap in the chart, never 0).
    From staging.programme_event_study_estimates (vru.effects, see vru_programme_effect).
-#}

with

estimates as (

    select * from {{ source('effects', 'programme_event_study_estimates') }}

),

final as (

    select
        measure,
        method,
        relative_quarter,
        is_reference,
        round(estimate_pct::numeric, 1) as estimate_pct,
        round(ci_low_pct::numeric, 1) as ci_low_pct,
        round(ci_high_pct::numeric, 1) as ci_high_pct,
        round(log_rate_effect::numeric, 6) as log_rate_effect,
        round(std_error::numeric, 6) as std_error,
        funded_area_quarters
    from estimates

)

select * from final
