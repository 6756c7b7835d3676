"""The work behind each DAG task, callable without Airflow (the CLI and tests call it too).

Each function opens its own warehouse connection: tasks run in separate processes. No task runs
DDL: the schema is applied once at start-up (`vru warehouse apply-schema`; `vru run` before it
starts Airflow), so a task never takes an ACCESS EXCLUSIVE lock a BI reader would queue behind.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from vru import registry, warehouse
from vru.archive import Archive
from vru.config import Settings, settings
from vru.feed import FAILED_LOADS, SUCCESSFUL_LOADS
from vru.feeds import police
from vru.loader import Partition

log = logging.getLogger(__name__)


def plan_police(cfg: Settings | None = None) -> dict[str, Any]:
    """Ask data.police.uk what it has published and decide tonight's force-months."""
    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    api = police.PoliceApi.from_settings(cfg)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            plan = police.plan(conn, api, Archive(cfg.archive_dir))
    finally:
        api.http.close()
    return {
        "batches": plan.by_month(),
        "last_updated": plan.last_updated,
        "listed": plan.listed,
        "already_loaded": plan.already_loaded,
        "to_fetch": len(plan.partitions),
    }


def ingest_police_batch(batch: list[dict[str, str]], run_id: str | None,
                        cfg: Settings | None = None) -> list[dict[str, Any]]:
    """Fetch and load a batch of force-months; a failing force-month fails alone."""
    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    api = police.PoliceApi.from_settings(cfg)
    archive = Archive(cfg.archive_dir)
    results = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for item in batch:
                part = Partition(item["force_id"], police.parse_month(item["month"]))
                if run_id and _loaded_in_run(conn, part, run_id):
                    continue  # a task retry: this one already made it
                results.append(police.ingest_api_partition(
                    conn, api, archive, part, run_id, item.get("version") or None).to_dict())
    finally:
        api.http.close()
    return results


def _loaded_in_run(conn: psycopg.Connection, part: Partition, run_id: str) -> bool:
    return conn.execute(
        "select 1 from audit.loads where dataset = %s and force_id = %s and month = %s "
        "and run_id = %s and status = any(%s)",
        (police.DATASET, part.force_id, part.month, run_id, list(SUCCESSFUL_LOADS)),
    ).fetchone() is not None


@dataclass
class IngestSummary:
    changed: list[dict[str, Any]]
    unchanged: int
    failed: list[dict[str, Any]]
    rows_loaded: int
    rows_quarantined: int

    def event_extra(self) -> dict[str, Any]:
        return {
            "force_months": [f"{r['force_id']}/{r['month']}" for r in self.changed],
            "rows": {f"{r['force_id']}/{r['month']}": r["rows_loaded"] for r in self.changed},
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "replaced": [f"{r['force_id']}/{r['month']}" for r in self.changed if r["status"] == "replaced"],
        }


def summarise(results: list[dict[str, Any]]) -> IngestSummary:
    changed = [r for r in results if r["status"] in SUCCESSFUL_LOADS]
    failed = [r for r in results if r["status"] in FAILED_LOADS]
    return IngestSummary(
        changed=changed,
        unchanged=sum(1 for r in results if r["status"] == "unchanged"),
        failed=failed,
        rows_loaded=sum(r["rows_loaded"] for r in changed),
        rows_quarantined=sum(r["rows_quarantined"] for r in changed),
    )


def finish_police(results: list[dict[str, Any]], last_updated: str | None,
                  cfg: Settings | None = None) -> IngestSummary:
    """Record the source's last-updated date once every planned force-month is in."""
    cfg = cfg or settings()
    summary = summarise(results)
    if not summary.failed:
        with psycopg.connect(warehouse.warehouse_url(cfg), autocommit=True) as conn:
            police.remember_last_updated(conn, last_updated)
    counts = Counter(r["status"] for r in results)
    log.info("stop and search: %s", dict(counts))
    return summary


def ingest_edition(feed_name: str, run_id: str | None, cfg: Settings | None = None) -> dict[str, Any]:
    """An edition feed's nightly check: load its table if the publisher put out a new edition."""
    from vru.http import HttpClient, RetryPolicy

    feed = registry.feed(feed_name)
    assert feed.ingest is not None, f"{feed.name} is not an edition feed"
    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    with HttpClient(rate_per_second=2, retry=RetryPolicy(max_attempts=cfg.http_max_attempts),
                    timeout=cfg.http_timeout) as http, psycopg.connect(url, autocommit=True) as conn:
        result = feed.ingest(conn, http, Archive(cfg.archive_dir), feed.source_url(cfg), run_id, cfg)
    log.info("%s: %s (%s)", feed.label, result.status, result.reason or f"edition {result.load_id}")
    return result.to_dict()


