"""
### A&E assault attendances: take in ISTV extracts as they land (event-driven)

Emergency departments drop their Information Sharing to Tackle Violence (ISTV) extracts, one CSV
file per department and reporting period, into the landing folder (`VRU_AE_LANDING`, default
`VRU_HOME/landing/ae`). This DAG runs **when a file lands**, not at night: the landing folder is
an asset with an asset watcher, whose trigger (`vru.triggers.LandingFileTrigger`, run by the
triggerer) fires once per new file without touching it. At 02:30 (Europe/London) it also runs as
a nightly sweep, which takes in anything an event did not (for example a file whose run failed).

* **take_in**: per file, oldest first: archive the bytes, check the file against the contract and
  load it into `restricted.ae_attendances` in one transaction, then move it to `loaded/`. A file
  refused whole goes to `rejected/` with `<name>.reason.txt` beside it (nothing of it loaded) and
  opens an incident that alerts once; the same bytes dropped twice are loaded once. A file is
  taken only once unchanged for `VRU_AE_SETTLE_SECONDS`; a link, a FIFO, a folder, a file over
  `VRU_AE_MAX_FILE_BYTES`, a name that cannot be shown as it is, or a file failing in any other
  way is set aside the same way while the other files are still taken in. Row-level
  problems (an unknown site code, a code outside the standard) are quarantined in
  `restricted.ae_quarantine` with line and column.
* **publish_raw**: emits the `restricted.ae_attendances` asset event (extra: the extracts and
  how many files; never row data nor row counts) only when an extract was loaded; the transform DAG then rebuilds the
  marts. Otherwise skipped.
* **check_freshness**: whatever happened above: is the latest reporting period recent enough?
* **report**: rewrites the data quality report, so a rejected file is listed there at once.

Row-level A&E data never leaves the `restricted` schema; BI tools read only the suppressed
counts in `marts.ae_assault_monthly`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    Metadata,
    TriggerRule,
    dag,
    get_current_context,
    task,
)
from vru.assets import raw_asset
from vru.config import settings
from vru.feeds.ae import FEED
from vru.ingest_dags import dag_arguments, schedule
from vru.lineage import declares
from vru.triggers import LandingFileTrigger

RAW_AE_ATTENDANCES = raw_asset(FEED)

_SETTINGS = settings()
_LANDING = _SETTINGS.ae_landing_dir

# The landing folder as an asset: its watcher's events start this DAG.
AE_LANDING = Asset(
    name="landing.ae_extracts",
    uri=f"file://{_LANDING}",
    group="landing",
    watchers=[AssetWatcher(name="ae_landing_watcher", trigger=LandingFileTrigger(
        directory=str(_LANDING), settle_seconds=_SETTINGS.ae_settle_seconds))],
)


@dag(
    # nightly, and whenever files land; one taker at a time (max_active_runs=1): files arriving
    # during a run start the next one (events are queued)
    schedule=AssetOrTimeSchedule(timetable=schedule(FEED), assets=AE_LANDING),
    doc_md=__doc__,
    **dag_arguments(FEED),
)
def vru_ingest_ae() -> None:
    @task
    @declares(inputs=[AE_LANDING], outputs=[RAW_AE_ATTENDANCES])
    def take_in() -> dict[str, Any]:
        """Take in every waiting extract: load, reject with a reason, or recognise a duplicate."""
        from vru.landing import ingest_landed

        context = get_current_context()
        return ingest_landed(context["run_id"], context)

    @task(outlets=[RAW_AE_ATTENDANCES])
    def publish_raw(result: dict[str, Any]):  # type: ignore[no-untyped-def]
        """Emit the raw asset event when an extract was loaded; skip otherwise."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not (result["loaded"] or result["replaced"]):
            raise AirflowSkipException(
                f"no extract loaded ({result['duplicates']} duplicate(s), {result['rejected']} rejected)")
        yield Metadata(RAW_AE_ATTENDANCES, {
            "extracts": result["extracts"],
            "files_loaded": result["loaded"],
            "files_replaced": result["replaced"],
            "files_rejected": result["rejected"],
            "duplicates": result["duplicates"],
            # no row counts: asset events are readable by Airflow users, and rows per extract are
            # A&E attendances by site and period (exact counts stay in audit.landed_files)
            "extracts_with_rows_set_aside": result["extracts_with_rows_set_aside"],
        })

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def check_freshness() -> list[dict[str, Any]]:
        """Is the latest reporting period recent enough? A stale feed alerts once; never fails the run."""
        from vru.freshness import run_freshness_check

        return run_freshness_check([FEED.dataset], get_current_context())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report() -> str:
        """Rewrite the data quality report: a rejected file shows there now, not after the next
        transform run (which a run that loaded nothing does not start)."""
        from vru.report import write_report

        return str(write_report(run_id=get_current_context()["run_id"]))

    taken = take_in()
    publish_raw(taken)
    taken >> check_freshness() >> report()


vru_ingest_ae()
