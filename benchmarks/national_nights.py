"""Benchmark: four nights of the real chain at national volume, through a real Airflow.

    .venv/bin/python benchmarks/national_nights.py                        # 43 forces x 36 months (~30-60 min)
    .venv/bin/python benchmarks/national_nights.py --forces 5 --months 6  # a small run to try it (~10 min)
    .venv/bin/python benchmarks/national_nights.py --forces 5 --months 6 --nights first --dead-sources

A benchmark, not a test: it prints figures and exits 0 whatever they are (1 only when a DAG run
failed). What runs:
1. A fresh VRU_HOME (a temp folder, or --home) with its embedded warehouse and the product schema.
2. The national stand-in for data.police.uk (`benchmarks/national_source.py`) on 127.0.0.1, and
   the bundled knife crime, HES and ONS editions served as `vru run --sample` serves them (the
   earlier HES and ONS editions backfilled from files first). With --dead-sources the knife
   crime and HES servers answer 500 to every request, as a source that is down does.
3. The local Airflow that `vru run` uses (`vru.airflow_local`: scheduler, dag-processor,
   triggerer, API server, LocalExecutor, its own PostgreSQL for the metadata), started once;
   each night is `vru.airflow_local.run_chain`, as `vru run` runs it: the ingest DAGs are
   triggered and the chain followed to its end (raw events -> vru_raw_settled -> vru_transform).
4. The nights: **first** (empty warehouse), **quiet** (nothing new), **new-month** (a month for
   every force; data.police.uk's `crime-last-updated` moves, so every force-month is fetched
   again to look for revisions), **republish** (three force-months revised, the date moves again).

Per night it prints: wall time; the ingest (police ingest run, and all ingest runs together);
the transform's task groups (validation: validate_raw + validate_marts; dbt: the seeds and every
model task, as the span from the first start to the last end and as the sum of task times; the
promotion); when the stop and search marts were published after the police ingest ended; rows
moved (raw rows loaded, mart rows inserted and deleted by the promotion); the settle and transform
runs; and the peak memory of the whole local stack (every Airflow process and its children, both
PostgreSQL servers with their backends), sampled every second with psutil: the sum of RSS (what
the issue's target names; it counts pages shared between forked processes once per process) and
the sum of PSS (shared pages divided among their sharers: the memory the stack really holds).
A JSON copy of the figures goes to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO / "plugins", REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import psutil  # noqa: E402
import psycopg  # noqa: E402
from national_source import METROPOLITAN, NationalApi, all_forces, months_back, next_month  # noqa: E402

LAST_MONTH = "2026-09"  # the latest month listed on the first night (data.police.uk runs ~2-3 months behind)
DEAD = (("home-office", "knife-crime"), ("nhs", "hes-sharp-object"))


# --- memory of the whole stack -----------------------------------------------------------------
def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class StackMemory(threading.Thread):
    """Samples the summed RSS and PSS of every process under the given roots, once a second."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.by_kind: dict[str, int] = {}

    def sample(self) -> None:
        procs: dict[int, psutil.Process] = {}
        for root in self.roots():
            try:
                top = psutil.Process(root)
                for p in [top, *top.children(recursive=True)]:
                    procs[p.pid] = p
            except psutil.Error:
                continue
        rss = pss = 0
        kinds: dict[str, int] = {}
        for pid, p in procs.items():
            try:
                size = p.memory_info().rss
                name = " ".join(p.cmdline()[:3])[-60:] or p.name()
            except psutil.Error:
                continue
            rss += size
            pss += _pss_kb(pid) * 1024
            kind = "postgres" if "postgres" in name else name.split("/")[-1]
            kinds[kind] = kinds.get(kind, 0) + size
        with self.lock:
            if rss > self.peak_rss:
                self.peak_rss, self.peak_processes, self.by_kind = rss, len(procs), kinds
            self.peak_pss = max(self.peak_pss, pss)

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()

    def take(self) -> dict[str, Any]:
        """The peaks since the last take, then reset."""
        with self.lock:
            out = {"peak_rss_mb": round(self.peak_rss / 2**20), "peak_pss_mb": round(self.peak_pss / 2**20),
                   "processes_at_peak": self.peak_processes,
                   "rss_at_peak_mb": {k: round(v / 2**20) for k, v in sorted(self.by_kind.items(),
                                                                              key=lambda kv: -kv[1])[:8]}}
            self.peak_rss = self.peak_pss = self.peak_processes = 0
            self.by_kind = {}
        return out


