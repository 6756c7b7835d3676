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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from airflow_client.client import DAGRunResponse, DagRunType
from psycopg.rows import class_row
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
from vru.feed import FAILED_LOADS, SUCCESSFUL_LOADS, Feed
from vru.landing import pending_files
from vru.outcomes_report import write_outcomes_report
from vru.progress import RunProgress

AE_DAG = registry.feed("ae").dag_id  # started by files landing, not triggered
T = TypeVar("T")


def summarise_chain(url: str, chain: ChainResult, cfg: Settings) -> list[str]:
    """What the chain did, in lines for the terminal: read from the warehouse, then worded."""
    with psycopg.connect(url) as conn:
        figures = read_chain_figures(conn, chain)
    return format_summary(chain, figures, cfg)


# ------------------------------------------------------------------------------------------------
# What the summary reads: named rows
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditionLoad:
    """One load of a feed's edition under the chain's ingest runs (edition fields None if not loaded)."""

    status: str
    load_id: int
    error: str | None
    file_format: str | None
    figures: int | None
    figures_added: int | None
    figures_revised: int | None
    figures_dropped: int | None
    rows_quarantined: int
    rows_skipped: int
    edition: int  # counted from the first edition this warehouse loaded


@dataclass(frozen=True)
class LandedOutcome:
    outcome: str  # loaded | replaced | duplicate | rejected
    files: int
    with_set_aside: int


@dataclass(frozen=True)
class LoadStatus:
    """The chain's stop and search loads with one status."""

    status: str
    force_months: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int


@dataclass(frozen=True)
class ValidationCount:
    stage: str
    dataset: str
    expectations: int
    failed: int
    critical: int


@dataclass(frozen=True)
class Publication:
    marts: dict[str, dict[str, Any]]  # per mart: rows, inserted, deleted, replaced


@dataclass(frozen=True)
class KnifeMart:
    force_quarters: int
    forces: int
    first_year: str | None
    last_year: str | None
    offences: int
    revised: int


@dataclass(frozen=True)
class HesMart:
    years: int
    first_year: str | None
    last_year: str | None
    latest_episodes: int | None


@dataclass(frozen=True)
class AeMart:
    areas: int
    months: int
    attendances: int
    suppressed: int


@dataclass(frozen=True)
class StopSearchMart:
    force_months: int
    published: int
    searches: int


@dataclass(frozen=True)
class ChainFigures:
    editions: dict[str, list[EditionLoad]]  # per dataset of the edition feeds
    landed: list[LandedOutcome]
    police: dict[str, LoadStatus]  # per status
    validations: dict[str, list[ValidationCount]]  # per transform run
    published: dict[str, dict[str, dict[str, Any]] | None]  # per transform run: audit.publications.marts
    knife: KnifeMart | None  # None: the mart is not built
    hes: HesMart | None
    ae: AeMart | None
    stop_search: StopSearchMart | None


def _fetch(conn: psycopg.Connection, row: type[T], sql: str, params: Sequence[Any] = ()) -> list[T]:
    with conn.cursor(row_factory=class_row(row)) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _mart(conn: psycopg.Connection, relation: str, row: type[T], sql: str) -> T | None:
    if conn.execute("select to_regclass(%s)", (relation,)).fetchone() == (None,):
        return None
    return _fetch(conn, row, sql)[0]


