{#-
    A&E knife or sharp object assault attendances per force area and financial quarter, for the
    outcome marts, with the suppression carried from months to quarters.

    Reads only the published, already suppressed figures of ae_assault_monthly (never the
    row-level staging): a quarter is a function of what that mart shows, so it reveals nothing
    the mart does not (docs/security.md). Rules:
    - a quarter's count is the sum of its three months; when any month's cell is withheld (1-4,
      or withheld to protect one) the quarter is withheld too: a sum including a withheld cell
      would reveal it;
    - a quarterly sum from 1 to 4 is withheld (the 1-4 rule re-applied);
    - coverage: 'no extract' (no month of the quarter has an extract), 'suppressed', 'complete'
      (all three months complete) or 'partial' (a lower bound).
    One row per force area with A&E sites per quarter that has a month in ae_assault_monthly; the
    outcome marts say 'no extract' or 'no A&E data for this area' for the other quarters.
-#}

with

ae_monthly as (

    select * from {{ ref('ae_assault_monthly') }}

),

quarter_sums as (

    select
        force_id,
        cast(date_trunc('quarter', month) as date) as quarter_start,
        count(*) filter (where age_band = 'all ages' and coverage = 'complete') as months_complete,
        count(*) filter (where age_band = 'all ages' and coverage <> 'no extract') as months_with_extract,
        coalesce(bool_or(knife_or_sharp_suppressed) filter (where age_band = 'all ages'), false)
            as any_month_suppressed,
        sum(knife_or_sharp_attendances) filter (where age_band = 'all ages') as knife_sum,
        coalesce(bool_or(knife_or_sharp_suppressed) filter (where age_band = 'under 25'), false)
            as any_month_under_25_suppressed,
        sum(knife_or_sharp_attendances) filter (where age_band = 'under 25') as knife_under_25_sum
    from ae_monthly
    group by force_id, cast(date_trunc('quarter', month) as date)

),

suppressed as (

    select
        *,
        case
            when months_with_extract = 0 then 'no extract'
            when any_month_suppressed or knife_sum between 1 and 4 then 'suppressed'
            when months_complete = 3 then 'complete'
            else 'partial'
        end as coverage,
        coalesce(
            months_with_extract > 0
            and (any_month_under_25_suppressed or knife_under_25_sum between 1 and 4),
            false
        ) as under_25_suppressed
    from quarter_sums

),

final as (

    select
        force_id,
        quarter_start,
        months_complete,
        coverage,
        case when coverage in ('complete', 'partial') then knife_sum end as knife_or_sharp_attendances,
        coverage = 'suppressed' as knife_or_sharp_suppressed,
        case
            when months_with_extract > 0 and not under_25_suppressed then knife_under_25_sum
        end as knife_or_sharp_under_25,
        under_25_suppressed as knife_or_sharp_under_25_suppressed,
        -- the figures a baseline, a change or a rate may use
        coverage = 'complete' as is_complete,
        months_complete = 3 and not under_25_suppressed as under_25_is_complete
    from suppressed

)

select * from final
