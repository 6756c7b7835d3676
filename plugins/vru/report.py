"""The data quality report for Home Office monitoring staff: one HTML page, plain English.

Written after every transform run (and by `vru report`) to VRU_HOME/reports/index.html from the
`audit` tables (and the availability the sources published): counts, checks and reasons, never a
row of source data. It links to the Great Expectations Data Docs for the detail of every check.

The front page answers, per feed and stage: can last night's figures be trusted (a traffic
light), and if not, which force, month, feed and rule failed, in words. Then: open alerts,
freshness, what the sources should have published but did not, rows set aside with reasons, and
the trend of each over recent runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row

from vru import freshness, registry, warehouse
from vru import report_rules as rules
from vru.config import Settings, settings
from vru.feed import SUCCESSFUL_LOADS
from vru.names import safe_name
from vru.report_rules import Light
from vru.templating import render

# Each feed's datasets (by their audit-name prefix) and how monitoring staff know it, from the
# feeds' declarations (vru.feeds.<name>).
FEEDS: dict[str, str] = registry.source_labels()
# Feeds made of many independent files: a rejected file is a gap in the figures, not a failed
# night (the other files loaded), so it shows amber with the file named below.
FILE_FEEDS = {f.prefix for f in registry.FEEDS if f.kind == "files"}
STAGES = ("ingest", "raw", "staging", "marts")
STAGE_WORDS = {
    "ingest": "Loading from the source",
    "raw": "Checks on the data as received",
    "staging": "Checks after cleaning",
    "marts": "Checks on the tables for BI tools, before they are published",
}
TREND_RUNS = 14

AE_COUNT_WITHHELD = "some (A&E: not counted here)"

T = TypeVar("T")


def feed_of(dataset: str) -> str:
    return FEEDS.get(dataset.split(".", 1)[0], dataset)


def write_report(run_id: str | None = None, cfg: Settings | None = None) -> Path:
    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    with psycopg.connect(url) as conn:
        page = _render(conn, run_id, cfg)
    return write_page(cfg.reports_dir / "index.html", page)


def write_page(target: Path, page: str) -> Path:
    """Write a report page under a temporary name, then rename it: a reader never sees half a page."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


def _render(conn: psycopg.Connection, run_id: str | None, cfg: Settings) -> str:
    validations = _validations(conn)
    nights = _ingest_nights(conn)
    stale = _stale_datasets(conn)
    lights = _lights(validations, nights, stale)
    worst = rules.worst([row.light.colour for row in lights])
    return render(
        "report.html.j2",
        written=f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        run_id=run_id,
        dot_words=rules.DOT_WORDS,
        worst=worst,
        verdict=rules.VERDICTS[worst],
        publication=_publication(conn),
        lights=lights,
        incidents=_incidents(conn),
        failures=_failures(conn, validations),
        freshness=_freshness(conn, stale),
        gaps=_fetch(conn, Gap, """
            select a.force_id, to_char(a.month, 'YYYY-MM') as month
            from raw.police_availability a
            where not exists (select 1 from audit.loads l where l.dataset = 'police.stop_searches'
                              and l.force_id = a.force_id and l.month = a.month
                              and l.status = any(%s))
            order by 2, 1""", (list(SUCCESSFUL_LOADS),)),
        not_published=_not_published(conn),
        quarantine=_quarantine(conn),
        landed=_landed(conn),
        landed_counts=_fetch(conn, LandedCount,
                             "select outcome, count(*) as files from audit.landed_files group by 1 order by 1"),
        editions=_fetch(conn, Edition, """
            select e.load_id, to_char(e.fetched_at, 'YYYY-MM-DD HH24:MI') as fetched_at, e.file_format,
                   coalesce(e.last_modified, '') as last_modified, e.figures, e.figures_added,
                   e.figures_revised, e.figures_dropped, l.rows_quarantined
            from audit.editions e join audit.loads l using (load_id)
            order by e.load_id desc limit 20"""),
        recent=_fetch(conn, RecentLoad, """
            select dataset, coalesce(force_id, 'all') as force_id,
                   coalesce(to_char(month, 'YYYY-MM'), 'edition') as month, status, rows_read, rows_loaded,
                   rows_quarantined, coalesce(error, '') as error,
                   to_char(finished_at, 'YYYY-MM-DD HH24:MI') as finished_at
            from audit.loads where dataset <> 'ae.attendances'  -- A&E: counts per extract (issue 12)
            order by load_id desc limit 60"""),
        docs_note="" if (cfg.data_docs_dir / "index.html").exists() else " (not written yet)",
        dbt_docs_note="" if (cfg.reports_dir / "dbt_docs" / "index.html").exists() else " (written by `make run`)",
        outcomes_note="" if (cfg.reports_dir / "outcomes.html").exists() else " (written after the next run)",
    )


