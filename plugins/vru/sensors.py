"""Sensors of our own: the night's transform waits for the feeds still loading, not for a dead one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.sdk import BaseSensorOperator

from vru import registry

# every DAG that loads raw data (each emits the raw asset event the settle DAG is scheduled on)
INGEST_DAG_IDS = registry.ingest_dag_ids()
# task states that mean an ingest is doing (or about to do) work now
ACTIVE_TASK_STATES = ("scheduled", "queued", "running", "deferred", "restarting", "up_for_reschedule")
# a task that failed and waits for its retry (for an edition feed, minutes: Feed.retry_delay_minutes)
RETRY_WAIT_STATES = ("up_for_retry",)


def still_loading(open_runs: int, active_tasks: int, waiting_for_retry: int) -> bool:
    """Is an ingest DAG still loading, from the counts of its open runs and of their tasks?

    - no queued or running run: not loading;
    - a task doing work (scheduled, queued, running, ...): loading, even if another of its tasks
      waits for a retry (one failed force-month of the police ingest while the other months load);
    - nothing doing work and a task waiting for its retry: **not** loading. The source is failing
      (a dead knife crime or HES server retries 2 x 5 minutes): the other feeds' marts must not
      wait for it. When its retry succeeds, its raw event starts the next settle and transform run;
    - nothing doing work and nothing waiting for a retry, the run still open: loading (the moment
      between one task ending and the next being scheduled).
    """
    if not open_runs:
        return False
    return active_tasks > 0 or waiting_for_retry == 0


class IngestsSettledSensor(BaseSensorOperator):
    """Waits while any ingest DAG is still loading (`still_loading`); a failing, retrying one is
    not waited for.

    A transform run builds the marts from raw and then checks them against it (dbt tests over two
    models, the mart suites). A feed still loading while the run builds moves raw under those
    checks, and they fail for no fault in the data. The feeds' events arrive minutes apart:
    waiting here until none is loading lets one transform run build from raw that no ingest is
    changing. A feed whose source is down (its task waiting for a retry) is not loading: the others'
    figures are not held back for it. Reschedule mode: the wait holds no worker slot, so the
    ingests it waits for can run. A load that starts after this (an A&E file landing mid-run, a
    retry that succeeds) is met at the mart gate (`vru.gates.validate_marts_gate`). An ingest
    loading past `timeout` (default 2 hours) fails this task, which opens an incident naming it.
    """

    def __init__(self, *, ingest_dag_ids: Iterable[str] = INGEST_DAG_IDS, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 10)
        kwargs.setdefault("timeout", 2 * 60 * 60)
        super().__init__(**kwargs)
        self.ingest_dag_ids = tuple(ingest_dag_ids)

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        loading: list[str] = []
        failing: list[str] = []
        for dag_id in self.ingest_dag_ids:
            runs = ti.get_dr_count(dag_id=dag_id, states=["queued", "running"])
            if not runs:
                continue
            active = ti.get_ti_count(dag_id=dag_id, states=list(ACTIVE_TASK_STATES))
            retrying = ti.get_ti_count(dag_id=dag_id, states=list(RETRY_WAIT_STATES))
            (loading if still_loading(runs, active, retrying) else failing).append(dag_id)
        if failing:
            self.log.info("not waiting for ingests whose source is failing (a task waits for its retry): %s",
                          ", ".join(failing))
        if loading:
            self.log.info("waiting for ingest runs still loading: %s", ", ".join(loading))
        return not loading