# --- one night's figures -----------------------------------------------------------------------
@dataclass
class Night:
    name: str
    wall_s: float = 0.0
    succeeded: bool = True
    police_ingest_s: float | None = None
    ingests_s: float | None = None  # first ingest start to last ingest end
    settle_runs: list[str] = field(default_factory=list)  # each settle run's announce state
    transform_runs: int = 0
    transform_s: float | None = None
    validation_s: float = 0.0
    dbt_span_s: float = 0.0
    dbt_task_s: float = 0.0
    dbt_tasks: int = 0
    publish_s: float = 0.0
    slowest_tasks: list[tuple[str, float]] = field(default_factory=list)
    police_marts_after_ingest_s: float | None = None
    force_months: dict[str, int] = field(default_factory=dict)  # police loads by status
    raw_rows_loaded: int = 0
    edition_loads: dict[str, str] = field(default_factory=dict)
    mart_rows_inserted: int = 0
    mart_rows_deleted: int = 0
    memory: dict[str, Any] = field(default_factory=dict)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def measure(airflow: Any, chain: Any, url: str, night: Night) -> None:
    from vru import registry

    police_dag = registry.feed("police").dag_id
    night.succeeded = chain.succeeded
    starts = [r.start_date for r in chain.ingest_runs if r.start_date]
    ends = [r.end_date for r in chain.ingest_runs if r.end_date]
    night.ingests_s = _seconds(min(starts), max(ends)) if starts and ends else None
    police_runs = [r for r in chain.ingest_runs if r.dag_id == police_dag]
    police_end = police_runs[-1].end_date if police_runs else None
    night.police_ingest_s = _seconds(police_runs[-1].start_date, police_end) if police_runs else None
    settle = [r for r in airflow.runs(registry.SETTLE_DAG) if r.start_date and starts and r.start_date >= min(starts)]
    night.settle_runs = [airflow.task_states(registry.SETTLE_DAG, r.dag_run_id).get("announce", "?") for r in settle]
    night.transform_runs = len(chain.transform_runs)
    durations: list[tuple[str, float]] = []
    dbt_starts, dbt_ends = [], []
    for run in chain.transform_runs:
        night.transform_s = (night.transform_s or 0) + (_seconds(run.start_date, run.end_date) or 0)
        for ti in airflow.task_instances(registry.TRANSFORM_DAG, run.dag_run_id):
            seconds = float(ti.duration or 0)
            durations.append((ti.task_id, seconds))
            if ti.task_id in ("validate_raw", "validate_marts"):
                night.validation_s += seconds
            # the seeds, models and tests: one `dbt` task since issue 15 (`dbt_seeds` and one
            # `dbt.<model>` task per model before); the effect marts' `dbt_effects` is not counted
            elif ti.task_id in ("dbt", "dbt_seeds") or ti.task_id.startswith("dbt."):
                night.dbt_task_s += seconds
                night.dbt_tasks += 1
                if ti.start_date and ti.end_date:
                    dbt_starts.append(ti.start_date)
                    dbt_ends.append(ti.end_date)
            elif ti.task_id == "publish_marts":
                night.publish_s += seconds
                if police_end and ti.end_date and night.police_marts_after_ingest_s is None:
                    night.police_marts_after_ingest_s = _seconds(police_end, ti.end_date)
    night.dbt_span_s = _seconds(min(dbt_starts), max(dbt_ends)) or 0.0 if dbt_starts else 0.0
    night.slowest_tasks = sorted(durations, key=lambda d: -d[1])[:5]
    runs = chain.ingest_run_ids
    with psycopg.connect(url) as conn:
        for status, n, rows in conn.execute(
                "select status, count(*), coalesce(sum(rows_loaded), 0) from audit.loads "
                "where run_id = any(%s) and dataset = 'police.stop_searches' group by status", (runs,)):
            night.force_months[status] = int(n)
            if status in ("loaded", "replaced"):
                night.raw_rows_loaded += int(rows)
        for dataset, status, rows in conn.execute(
                "select dataset, status, rows_loaded from audit.loads "
                "where run_id = any(%s) and dataset <> 'police.stop_searches' order by load_id", (runs,)):
            night.edition_loads[str(dataset)] = f"{status} ({rows:,} rows)"
            if status in ("loaded", "replaced"):
                night.raw_rows_loaded += int(rows)
        for (marts,) in conn.execute("select marts from audit.publications where run_id = any(%s)",
                                     (chain.transform_run_ids,)):
            for change in marts.values():
                night.mart_rows_inserted += int(change.get("inserted") or 0)
                night.mart_rows_deleted += int(change.get("deleted") or 0)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(nights: list[Night]) -> list[str]:
    lines = ["| night | wall s | police ingest s | transform runs (settle: announced/skipped) | transform s | "
             "validation s | dbt s (span / task sum, tasks) | publish s | marts published after police ingest s | "
             "force-months (new/revised/unchanged) | raw rows loaded | mart rows +/- | peak RSS / PSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in nights:
        fm = n.force_months
        announced = sum(1 for s in n.settle_runs if s == "success")
        lines.append(
            f"| {n.name} | {n.wall_s:,.0f} | {_fmt(n.police_ingest_s)} | {n.transform_runs} "
            f"({announced}/{len(n.settle_runs) - announced}) | {_fmt(n.transform_s)} | {n.validation_s:,.0f} | "
            f"{n.dbt_span_s:,.0f} / {n.dbt_task_s:,.0f}, {n.dbt_tasks} | {n.publish_s:,.1f} | "
            f"{_fmt(n.police_marts_after_ingest_s)} | {fm.get('loaded', 0):,}/{fm.get('replaced', 0):,}/"
            f"{fm.get('unchanged', 0):,} | {n.raw_rows_loaded:,} | "
            f"+{n.mart_rows_inserted:,}/-{n.mart_rows_deleted:,} | "
            f"{n.memory.get('peak_rss_mb', 0):,} / {n.memory.get('peak_pss_mb', 0):,} |")
    return lines


# --- the run -----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forces", type=int, default=43, help="forces served (the Metropolitan first; default 43)")
    parser.add_argument("--months", type=int, default=36, help="months listed on the first night (default 36)")
    parser.add_argument("--nights", default="first,quiet,new-month,republish",
                        help="which nights, in order (default: all four)")
    parser.add_argument("--dead-sources", action="store_true",
                        help="the knife crime and HES servers answer 500 to every request")
    parser.add_argument("--home", type=Path, help="VRU_HOME to use (default: a temp folder, removed after)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON too")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="vru-national-"))
    os.environ["VRU_HOME"] = str(home)
    for variable in ("VRU_WAREHOUSE_URL", "VRU_POLICE_API_URL", "VRU_KNIFE_CRIME_URL", "VRU_HES_URL",
                     "VRU_ONS_PFA_URL"):
        os.environ.pop(variable, None)

    from vru import registry, warehouse
    from vru.airflow_local import local_airflow, metadata_server, run_chain
    from vru.config import settings
    from vru.dbt import ensure_manifest
    from vru.runner import _backfill
    from vru_sample.server import SAMPLE_EDITIONS, Fault, SampleServer

    cfg = settings()
    others = [f for f in all_forces() if f != METROPOLITAN]
    forces = [METROPOLITAN, *others][: args.forces]
    months = months_back(LAST_MONTH, args.months)
    api = NationalApi(forces, months, last_updated=f"{LAST_MONTH}-28")
    stops = sum(api.expected_rows(f, m) for f, m in api.versions)
    print(f"National stand-in: {len(forces)} forces x {len(months)} months ({months[0]} to {months[-1]}) = "
          f"{len(api.versions):,} force-months, {stops:,} stops; VRU_HOME {home}", flush=True)

    url = warehouse.prepare(cfg)
    ensure_manifest(cfg)
    nights: list[Night] = []
    server = SampleServer(api).__enter__()
    try:
        extra = {"VRU_POLICE_API_URL": server.url}
        for sample in SAMPLE_EDITIONS:
            feed = registry.feed(sample.feed)
            editions = sample.editions()
            if not sample.replay:  # earlier yearly editions from files, as an operator backfills them
                _backfill(url, cfg, feed, editions[:-1], print)
            served = editions[-1] if not sample.replay else editions[0]
            api.publish(sample.served_name, served, formatdate(usegmt=True), folder=sample.folder)
            extra[str(feed.url_env)] = sample.url(server.base)
        if args.dead_sources:
            for folder, name in DEAD:
                api.add_fault(folder, name, "*", Fault(500, b'{"error": "down"}', times=10**9))
            print("Dead sources: the knife crime and HES servers answer 500 to every request", flush=True)
        started = time.monotonic()
        with local_airflow(cfg, url, extra) as airflow:
            print(f"Airflow up in {time.monotonic() - started:.0f}s at {airflow.api}", flush=True)
            pgdata = [warehouse.embedded(cfg).pgdata, metadata_server(cfg).pgdata]

            def roots() -> list[int]:
                pids = [p.pid for p in airflow.processes.values()]
                return pids + [pid for d in pgdata if (pid := _postmaster(d))]

            memory = StackMemory(roots)
            memory.start()
            for name in args.nights.split(","):
                night = Night(name)
                if name == "new-month":
                    month = next_month(api.months()[-1])
                    added = api.publish_month(month, last_updated=f"{month}-28")
                    print(f"[{name}] the stand-in publishes {month} for {len(forces)} forces ({added:,} stops)",
                          flush=True)
                elif name == "republish":
                    listed = api.months()
                    pairs = [(forces[0], listed[-2]), (forces[1 % len(forces)], listed[len(listed) // 2]),
                             (forces[-1], listed[0])]
                    api.republish(pairs, last_updated=f"{listed[-1]}-30")
                    print(f"[{name}] the stand-in revises {', '.join(f'{f} {m}' for f, m in pairs)}", flush=True)
                memory.take()
                began = time.monotonic()
                chain = run_chain(airflow)
                night.wall_s = time.monotonic() - began
                night.memory = memory.take()
                measure(airflow, chain, url, night)
                nights.append(night)
                print(f"[{name}] {json.dumps(asdict(night), default=str)}", flush=True)
            memory.stopping.set()
    finally:
        server.__exit__(None, None, None)
        warehouse.embedded(cfg).stop()
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"{len(forces)} forces x {len(months)} months, {stops:,} stops on the first night"
          + ("; knife crime and HES sources dead" if args.dead_sources else "")
          + f"; {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}")
    for line in table(nights):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([asdict(n) for n in nights], indent=1, default=str))
    return 0 if all(n.succeeded for n in nights) else 1


if __name__ == "__main__":
    sys.exit(main())
