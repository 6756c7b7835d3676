"""A dead source holds back no other feed, and a night runs one transform: through a real scheduler.

The knife crime and HES servers answer 500 to every request; their ingests fail, and Airflow
retries them (2 retries, 5 minutes apart). Stop and search and the ONS tables load. The settle DAG
(`vru_raw_settled`) does not wait for an ingest whose only pending work is a retry
(`vru.sensors.still_loading`), so the transform starts on the stop and search and ONS loads while
the dead sources still wait for their retries, and the two feeds' events start one transform run.
The test stops there: how long the transform then takes depends on the machine, not on the rule.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE, home_with_warehouse
from vru import registry, warehouse
from vru.airflow_local import SETTLE_DAG, TRANSFORM_DAG, _follow_new_runs, _started_by_unpause, local_airflow
from vru.config import settings
from vru.dbt import ensure_manifest
from vru_sample.server import SAMPLE_EDITIONS, Fault, SampleApi, SampleServer

pytestmark = pytest.mark.e2e  # through a real Airflow scheduler: `pytest -m "not e2e"` skips it

FILES = ("2019-12-durham-stop-and-search.csv", "2020-01-durham-stop-and-search.csv")
DEAD = {"knife_crime": ("home-office", "knife-crime"), "hes": ("nhs", "hes-sharp-object")}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with home_with_warehouse(tmp_path_factory, "vru_home_dead_source") as home:
        yield home


def test_a_dead_source_delays_no_other_feed_and_the_night_runs_one_transform(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_HOME", str(home))
    cfg = settings()
    url = warehouse.embedded(cfg).url()
    warehouse.apply_schema(url)
    ensure_manifest(cfg)
    data = tmp_path / "sample"
    data.mkdir()
    for name in FILES:
        shutil.copy(SAMPLE / name, data / name)
    api = SampleApi(data, last_updated="2020-02-29")
    for folder, name in DEAD.values():
        api.add_fault(folder, name, "*", Fault(500, b'{"error": "down"}', times=10**6))
    ons = next(s for s in SAMPLE_EDITIONS if s.feed == "ons_pfa")
    api.publish(ons.served_name, ons.editions()[-1], "Mon, 01 Dec 2026 00:00:00 GMT", folder=ons.folder)
    ingests = tuple(registry.feed(name).dag_id for name in ("police", "knife_crime", "hes", "ons_pfa"))
    with SampleServer(api) as source, local_airflow(cfg, url, {
            "VRU_POLICE_API_URL": source.url, "VRU_KNIFE_CRIME_URL": source.knife_crime_url,
            "VRU_HES_URL": source.hes_url, "VRU_ONS_PFA_URL": ons.url(source.base),
            "VRU_HTTP_MAX_ATTEMPTS": "2"}) as airflow:
        airflow.unpause(SETTLE_DAG)
        airflow.unpause(TRANSFORM_DAG)
        for dag_id in ingests:  # as run_chain starts them, without following the dead ones to their end
            airflow.unpause(dag_id)
            if not _started_by_unpause(airflow, dag_id, set()):
                airflow.trigger(dag_id)
        transform = airflow.wait_for_triggered_run(TRANSFORM_DAG, set(), timeout=900)
        # every settle run the night's events started, to its end (one announces, any later one skips)
        settle_runs = _follow_new_runs(airflow, SETTLE_DAG, set())
        settles = [airflow.task_states(SETTLE_DAG, r.dag_run_id) for r in settle_runs]
        dead = {name: airflow.runs(registry.feed(name).dag_id)[0] for name in DEAD}
        dead_tasks = {name: airflow.task_states(run.dag_id, run.dag_run_id) for name, run in dead.items()}
        loaded = [airflow.runs(dag_id)[0] for dag_id in ingests if dag_id not in {r.dag_id for r in dead.values()}]
        transforms = airflow.runs(TRANSFORM_DAG)
        transform = airflow.run(TRANSFORM_DAG, transform.dag_run_id)  # started by now
        # The transform's own run time depends on the machine's load, not on the settle rule: the
        # marts it publishes are checked end to end by test_end_to_end.py. Airflow stops here.

    ended = max(r.end_date for r in loaded if r.end_date)
    assert transform.start_date is not None
    print(f"transform run started {(transform.start_date - ended).total_seconds():.0f} s after the last ingest that "
          "loaded ended; dead sources then: "
          + ", ".join(f"{n}: {r.state.value}, {dead_tasks[n]['check_and_load']}" for n, r in dead.items()))
    assert all(r.state == "success" for r in loaded), loaded
    # raw settled, and the transform started, while the dead sources still wait for their retries
    # (2 retries, 5 minutes apart: their runs stay open at least 10 minutes after the first failure)
    for name, run in dead.items():
        assert run.state in ("queued", "running"), (name, run)
        assert dead_tasks[name]["check_and_load"] in ("up_for_retry", "scheduled", "queued", "running"), dead_tasks
    # and it started soon after the feeds that loaded, not a retry delay (300 s) later
    assert (transform.start_date - ended).total_seconds() < 300, (transform, ended)
    # both feeds' events (police, ONS) went into one transform run: one announcement, later settle runs skip
    assert [r.dag_run_id for r in transforms] == [transform.dag_run_id], (transforms, settles)
    assert [t["announce"] for t in settles].count("success") == 1, settles
    assert all(t["announce"] in ("success", "skipped") for t in settles), settles