# ------------------------------------------------------------------------------------------------
# Queries: each returns named rows (the column aliases are the fields)
# ------------------------------------------------------------------------------------------------


def _fetch(conn: psycopg.Connection, row: type[T], sql: str,
           params: Sequence[Any] | Mapping[str, Any] = ()) -> list[T]:
    with conn.cursor(row_factory=class_row(row)) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s)", (relation,)).fetchone() != (None,)


@dataclass(frozen=True)
class Validation:
    """One validation (one suite run) of a stage and dataset."""

    validation_id: str
    stage: str
    dataset: str
    validated_at: datetime
    critical: int  # failed critical expectations
    warnings: int  # failed warning expectations
    checks: int
    recency: int  # 1: the latest of its stage and dataset


def _validations(conn: psycopg.Connection) -> list[Validation]:
    """The validations of each stage and dataset, the latest TREND_RUNS of them."""
    return _fetch(conn, Validation, """
        select * from (
            select validation_id, stage, dataset, min(validated_at) as validated_at,
                   count(*) filter (where not success and severity = 'critical') as critical,
                   count(*) filter (where not success and severity <> 'critical') as warnings,
                   count(*) as checks,
                   dense_rank() over (partition by stage, dataset order by min(validated_at) desc) as recency
            from audit.validation_results
            group by validation_id, stage, dataset) v
        where recency <= %s""", (TREND_RUNS,))


@dataclass(frozen=True)
class FailedCheck:
    severity: str
    meaning: str | None
    expectation: str
    column_name: str | None
    observed: dict[str, Any] | None


@dataclass(frozen=True)
class IngestNight:
    """One dataset's loads of one run."""

    dataset: str
    failed: int
    refused: int
    quarantined: int
    recency: int  # 1: the latest run that loaded the dataset
    finished_at: datetime


def _ingest_nights(conn: psycopg.Connection) -> list[IngestNight]:
    return _fetch(conn, IngestNight, """
        with nights as (
            select dataset, run_id, max(finished_at) as finished_at,
                   count(*) filter (where status = 'failed') as failed,
                   count(*) filter (where status = 'refused') as refused,
                   coalesce(sum(rows_quarantined) filter (where status = any(%s)), 0) as quarantined,
                   dense_rank() over (partition by dataset order by max(finished_at) desc) as recency
            from audit.loads where run_id is not null group by dataset, run_id)
        select dataset, failed, refused, quarantined, recency, finished_at from nights where recency <= %s""",
        (list(SUCCESSFUL_LOADS), TREND_RUNS))


@dataclass(frozen=True)
class Gap:
    """A force-month the source lists as published that is not loaded."""

    force_id: str
    month: str


@dataclass(frozen=True)
class NotPublished:
    force_id: str
    months: int
    first_month: str
    last_month: str


def _not_published(conn: psycopg.Connection) -> list[NotPublished]:
    if not _exists(conn, "marts.stop_search_monthly"):
        return []
    return _fetch(conn, NotPublished, """
        select force_id, count(*) as months, to_char(min(month), 'YYYY-MM') as first_month,
               to_char(max(month), 'YYYY-MM') as last_month
        from marts.stop_search_monthly where coverage = 'not_published'
        group by force_id order by force_id""")


