"""
### Hospital admissions for assault by sharp object: nightly check of the NHS HES table

Every night at 02:45 (Europe/London) this DAG asks NHS Digital's server whether the Hospital
Episode Statistics (HES) admitted patient care "external causes" table has changed (ETag /
Last-Modified, then the sha256 of the bytes). Only a new or revised edition is loaded: the
figures for assault by sharp object (ICD-10 X99) in England, by financial year, go into
`raw.sharp_object_admissions` beside the earlier editions, in one transaction, with the figures it
revised recorded in `audit.revisions`. The bytes of every edition are kept in the archive first.
HES is published once a year, so on almost every night nothing changes and nothing is loaded.

* **check_and_load**: fetch, compare, parse (headers mapped through the feed's declared column
  map) and load. A table missing a required column is refused whole: the task fails naming the
  column, and nothing of it is loaded. Rows of other causes are kept as notes, not loaded.
* **publish_raw**: emits the `raw.sharp_object_admissions` asset event (extra: edition, figures
  added, revised) only when a new edition was loaded; otherwise skipped, and nothing downstream runs.
* **check_freshness**: whatever happened above, compares the latest financial year with a figure
  with NHS Digital's usual yearly publication; a stale feed opens an incident (and alerts once)
  instead of failing the run.

A task that fails after its last retry opens an incident in `audit.incidents` and alerts once
(email and/or webhook, `VRU_ALERT_*`); its next success resolves it.

Source: `VRU_HES_URL` (the table itself, or the NHS Digital publication page that links it).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, Metadata, TriggerRule, dag, get_current_context, task
from vru.alerts import task_defaults
from vru.assets import RAW_SHARP_OBJECT_ADMISSIONS


@dag(
    dag_id="vru_ingest_hes",
    schedule=CronTriggerTimetable("45 2 * * *", timezone="Europe/London"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    # owner, retries, and on every task the incident callbacks (alert once per incident)
    default_args=task_defaults(2, pendulum.duration(minutes=5)),
    tags=["nhs", "hes", "sharp-object-admissions", "ingest"],
    doc_md=__doc__,
)
def vru_ingest_hes() -> None:
    @task
    def check_and_load() -> dict[str, Any]:
        """Load the table if NHS Digital published a new edition; fail naming what was wrong."""
        from vru.alerts import EditionRefused
        from vru.pipeline import ingest_hes

        result = ingest_hes(get_current_context()["run_id"])
        if result["status"] == "refused":  # bad data: a retry would refuse it again
            raise EditionRefused(result["dataset"], result["reason"])
        if result["status"] == "failed":  # the server: worth a retry
            raise RuntimeError(f"HES sharp object admissions table could not be fetched: {result['reason']}")
        return result

    @task(outlets=[RAW_SHARP_OBJECT_ADMISSIONS])
    def publish_raw(result: dict[str, Any]):  # type: ignore[no-untyped-def]
        """Emit the raw asset event when a new edition was loaded; skip otherwise."""
        from airflow.sdk.exceptions import AirflowSkipException

        if result["status"] != "loaded":
            raise AirflowSkipException(f"no new edition: {result['reason']}")
        yield Metadata(RAW_SHARP_OBJECT_ADMISSIONS, {
            "edition": result["load_id"],
            "previous_edition": result["previous_load_id"],
            "file_format": result["file_format"],
            "figures": result["figures"],
            "figures_added": result["figures_added"],
            "figures_revised": result["figures_revised"],
            "figures_dropped": result["figures_dropped"],
            "rows_quarantined": result["rows_quarantined"],
        })

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def check_freshness() -> list[dict[str, Any]]:
        """Is the latest financial year with a figure as recent as NHS Digital's yearly publication
        allows? A stale feed opens (or keeps open) an incident and alerts once; it never fails the run."""
        from vru.alerts import run_freshness_check

        return run_freshness_check(["nhs.sharp_object_admissions"], get_current_context())

    loaded = check_and_load()
    publish_raw(loaded)
    # a second leaf beside publish_raw: a failed load still turns the run red
    loaded >> check_freshness()


vru_ingest_hes()
