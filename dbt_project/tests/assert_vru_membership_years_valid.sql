-- vru_membership_years: every year from 2019/20 to its last year has all 43 areas once; 18 VRUs in
-- 2019/20-2021/22 and 20 from 2022/23 (Cleveland and Humberside joined in April 2022); an area is a
-- member from the financial year of vru_joined on; an allocation only for a member, always with
-- its source; a missing allocation of a member says why (allocation_note).
with

membership as (

    select * from {{ ref('vru_membership_years') }}

),

years as (

    select
        fy_start,
        count(*) as areas,
        count(distinct force_id) as distinct_areas,
        count(*) filter (where is_vru) as vru_areas
    from membership
    group by fy_start

),

year_problems as (

    select
        'year ' || fy_start || ': ' || areas || ' rows, ' || vru_areas || ' VRU areas' as problem
    from years
    where
        areas <> 43
        or distinct_areas <> 43
        or vru_areas <> case when fy_start < 2022 then 18 else 20 end
        or fy_start < 2019
    union all
    select 'years not contiguous: ' || min(fy_start) || '-' || max(fy_start) || ', ' || count(*) || ' years'
    from years
    having max(fy_start) - min(fy_start) + 1 <> count(*)

),

joined as (

    select
        *,
        coalesce(date_part('year', vru_joined), 9999) as joined_fy
    from membership

),

row_problems as (

    select
        force_id || ' ' || financial_year || ': '
        || case
            when is_vru <> (fy_start >= joined_fy) then 'is_vru disagrees with vru_joined'
            when allocation_gbp is not null and not is_vru then 'allocation for a non-member'
            when allocation_gbp is not null and coalesce(allocation_source, '') = '' then 'allocation without source'
            when allocation_gbp is null and is_vru and coalesce(allocation_note, '') = '' then 'no allocation, no note'
            when financial_year <> fy_start || '/' || lpad(cast(mod(fy_start + 1, 100) as text), 2, '0')
                then 'financial_year disagrees with fy_start'
            when (force_id in ('cleveland', 'humberside')) <> (joined_fy = 2022) then 'wrong joining year'
        end as problem
    from joined

),

final as (

    select problem from year_problems
    union all
    select problem from row_problems
    where problem is not null

)

select * from final
