{#-
    Is the programme working? One row per success measure (and stop-and-search context measure),
    method and analysis window: the estimated change in the rate per resident in funded areas
    against the comparison areas, after against before funding, with its 95% interval, a
    permutation p-value, the pre-trend check and what was used and left out.

    The estimates are computed in Python by the transform's estimate_effects task (vru.effects:
    pyfixest's did2s, Gardner's two-stage imputation estimator, valid under staggered adoption)
    from marts_build.vru_outcomes_quarterly, and written to the pipeline-only table
    staging.programme_effect_estimates; this model types, rounds and documents them under an
    enforced contract, so they are validated and published with the other marts, or not at all.
    Rounded here so that an unchanged night publishes nothing new (write-audit-publish writes
    changed rows only). The method, its assumptions and its limits are in the model's YAML.
-#}

with

estimates as (

    select * from {{ source('effects', 'programme_effect_estimates') }}

),

final as (

    select
        measure,
        measure_label,
        role,
        method,
        analysis_window,
        status,
        status_reason,
        round(estimate_pct::numeric, 1) as estimate_pct,
        round(ci_low_pct::numeric, 1) as ci_low_pct,
        round(ci_high_pct::numeric, 1) as ci_high_pct,
        round(log_rate_effect::numeric, 6) as log_rate_effect,
        round(std_error::numeric, 6) as std_error,
        round(p_value_model::numeric, 4) as p_value_model,
        round(p_value_permutation::numeric, 4) as p_value_permutation,
        permutations,
        round(pre_trend_p_value::numeric, 4) as pre_trend_p_value,
        pre_trend_leads_tested,
        pre_trend_failed,
        areas_used,
        funded_areas_used,
        comparison_areas_used,
        quarters_used,
        area_quarters_used,
        funded_area_quarters_used,
        area_quarters_excluded,
        excluded_missing,
        excluded_suppressed,
        excluded_partial_coverage,
        excluded_series_break,
        excluded_no_population,
        excluded_zero_count,
        excluded_no_quarter_before_funding,
        excluded_no_comparison_in_quarter,
        excluded_outside_window,
        first_quarter_start,
        last_quarter_start,
        edition_date,
        edition_source
    from estimates

)

select * from final
