{#-
    Small-number suppression (statistical disclosure control) of A&E assault attendances: the
    rules behind marts.ae_assault_monthly, per cell (force area x month x age band).

    Ephemeral, in `restricted` if ever materialised (dbt_project.yml, models.vru.intermediate.ae):
    its CTEs hold the unsuppressed counts; its output holds only the figures that may be shown
    (NULL where withheld) and the flags. Compiled into ae_assault_monthly, so the history it reads
    (restricted.ae_published_cells) is the one before that mart's post-hook records this build.

    Threat: a reader who subtracts. Anything published (this mart, the marts built on it, earlier
    builds of them) may be combined; no count from 1 to 4 may follow, exactly, from it.

    Each force-month has two measures (attendances, knife_or_sharp_attendances) and for each one
    equation: 'all ages' = 'under 25' + '25 and over' + 'not known'. A measure of a force-month
    (its four band cells) is called an equation below.

    1. Primary: a count from 1 to 4 is withheld (NULL, *_suppressed true). Zero is shown.
    2. Secondary, all or nothing: when any cell of an equation is withheld (rule 1, 3 or 4), every
       cell of that equation is withheld.
       Attack it replaces: the previous rule withheld one more cell, the smallest shown non-zero
       band (ties to the first listed), so the choice depended on the hidden values and a reader
       who knows the rule could invert it. All ages 14, under 25 = 5, 25 and over = 5, not known
       = 4 published 14, -, 5, -: under 25 + not known = 9; if under 25 were the primary (1-4),
       not known (>= 5) would not be the smallest band, so 25 and over would have been withheld;
       hence not known is the primary and under 25 the complement, at most 25 and over's 5, so
       under 25 = 5 and not known = 4, exactly. Withholding all four cells makes the choice
       depend only on "is some cell withheld", and a withheld equation then has four unknowns
       and one equation, none shown: every withheld cell keeps several feasible values.
       - Across measures: knife_or_sharp <= attendances per cell gives bounds, never a value: a
         shown attendances cell is 0 (then knife is 0, shown or not, never 1-4) or >= 5 (then a
         withheld knife cell may be any of 1..4 at least).
       - Across months and areas: vru_outcomes_quarterly sums three months into a quarter only
         when no month is withheld (else the quarter is withheld), and vru_programme_comparison
         sums only areas whose quarter is shown; both are functions of the figures shown here,
         so they reveal nothing these do not. tests/test_disclosure.py solves every subtraction.
    3. Publication lag: a 'partial' force-month (not every department has sent the whole month)
       is withheld until var('ae_publication_lag_months') months (default 3) have passed since the
       month ended (as of var('ae_publication_as_of'), default the day the dbt run started). A month is thus
       usually first published complete, so a late extract rarely changes a published figure.
    4. Across builds: restricted.ae_published_cells keeps every figure ever published per cell
       (recorded by the post-hook, macro record_ae_publication). An equation is withheld (rule 2)
       when any of its new figures differs by 1 to 4 from any figure published for that cell
       before. So any two builds, differenced, show per cell a change of 0 or at least 5, or a
       withheld cell: a late extract, a replaced extract or a month going from partial to
       complete never reveals the 1-4 attendances it added or removed. A figure withheld this way
       is shown again once it differs from every earlier figure by 0 or 5 or more. The history is
       kept (not only the currently published mart): published 10, then 11 withheld (the mart
       now shows NULL), then 11 compared with that NULL would be shown, and 10 -> 11 reveals 1.
       Recording on build (before any promotion) can only over-record, which only withholds more.

    Unit tests: models/intermediate/ae/_int_ae__models.yml (each rule, hand-computed).
    Tests: tests/assert_ae_assault_monthly_disclosure_safe.sql, the marts suite
    (expectations/marts.ae.ae_assault_monthly.json) and tests/test_disclosure.py (the attacks).
-#}
{%- set measures = ['attendances', 'knife_or_sharp_attendances'] -%}
{%- set lag_months = var('ae_publication_lag_months', 3) | int -%}
{%- set as_of = var('ae_publication_as_of', none) -%}

with

attendances as (

    select * from {{ ref('stg_istv__attendances') }}

),

-- force x month from the first to the last month an extract covers, with its coverage
force_months as (

    select * from {{ ref('int_ae_force_months_spined') }}

),

published_before as (

    select * from {{ source('istv', 'ae_published_cells') }}

),

age_bands as (

    select *
    from (
        values
        ('all ages', 0),
        ('under 25', 1),
        ('25 and over', 2),
        ('not known', 3)
    ) as bands (age_band, band_order)

),

counts as (

    select
        force_id,
        month,
        case when grouping(age_group) = 1 then 'all ages' else age_group end as age_band,
        count(*) as attendances,
        count(*) filter (where is_knife_or_sharp) as knife_or_sharp_attendances

    from attendances
    group by grouping sets ((force_id, month, age_group), (force_id, month))

),

-- Counts are NULL only where no extract covers the force-month; otherwise no row means 0.
cells as (

    select
        force_months.*,
        age_bands.age_band,
        age_bands.band_order,
    {% for measure in measures %}
        case
            when force_months.coverage <> 'no extract' then coalesce(counts.{{ measure }}, 0)
        end as {{ measure }}{{ "," if not loop.last }}
    {% endfor %}

    from force_months
    cross join age_bands
    left join counts
        on
            force_months.force_id = counts.force_id
            and force_months.month = counts.month
            and age_bands.age_band = counts.age_band

),

-- Rule 1 (primary) and rule 3 (a partial month within the publication lag), per cell.
primary_suppression as (

    select
        *,
        coverage = 'partial'
        and cast(month + interval '{{ 1 + lag_months }} months' as date)
        > cast('{{ as_of or run_started_at.strftime('%Y-%m-%d') }}' as date)
            as is_pending,
    {% for measure in measures %}
        coalesce({{ measure }} between 1 and 4, false) as {{ measure }}_is_primary{{ "," if not loop.last }}
    {% endfor %}

    from cells

),

-- Rule 4: a cell whose figure differs by 1 to 4 from a figure published for it before.
version_conflicts as (

    select
        cells.force_id,
        cells.month,
        cells.age_band,
    {% for measure in measures %}
        coalesce(bool_or(
            published_before.measure = '{{ measure }}'
            and abs(published_before.value - cells.{{ measure }}) between 1 and 4
            ), false) as {{ measure }}_changed_by_1_to_4{{ "," if not loop.last }}
    {% endfor %}

    from cells
    inner join published_before
        on
            cells.force_id = published_before.force_id
            and cells.month = published_before.month
            and cells.age_band = published_before.age_band
    group by cells.force_id, cells.month, cells.age_band

),

-- Rule 2: an equation (force-month and measure) is withheld whole when any of its cells is.
suppression as (

    select
        primary_suppression.*,
    {% for measure in measures %}
        primary_suppression.coverage <> 'no extract'
        and bool_or(
            primary_suppression.is_pending
            or primary_suppression.{{ measure }}_is_primary
            or coalesce(version_conflicts.{{ measure }}_changed_by_1_to_4, false)
        ) over force_month as {{ measure }}_suppressed{{ "," if not loop.last }}
    {% endfor %}

    from primary_suppression
    left join version_conflicts
        on
            primary_suppression.force_id = version_conflicts.force_id
            and primary_suppression.month = version_conflicts.month
            and primary_suppression.age_band = version_conflicts.age_band
    window force_month as (partition by primary_suppression.force_id, primary_suppression.month)

),

shown as (

    select
        *,
        {% for measure in measures %}
            case when not {{ measure }}_suppressed then {{ measure }} end as {{ measure }}_shown,
        {% endfor %}
        -- the shown under-25 count of the force-month, for the share on the 'all ages' row
        max(case when age_band = 'under 25' and not attendances_suppressed then attendances end)
            over (partition by force_id, month) as under_25_shown

    from suppression

),

final as (

    select
        force_id,
        month,
        age_band,
        coverage,
        sites_expected,
        sites_reporting,
        attendances_shown as attendances,
        knife_or_sharp_attendances_shown as knife_or_sharp_attendances,
        attendances_suppressed,
        knife_or_sharp_attendances_suppressed as knife_or_sharp_suppressed,
        -- cast outside the case: postgres drops the precision of a case result
        cast(
            case
                when age_band = 'all ages' and attendances_shown > 0
                    then round(cast(under_25_shown as numeric) / attendances_shown, 4)
            end
            as numeric(5, 4)
        ) as under_25_share

    from shown

)

select * from final
