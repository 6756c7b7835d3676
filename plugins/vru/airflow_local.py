"""A real, local Airflow for `vru run` and the end-to-end tests: scheduler, dag-processor,
triggerer and API server as separate processes under VRU_HOME/airflow, sized for 2 cores.

The chain is driven the way an operator would: through Airflow's REST API (trigger the ingest
DAG, then follow the transform run that the scheduler starts from the asset event), with the
official client (`apache-airflow-client`, the same minor version as Airflow) and its typed models.
Nothing here imports Airflow itself: it runs the `airflow` command of the same virtualenv.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pydantic
import urllib3
from airflow_client.client import (
    ApiClient,
    ApiException,
    Configuration,
    DAGApi,
    DAGPatchBody,
    DagRunApi,
    DAGRunResponse,
    DagRunState,
    ImportErrorApi,
    MonitorApi,
    PoolApi,
    PoolBody,
    PoolPatchBody,
    PoolResponse,
    TaskInstanceApi,
    TaskInstanceResponse,
    TriggerDAGRunPostBody,
)
from airflow_client.client.exceptions import NotFoundException

from vru import lineage, registry
from vru.config import REPO_ROOT, Settings
from vru.progress import RunProgress
from vru.warehouse import EmbeddedWarehouse, write_secret

log = logging.getLogger(__name__)

# The DAGs a local run drives, from the feed registry (the harness depends on production code,
# never the reverse). A files feed (A&E) is started by files landing, not triggered by vru run.
INGEST_DAGS = registry.scheduled_ingest_dag_ids()
TRANSFORM_DAG = registry.TRANSFORM_DAG
SETTLE_DAG = registry.SETTLE_DAG  # between the raw events and the transform: "raw settled"
POOLS = {"police_api": (1, "data.police.uk: one task at a time keeps the 10 requests/s limit global")}
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TIMEOUT = 60.0  # seconds for one REST call (the client's validation wants a float)
FINISHED = (DagRunState.SUCCESS, DagRunState.FAILED)


class AirflowRunError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _secret(path: Path) -> str:
    """A generated secret kept in `path`, created with mode 0600 from the start."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            write_secret(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def metadata_server(cfg: Settings) -> EmbeddedWarehouse:
    """The local Airflow's metadata database: an embedded PostgreSQL of its own.

    Not SQLite: with the scheduler, dag-processor, triggerer, API server and task processes all
    writing, SQLite's single writer lock failed an API call in CI ("Database error" on unpausing a
    DAG while the scheduler was starting runs). Not the warehouse's server either, which may be
    external and is not Airflow's to create databases on.
    """
    return EmbeddedWarehouse(cfg.airflow_home / "metadb", database="airflow", max_connections=100,
                             shared_buffers="64MB")


@contextmanager
def metadata_database(cfg: Settings) -> Iterator[str]:
    """Start the metadata server if it is not running (and stop it again after); yield its URL."""
    server = metadata_server(cfg)
    started_here = not server.is_running()
    url = server.start()
    try:
        yield url
    finally:
        if started_here:
            server.stop()