def read_chain_figures(conn: psycopg.Connection, chain: ChainResult) -> ChainFigures:
    runs = chain.ingest_run_ids
    editions = {dataset: _fetch(conn, EditionLoad, """
        select l.status, l.load_id, l.error, e.file_format, e.figures, e.figures_added,
               e.figures_revised, e.figures_dropped, l.rows_quarantined, l.rows_skipped,
               (select count(*) from audit.editions n
                where n.dataset = l.dataset and n.load_id <= l.load_id) as edition
        from audit.loads l left join audit.editions e using (load_id)
        where l.dataset = %s and l.run_id = any(%s) order by l.load_id""", (dataset, runs))
        for dataset in (f.dataset for f in registry.edition_feeds())}
    landed = _fetch(conn, LandedOutcome, """
        select outcome, count(*) as files, count(*) filter (where rows_quarantined > 0) as with_set_aside
        from audit.landed_files where run_id = any(%s) group by outcome""", (runs,))
    police = {r.status: r for r in _fetch(conn, LoadStatus, """
        select status, count(*) as force_months, coalesce(sum(rows_read), 0) as rows_read,
               coalesce(sum(rows_loaded), 0) as rows_loaded, coalesce(sum(rows_quarantined), 0) as rows_quarantined
        from audit.loads where run_id = any(%s) and dataset = 'police.stop_searches'
        group by status""", (runs,))}
    validations = {run: _fetch(conn, ValidationCount, """
        select stage, dataset, count(*) as expectations, count(*) filter (where not success) as failed,
               count(*) filter (where not success and severity = 'critical') as critical
        from audit.validation_results where run_id = %s
        group by stage, dataset order by stage, dataset""", (run,)) for run in chain.transform_run_ids}
    published: dict[str, dict[str, dict[str, Any]] | None] = {}
    for run in chain.transform_run_ids:
        publication = _fetch(conn, Publication, "select marts from audit.publications where run_id = %s", (run,))
        published[run] = publication[0].marts if publication else None
    return ChainFigures(
        editions, landed, police, validations, published,
        knife=_mart(conn, "marts.knife_crime_quarterly", KnifeMart, """
            select count(*) as force_quarters, count(distinct force_id) as forces,
                   min(financial_year) as first_year, max(financial_year) as last_year,
                   coalesce(sum(total_offences), 0) as offences, count(*) filter (where is_revised) as revised
            from marts.knife_crime_quarterly"""),
        hes=_mart(conn, "marts.sharp_object_admissions_yearly", HesMart, """
            select count(*) as years, min(financial_year) as first_year, max(financial_year) as last_year,
                   (array_agg(finished_consultant_episodes order by fy_start desc))[1] as latest_episodes
            from marts.sharp_object_admissions_yearly"""),
        ae=_mart(conn, "marts.ae_assault_monthly", AeMart, """
            select count(distinct force_id) as areas, count(distinct month) as months,
                   coalesce(sum(attendances) filter (where age_band = 'all ages'), 0) as attendances,
                   count(*) filter (where attendances_suppressed or knife_or_sharp_suppressed) as suppressed
            from marts.ae_assault_monthly"""),
        stop_search=_mart(conn, "marts.stop_search_monthly", StopSearchMart, """
            select count(*) as force_months, count(*) filter (where coverage = 'published') as published,
                   coalesce(sum(searches), 0) as searches
            from marts.stop_search_monthly"""),
    )


# ------------------------------------------------------------------------------------------------
# The summary's words: no queries
# ------------------------------------------------------------------------------------------------


def format_summary(chain: ChainResult, figures: ChainFigures, cfg: Settings) -> list[str]:
    lines = [f"Ingest run {r.dag_id} {r.dag_run_id}: {r.state.value}"
             + (" (started by files landing)" if r.dag_id == AE_DAG and r.run_type == DagRunType.ASSET_TRIGGERED
                else "")
             for r in chain.ingest_runs]
    lines += _edition_lines(chain, figures.editions)
    lines += _ae_lines(figures.landed, cfg)
    lines += _police_lines(figures.police)
    if not chain.emitted:
        lines.append("  nothing new was published: no asset event; the marts were not rebuilt "
                     "and are unchanged")
    for run in chain.transform_runs:
        run_id = run.dag_run_id
        lines += _transform_lines(run, figures.validations[run_id], chain.transform_tasks.get(run_id, {}),
                                  figures.published[run_id])
    lines += _mart_lines(figures)
    lines.append(f"Data quality report: {cfg.reports_dir / 'index.html'}")
    lines.append(f"Great Expectations Data Docs: {cfg.data_docs_dir / 'index.html'}")
    lines.append(f"Airflow logs: {cfg.airflow_home / 'logs'}")
    return lines


def _edition_lines(chain: ChainResult, editions: dict[str, list[EditionLoad]]) -> list[str]:
    lines: list[str] = []
    for feed in registry.edition_feeds():
        dataset, dag_id, what = feed.dataset, feed.dag_id, feed.edition_label
        for e in editions.get(dataset, []):
            if e.status == "loaded":  # editions counted from the first one this warehouse loaded
                lines.append(f"  {what} edition {e.edition} loaded ({e.file_format}, load {e.load_id}): "
                             f"{e.figures:,} figures; {e.figures_added:,} new, {e.figures_revised:,} revised, "
                             f"{e.figures_dropped:,} dropped; {e.rows_quarantined} quarantined, "
                             f"{e.rows_skipped} rows recognised as notes or totals")
            else:
                lines.append(f"  {what} edition {e.status}: {e.error}")
        if chain.tasks_of(dag_id) and not editions.get(dataset):
            lines.append(f"  {what}: no new edition (unchanged since the last one loaded)")
    return lines


