"""One factory for the ingest DAGs of edition feeds (a table its publisher republishes whole).

`dags/vru_ingest_<name>.py` calls `edition_ingest_dag(<feed>.FEED)`; everything that differs
between two such feeds is in the feed's declaration (`vru.feed.Feed`): its DAG id, schedule,
retries, tags, raw asset, source setting, what it loads, its freshness rule. The tasks:

* **check_and_load**: fetch, compare (ETag / Last-Modified, then the sha256 of the bytes), parse
  (headers mapped through the feed's declared column map) and load a new or revised edition, beside
  the earlier ones, in one transaction, with the figures it revised recorded in `audit.revisions`.
  The bytes of every edition are kept in the archive first. A table the feed cannot read is
  refused whole: the task fails naming what was wrong (never quoting the file), nothing is loaded.
* **publish_raw**: emits the raw asset event (extra: edition, figures added, revised) only when a
  new edition was loaded; otherwise skipped, and nothing downstream runs.
* **check_freshness**: whatever happened above, compares the latest period with a figure with the
  publisher's usual schedule; a stale feed opens an incident (and alerts once) instead of
  failing the run.

A task that fails after its last retry opens an incident in `audit.incidents` and alerts once
(email and/or webhook, `VRU_ALERT_*`); its next success resolves it.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Metadata, TriggerRule, dag, get_current_context, task

from vru.assets import raw_asset
from vru.config import settings
from vru.feed import Feed
from vru.incidents import task_defaults
from vru.lineage import declares, source

START_DATE = pendulum.datetime(2026, 1, 1, tz="Europe/London")
TIMEZONE = "Europe/London"


def schedule(feed: Feed) -> CronTriggerTimetable:
    return CronTriggerTimetable(feed.schedule, timezone=TIMEZONE)


def defaults(feed: Feed) -> dict[str, Any]:
    """owner, retries, and on every task the incident callbacks (alert once per incident)."""
    return task_defaults(feed.retries, pendulum.duration(minutes=feed.retry_delay_minutes))


def dag_arguments(feed: Feed) -> dict[str, Any]:
    """What every ingest DAG takes from its feed's declaration (its schedule is its own: a files
    feed also starts on files landing). One run at a time; no catch-up: a night missed is loaded
    by the next, which asks the source what is new."""
    return {
        "dag_id": feed.dag_id,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": defaults(feed),
        "tags": list(feed.tags),
    }


def edition_ingest_dag(feed: Feed) -> DAG:
    """The nightly check-and-load DAG of an edition feed."""
    raw = raw_asset(feed)
    when = f"{feed.schedule.split()[1].zfill(2)}:{feed.schedule.split()[0].zfill(2)}"
    doc = (f"### {feed.label}: nightly check of {feed.freshness.publisher}'s table\n\n"
           f"Every night at {when} ({TIMEZONE}) this DAG checks whether {feed.freshness.publisher} "
           f"published a new edition of {feed.doc_md}\n\n"
           + (__doc__ or "").split("The tasks:\n", 1)[1]
           + f"\nSource: `{feed.url_env}` (the table itself, or the page that links it). "
           f"Declared in `vru.feeds.{feed.name}` (FEED).")

    @dag(schedule=schedule(feed), doc_md=doc, **dag_arguments(feed))
    def ingest_dag() -> None:
        @task
        @declares(inputs=[source(feed.source_url(settings()))], outputs=[raw])
        def check_and_load() -> dict[str, Any]:
            """Load the table if the publisher put out a new edition; fail naming what was wrong."""
            from vru.incidents import EditionRefused
            from vru.ingest import ingest_edition

            result = ingest_edition(feed.name, get_current_context()["run_id"])
            if result["status"] == "refused":  # bad data: a retry would refuse it again
                raise EditionRefused(result["dataset"], result["reason"])
            if result["status"] == "failed":  # the server: worth a retry
                raise RuntimeError(f"{feed.label}: the table could not be fetched: {result['reason']}")
            return result

        @task(outlets=[raw])
        def publish_raw(result: dict[str, Any]):  # type: ignore[no-untyped-def]
            """Emit the raw asset event when a new edition was loaded; skip otherwise."""
            from airflow.sdk.exceptions import AirflowSkipException

            if result["status"] != "loaded":
                raise AirflowSkipException(f"no new edition: {result['reason']}")
            yield Metadata(raw, {
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
            """Is the latest period with a figure as recent as the publisher's schedule allows? A
            stale feed opens (or keeps open) an incident and alerts once; it never fails the run."""
            from vru.freshness import run_freshness_check

            return run_freshness_check([feed.dataset], get_current_context())

        loaded = check_and_load()
        publish_raw(loaded)  # type: ignore[arg-type]  # an XComArg, resolved at run time
        # a second leaf beside publish_raw: a failed load still turns the run red
        loaded >> check_freshness()

    return ingest_dag()