class ValidationFailed(RuntimeError):
    """A critical expectation failed: the batch must not reach the marts.

    `failures` keeps (stage, dataset, message) of each failed check, so an alert can name the
    stage and dataset without parsing the message.
    """

    def __init__(self, failures: list[tuple[str, str, str]]) -> None:
        super().__init__("critical data quality failures (nothing published):\n- "
                         + "\n- ".join(f"{stage} {dataset}: {message}" for stage, dataset, message in failures))
        self.failures = failures

    def __reduce__(self) -> tuple[type[ValidationFailed], tuple[list[tuple[str, str, str]]]]:
        return (ValidationFailed, (self.failures,))  # pickles (e.g. across processes) as it was built


def run_validations(checks: Sequence[tuple[str, str, str]], run_id: str | None,
                    cfg: Settings | None = None) -> dict[str, Any]:
    """Run each (stage, dataset, table) suite in the warehouse; raise on any critical failure."""
    from vru.validation import validate

    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    with psycopg.connect(url) as conn:
        loaded = {r[0] for r in conn.execute(
            "select distinct split_part(dataset, '.', 1) from audit.loads where status = any(%s)",
            (list(SUCCESSFUL_LOADS),))}
    # A feed that has never loaded anything (the knife crime table before its first edition) has
    # nothing to check yet: its empty tables must not stop the other feeds' marts. The report
    # shows it without a light; its freshness check raises the alert.
    # Marts built from several feeds (outcomes.*) are always checked: they are built either way.
    waiting = sorted({d for _, d, _ in checks
                      if d.split(".", 1)[0] not in loaded and d.split(".", 1)[0] not in registry.derived_prefixes()})
    for dataset in waiting:
        log.info("not validated: %s has not loaded anything yet", dataset)
    outcomes = [
        validate(stage, dataset, table, warehouse_url=url, docs_dir=cfg.data_docs_dir, run_id=run_id)
        for stage, dataset, table in checks if dataset not in waiting
    ]
    critical = [(o.stage, o.dataset, m) for o in outcomes for m in o.critical_failures]
    warnings = [f"{o.stage} {o.dataset}: {m}" for o in outcomes for m in o.warnings]
    for message in warnings:
        log.warning("data quality warning: %s", message)
    if critical:
        raise ValidationFailed(critical)
    return {
        "suites": [f"{o.stage}.{o.dataset}" for o in outcomes],
        "expectations": sum(o.evaluated for o in outcomes),
        "warnings": warnings,
        "not_loaded_yet": waiting,
    }


def raw_snapshot(cfg: Settings | None = None) -> str:
    """The warehouse's transaction snapshot now (`pg_current_snapshot()`): which loads a transform
    run started at this moment can see. Kept by the run to ask later what loaded under it."""
    with psycopg.connect(warehouse.warehouse_url(cfg or settings())) as conn:
        row = conn.execute("select pg_current_snapshot()::text").fetchone()
    return str(row[0]) if row else ""


def loads_since(snapshot: str, cfg: Settings | None = None) -> dict[str, int]:
    """Loads that changed raw and were not yet committed when `snapshot` was taken, per dataset.

    A load still in progress then counts too: its transaction is not visible in the snapshot.
    """
    with psycopg.connect(warehouse.warehouse_url(cfg or settings())) as conn:
        rows = conn.execute(
            "select dataset, count(*) from audit.loads where status = any(%s) "
            "and not pg_visible_in_snapshot(xact, %s::pg_snapshot) group by dataset order by dataset",
            (list(SUCCESSFUL_LOADS), snapshot)).fetchall()
    return {str(dataset): int(n) for dataset, n in rows}


class RawChangedDuringRun(RuntimeError):
    """The mart checks failed while a feed loaded under the transform run.

    The run's marts were built partly before and partly after that load, and the checks that
    compare a mart with raw read raw after it: the failure says nothing reliable about either
    state. The load's own asset event has queued the next transform run, which rebuilds every
    mart from one state of raw and decides.
    """


def validate_marts_gate(checks: Sequence[tuple[str, str, str]], run_id: str | None, snapshot: str,
                        cfg: Settings | None = None) -> dict[str, Any]:
    """The mart gate: `run_validations`, except that a failure under a changing raw is superseded."""
    try:
        return run_validations(checks, run_id, cfg)
    except ValidationFailed as failed:
        changed = loads_since(snapshot, cfg)
        if not changed:
            raise
        loads = ", ".join(f"{n} load{'s' if n > 1 else ''} of {dataset}" for dataset, n in changed.items())
        raise RawChangedDuringRun(
            f"the mart checks failed while raw changed under this run ({loads} committed after it "
            "started), so nothing is published and no incident is opened: the transform run those "
            f"loads queued rebuilds the marts and decides. What failed here:\n{failed}") from failed
