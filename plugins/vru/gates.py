"""The transform's validation gates: raw checked before dbt, the build checked before publishing.

Each gate runs the suites the feeds declare (`vru.registry`) inside PostgreSQL and raises
`ValidationFailed` on any critical failure, so nothing downstream of it runs. The mart gate also
knows when its failure says nothing: a feed that loaded while the run was building
(`RawChangedDuringRun`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from vru import registry, warehouse
from vru.config import Settings, settings
from vru.feed import SUCCESSFUL_LOADS

log = logging.getLogger(__name__)


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
    # A partitioned feed's raw and staging rows are checked where they changed since the last
    # publication (its changed_partitions); its marts, small, whole.
    scopes = {f.dataset: f.changed_partitions for f in registry.FEEDS}
    outcomes = [
        validate(stage, dataset, table, warehouse_url=url, docs_dir=cfg.data_docs_dir, run_id=run_id,
                 scope=scopes.get(dataset) if stage in ("raw", "staging") else None)
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
    """The mart gate: `run_validations`, except that a failure under a changing raw is superseded.

    Returns the validations with `raw_snapshot`: the publication records it, and the loads it did
    not see are what the next run validates (a feed's changed_partitions).
    """
    try:
        return {**run_validations(checks, run_id, cfg), "raw_snapshot": snapshot}
    except ValidationFailed as failed:
        changed = loads_since(snapshot, cfg)
        if not changed:
            raise
        loads = ", ".join(f"{n} load{'s' if n > 1 else ''} of {dataset}" for dataset, n in changed.items())
        raise RawChangedDuringRun(
            f"the mart checks failed while raw changed under this run ({loads} committed after it "
            "started), so nothing is published and no incident is opened: the transform run those "
            f"loads queued rebuilds the marts and decides. What failed here:\n{failed}") from failed
