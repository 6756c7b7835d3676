"""Sensors of our own: a transform run waits for the feeds still loading."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.sdk import BaseSensorOperator

from vru import registry

# every DAG that loads raw data (each emits the raw asset event the transform is scheduled on)
INGEST_DAG_IDS = registry.ingest_dag_ids()


class IngestsSettledSensor(BaseSensorOperator):
    """Waits while any ingest DAG has a running run.

    A transform run builds the marts from raw and then checks them against it (dbt tests over two
    models, the mart suites). A feed still loading while the run builds moves raw under those
    checks, and they fail for no fault in the data. The first feed's event starts the transform
    while the others may still be loading: waiting here lets the run start from raw that no ingest
    is changing. Reschedule mode: the wait holds no worker slot, so the ingests it waits for can
    run. A load that starts after this (an A&E file landing mid-run) is met at the mart gate
    (`vru.gates.validate_marts_gate`). An ingest running past `timeout` (default 2 hours) fails
    this task, which opens an incident naming it.
    """

    def __init__(self, *, ingest_dag_ids: Iterable[str] = INGEST_DAG_IDS, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 10)
        kwargs.setdefault("timeout", 2 * 60 * 60)
        super().__init__(**kwargs)
        self.ingest_dag_ids = tuple(ingest_dag_ids)

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        busy = {dag_id: n for dag_id in self.ingest_dag_ids
                if (n := ti.get_dr_count(dag_id=dag_id, states=["running"]))}
        if busy:
            self.log.info("waiting for ingest runs still loading: %s",
                          ", ".join(f"{dag_id} ({n})" for dag_id, n in busy.items()))
        return not busy
