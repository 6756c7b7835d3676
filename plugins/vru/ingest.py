"""The ingest steps behind the ingest DAGs' tasks, callable without Airflow (the CLI and tests too).

The transform's validation gates are `vru.gates`.

Each function opens its own warehouse connection: tasks run in separate processes. No task runs
DDL: the schema is applied once at start-up (`vru warehouse apply-schema`; `vru run` before it
starts Airflow), so a task never takes an ACCESS EXCLUSIVE lock a BI reader would queue behind.
"""

from __future__ import annotations

import logging
from collections import Counter
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