def airflow_env(cfg: Settings, warehouse_url: str, port: int, metadata_url: str,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Airflow process: configuration only through variables."""
    # psycopg 3 for both engines: it serves SQLAlchemy's async engine too (one driver, not also
    # Airflow's default async one, asyncpg).
    metadata = metadata_url.replace("postgresql://", "postgresql+psycopg://", 1)
    home = cfg.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # 2 cores: two task processes at once (default parallelism 32 started 16+ workers, 5.6 GB).
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # The local runner keeps Airflow's SimpleAuthManager with everyone an admin: the API server
        # listens on 127.0.0.1 only (AIRFLOW__API__HOST below), on a free port, for the lifetime of
        # one `vru run`: nothing off this machine can reach it (anyone logged in to the machine
        # can, as with any loopback service). It needs no user database or admin secret to set
        # up. The compose stack, reachable by others, uses the FAB auth manager with an admin
        # created from a secret (docker-compose.yml, airflow-init).
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # local, loopback-only instance
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(cfg.home / "secrets" / "airflow_jwt"),
        "AIRFLOW__API__SECRET_KEY": _secret(cfg.home / "secrets" / "airflow_api"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata,
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__TRIGGERER__CAPACITY": "50",
        # How long a task's supervisor may sleep between looks at its task process (default 5 s).
        # When the process has closed its sockets but not yet exited (a task with GX or pandas
        # loaded takes a moment to tear down), the supervisor sleeps this long before it sees the
        # exit and frees the worker: at 5 s, 5 s tails held both workers at national volume.
        # Also the heartbeat interval: one small API call per running task per second.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        # Cosmos' cache (dbt profiles, dbt's partial parse between runs) per instance, not a
        # /tmp/cosmos shared by every local Airflow on the machine
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "AIRFLOW_CONN_VRU_WAREHOUSE": warehouse_url,
        "VRU_WAREHOUSE_URL": warehouse_url,
        "VRU_HOME": str(cfg.home),
        "PYTHONUNBUFFERED": "1",
        # offline by design: no usage telemetry from Cosmos or dbt
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "true",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "NO_COLOR": "1",
    })
    env.update(extra or {})
    # OpenLineage: our extractor, and events to files under VRU_HOME/lineage unless a lineage
    # server (VRU_LINEAGE_URL) or a transport of the operator's own was set
    env.update(lineage.airflow_settings(cfg, env))
    return env


def celery_env(broker_url: str, result_backend: str, concurrency: int = 2) -> dict[str, str]:
    """Airflow settings for distributed execution: the CeleryExecutor and its workers.

    Used by the scale-out deployment (docker-compose.yml sets exactly these) and by the test that
    runs a scheduler and two Celery workers here. Work spreads across workers per task: mapped
    ingest tasks per month, dbt tasks per model; the `police_api` pool (1 slot) is kept by the
    scheduler, so the data.police.uk rate limit stays global however many workers run.
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
        # tasks a worker runs at once; each dbt or GX task is a Python process of ~300 MB
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        # a worker takes one task at a time from the queue, so a busy worker leaves work to idle ones
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
    }


