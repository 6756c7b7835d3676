"""`vru run`: the nightly chain, end to end, through a real Airflow scheduler, with a summary.

`make run` is `vru run --sample`: the same chain with the bundled real files served on 127.0.0.1
as a stand-in for data.police.uk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import psycopg

from vru import warehouse
from vru.airflow_local import ChainResult, local_airflow, run_chain
from vru.config import Settings, redact, settings
from vru.dbt import ensure_manifest


def summarise_chain(url: str, chain: ChainResult, cfg: Settings) -> list[str]:
    lines = [f"Ingest run {r['dag_run_id']}: {r['state']}" for r in chain.ingest_runs]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """select status, count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                      coalesce(sum(rows_quarantined), 0)
               from audit.loads where run_id = any(%s) group by status""", (chain.ingest_run_ids,)
        ).fetchall()
        by_status = {r[0]: r for r in rows}
        changed = [by_status[s] for s in ("loaded", "replaced") if s in by_status]
        lines.append(
            f"  force-months loaded: {sum(r[1] for r in changed)} "
            f"(new {by_status['loaded'][1] if 'loaded' in by_status else 0}, "
            f"revised {by_status['replaced'][1] if 'replaced' in by_status else 0}); "
            f"rows read {sum(r[2] for r in changed):,}, loaded {sum(r[3] for r in changed):,}, "
            f"quarantined {sum(r[4] for r in changed):,}"
        )
        for status in ("failed", "refused"):
            if status in by_status:
                lines.append(f"  force-months {status}: {by_status[status][1]} "
                             "(named in the report; retried by the next run)")
        if not chain.emitted:
            lines.append("  nothing new was published: no asset event; the marts were not rebuilt "
                         "and are unchanged")
        for run in chain.transform_runs:
            lines.append(f"Transform run {run['dag_run_id']}: {run['state']}")
            results = conn.execute(
                """select stage, dataset, count(*), count(*) filter (where not success),
                          count(*) filter (where not success and severity = 'critical')
                   from audit.validation_results where run_id = %s
                   group by stage, dataset order by stage, dataset""",
                (run["dag_run_id"],),
            ).fetchall()
            for stage, dataset, n, failed, critical in results:
                verdict = "passed" if not failed else f"{failed} failed ({critical} critical)"
                lines.append(f"  validation {stage} {dataset}: {n} expectations, {verdict}")
            tasks = chain.transform_tasks.get(run["dag_run_id"], {})
            bad = sorted(t for t, s in tasks.items() if s not in ("success", "skipped"))
            if bad:
                lines.append(f"  tasks not successful: {', '.join(bad)}")
        exists = conn.execute("select to_regclass('marts.stop_search_monthly') is not null").fetchone()
        if exists and exists[0]:
            m = conn.execute(
                """select count(*), count(*) filter (where coverage = 'published'),
                          coalesce(sum(searches), 0) from marts.stop_search_monthly""").fetchone()
            assert m is not None
            lines.append(f"Mart marts.stop_search_monthly: {m[0]} force-months "
                         f"({m[1]} published), {m[2]:,} searches")
    lines.append(f"Data quality report: {cfg.reports_dir / 'index.html'}")
    lines.append(f"Great Expectations Data Docs: {cfg.data_docs_dir / 'index.html'}")
    lines.append(f"Airflow logs: {cfg.airflow_home / 'logs'}")
    return lines


def execute(sample: bool = False, cfg: Settings | None = None,
            out: Callable[[str], Any] = print) -> ChainResult:
    """Run the chain once through a local Airflow; report progress and the summary through `out`."""
    cfg = cfg or settings()
    server_ctx = None
    started_here = not cfg.warehouse_url and not warehouse.embedded(cfg).is_running()
    url = warehouse.warehouse_url(cfg)
    warehouse.apply_schema(url)
    ensure_manifest(cfg)
    extra: dict[str, str] = {}
    try:
        if sample:
            from vru.sample_server import SampleApi, SampleServer, bundled_sample_dir

            server_ctx = SampleServer(SampleApi(bundled_sample_dir())).__enter__()
            extra["VRU_POLICE_API_URL"] = server_ctx.url
            out(f"Serving the bundled sample (data.police.uk stand-in) at {server_ctx.url}")
        source = extra.get("VRU_POLICE_API_URL", cfg.police_api_url)
        out(f"Warehouse: {redact(url)}; police API: {source}")
        out("Starting Airflow (scheduler, dag-processor, triggerer, API server)...")
        with local_airflow(cfg, url, extra) as airflow:
            out(f"Airflow UI: {airflow.api} (while this command runs)")
            chain = run_chain(airflow)
        for line in summarise_chain(url, chain, cfg):
            out(line)
    finally:
        if server_ctx is not None:
            server_ctx.__exit__(None, None, None)
        if started_here:
            warehouse.embedded(cfg).stop()
    if started_here:
        out(f"Warehouse {redact(url)} stopped again; `vru warehouse url` starts it and prints "
            "the URL to connect with")
    else:
        out(f"Warehouse: {redact(url)} (`vru warehouse url` prints the URL with credentials)")
    return chain


def run(sample: bool = False, cfg: Settings | None = None,
        out: Callable[[str], Any] = print) -> int:
    return 0 if execute(sample, cfg, out).succeeded else 1


if __name__ == "__main__":
    sys.exit(run(sample="--sample" in sys.argv))
