"""
### Transform and validate: raw → staging → marts, gated by Great Expectations

Runs when raw has settled: the `audit.loads` event of `vru_raw_settled`, which follows every
feed's raw asset event (`raw.stop_searches`, `raw.knife_offences`, `raw.sharp_object_admissions`,
`raw.pfa_knife_offences`, or `restricted.ae_attendances` when an A&E extract lands) and announces
once no feed is still loading (a feed whose source is failing and waits for a retry is not waited
for). So a night starts one run however many feeds loaded, and never one when nothing was loaded.

1. **validate_raw**: the raw suites (`expectations/raw.*.json`) run in PostgreSQL. A critical
   failure stops here: dbt does not run, so no figure from that batch reaches the marts.
2. **dbt**: one `dbt build` of the seeds, every model and their tests (astronomer-cosmos'
   `DbtBuildLocalOperator`, dbt's Python runner, two threads): one dbt start-up per run, not one
   per model (docs/decisions.md, issue 15). A failing dbt test skips its downstream models, the
   others are still built, and the task fails: nothing is published.
   **estimate_effects**, then **dbt_effects**: the programme effect estimates (`vru.effects`) from
   the outcome marts just built, then the two effect marts built from them (`tag:effects`).
3. **validate_marts**: the staging and mart suites, on the build (`marts_build`, which no BI role
   can read: dbt builds the marts there). A critical failure fails the run: nothing is published
   and BI tools keep reading the previous marts, untouched. If a feed loaded while the run was
   building (its load committed after validate_raw took its snapshot), a failure is not trusted:
   the task is skipped, nothing is published, no incident opens, and the transform run that load
   queued decides.
4. **publish_marts**: write-audit-publish. Applies the checked build to the published `marts`
   (what BI tools read), every mart in one transaction, changed rows only (`vru.publish`), records
   it in `audit.publications`, then emits the mart asset events (`marts.stop_search_monthly`,
   `marts.knife_crime_quarterly`, `marts.sharp_object_admissions_yearly`,
   `marts.ae_assault_monthly`, `marts.pfa_knife_crime_12_months`, `marts.vru_outcomes_quarterly`,
   `marts.vru_programme_comparison`)
   for BI refreshes.
5. **report**: always runs; writes the data quality report (`VRU_HOME/reports/index.html`) and
   Great Expectations Data Docs (`VRU_HOME/reports/data_docs/index.html`).

A task that fails (a critical validation failure included) opens an incident in
`audit.incidents` and alerts once (email and/or webhook, `VRU_ALERT_*`); its next success
resolves it.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Metadata, TriggerRule, dag, get_current_context, task
from cosmos import ProfileConfig
from cosmos import settings as cosmos_settings
from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtBuildLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping
from vru import registry
from vru.assets import MARTS, SETTLED, table_asset
from vru.config import settings
from vru.incidents import task_defaults
from vru.lineage import declares, tables
from vru.publish import BUILD_SCHEMA

_cfg = settings()
_MANIFEST = Path(_cfg.dbt_project_dir) / "target" / "manifest.json"
if not _MANIFEST.exists():
    raise FileNotFoundError(
        f"{_MANIFEST} is missing: the dbt project is parsed ahead of time (`make setup` or "
        "`vru dbt-parse`), so each dbt task starts from its partial parse instead of parsing afresh"
    )
# Where the dbt tasks keep dbt's partial parse between runs ([cosmos] cache_dir). Cosmos runs each
# task in a fresh copy of the project and, for an operator used on its own, only carries
# target/partial_parse.msgpack over when the operator has a cache_dir: without one every dbt task
# parsed the whole project afresh (3.2 s of each national new-month run's two dbt tasks). Both
# tasks parse the same project with the same connection, so they share one.
_DBT_CACHE = cosmos_settings.cache_dir / registry.TRANSFORM_DAG

# (stage, dataset, table) validated by each gate, from each feed's declaration (vru.feeds.<name>);
# suites are expectations/<stage>.<dataset>.json
RAW_CHECKS = registry.raw_checks()
# The mart suites check the build (write-audit-publish): dbt builds the marts in BUILD_SCHEMA,
# which no BI role reads; publish_marts makes them visible only after every check passed.
MART_CHECKS = registry.mart_checks(BUILD_SCHEMA)
VALIDATION_RESULTS = table_asset("audit", "validation_results")  # where both gates record each result
_PROFILE = ProfileConfig(
    profile_name="vru",
    target_name="default",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id="vru_warehouse", profile_args={"schema": "staging", "threads": 1}
    ),
)
# The whole build runs in one task, alone in the transform: two models at a time keeps both cores
# busy (dbt's Python on one, a PostgreSQL backend on the other).
_BUILD_PROFILE = ProfileConfig(
    profile_name="vru",
    target_name="default",
    profile_mapping=PostgresUserPasswordProfileMapping(
        conn_id="vru_warehouse", profile_args={"schema": "staging", "threads": 2}
    ),
)


@dag(
    dag_id=registry.TRANSFORM_DAG,
    schedule=SETTLED,  # raw settled (vru_raw_settled): one run per night however many feeds loaded
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    # owner, retries, and on every task the incident callbacks (alert once per incident)
    default_args=task_defaults(0),
    tags=["dbt", "great-expectations", "marts"],
    doc_md=__doc__,
)
def vru_transform() -> None:
    @task
    @declares(inputs=tables(RAW_CHECKS), outputs=[VALIDATION_RESULTS])
    def validate_raw() -> dict[str, object]:
        """Run the raw-stage suites in PostgreSQL; a critical failure stops the run here."""
        from vru.gates import raw_snapshot, run_validations

        # taken before the checks: a load committed after this is one "under this run"
        snapshot = raw_snapshot()
        return {**run_validations(RAW_CHECKS, get_current_context()["run_id"]), "raw_snapshot": snapshot}

    # One `dbt build` of the seeds, every model and their tests (not the effect marts, below): one
    # dbt process per run instead of one per model. Measured at national volume on 2 cores
    # (docs/decisions.md): each dbt process costs ~7 s of start-up, which was most of a night's
    # transform (25 Cosmos tasks). A failing test still stops only its downstream: dbt build
    # skips the nodes that depend on it and builds the rest, and the task fails, so the gate
    # below does not run and nothing is published. Unit tests run in `make test`, not nightly.
    dbt = DbtBuildLocalOperator(
        task_id="dbt",
        project_dir=_cfg.dbt_project_dir,
        profile_config=_BUILD_PROFILE,
        exclude="tag:effects",
        dbt_cmd_flags=["--exclude-resource-type", "unit_test"],
        install_deps=False,
        invocation_mode=InvocationMode.DBT_RUNNER,
        cache_dir=_DBT_CACHE,
        # no asset event per built relation: only publish_marts announces marts, after the gate
        emit_datasets=False,
        doc_md=(
            "`dbt build --exclude tag:effects`: the seeds, every staging, intermediate and mart model "
            "and their tests, two at a time (`threads: 2`). A failing test skips its downstream "
            "models (the others are still built) and fails this task: nothing is published. Which "
            "node failed, and why, is in this task's log."
        ),
    )

    @task
    @declares(inputs=[table_asset(BUILD_SCHEMA, "vru_outcomes_quarterly")],
              outputs=[table_asset("staging", "programme_effect_estimates"),
                       table_asset("staging", "programme_event_study_estimates")])
    def estimate_effects() -> dict[str, str]:
        """Estimate the programme's effects (vru.effects) from the outcome marts just built in the
        build schema; write them to the pipeline-only tables the effect marts are built from."""
        from vru.effects_build import build_effects

        return build_effects(get_current_context()["run_id"])

    # The effect marts read what estimate_effects wrote (a dbt source), so they are built after it:
    # one `dbt build` of the two models and their tests, in the same build schema and gate.
    effect_marts = DbtBuildLocalOperator(
        task_id="dbt_effects",
        project_dir=_cfg.dbt_project_dir,
        profile_config=_PROFILE,
        select="tag:effects",
        install_deps=False,
        invocation_mode=InvocationMode.DBT_RUNNER,
        cache_dir=_DBT_CACHE,
        emit_datasets=False,
        doc_md="`dbt build --select tag:effects`: the programme effect marts from estimate_effects' tables.",
    )

    @task
    @declares(inputs=tables(MART_CHECKS), outputs=[VALIDATION_RESULTS])
    def validate_marts(raw: dict[str, object]) -> dict[str, object]:
        """Run the staging and mart suites; a critical failure fails the run, no mart event.

        Unless a feed loaded while this run was building: then its marts mix two states of raw,
        the failure is skipped (no incident) and the transform run that load queued decides.
        """
        from airflow.sdk.exceptions import AirflowSkipException
        from vru.gates import RawChangedDuringRun, validate_marts_gate

        try:
            return validate_marts_gate(MART_CHECKS, get_current_context()["run_id"], str(raw["raw_snapshot"]))
        except RawChangedDuringRun as superseded:
            raise AirflowSkipException(str(superseded)) from superseded

    @task(outlets=MARTS, retries=2, retry_delay=pendulum.duration(minutes=1))
    @declares(inputs=[table_asset(BUILD_SCHEMA, m.name.split(".", 1)[1]) for m in MARTS], outputs=MARTS)
    def publish_marts(validated: dict[str, object]):  # type: ignore[no-untyped-def]
        """Make the checked build visible (one transaction, changed rows only), then tell BI refreshes.

        Retried: a contract change must lock the published table, and gives up after a lock
        timeout rather than queue behind a long BI query.
        """
        from vru.publish import publish_marts as promote_build

        changes = promote_build(get_current_context()["run_id"], raw_snapshot=str(validated.get("raw_snapshot") or ""))
        for mart in MARTS:
            yield Metadata(mart, {"validated": validated, "published": changes.get(mart.name.split(".", 1)[1])})

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report() -> str:
        """Write the data quality report for monitoring staff, whatever happened upstream."""
        from vru.report import write_report

        return str(write_report(run_id=get_current_context()["run_id"]))

    raw_ok = validate_raw()
    marts_ok = validate_marts(raw_ok)
    raw_ok >> dbt >> estimate_effects() >> effect_marts >> marts_ok
    published = publish_marts(marts_ok)
    # The report is written after publishing, so it says which figures BI tools now show. A run's
    # state comes from its leaves: `published` (an EmptyOperator, which the scheduler completes
    # without a worker) keeps a run whose gate failed red, although the report was written.
    published >> report()
    published >> EmptyOperator(task_id="published", doc_md="Leaf: the run is red unless the marts were published.")


vru_transform()
