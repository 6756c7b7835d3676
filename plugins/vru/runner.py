"""`vru run`: the nightly chain, end to end, through a real Airflow scheduler, with a summary.

`make run` is `vru run --sample`: the same chain with the bundled files served on 127.0.0.1 as a
stand-in for data.police.uk (real published stop-and-search files) and for the Home Office's knife
crime table (two synthetic editions). The sample replays the publisher's timeline: a warehouse
without the first edition is served the first, then the revised one is published and the knife
crime ingest runs again, so the demo shows a revision being picked up; a later run finds nothing
new.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import psycopg
from vru_sample.server import SAMPLE_EDITIONS

from vru import registry, warehouse
from vru.airflow_local import (
    ChainResult,
    local_airflow,
    run_chain,
    settle_event_driven,
)
from vru.config import Settings, redact, settings
from vru.dbt import ensure_manifest
from vru.landing import pending_files
from vru.outcomes_report import write_outcomes_report

AE_DAG = registry.feed("ae").dag_id  # started by files landing, not triggered


def summarise_chain(url: str, chain: ChainResult, cfg: Settings) -> list[str]:
    lines = [f"Ingest run {r['dag_id']} {r['dag_run_id']}: {r['state']}"
             + (" (started by files landing)" if r["dag_id"] == AE_DAG and r["run_type"] == "asset_triggered" else "")
             for r in chain.ingest_runs]
    with psycopg.connect(url) as conn:
        lines += _edition_lines(conn, chain)
        lines += _ae_lines(conn, chain, cfg)
        rows = conn.execute(
            """select status, count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                      coalesce(sum(rows_quarantined), 0)
               from audit.loads where run_id = any(%s) and dataset = 'police.stop_searches'
               group by status""", (chain.ingest_run_ids,)
        ).fetchall()
        by_status = {r[0]: r for r in rows}
        changed = [by_status[s] for s in ("loaded", "replaced") if s in by_status]
        lines.append(
            f"  stop and search force-months loaded: {sum(r[1] for r in changed)} "
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
            published = conn.execute("select marts from audit.publications where run_id = %s",
                                     (run["dag_run_id"],)).fetchone()
            if published:
                moved = {m: c for m, c in published[0].items() if c["inserted"] or c["deleted"]}
                lines.append("  published to the marts BI tools read (rows inserted/deleted): " + (
                    ", ".join(f"{m} +{c['inserted']}/-{c['deleted']}" for m, c in sorted(moved.items()))
                    or "no row changed"))
            elif tasks.get("publish_marts") in ("failed", "upstream_failed"):
                lines.append("  nothing published: the marts BI tools read still show the previous figures")
            if tasks.get("validate_marts") == "skipped":
                lines.append("  marts not published: checks failed while a feed loaded under this run, so "
                             "they were not trusted; the run that load started decided (see its task log)")
        knife = conn.execute("select to_regclass('marts.knife_crime_quarterly') is not null").fetchone()
        if knife and knife[0]:
            k = conn.execute(
                """select count(*), count(distinct force_id), min(financial_year), max(financial_year),
                          coalesce(sum(total_offences), 0), count(*) filter (where is_revised)
                   from marts.knife_crime_quarterly""").fetchone()
            assert k is not None
            lines.append(f"Mart marts.knife_crime_quarterly: {k[0]} force-quarters, {k[1]} forces, "
                         f"{k[2]} to {k[3]}, {k[4]:,} knife offences; {k[5]} force-quarters revised "
                         "since first published")
        if conn.execute("select to_regclass('marts.sharp_object_admissions_yearly')").fetchone() != (None,):
            h = conn.execute("""select count(*), min(financial_year), max(financial_year),
                                       (array_agg(finished_consultant_episodes order by fy_start desc))[1]
                                from marts.sharp_object_admissions_yearly""").fetchone()
            assert h is not None
            lines.append(f"Mart marts.sharp_object_admissions_yearly: {h[0]} years ({h[1]} to {h[2]}), "
                         f"England; {h[3] or 0:,} finished consultant episodes in the latest year")
        if conn.execute("select to_regclass('marts.ae_assault_monthly')").fetchone() != (None,):
            a = conn.execute("""select count(distinct force_id), count(distinct month),
                                       coalesce(sum(attendances) filter (where age_band = 'all ages'), 0),
                                       count(*) filter (where attendances_suppressed or knife_or_sharp_suppressed)
                                from marts.ae_assault_monthly""").fetchone()
            assert a is not None
            lines.append(f"Mart marts.ae_assault_monthly: {a[0]} force areas x {a[1]} months, "
                         f"{a[2]:,} assault attendances shown; {a[3]} cells suppressed (1 to 4, or to "
                         "stop one being worked out by subtraction)")
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


def _edition_lines(conn: psycopg.Connection, chain: ChainResult) -> list[str]:
    lines: list[str] = []
    for dataset, _, _, dag_id, _, what in SAMPLE_EDITION_FEEDS:
        before = len(lines)
        for row in conn.execute(
            """select l.status, l.load_id, l.error, e.file_format, e.figures, e.figures_added,
                      e.figures_revised, e.figures_dropped, l.rows_quarantined, l.rows_skipped,
                      (select count(*) from audit.editions n
                       where n.dataset = l.dataset and n.load_id <= l.load_id) as edition
               from audit.loads l left join audit.editions e using (load_id)
               where l.dataset = %s and l.run_id = any(%s) order by l.load_id""",
            (dataset, chain.ingest_run_ids),
        ):
            status, load_id, error, fmt, figures, added, revised, dropped, quarantined, skipped, edition = row
            if status == "loaded":  # editions counted from the first one this warehouse loaded
                lines.append(f"  {what} edition {edition} loaded ({fmt}, load {load_id}): {figures:,} figures; "
                             f"{added:,} new, {revised:,} revised, {dropped:,} dropped; "
                             f"{quarantined} quarantined, {skipped} rows recognised as notes or totals")
            else:
                lines.append(f"  {what} edition {status}: {error}")
        if chain.tasks_of(dag_id) and len(lines) == before:
            lines.append(f"  {what}: no new edition (unchanged since the last one loaded)")
    return lines


def _ae_lines(conn: psycopg.Connection, chain: ChainResult, cfg: Settings) -> list[str]:
    # Files, not rows: a count of rows per extract (or per run, which is often one extract) is a
    # count of A&E attendances by site and period, which only the suppressed mart may show.
    counts = dict.fromkeys(("loaded", "replaced", "duplicate", "rejected"), 0)
    set_aside = 0
    for outcome, n, with_set_aside in conn.execute(
        """select outcome, count(*), count(*) filter (where rows_quarantined > 0) from audit.landed_files
           where run_id = any(%s) group by outcome""", (chain.ingest_run_ids,)):
        counts[outcome] = n
        if outcome in ("loaded", "replaced"):
            set_aside += with_set_aside
    if not any(counts.values()):
        return []
    lines = [f"  A&E extracts taken in from {cfg.ae_landing_dir}: {counts['loaded']} loaded, "
             f"{counts['replaced']} replacing an earlier extract, {counts['duplicate']} duplicate(s) "
             f"ignored, {counts['rejected']} rejected; {set_aside} with rows set aside "
             "(attendance counts: marts.ae_assault_monthly, suppressed)"]
    if counts["rejected"]:
        lines.append(f"  rejected files and their reasons: {cfg.ae_landing_dir / 'rejected'}")
    return lines


def _land_sample_extracts(url: str, cfg: Settings, out: Callable[[str], Any]) -> int:
    """Drop the synthetic ISTV extracts not loaded yet into the landing area, as departments would."""
    from vru_sample import istv as sample_istv

    with psycopg.connect(url) as conn:
        loaded = {r[0] for r in conn.execute(
            "select sha256 from audit.landed_files where outcome in ('loaded', 'replaced')")}
    dropped = len(sample_istv.write_extracts(cfg.ae_landing_dir, skip_sha256=loaded))
    if dropped:
        out(f"Sample: {dropped} synthetic A&E extracts (ISTV) dropped into {cfg.ae_landing_dir}; the "
            "landing watcher starts the A&E ingest")
    return dropped


# The sample's edition feeds: (dataset, served name, folder, DAG, who publishes it, what it is)
SAMPLE_EDITION_FEEDS = tuple(
    (registry.feed(s.feed).dataset, s.served_name, s.folder, registry.feed(s.feed).dag_id, s.publisher, s.what)
    for s in SAMPLE_EDITIONS)


def _sample_editions(url: str, dataset: str, editions: list[Path]) -> tuple[Path, list[Path]]:
    """The bundled edition of a feed to serve first, and those to publish after it."""
    with psycopg.connect(url) as conn:
        loaded = {r[0] for r in conn.execute("select sha256 from audit.editions where dataset = %s", (dataset,))}
    pending = [p for p in editions if hashlib.sha256(p.read_bytes()).hexdigest() not in loaded]
    return (pending[0], pending[1:]) if pending else (editions[-1], [])


def _publish_next(api: Any, later: dict[str, list[Path]], out: Callable[[str], Any]) -> tuple[str, ...]:
    """Publish each feed's next edition; the ingest DAGs to run again for them."""
    dags = []
    for dataset, name, folder, dag_id, publisher, what in SAMPLE_EDITION_FEEDS:
        if later.get(dataset):
            path = later[dataset].pop(0)
            out(f"Sample: {publisher} publishes a revised {what} ({path.name}); running its ingest again")
            api.publish(name, path, formatdate(usegmt=True), folder=folder)
            dags.append(dag_id)
    return tuple(dags)