def worker_hostname() -> str:
    """The name a worker records on the tasks it runs (AIRFLOW__CORE__HOSTNAME_CALLABLE): its
    container's hostname in the stack; VRU_WORKER_NAME tells apart workers sharing one host."""
    return os.environ.get("VRU_WORKER_NAME") or socket.getfqdn()


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def migrate(env: dict[str, str]) -> None:
    """`airflow db migrate` (idempotent; a no-op after the first time bar a version check)."""
    done = subprocess.run([_airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise AirflowRunError(f"airflow db migrate failed:\n{done.stderr[-3000:]}")


@dataclass
class LocalAirflow:
    env: dict[str, str]
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _client: ApiClient | None = None

    @property
    def log_dir(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "logs"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            logfile = open(self.log_dir / f"{name}.log", "ab")
            args = [_airflow_bin(), name]
            if name == "api-server":
                args += ["--port", str(self.port), "--host", "127.0.0.1", "--workers", "1"]
            elif name in ("scheduler", "triggerer"):
                # each would start an `airflow serve-logs` process (~140 MB RSS each) for a log
                # server on another host; here the API server reads the same log folder itself
                args += ["--skip-serve-logs"]
            self.processes[name] = subprocess.Popen(
                args, env=self.env, stdout=logfile, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=str(REPO_ROOT),
            )
        self._wait_for_api()

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()
        self._client = None  # its token was signed by this API server

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AirflowRunError(f"airflow {name} exited ({proc.returncode}):\n{tail}")

    def _wait_for_api(self, timeout: float = 180) -> None:
        monitor = MonitorApi(ApiClient(self._configuration()))  # the health endpoint needs no token
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                monitor.get_health(_request_timeout=5.0)
                return
            except (ApiException, urllib3.exceptions.HTTPError):
                pass
            time.sleep(1)
        raise AirflowRunError(f"the Airflow API did not come up on {self.api} in {timeout:.0f}s")

    # --- REST, through the official client -------------------------------------------------
    def _configuration(self) -> Configuration:
        config = Configuration(host=self.api)
        # one attempt per call, as a caller's loop decides what to retry (urllib3 would otherwise
        # retry each call three times, a timed-out read included)
        config.retries = 0
        return config

    def _token(self) -> str:
        """A JWT from the SimpleAuthManager (everyone an admin on this loopback instance).

        `GET /auth/token` belongs to the auth manager, not to the REST API v2 the client is
        generated from (its LoginApi only redirects a browser to /auth/login): one plain call.
        """
        response = httpx.get(f"{self.api}/auth/token", timeout=TIMEOUT)
        if response.status_code >= 400:
            raise AirflowRunError(f"GET /auth/token (SimpleAuthManager): HTTP {response.status_code}: "
                                  f"{response.text[:500]}")
        return str(response.json()["access_token"])

    @property
    def client(self) -> ApiClient:
        """The official Airflow client, authenticated with a bearer token (fetched on first use)."""
        if self._client is None:
            config = self._configuration()
            config.access_token = self._token()
            self._client = ApiClient(config)
        return self._client

    @contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """Turn the client's errors into an AirflowRunError naming the call that failed."""
        try:
            yield
        except ApiException as e:
            raise AirflowRunError(f"{what}: HTTP {e.status} {e.reason}: {(e.body or '')[:500]}") from e
        except urllib3.exceptions.HTTPError as e:
            raise AirflowRunError(f"{what}: no answer from the Airflow API at {self.api}: {e}") from e
        except pydantic.ValidationError as e:
            raise AirflowRunError(f"{what}: the answer does not match apache-airflow-client's model "
                                  f"(client and server versions differ?): {e}") from e

    def ensure_pools(self) -> None:
        pools = PoolApi(self.client)
        for name, (slots, description) in POOLS.items():
            with self.calling(f"GET pools/{name}"):
                try:
                    pool: PoolResponse | None = pools.get_pool(name, _request_timeout=TIMEOUT)
                except NotFoundException:
                    pool = None
            if pool is None:
                with self.calling(f"POST pools ({name})"):
                    pools.post_pool(PoolBody(name=name, slots=slots, description=description),
                                    _request_timeout=TIMEOUT)
            elif pool.slots != slots:
                with self.calling(f"PATCH pools/{name}"):
                    pools.patch_pool(name, PoolPatchBody(slots=slots), update_mask=["slots"],
                                     _request_timeout=TIMEOUT)

    def has_dag(self, dag_id: str) -> bool:
        """Has the dag-processor parsed the DAG yet (the API knows it)?"""
        with self.calling(f"GET dags/{dag_id}"):
            try:
                DAGApi(self.client).get_dag(dag_id, _request_timeout=TIMEOUT)
            except NotFoundException:
                return False
        return True

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            self._check_alive()
            missing = [dag_id for dag_id in dag_ids if not self.has_dag(dag_id)]
            if not missing:
                return
            time.sleep(2)
        with self.calling("GET importErrors"):
            errors = ImportErrorApi(self.client).get_import_errors(_request_timeout=TIMEOUT).import_errors
        detail = "\n".join(f"{e.filename}: {e.stack_trace[-1500:]}" for e in errors)
        raise AirflowRunError(f"DAGs not parsed in {timeout:.0f}s: {missing}\n{detail}")

    def unpause(self, dag_id: str) -> None:
        with self.calling(f"PATCH dags/{dag_id} (unpause)"):
            DAGApi(self.client).patch_dag(dag_id, DAGPatchBody(is_paused=False), _request_timeout=TIMEOUT)

    def next_run_after(self, dag_id: str) -> datetime | None:
        """When the DAG's next scheduled run is due (None: no schedule, or not parsed yet)."""
        with self.calling(f"GET dags/{dag_id}"):
            return DAGApi(self.client).get_dag(dag_id, _request_timeout=TIMEOUT).next_dagrun_run_after

    def trigger(self, dag_id: str) -> str:
        with self.calling(f"POST dags/{dag_id}/dagRuns (trigger)"):
            # logical_date None: a run "now", however often the DAG was triggered before
            run = DagRunApi(self.client).trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None),
                                                         _request_timeout=TIMEOUT)
        return run.dag_run_id

    def run(self, dag_id: str, run_id: str) -> DAGRunResponse:
        with self.calling(f"GET dags/{dag_id}/dagRuns/{run_id}"):
            return DagRunApi(self.client).get_dag_run(dag_id, run_id, _request_timeout=TIMEOUT)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 3600,
                     progress: RunProgress | None = None) -> DAGRunResponse:
        # an hour: a first transform at national volume took over 20 minutes on a loaded 2-core box
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.run(dag_id, run_id)
            if progress is not None:
                progress.update(run)
            if run.state in FINISHED:
                return run
            time.sleep(2)
        raise AirflowRunError(f"{dag_id} run {run_id} did not finish in {timeout:.0f}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceResponse]:
        with self.calling(f"GET dags/{dag_id}/dagRuns/{run_id}/taskInstances"):
            return TaskInstanceApi(self.client).get_task_instances(
                dag_id, run_id, limit=500, _request_timeout=TIMEOUT).task_instances

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        states: dict[str, str] = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            states[key] = ti.state.value if ti.state is not None else "no_status"  # the UI's word
        return states

    def runs(self, dag_id: str) -> list[DAGRunResponse]:
        """The DAG's latest 20 runs, newest first."""
        with self.calling(f"GET dags/{dag_id}/dagRuns"):
            return DagRunApi(self.client).get_dag_runs(
                dag_id, order_by=["-run_after"], limit=20, _request_timeout=TIMEOUT).dag_runs

    def wait_for_triggered_run(self, dag_id: str, after: set[str], timeout: float = 120) -> DAGRunResponse:
        """The first run of dag_id not in `after` (started by an asset event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            for run in self.runs(dag_id):
                if run.dag_run_id not in after:
                    return run
            time.sleep(2)
        raise AirflowRunError(f"no {dag_id} run was triggered within {timeout:.0f}s")


@contextmanager
def local_airflow(cfg: Settings, warehouse_url: str, extra_env: dict[str, str] | None = None) -> Iterator[LocalAirflow]:
    with metadata_database(cfg) as metadata_url:
        port = _free_port()
        env = airflow_env(cfg, warehouse_url, port, metadata_url, extra_env)
        migrate(env)
        airflow = LocalAirflow(env, port)
        try:
            airflow.start()
            airflow.ensure_pools()
            airflow.wait_for_dags((*registry.ingest_dag_ids(), SETTLE_DAG, TRANSFORM_DAG))
            yield airflow
        finally:
            airflow.stop()


@dataclass
class ChainResult:
    ingest_runs: list[DAGRunResponse]
    ingest_tasks: dict[str, dict[str, str]]  # "<dag_id>/<run_id>" -> task states
    transform_runs: list[DAGRunResponse] = field(default_factory=list)
    transform_tasks: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def emitted(self) -> bool:
        """Did any ingest run emit its raw asset event (publish_raw succeeded)?"""
        return any(t.get("publish_raw") == "success" for t in self.ingest_tasks.values())

    @property
    def ingest_run_ids(self) -> list[str]:
        return [r.dag_run_id for r in self.ingest_runs]

    @property
    def transform_run_ids(self) -> list[str]:
        return [r.dag_run_id for r in self.transform_runs]

    @property
    def succeeded(self) -> bool:
        return all(r.state == DagRunState.SUCCESS for r in self.ingest_runs + self.transform_runs)

    def tasks_of(self, dag_id: str) -> list[dict[str, str]]:
        return [t for key, t in self.ingest_tasks.items() if key.startswith(f"{dag_id}/")]

    def extend(self, other: ChainResult) -> None:
        self.ingest_runs += other.ingest_runs
        self.ingest_tasks.update(other.ingest_tasks)
        self.transform_runs += other.transform_runs
        self.transform_tasks.update(other.transform_tasks)


def _previous_duration(runs: list[DAGRunResponse], before: set[str]) -> float | None:
    """How long the latest successful run among `before` took (runs: newest first)."""
    return next((float(r.duration) for r in runs
                 if r.dag_run_id in before and r.state == DagRunState.SUCCESS and r.duration), None)


def _follow_new_runs(airflow: LocalAirflow, dag_id: str, before: set[str], settle: float = 8.0,
                     progress: RunProgress | None = None) -> list[DAGRunResponse]:
    """Wait for every run of dag_id not in `before` to finish, including any that start meanwhile."""
    finished: dict[str, DAGRunResponse] = {}
    quiet_since = time.monotonic()
    while True:
        runs = airflow.runs(dag_id)
        if progress is not None:
            progress.expect(dag_id, _previous_duration(runs, before))
        pending = [r for r in runs if r.dag_run_id not in before and r.dag_run_id not in finished]
        if not pending:
            if time.monotonic() - quiet_since > settle:
                return sorted(finished.values(), key=lambda r: r.run_after)
            time.sleep(2)
            continue
        for run in pending:
            finished[run.dag_run_id] = airflow.wait_for_run(dag_id, run.dag_run_id, progress=progress)
        quiet_since = time.monotonic()


def _is_due(airflow: LocalAirflow, dag_id: str) -> bool:
    """Has the DAG's latest scheduled slot come (the scheduler creates that run on unpause)?"""
    due = airflow.next_run_after(dag_id)
    return due is not None and due <= datetime.now(UTC)


def _started_by_unpause(airflow: LocalAirflow, dag_id: str, before: set[str]) -> bool:
    """Did (or will) unpausing the DAG make the scheduler create tonight's run?

    Asked in this order: a slot still due has no run yet (it is coming); a slot no longer due may
    be so because the scheduler created its run between the unpause and the question, which a
    run not in `before` shows. (Asking only "due?" lost that race under load: a second run was
    triggered, or the A&E sweep took the sample's files.)
    """
    if _is_due(airflow, dag_id):
        return True
    return any(r.dag_run_id not in before for r in airflow.runs(dag_id))


def run_chain(airflow: LocalAirflow, ingest_dags: tuple[str, ...] = INGEST_DAGS,
              watched: dict[str, set[str]] | None = None, progress: RunProgress | None = None) -> ChainResult:
    """Run the ingest DAGs now and follow the asset-triggered transform runs to their end.

    Unpausing a DAG whose latest scheduled slot has no run makes the scheduler create that run
    (catchup=False runs the most recent interval): then that run is tonight's, and we follow it
    instead of triggering a second one. An ingest DAG already unpaused is triggered.

    `watched` maps event-driven DAGs (the A&E landing watcher's) to their run ids before files
    were dropped: the run the files started is awaited and followed like an ingest run.
    `progress` is told each state the runs followed are seen in.
    """
    if progress is not None:
        progress.plan(*ingest_dags, *(watched or {}))
    before = {d: {r.dag_run_id for r in airflow.runs(d)} for d in ingest_dags}
    before_transform = {r.dag_run_id for r in airflow.runs(TRANSFORM_DAG)}
    airflow.unpause(TRANSFORM_DAG)
    airflow.unpause(SETTLE_DAG)
    for dag_id in ingest_dags:
        airflow.unpause(dag_id)
        if _started_by_unpause(airflow, dag_id, before[dag_id]):
            airflow.wait_for_triggered_run(dag_id, before[dag_id])
        else:
            airflow.trigger(dag_id)
    result = ChainResult([], {})
    for dag_id, before_ids in [*((d, before[d]) for d in ingest_dags), *(watched or {}).items()]:
        if dag_id in (watched or {}):
            airflow.wait_for_triggered_run(dag_id, before_ids)
        for run in _follow_new_runs(airflow, dag_id, before_ids, progress=progress):
            result.ingest_runs.append(run)
            result.ingest_tasks[f"{dag_id}/{run.dag_run_id}"] = airflow.task_states(dag_id, run.dag_run_id)
    if result.emitted:
        if progress is not None:
            progress.plan(TRANSFORM_DAG)
            progress.note(f"waiting for the {TRANSFORM_DAG} run the asset event starts")
        # through vru_raw_settled (a sensor poke and an announcement): allow for a loaded machine
        airflow.wait_for_triggered_run(TRANSFORM_DAG, before_transform, timeout=600)
        result.transform_runs = _follow_new_runs(airflow, TRANSFORM_DAG, before_transform, progress=progress)
        result.transform_tasks = {r.dag_run_id: airflow.task_states(TRANSFORM_DAG, r.dag_run_id)
                                  for r in result.transform_runs}
    return result


def settle_event_driven(airflow: LocalAirflow, dag_id: str = registry.feed("ae").dag_id) -> set[str]:
    """Unpause an event-driven DAG and let its due nightly sweep (if any) finish; its run ids then.

    Files dropped after this start a run of their own (asset_triggered), which is what the
    sample shows; dropped before, the sweep would take them in.
    """
    before = {r.dag_run_id for r in airflow.runs(dag_id)}
    airflow.unpause(dag_id)
    if _started_by_unpause(airflow, dag_id, before):
        sweep = airflow.wait_for_triggered_run(dag_id, before)
        airflow.wait_for_run(dag_id, sweep.dag_run_id)
    return {r.dag_run_id for r in airflow.runs(dag_id)}
