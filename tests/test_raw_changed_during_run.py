"""A transform run's mart gate and loads committed under it, against a real PostgreSQL.

A feed may load while a transform run builds (the A&E landing is event-driven, and the ingests
run beside each other). The run keeps the snapshot it took at its start; a mart check that fails
while a load committed after that snapshot is superseded, not failed: the load's own event has
queued the run that decides. A failure with nothing loaded under the run still fails it.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from conftest import dag_run
from test_validation import bad_batch, load_stops
from vru.gates import RawChangedDuringRun, ValidationFailed, loads_since, raw_snapshot, validate_marts_gate

CHECKS = [("raw", "police.stop_searches", "raw.stop_searches")]


def _load(conn: psycopg.Connection, dataset: str, status: str = "loaded") -> None:
    conn.execute("insert into audit.loads (dataset, origin, status) values (%s, 'test', %s)", (dataset, status))


@pytest.fixture
def warehouse_env(clean_warehouse: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    monkeypatch.setenv("VRU_HOME", str(tmp_path))
    return clean_warehouse


def test_loads_since_counts_what_committed_after_the_snapshot(warehouse_env: str) -> None:
    with psycopg.connect(warehouse_env, autocommit=True) as before:
        _load(before, "police.stop_searches")
    in_flight = psycopg.connect(warehouse_env)  # a load that began before the run and ends during it
    try:
        _load(in_flight, "home_office.knife_offences")
        snapshot = raw_snapshot()
        assert loads_since(snapshot) == {}  # nothing committed yet; the earlier load is seen
        in_flight.commit()
    finally:
        in_flight.close()
    with psycopg.connect(warehouse_env, autocommit=True) as after:
        _load(after, "ae.attendances")
        _load(after, "ae.attendances")
        _load(after, "police.stop_searches", status="failed")  # changed nothing in raw
    assert loads_since(snapshot) == {"ae.attendances": 2, "home_office.knife_offences": 1}
    assert loads_since(raw_snapshot()) == {}  # a run starting now has seen all of them


def test_a_mart_check_failing_under_a_load_is_superseded_and_without_one_fails(warehouse_env: str) -> None:
    load_stops(warehouse_env, bad_batch())  # a duplicated record and a search outside its month
    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        # the feed has loaded the batch's force-months, as the loader records them: its checks run
        # (on the force-months loaded since the last publication: here, all of them)
        conn.execute("insert into audit.loads (dataset, force_id, month, origin, status) "
                     "select distinct 'police.stop_searches', force_id, month, 'test', 'loaded' "
                     "from raw.stop_searches")
    snapshot = raw_snapshot()

    with pytest.raises(ValidationFailed) as failed:
        validate_marts_gate(CHECKS, "run-1", snapshot)
    assert "No record loaded twice" in str(failed.value)

    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        _load(conn, "ae.attendances")  # a file landed while the run built
    with pytest.raises(RawChangedDuringRun) as superseded:
        validate_marts_gate(CHECKS, "run-1", snapshot)
    message = str(superseded.value)
    assert "1 load of ae.attendances committed after it started" in message
    assert "No record loaded twice" in message  # what failed is still said
    assert isinstance(superseded.value.__cause__, ValidationFailed)


def test_the_run_summary_says_why_a_superseded_run_published_nothing(warehouse_env: str) -> None:
    from vru.airflow_local import ChainResult
    from vru.config import settings
    from vru.runner import summarise_chain

    def transform(run_id: str, validate_marts: str) -> ChainResult:
        run = dag_run("vru_transform", run_id, "success", "asset_triggered")
        return ChainResult([], {}, [run], {run_id: {"validate_raw": "success", "validate_marts": validate_marts,
                                                    "publish_marts": validate_marts, "report": "success"}})

    superseded = summarise_chain(warehouse_env, transform("t1", "skipped"), settings())
    assert "Transform run t1: success" in superseded
    assert any(line.startswith("  marts not published: checks failed while a feed loaded under this run")
               for line in superseded), superseded
    published = summarise_chain(warehouse_env, transform("t2", "success"), settings())
    assert not any("marts not published" in line for line in published), published