def execute(sample: bool = False, cfg: Settings | None = None,
            out: Callable[[str], Any] = print, docs: bool = False) -> ChainResult:
    """Run the chain once through a local Airflow; report progress and the summary through `out`."""
    cfg = cfg or settings()
    server_ctx = None
    started_here = not cfg.warehouse_url and not warehouse.embedded(cfg).is_running()
    url = warehouse.prepare(cfg)  # the schema, once, before Airflow starts: no task runs DDL
    ensure_manifest(cfg)
    extra: dict[str, str] = {}
    later: dict[str, list[Path]] = {}
    try:
        if sample:
            from vru_sample.server import SampleApi, SampleServer, bundled_sample_dir

            server_ctx = SampleServer(SampleApi(bundled_sample_dir())).__enter__()
            served = []
            for sample_feed in SAMPLE_EDITIONS:
                feed = registry.feed(sample_feed.feed)
                editions = sample_feed.editions() if sample_feed.replay else sample_feed.editions()[-1:]
                first, later[feed.dataset] = _sample_editions(url, feed.dataset, editions)
                server_ctx.api.publish(sample_feed.served_name, first, formatdate(usegmt=True),
                                       folder=sample_feed.folder)
                served.append(f"{sample_feed.what}: {first.name}, synthetic")
                extra[str(feed.url_env)] = sample_feed.url(server_ctx.base)
            extra["VRU_POLICE_API_URL"] = server_ctx.url
            out(f"Serving the bundled sample at {server_ctx.url} (data.police.uk stand-in; "
                + "; ".join(served) + ")")
        source = extra.get("VRU_POLICE_API_URL", cfg.police_api_url)
        knife = extra.get("VRU_KNIFE_CRIME_URL", cfg.knife_crime_url)
        out(f"Warehouse: {redact(url)}; police API: {source}; knife crime table: {knife}")
        out("Starting Airflow (scheduler, dag-processor, triggerer, API server)...")
        with local_airflow(cfg, url, extra) as airflow:
            out(f"Airflow UI: {airflow.api} (while this command runs)")
            ae_runs = settle_event_driven(airflow)  # the A&E DAG listens for files from now on
            if sample:
                _land_sample_extracts(url, cfg, out)
            # files waiting in the landing folder start an A&E run: follow it with the others
            watched = {AE_DAG: ae_runs} if pending_files(cfg.ae_landing_dir) else None
            chain = run_chain(airflow, watched=watched)
            # The revised editions are published only after the first night's transform runs end:
            # loading them while a transform run validates its marts fails that run (the marts were
            # built from the previous edition; tried, and CI caught it).
            while server_ctx is not None and any(later.values()):
                chain.extend(run_chain(airflow, _publish_next(server_ctx.api, later, out)))
        for line in summarise_chain(url, chain, cfg):
            out(line)
        out(f"Outcomes report: {write_outcomes_report(cfg)}")
        if docs:
            from vru.dbt import generate_docs

            out(f"dbt docs (models, columns, lineage, exposures): {generate_docs(url, cfg)}")
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
        out: Callable[[str], Any] = print, docs: bool = False) -> int:
    return 0 if execute(sample, cfg, out, docs).succeeded else 1


if __name__ == "__main__":
    sys.exit(run(sample="--sample" in sys.argv))
