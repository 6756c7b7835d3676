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

Source: `VRU_KNIFE_CRIME_URL` (the table itself, or the gov.uk page that links it).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, Metadata, dag, get_current_context, task
from vru.assets import RAW_KNIFE_OFFENCES


@dag(
    dag_id="vru_ingest_knife_crime",
    schedule=CronTriggerTimetable("15 2 * * *", timezone="Europe/London"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-engineering", "retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["home-office", "knife-crime", "ingest"],
    doc_md=__doc__,
)
def vru_ingest_knife_crime() -> None:
    @task
    def check_and_load() -> dict[str, Any]:
        """Load the table if the Home Office published a new edition; fail naming what was wrong."""
        from airflow.sdk.exceptions import AirflowFailException
        from vru.pipeline import ingest_knife_crime

        result = ingest_knife_crime(get_current_context()["run_id"])
        if result["status"] == "refused":  # bad data: a retry would refuse it again
            raise AirflowFailException(f"knife crime edition refused: {result['reason']}")
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

    publish_raw(check_and_load())


vru_ingest_knife_crime()
