"""
### Stop and search: nightly ingest from data.police.uk

Every night at 02:00 (Europe/London) this DAG asks data.police.uk which force-months of stop and
search it has published (`crimes-street-dates`), and loads each one that is new, or whose content
changed since it was loaded, into `raw.stop_searches` (one transaction per force-month; the bytes
of every response are kept in the archive under `VRU_HOME/archive` first).

* **plan**: availability and the source's last-updated date decide what to fetch.
* **ingest**: one mapped task per month (pool `police_api`, one slot: the 10 requests/s limit
  holds across workers). A force-month that fails every retry fails alone; the others load.
* **publish_raw**: emits the `raw.stop_searches` asset event (extra: force-months and row
  counts) only when something was loaded or replaced; otherwise it is skipped and nothing
  downstream runs.
* **check_failures**: turns the run red, naming each force-month that could not be loaded.
  Those are retried by the next run.
* **check_freshness**: whatever happened above, compares the latest month held with
  data.police.uk's usual publication delay; a stale feed opens an incident (and alerts once)
  instead of failing the run.

A task that fails after its last retry opens an incident in `audit.incidents` and alerts once
(email and/or webhook, `VRU_ALERT_*`); its next success resolves it.

Backfills from the monthly archive CSVs: `vru load-archive <files>` (same raw table, same rules).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Metadata, TriggerRule, dag, get_current_context, task
from vru.assets import raw_asset, table_asset
from vru.config import settings
from vru.feeds.police import FEED
from vru.ingest_dags import dag_arguments, schedule
from vru.lineage import declares, source

RAW_STOP_SEARCHES = raw_asset(FEED)
API = settings().police_api_url


# id, retries and the incident callbacks on every task, tags: from the feed's declaration
@dag(schedule=schedule(FEED), doc_md=__doc__, **dag_arguments(FEED))
def vru_ingest_police() -> None:
    @task
    @declares(inputs=[source(API, "/crimes-street-dates"), source(API, "/crime-last-updated")],
              outputs=[table_asset("raw", "police_availability")])
    def plan() -> dict[str, Any]:
        """Read what data.police.uk lists as published; return tonight's force-months by month."""
        from vru.ingest import plan_police

        return plan_police()

    @task
    def batches(planned: dict[str, Any]) -> list[list[dict[str, str]]]:
        """One batch per month, so each month is one mapped ingest task in the UI."""
        return planned["batches"]

    @task(
        pool="police_api",
        map_index_template="{{ batch_month }}",
        # a mapped task does not take its docstring as doc_md: say it here
        doc_md="Fetch, archive and load each force-month of one month; failures are returned, not raised.",
    )
    @declares(inputs=[source(API, "/stops-force")], outputs=[RAW_STOP_SEARCHES])
    def ingest(batch: list[dict[str, str]]) -> list[dict[str, Any]]:
        from vru.ingest import ingest_police_batch

        context = get_current_context()
        context["batch_month"] = batch[0]["month"]  # type: ignore[typeddict-unknown-key]
        return ingest_police_batch(batch, context["run_id"])

    @task(outlets=[RAW_STOP_SEARCHES])
    def publish_raw(results: list[list[dict[str, Any]]], planned: dict[str, Any]):  # type: ignore[no-untyped-def]
        """Emit the raw asset event when something was loaded or replaced; skip otherwise."""
        from airflow.sdk.exceptions import AirflowSkipException
        from vru.ingest import finish_police

        summary = finish_police([r for batch in results for r in batch], planned["last_updated"])
        if not summary.changed:
            raise AirflowSkipException(
                f"nothing new: {summary.unchanged} force-months unchanged, {len(summary.failed)} failed"
            )
        yield Metadata(RAW_STOP_SEARCHES, summary.event_extra())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def check_failures(results: list[list[dict[str, Any]]]) -> None:
        """Fail the run, naming every force-month that could not be loaded (retried next run)."""
        from airflow.sdk.exceptions import AirflowFailException
        from vru.feed import FAILED_LOADS

        failed = [r for batch in results for r in batch if r["status"] in FAILED_LOADS]
        if failed:
            lines = [f"{r['force_id']} {r['month']}: {r['status']}: {r['error']}" for r in failed]
            raise AirflowFailException("force-months not loaded:\n" + "\n".join(lines))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def check_freshness() -> list[dict[str, Any]]:
        """Is the latest month held as recent as data.police.uk's publication delay allows? A stale
        feed opens (or keeps open) an incident and alerts once; it never fails the run."""
        from vru.freshness import run_freshness_check

        return run_freshness_check([FEED.dataset], get_current_context())

    planned = plan()
    results = ingest.expand(batch=batches(planned))
    publish_raw(results, planned) >> check_failures(results)
    # its own leaf: a run's state comes from its leaves, so check_failures still turns it red
    results >> check_freshness()


vru_ingest_police()