@dataclass(frozen=True)
class LandedFile:
    file_name: str
    outcome: str
    site_code: str
    period: str
    set_aside: str  # yes | no, for a loaded file; never how many rows
    reason: str
    processed_at: str


def _landed(conn: psycopg.Connection) -> list[LandedFile]:
    rows = _fetch(conn, LandedFile, """
        select file_name, outcome, coalesce(site_code, '') as site_code,
               coalesce(to_char(reporting_period_start, 'YYYY-MM-DD') || ' to '
                        || to_char(reporting_period_end, 'YYYY-MM-DD'), '') as period,
               case when outcome = any(%s)
                    then case when rows_quarantined > 0 then 'yes' else 'no' end else '' end as set_aside,
               coalesce(reason, '') as reason, to_char(processed_at, 'YYYY-MM-DD HH24:MI') as processed_at
        from audit.landed_files
        order by (outcome = 'rejected') desc, landed_id desc limit 40""", (list(SUCCESSFUL_LOADS),))
    # rows recorded before names were made safe
    return [replace(r, file_name=safe_name(r.file_name)) for r in rows]


@dataclass(frozen=True)
class LandedCount:
    outcome: str
    files: int


@dataclass(frozen=True)
class Edition:
    load_id: int
    fetched_at: str
    file_format: str
    last_modified: str
    figures: int
    figures_added: int
    figures_revised: int
    figures_dropped: int
    rows_quarantined: int


@dataclass(frozen=True)
class RecentLoad:
    dataset: str
    force_id: str
    month: str
    status: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    error: str
    finished_at: str | None


@dataclass(frozen=True)
class Publication:
    published_at: datetime
    run_id: str | None


def _publication(conn: psycopg.Connection) -> str:
    last = _fetch(conn, Publication,
                  "select published_at, run_id from audit.publications order by publication_id desc limit 1")
    (failed_at,) = conn.execute("""
        select max(validated_at) from audit.validation_results
        where not success and severity = 'critical'""").fetchone() or (None,)
    return rules.publication_words(last[0].published_at if last else None, last[0].run_id if last else None,
                                   failed_at)


def _stale_datasets(conn: psycopg.Connection) -> set[str]:
    if not _exists(conn, "audit.incidents"):
        return set()
    return {dataset for (dataset,) in conn.execute("""
        select dataset from audit.incidents where kind = 'feed_stale' and resolved_at is null""") if dataset}


@dataclass(frozen=True)
class IncidentRecord:
    summary: str
    dataset: str | None
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    resolved_at: datetime | None
    notified_via: str
    notify_error: str | None


@dataclass(frozen=True)
class IncidentRow:
    summary: str
    feed: str
    opened: str
    last_seen: str
    times: int
    status: Light
    notified: str


def _incidents(conn: psycopg.Connection) -> list[IncidentRow]:
    if not _exists(conn, "audit.incidents"):
        return []
    rows = _fetch(conn, IncidentRecord, """
        select summary, dataset, opened_at, last_seen_at, occurrences, resolved_at,
               coalesce(notified_via, '') as notified_via, notify_error
        from audit.incidents
        where resolved_at is null or resolved_at > now() - interval '7 days'
        order by resolved_at is not null, opened_at desc limit 50""")
    return [IncidentRow(r.summary, feed_of(r.dataset) if r.dataset else "", rules.when(r.opened_at),
                        rules.when(r.last_seen_at), r.occurrences, rules.incident_status(r.resolved_at),
                        rules.notified_words(r.notified_via, r.notify_error)) for r in rows]


@dataclass(frozen=True)
class FreshnessRow:
    feed: str
    held: str
    published: str
    source_updated: str
    light: Light


@dataclass(frozen=True)
class SourceUpdated:
    when: str | None
    last_checked: str | None = None