def _ae_lines(landed: list[LandedOutcome], cfg: Settings) -> list[str]:
    # Files, not rows: a count of rows per extract (or per run, which is often one extract) is a
    # count of A&E attendances by site and period, which only the suppressed mart may show.
    counts = dict.fromkeys((*SUCCESSFUL_LOADS, "duplicate", "rejected"), 0)
    set_aside = 0
    for f in landed:
        counts[f.outcome] = f.files
        if f.outcome in SUCCESSFUL_LOADS:
            set_aside += f.with_set_aside
    if not any(counts.values()):
        return []
    lines = [f"  A&E extracts taken in from {cfg.ae_landing_dir}: {counts['loaded']} loaded, "
             f"{counts['replaced']} replacing an earlier extract, {counts['duplicate']} duplicate(s) "
             f"ignored, {counts['rejected']} rejected; {set_aside} with rows set aside "
             "(attendance counts: marts.ae_assault_monthly, suppressed)"]
    if counts["rejected"]:
        lines.append(f"  rejected files and their reasons: {cfg.ae_landing_dir / 'rejected'}")
    return lines


def _police_lines(by_status: dict[str, LoadStatus]) -> list[str]:
    changed = [by_status[s] for s in SUCCESSFUL_LOADS if s in by_status]
    new, revised = (by_status[s].force_months if s in by_status else 0 for s in SUCCESSFUL_LOADS)
    lines = [f"  stop and search force-months loaded: {sum(r.force_months for r in changed)} "
             f"(new {new}, revised {revised}); "
             f"rows read {sum(r.rows_read for r in changed):,}, loaded {sum(r.rows_loaded for r in changed):,}, "
             f"quarantined {sum(r.rows_quarantined for r in changed):,}"]
    for status in FAILED_LOADS:
        if status in by_status:
            lines.append(f"  force-months {status}: {by_status[status].force_months} "
                         "(named in the report; retried by the next run)")
    return lines


def _transform_lines(run: DAGRunResponse, validations: list[ValidationCount], tasks: dict[str, str],
                     published: dict[str, dict[str, Any]] | None) -> list[str]:
    lines = [f"Transform run {run.dag_run_id}: {run.state.value}"]
    for v in validations:
        verdict = "passed" if not v.failed else f"{v.failed} failed ({v.critical} critical)"
        lines.append(f"  validation {v.stage} {v.dataset}: {v.expectations} expectations, {verdict}")
    bad = sorted(t for t, s in tasks.items() if s not in ("success", "skipped"))
    if bad:
        lines.append(f"  tasks not successful: {', '.join(bad)}")
    if published is not None:  # published, even when no mart changed
        moved = {m: c for m, c in published.items() if c["inserted"] or c["deleted"]}
        lines.append("  published to the marts BI tools read (rows inserted/deleted): " + (
            ", ".join(f"{m} +{c['inserted']}/-{c['deleted']}" for m, c in sorted(moved.items()))
            or "no row changed"))
    elif tasks.get("publish_marts") in ("failed", "upstream_failed"):
        lines.append("  nothing published: the marts BI tools read still show the previous figures")
    if tasks.get("validate_marts") == "skipped":
        lines.append("  marts not published: checks failed while a feed loaded under this run, so "
                     "they were not trusted; the run that load started decided (see its task log)")
    return lines


def _mart_lines(figures: ChainFigures) -> list[str]:
    lines = []
    if k := figures.knife:
        lines.append(f"Mart marts.knife_crime_quarterly: {k.force_quarters} force-quarters, {k.forces} forces, "
                     f"{k.first_year} to {k.last_year}, {k.offences:,} knife offences; {k.revised} force-quarters "
                     "revised since first published")
    if h := figures.hes:
        lines.append(f"Mart marts.sharp_object_admissions_yearly: {h.years} years ({h.first_year} to "
                     f"{h.last_year}), England; {h.latest_episodes or 0:,} finished consultant episodes in the "
                     "latest year")
    if a := figures.ae:
        lines.append(f"Mart marts.ae_assault_monthly: {a.areas} force areas x {a.months} months, "
                     f"{a.attendances:,} assault attendances shown; {a.suppressed} cells suppressed (1 to 4, or to "
                     "stop one being worked out by subtraction)")
    if m := figures.stop_search:
        lines.append(f"Mart marts.stop_search_monthly: {m.force_months} force-months "
                     f"({m.published} published), {m.searches:,} searches")
    return lines


