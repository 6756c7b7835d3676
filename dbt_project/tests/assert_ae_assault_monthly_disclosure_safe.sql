-- The A&E mart publishes no small number and no suppressed number can be recovered by
-- subtraction, within this build or against earlier ones, in one test (one Airflow task) instead
-- of several (the rules are in the model's header). Checks, per force-month:
-- no shown count from 1 to 4; a count is NULL exactly when suppressed, except where no extract
-- covers the month (all NULL, nothing suppressed); for each measure the four cells of the
-- equation 'all ages' = 'under 25' + '25 and over' + 'not known' are withheld all or none, and
-- the equation holds when none is; knife or sharp attendances never exceed attendances; no shown
-- figure differs by 1 to 4 from a figure published for the same cell before
-- (restricted.ae_published_cells, which already holds this build's figures: difference 0).
-- Fails with one row per force-month and problem: counts only, never row-level data.

with

mart as (

    select * from {{ ref('ae_assault_monthly') }}

),

-- The history (source istv.ae_published_cells) named without source(): a second parent would make
-- Cosmos run this test as a task of its own instead of inside the mart's `dbt build` task.
published_before as (

    select * from {{ api.Relation.create(database=target.database, schema='restricted', identifier='ae_published_cells') }}  -- noqa: TMP, PRS, LT05

),

cells as (

    select
        force_id,
        month,
        age_band,
        coverage,
        'attendances' as measure,
        attendances as shown,
        attendances_suppressed as suppressed
    from mart
    union all
    select
        force_id,
        month,
        age_band,
        coverage,
        'knife_or_sharp_attendances',
        knife_or_sharp_attendances,
        knife_or_sharp_suppressed
    from mart

),

cell_problems as (

    select force_id, month, measure, 'count from 1 to 4 shown' as problem
    from cells
    where shown between 1 and 4

    union all

    select force_id, month, measure, 'suppressed flag disagrees with a NULL count'
    from cells
    where
        (coverage <> 'no extract' and (shown is null) <> suppressed)
        or (coverage = 'no extract' and (shown is not null or suppressed))

),

equations as (

    select
        force_id,
        month,
        measure,
        count(*) as cells,
        count(*) filter (where suppressed) as suppressed_cells,
        sum(shown) filter (where age_band = 'all ages') as all_ages,
        sum(shown) filter (where age_band <> 'all ages') as bands

    from cells
    where coverage <> 'no extract'
    group by force_id, month, measure

),

equation_problems as (

    select force_id, month, measure, 'some but not all cells withheld: the choice can reveal them'
    from equations
    where suppressed_cells between 1 and cells - 1

    union all

    select force_id, month, measure, 'not one cell per age band'
    from equations
    where cells <> 4

    union all

    select force_id, month, measure, 'all ages is not the sum of the age bands'
    from equations
    where suppressed_cells = 0 and all_ages <> bands

    union all

    select force_id, month, 'knife_or_sharp_attendances', 'more knife or sharp attendances than attendances'
    from mart
    where knife_or_sharp_attendances > attendances

    union all

    select distinct
        cells.force_id,
        cells.month,
        cells.measure,
        'differs by 1 to 4 from a figure published before: the change is a small count'
    from cells
    inner join published_before
        on
            cells.force_id = published_before.force_id
            and cells.month = published_before.month
            and cells.age_band = published_before.age_band
            and cells.measure = published_before.measure
    where abs(cells.shown - published_before.value) between 1 and 4

),

final as (

    select * from cell_problems
    union all
    select * from equation_problems

)

select * from final