# When the source last changed, by the kind of feed: an API says so (police: crime-last-updated);
# a table's edition carries its Last-Modified; files are as recent as the last one taken in.
_SOURCE_UPDATED = {
    "api": """select value as when, null as last_checked from audit.feed_state
              where dataset = %(dataset)s and key = 'last_updated'""",
    "edition": """select (select coalesce(last_modified, to_char(fetched_at, 'YYYY-MM-DD HH24:MI'))
                          from audit.editions where dataset = %(dataset)s order by load_id desc limit 1) as when,
                         (select to_char(updated_at, 'YYYY-MM-DD HH24:MI') || ': ' || value from audit.feed_state
                          where dataset = %(dataset)s and key = 'last_checked') as last_checked""",
    "files": """select 'last extract taken in ' || to_char(max(processed_at), 'YYYY-MM-DD HH24:MI') as when,
                       null as last_checked
                from audit.landed_files where dataset = %(dataset)s and outcome = any(%(successful)s)""",
}


def _freshness(conn: psycopg.Connection, stale: set[str]) -> list[FreshnessRow]:
    """One row per feed that has loaded something or whose source is known: the latest period held
    and the latest the source lists (each feed's declared freshness rule), when the source last
    changed, and the verdict."""
    rows = []
    for feed in registry.FEEDS:
        held = freshness.latest_period_end(conn, feed)
        published = freshness.published_period_end(conn, feed)
        updated = next(iter(_fetch(conn, SourceUpdated, _SOURCE_UPDATED[feed.kind],
                                   {"dataset": feed.dataset, "successful": list(SUCCESSFUL_LOADS)})),
                       SourceUpdated(None))
        if not (held or published or updated.when or updated.last_checked):
            continue  # never loaded, source never seen: the incidents and the loading stage say so
        held_words = freshness.period_name(feed, held) if held else "none"
        if feed.kind == "files" and held:
            departments = conn.execute(
                "select count(distinct site_code) from audit.landed_files where dataset = %s and outcome = any(%s)",
                (feed.dataset, list(SUCCESSFUL_LOADS))).fetchone()
            held_words += f" ({departments[0] if departments else 0} departments)"
        published_words = (freshness.period_name(feed, published) if published else
                           "sent by departments, at least monthly" if feed.kind == "files" else "unknown")
        source = (updated.when or "unknown") + (f" (last checked {updated.last_checked})"
                                               if updated.last_checked else "")
        rows.append(FreshnessRow(feed.source_label, held_words, published_words, source,
                                 rules.freshness_light(held.isoformat() if held else None,
                                                       published.isoformat() if published else None,
                                                       feed.dataset in stale)))
    return rows


@dataclass(frozen=True)
class QuarantineGroup:
    """Rows set aside for one kind of reason, in one place (force or site) and period."""

    dataset: str
    place: str
    period: str
    column_name: str  # '' when the reason names no column (or names it itself)
    reason: str
    rows: int


@dataclass(frozen=True)
class QuarantineRow:
    feed: str
    place: str
    period: str
    reason: str
    rows: int | str  # A&E: words, never a count


def _quarantine(conn: psycopg.Connection) -> list[QuarantineRow]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    ae_kinds: set[tuple[str, str, str, str]] = set()
    for q in _fetch(conn, QuarantineGroup, """
            select dataset, coalesce(force_id, 'all forces') as place,
                   coalesce(to_char(month, 'YYYY-MM'), 'edition ' || load_id) as period, '' as column_name,
                   reason, count(*) as rows
            from raw.quarantine group by 1, 2, 3, 5 order by 1, 2, 3 limit 5000"""):
        counts[(feed_of(q.dataset), q.place, q.period, rules.reason_kind(q.reason))] += q.rows
    # A&E rows are row-level data: only the kind of problem leaves the schema (no values, no counts)
    for q in _fetch(conn, QuarantineGroup, """
            select 'ae.attendances' as dataset, coalesce(l.force_id, 'unknown site') as place,
                   to_char(l.month, 'YYYY-MM') as period, coalesce(q.column_name, '') as column_name,
                   split_part(q.reason, ': ', 2) as reason, count(*) as rows
            from restricted.ae_quarantine q join audit.loads l using (load_id)
            group by 1, 2, 3, 4, 5 order by 2, 3 limit 5000"""):
        kind = f"{q.column_name}: {rules.reason_kind(q.reason)}" if q.column_name else rules.reason_kind(q.reason)
        key = (FEEDS["ae"], q.place, q.period, kind)
        counts[key] += q.rows
        ae_kinds.add(key)
    # A&E: the kind of problem per force-month, never how many rows (a count of attendances)
    return [QuarantineRow(*key, AE_COUNT_WITHHELD if key in ae_kinds else n)
            for key, n in sorted(counts.items())][:200]


