-- The ONS publishes a force's number of knife offences and % involving a knife as a pair of
-- columns: both current figures of a force, offence and 12-month period must come from one
-- edition, or pfa_knife_crime_12_months could not name the edition its row comes from.
-- Returns each pair whose two measures are not both there from the same edition.
select
    area_code,
    offence,
    period_end,
    count(*) as cells,
    min(edition_load_id) as first_edition_load_id,
    max(edition_load_id) as last_edition_load_id

from {{ ref('stg_ons__pfa_knife_offences') }}
group by area_code, offence, period_end
having count(*) <> 2 or min(edition_load_id) <> max(edition_load_id)
