{#-
    Records the figures of the A&E mart just built in restricted.ae_published_cells (the history
    ae_assault_monthly compares each new figure with: see its header). A post-hook of the mart.

    It records on build, not on promotion, so a build whose checks then fail also leaves its
    figures in the history: that can only make later builds withhold more, never less. A
    write-audit-publish promotion can call this macro (with the published relation) inside its
    transaction instead; the insert is idempotent.
-#}
{% macro record_ae_publication(relation) -%}
    insert into {{ source('istv', 'ae_published_cells') }} (force_id, month, age_band, measure, value)
select force_id, month, age_band, 'attendances', attendances
from {{ relation }}
where attendances is not null
union
select force_id, month, age_band, 'knife_or_sharp_attendances', knife_or_sharp_attendances
from {{ relation }}
where knife_or_sharp_attendances is not null
on conflict do nothing
{%- endmacro %}