# ------------------------------------------------------------------------------------------------
# The front page: failed checks in words, one light per feed and stage
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureRow:
    feed: str
    stage: str
    dataset: str
    severity: str
    meaning: str
    column: str
    found: str


def _failures(conn: psycopg.Connection, validations: list[Validation]) -> list[FailureRow]:
    rows = []
    for v in sorted((v for v in validations if v.recency == 1), key=lambda v: (v.stage, v.dataset)):
        for check in _fetch(conn, FailedCheck, """
                select severity, meaning, expectation, column_name, observed
                from audit.validation_results where validation_id = %s and not success
                order by severity, expectation""", (v.validation_id,)):
            rows.append(FailureRow(feed_of(v.dataset), STAGE_WORDS.get(v.stage, v.stage), v.dataset,
                                   rules.severity_words(check.severity), check.meaning or check.expectation,
                                   check.column_name or "", rules.observed_words(check.expectation, check.observed)))
    return rows


@dataclass(frozen=True)
class LightRow:
    feed: str
    stage: str
    light: Light
    checked: str  # what was checked ('' for loading)
    when: str
    trend: list[str]  # the colours of the recent runs, oldest first


def _lights(validations: list[Validation], nights: list[IngestNight], stale: set[str]) -> list[LightRow]:
    latest = {(v.stage, v.dataset): v for v in validations if v.recency == 1}
    trend: dict[tuple[str, str], list[str]] = {}
    for v in sorted(validations, key=lambda v: v.validated_at):
        trend.setdefault((v.stage, v.dataset), []).append(rules.validation_state(v.critical, v.warnings))
    ingest_latest = {n.dataset: n for n in nights if n.recency == 1}
    ingest_trend: dict[str, list[str]] = {}
    for n in sorted(nights, key=lambda n: n.finished_at):
        ingest_trend.setdefault(n.dataset, []).append(rules.night_state(n.failed, n.refused, n.quarantined))

    def of(feed: str, dataset: str) -> bool:
        return dataset.startswith(feed + ".")

    rows = []
    for feed in sorted({d.split(".", 1)[0] for (_, d) in latest} | {d.split(".", 1)[0] for d in ingest_latest}):
        name = FEEDS.get(feed, feed)
        for stage in STAGES:
            if stage == "ingest":
                loads = [n for d, n in ingest_latest.items() if of(feed, d)]
                if not loads:
                    continue
                light = rules.feed_ingest_light(
                    sum(n.failed for n in loads), sum(n.refused for n in loads), sum(n.quarantined for n in loads),
                    any(of(feed, d) for d in stale), file_feed=feed in FILE_FEEDS, exact=feed != "ae")
                dots = [s for d, t in ingest_trend.items() if of(feed, d) for s in t][-TREND_RUNS:]
                rows.append(LightRow(name, STAGE_WORDS[stage], light, "",
                                     rules.when(max(n.finished_at for n in loads)), dots))
                continue
            for (s, dataset), v in sorted(latest.items()):
                if s == stage and of(feed, dataset):
                    rows.append(LightRow(name, STAGE_WORDS[stage], rules.validation_light(v.critical, v.warnings),
                                         f"{v.checks} checks on {dataset}", rules.when(v.validated_at),
                                         trend[(s, dataset)]))
    return rows

