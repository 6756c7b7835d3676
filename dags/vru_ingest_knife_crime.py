"""
### Knife crime: nightly check of the Home Office open data table

Every night at 02:15 (Europe/London) this DAG asks the Home Office's server whether the police
recorded crime open data table of offences involving a knife or sharp instrument has changed
(ETag / Last-Modified, then the sha256 of the bytes). Only a new or revised edition is loaded:
into `raw.knife_offences`, beside the earlier editions, in one transaction, with the figures it
revised recorded in `audit.revisions`. The bytes of every edition are kept in the archive first.

* **check_and_load**: fetch, compare, parse (headers mapped through the feed's declared column
  map) and load. A table missing a required column, or naming a force that is not one of the 43,
  is refused whole: the task fails naming the column or force, and nothing of it is loaded.
* **publish_raw**: emits the `raw.knife_offences` asset event (extra: edition, figures added,
  revised) only when a new edition was loaded; otherwise skipped, and nothing downstream runs.
* **check_freshness**: whatever happened above, compares the latest quarter with a figure with
  the Home Office's usual publication delay; a stale feed opens an incident (and alerts once)
  instead of failing the run.

A task that fails after its last retry opens an incident in `audit.incidents` and alerts once
(email and/or webhook, `VRU_ALERT_*`); its next success resolves it.

Source: `VRU_KNIFE_CRIME_URL` (the table itself, or the gov.uk page that links it).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, Metadata, TriggerRule, dag, get_current_context, task
from vru.alerts import task_defaults
from vru.assets import RAW_KNIFE_OFFENCES


@dag(
    dag_id="vru_ingest_knife_crime",
    schedule=CronTriggerTimetable("15 2 * * *", timezone="Europe/London"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    # owner, retries, and on every task the incident callbacks (alert once per incident)
    default_args=task_defaults(2, pendulum.duration(minutes=5)),
    tags=["home-office", "knife-crime", "ingest"],
    doc_md=__doc__,
)
def vru_ingest_knife_crime() -> None:
    @task
    def check_and_load() -> dict[str, Any]:
        """Load the table if the Home Office published a new edition; fail naming what was wrong."""
        from vru.alerts import EditionRefused
        from vru.pipeline import ingest_knife_crime

        result = ingest_knife_crime(get_current_context()["run_id"])
        if result["status"] == "refused":  # bad data: a retry would refuse it again
            raise EditionRefused(result["dataset"], result["reason"])
        if result["status"] == "failed":  # the server: worth a retry
            raise RuntimeError(f"knife crime table could not be fetched: {result['reason']}")
        return result

    @task(outlets=[RAW_KNIFE_OFFENCES])
    def publish_raw(result: dict[str, Any]):  # type: ignore[no-untyped-def]
        """Emit the raw asset event when a new edition was loaded; skip otherwise."""
        from airflow.sdk.exceptions import AirflowSkipException

        if result["status"] != "loaded":
            raise AirflowSkipException(f"no new edition: {result['reason']}")
        yield Metadata(RAW_KNIFE_OFFENCES, {
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
        """Is the latest quarter with a figure as recent as the Home Office's publication delay
        allows? A stale feed opens (or keeps open) an incident and alerts once; it never fails the run."""
        from vru.alerts import run_freshness_check

        return run_freshness_check(["home_office.knife_offences"], get_current_context())

    loaded = check_and_load()
    publish_raw(loaded)
    # a second leaf beside publish_raw: a failed load still turns the run red
    loaded >> check_freshness()


vru_ingest_knife_crime()