def _land_sample_extracts(url: str, cfg: Settings, out: Callable[[str], Any]) -> int:
    """Drop the synthetic ISTV extracts not loaded yet into the landing area, as departments would."""
    from vru_sample import istv as sample_istv

    with psycopg.connect(url) as conn:
        loaded = {r[0] for r in conn.execute(
            "select sha256 from audit.landed_files where outcome = any(%s)", (list(SUCCESSFUL_LOADS),))}
    dropped = len(sample_istv.write_extracts(cfg.ae_landing_dir, skip_sha256=loaded))
    if dropped:
        out(f"Sample: {dropped} synthetic A&E extracts (ISTV) dropped into {cfg.ae_landing_dir}; the "
            "landing watcher starts the A&E ingest")
    return dropped


def _backfill(url: str, cfg: Settings, feed: Feed, editions: list[Path], out: Callable[[str], Any]) -> None:
    """Load earlier editions not held yet, as `vru load-<feed> FILE...` does (one file per year for
    a yearly table), before Airflow starts: the first night's transform then builds them with the
    rest, at no extra run."""
    from vru.archive import Archive

    assert feed.load_file is not None
    pending = _not_held(url, feed.dataset, editions)
    with psycopg.connect(url, autocommit=True) as conn:
        for path in pending:
            result = feed.load_file(conn, Archive(cfg.archive_dir), path, "sample-backfill", cfg)
            out(f"Sample: {feed.label}: backfilled {path.name} ({result.status}), as "
                f"`vru load-{feed.name.replace('_', '-')} {path.name}` does")


def _not_held(url: str, dataset: str, editions: list[Path]) -> list[Path]:
    """The bundled editions of a feed whose bytes the warehouse does not hold yet, in order."""
    with psycopg.connect(url) as conn:
        held = {r[0] for r in conn.execute("select sha256 from audit.editions where dataset = %s", (dataset,))}
    return [p for p in editions if hashlib.sha256(p.read_bytes()).hexdigest() not in held]


def _sample_editions(url: str, dataset: str, editions: list[Path]) -> tuple[Path, list[Path]]:
    """The bundled edition of a feed to serve first, and those to publish after it."""
    pending = _not_held(url, dataset, editions)
    return (pending[0], pending[1:]) if pending else (editions[-1], [])


def _publish_next(api: Any, later: dict[str, list[Path]], out: Callable[[str], Any]) -> tuple[str, ...]:
    """Publish each feed's next edition; the ingest DAGs to run again for them."""
    dags = []
    for sample in SAMPLE_EDITIONS:
        feed = registry.feed(sample.feed)
        if later.get(feed.dataset):
            path = later[feed.dataset].pop(0)
            out(f"Sample: {sample.publisher} publishes a revised {sample.what} ({path.name}); running its ingest again")
            api.publish(sample.served_name, path, formatdate(usegmt=True), folder=sample.folder)
            dags.append(feed.dag_id)
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
                editions = sample_feed.editions()
                if not sample_feed.replay:  # the earlier editions as an operator backfills them
                    _backfill(url, cfg, feed, editions[:-1], out)
                    editions = editions[-1:]
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
            # a bar on a terminal (lines written above it), plain lines otherwise: each DAG run's
            # state changes, and how long it has been running every few minutes
            with RunProgress(write=None if out is print else out) as progress:
                if sample:
                    _land_sample_extracts(url, cfg, progress.note)
                # files waiting in the landing folder start an A&E run: follow it with the others
                watched = {AE_DAG: ae_runs} if pending_files(cfg.ae_landing_dir) else None
                chain = run_chain(airflow, watched=watched, progress=progress)
                # The revised editions are published only after the first night's transform runs
                # end: loading them while a transform run validates its marts fails that run (the
                # marts were built from the previous edition; tried, and CI caught it).
                while server_ctx is not None and any(later.values()):
                    chain.extend(run_chain(airflow, _publish_next(server_ctx.api, later, progress.note),
                                           progress=progress))
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
