"""The settle rule: which ingests a transform run waits for, and which it does not (a dead source)."""

from __future__ import annotations

import pytest
from vru.sensors import ACTIVE_TASK_STATES, RETRY_WAIT_STATES, still_loading


@pytest.mark.parametrize(("open_runs", "active", "retrying", "loading", "case"), [
    (0, 0, 0, False, "no open run: nothing to wait for"),
    (0, 0, 1, False, "no open run, an old retry count: nothing to wait for"),
    (1, 1, 0, True, "a task running or queued: loading"),
    (1, 3, 1, True, "one force-month waits for a retry while the other months load: loading"),
    (1, 0, 1, False, "only a retry is pending (the source is down): not waited for"),
    (1, 0, 2, False, "several retries pending and nothing running: not waited for"),
    (1, 0, 0, True, "between two tasks (one ended, the next not yet scheduled): loading"),
    (2, 0, 0, True, "a queued run about to start: loading"),
])
def test_an_ingest_is_waited_for_only_while_it_loads(open_runs: int, active: int, retrying: int,
                                                      loading: bool, case: str) -> None:
    assert still_loading(open_runs, active, retrying) is loading, case


def test_the_states_are_airflows_own_and_a_retry_wait_is_not_active() -> None:
    from airflow.utils.state import TaskInstanceState

    states = {s.value for s in TaskInstanceState}
    assert set(ACTIVE_TASK_STATES) <= states and set(RETRY_WAIT_STATES) <= states
    assert not set(ACTIVE_TASK_STATES) & set(RETRY_WAIT_STATES)
    # a task that can still do work (or is about to) counts as active; a finished one never
    assert {"running", "queued", "scheduled", "deferred"} <= set(ACTIVE_TASK_STATES)
    assert not {"success", "failed", "skipped", "upstream_failed"} & set(ACTIVE_TASK_STATES)
