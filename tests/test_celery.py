"""Scale-out with Airflow's CeleryExecutor: a real scheduler, a real Redis, two real Celery workers.

The deployment's Celery settings (vru.airflow_local.celery_env, the same ones docker-compose.yml
sets) run here against Redis from Debian's packages (`make test` installs it) and the Airflow
metadata in PostgreSQL. One backfill of the stop and search ingest spreads its tasks across both
workers, while the `police_api` pool keeps the force-month fetches one at a time across them: the
data.police.uk rate limit stays global however many workers run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from airflow_client.client import BackfillApi, BackfillPostBody, DAGRunResponse, ReprocessBehavior
from conftest import SAMPLE, home_with_warehouse
from vru import warehouse
from vru.airflow_local import (
    LocalAirflow,
    _airflow_bin,
    _free_port,
    airflow_env,
    celery_env,
    metadata_database,
    migrate,
)
from vru.config import settings
from vru.feeds.police import FEED as POLICE
from vru_sample.server import SampleApi, SampleServer

pytestmark = pytest.mark.e2e  # through a real Airflow scheduler: `pytest -m "not e2e"` skips it

POLICE_DAG = POLICE.dag_id

REDIS = os.environ.get("VRU_REDIS_SERVER", "/usr/bin/redis-server")
FORCES = ("durham", "essex")
MONTHS = ("2019-12", "2020-01", "2020-02")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with home_with_warehouse(tmp_path_factory, "vru_home_celery") as home:
        yield home


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    password = "celery-test-" + os.urandom(6).hex()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", password, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    try:
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _workers(env: dict[str, str], log_dir: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for name in ("worker1", "worker2"):
        worker_env = dict(env, VRU_WORKER_NAME=name,
                          AIRFLOW__CORE__HOSTNAME_CALLABLE="vru.airflow_local.worker_hostname")
        log = open(log_dir / f"{name}.log", "wb")
        workers.append(subprocess.Popen(
            [_airflow_bin(), "celery", "worker", "--concurrency", "1", "--celery-hostname", f"{name}@%h"],
            env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return workers


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, 15)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def test_one_backfill_spreads_across_two_celery_workers(home: Path, redis_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_HOME", str(home))
    cfg = settings()
    url = warehouse.embedded(cfg).url()
    warehouse.apply_schema(url)
    data = tmp_path / "sample"
    data.mkdir()
    for force in FORCES:
        for month in MONTHS:
            shutil.copy(SAMPLE / f"{month}-{force}-stop-and-search.csv", data)

    with SampleServer(SampleApi(data)) as source, metadata_database(cfg) as meta:
        port = _free_port()
        env = airflow_env(cfg, url, port, meta, {"VRU_POLICE_API_URL": source.url})
        env.update(celery_env(redis_url, f"db+{meta}", concurrency=1))
        migrate(env)
        airflow = LocalAirflow(env, port)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            airflow.start()
            airflow.ensure_pools()
            airflow.wait_for_dags((POLICE_DAG,))
            workers = _workers(env, airflow.log_dir)
            # the scheduler queues no task of a paused DAG, backfills included
            airflow.unpause(POLICE_DAG)
            with airflow.calling("POST backfills"):
                backfill = BackfillApi(airflow.client).create_backfill(BackfillPostBody(
                    dag_id=POLICE_DAG, from_date=datetime(2026, 1, 1, tzinfo=UTC),
                    to_date=datetime(2026, 1, 2, 23, tzinfo=UTC), max_active_runs=2,
                    reprocess_behavior=ReprocessBehavior.NONE))
            deadline = time.monotonic() + 900
            runs: list[DAGRunResponse] = []
            while time.monotonic() < deadline:
                runs = [r for r in airflow.runs(POLICE_DAG) if r.run_type == "backfill"]
                if len(runs) == 2 and all(r.state in ("success", "failed") for r in runs):
                    break
                assert all(w.poll() is None for w in workers), "a Celery worker died: see worker*.log"
                time.sleep(3)
            assert len(runs) == 2 and {r.state.value for r in runs} == {"success"}, (backfill, runs)
            instances = [ti for run in runs for ti in airflow.task_instances(POLICE_DAG, run.dag_run_id)]
        finally:
            _stop(workers)
            airflow.stop()

    ran = [ti for ti in instances if ti.state == "success"]
    assert {ti.hostname for ti in ran} == {"worker1", "worker2"}, [(ti.task_id, ti.hostname) for ti in ran]
    assert all(ti.executor in (None, "CeleryExecutor") for ti in ran)
    # the pool keeps fetches one at a time across workers: ingest tasks never overlap in time
    ingest = sorted((ti.start_date, ti.end_date, ti.hostname) for ti in ran if ti.task_id == "ingest")
    assert len(ingest) >= len(MONTHS)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ingest)), ingest
    with psycopg.connect(url) as conn:
        loaded = conn.execute("select count(*) from audit.loads where status = 'loaded'").fetchone()
    assert loaded == (len(FORCES) * len(MONTHS),)  # the second night found nothing new
