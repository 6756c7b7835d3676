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

import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from vru import registry, warehouse
from vru.config import Settings, settings
from vru.names import safe_name

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

STYLE = """
body{font-family:system-ui,Arial,sans-serif;margin:2rem;max-width:72rem;color:#1b1b1b}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top} th{background:#f2f2f2}
.light{display:inline-block;width:.9rem;height:.9rem;border-radius:50%;vertical-align:middle;margin-right:.4rem}
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.15rem}
.green{background:#00703c}.amber{background:#ffbf47}.red{background:#d4351c}.grey{background:#b1b4b6}
.muted{color:#505a5f} .summary{font-size:1.1rem;padding:.6rem;border-left:.4rem solid #b1b4b6}
.summary.red{border-color:#d4351c;background:#fbeae8}.summary.amber{border-color:#ffbf47;background:#fff7e6}
.summary.green{border-color:#00703c;background:#e6f4ec}
"""


class _Html(str):
    """Markup this module wrote itself; every other cell is escaped (errors quote the source)."""


@dataclass(frozen=True)
class Light:
    colour: str  # green | amber | red | grey
    words: str

    def html(self) -> _Html:
        return _Html(f'<span class="light {self.colour}" data-light="{self.colour}"></span>'
                     f"{html.escape(self.words)}")


GREEN = "green"
AMBER = "amber"
RED = "red"
GREY = "grey"
_RANK = {GREY: 0, GREEN: 1, AMBER: 2, RED: 3}


def _rows(conn: psycopg.Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _cell(value: Any) -> str:
    if isinstance(value, _Html):
        return value
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[tuple[Any, ...]], empty: str, table_id: str = "") -> str:
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def feed_of(dataset: str) -> str:
    return FEEDS.get(dataset.split(".", 1)[0], dataset)


def _validation_light(critical: int, warnings: int) -> Light:
    if critical:
        return Light(RED, f"Do not use: {critical} critical check(s) failed")
    if warnings:
        return Light(AMBER, f"Usable, with {warnings} warning(s)")
    return Light(GREEN, "All checks passed")


def _ingest_light(failed: int, refused: int, quarantined: int, stale: bool, exact: bool = True) -> Light:
    if failed or refused:
        parts = [f"{failed} could not be fetched" if failed else "",
                 f"{refused} refused as malformed" if refused else ""]
        return Light(RED, "Not all loaded: " + ", ".join(p for p in parts if p))
    if quarantined:
        if not exact:  # A&E: a count of rows set aside in a run is a count of attendances (issue 12)
            return Light(AMBER, "Loaded; rows set aside (see below)")
        return Light(AMBER, f"Loaded; {quarantined:,} row(s) set aside (see below)")
    if stale:
        return Light(AMBER, "Loaded, but the data is older than the source's usual publication delay")
    return Light(GREEN, "Loaded as published")


def _dots(states: list[str]) -> _Html:
    words = {GREEN: "passed", AMBER: "warnings", RED: "critical failure", GREY: "not run"}
    return _Html("".join(f'<span class="dot {s}" title="{words[s]}"></span>' for s in states))


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
    # --- the latest validation of each stage and dataset, and their trend ---------------------
    validations = _rows(conn, """
        select validation_id, stage, dataset, min(validated_at),
               count(*) filter (where not success and severity = 'critical'),
               count(*) filter (where not success and severity <> 'critical'),
               count(*),
               dense_rank() over (partition by stage, dataset order by min(validated_at) desc)
        from audit.validation_results
        group by validation_id, stage, dataset""")
    validations = [v for v in validations if v[7] <= TREND_RUNS]
    latest = {(v[1], v[2]): v for v in validations if v[7] == 1}
    trend: dict[tuple[str, str], list[str]] = {}
    for v in sorted(validations, key=lambda v: v[3]):
        trend.setdefault((v[1], v[2]), []).append(RED if v[4] else AMBER if v[5] else GREEN)

    failures = []
    for (stage, dataset), v in sorted(latest.items()):
        for severity, meaning, check, column, observed in _rows(conn, """
                select severity, meaning, expectation, column_name, observed
                from audit.validation_results where validation_id = %s and not success
                order by severity, expectation""", (v[0],)):
            failures.append((feed_of(dataset), STAGE_WORDS.get(stage, stage), dataset,
                             "Critical: not published" if severity == "critical" else "Warning",
                             meaning or check, column or "", _observed_words(check, observed)))

    # --- loading: the latest night's loads per dataset, and the trend per night --------------
    loads = _rows(conn, """
        with nights as (
            select dataset, run_id, max(finished_at) as at,
                   count(*) filter (where status = 'failed') as failed,
                   count(*) filter (where status = 'refused') as refused,
                   coalesce(sum(rows_quarantined) filter (where status in ('loaded', 'replaced')), 0)
                       as quarantined,
                   dense_rank() over (partition by dataset order by max(finished_at) desc) as recency
            from audit.loads where run_id is not null group by dataset, run_id)
        select dataset, failed, refused, quarantined, recency, at from nights where recency <= %s""",
        (TREND_RUNS,))
    stale = _stale_datasets(conn)
    ingest_latest = {r[0]: r for r in loads if r[4] == 1}
    ingest_trend: dict[str, list[str]] = {}
    for r in sorted(loads, key=lambda r: r[5]):
        ingest_trend.setdefault(r[0], []).append(RED if r[1] or r[2] else AMBER if r[3] else GREEN)

    # --- one light per feed and stage --------------------------------------------------------
    lights = []
    colours = []
    feeds_seen = sorted({d.split(".", 1)[0] for (_, d) in latest} | {d.split(".", 1)[0] for d in ingest_latest})
    for feed in feeds_seen:
        for stage in STAGES:
            if stage == "ingest":
                rows = [r for d, r in ingest_latest.items() if d.startswith(feed + ".")]
                if not rows:
                    continue
                refused = sum(r[2] for r in rows)
                light = _ingest_light(sum(r[1] for r in rows), 0 if feed in FILE_FEEDS else refused,
                                      sum(r[3] for r in rows), any(d.startswith(feed + ".") for d in stale),
                                      exact=feed != "ae")
                if feed in FILE_FEEDS and refused and light.colour != RED:
                    light = Light(AMBER, f"{refused} file(s) rejected whole, the others loaded (see "
                                         "\"A&E extracts received\" below)")
                checked = max(r[5] for r in rows)
                dots = _dots([s for d, t in ingest_trend.items() if d.startswith(feed + ".") for s in t][-TREND_RUNS:])
                lights.append((FEEDS.get(feed, feed), STAGE_WORDS[stage], light.html(), "",
                               _when(checked), dots))
                colours.append(light.colour)
            else:
                for (s, dataset), v in sorted(latest.items()):
                    if s != stage or not dataset.startswith(feed + "."):
                        continue
                    light = _validation_light(v[4], v[5])
                    lights.append((FEEDS.get(feed, feed), STAGE_WORDS[stage], light.html(),
                                   f"{v[6]} checks on {dataset}", _when(v[3]), _dots(trend[(s, dataset)])))
                    colours.append(light.colour)
    worst = max(colours, key=_RANK.__getitem__) if colours else GREY
    verdict = {
        RED: "Some of last night's figures must not be used: a critical check failed or a source could "
             "not be loaded. The failed batch was not published to the tables BI tools read.",
        AMBER: "Last night's figures can be used, with the warnings below in mind.",
        GREEN: "Last night's figures can be trusted: every check passed and every source loaded.",
        GREY: "No feed has run yet.",
    }[worst]

    incidents = _incidents(conn)

    # --- freshness, gaps, quarantine, editions, recent loads ---------------------------------
    freshness = _freshness(conn, stale)
    listed_not_loaded = _rows(conn, """
        select a.force_id, to_char(a.month, 'YYYY-MM')
        from raw.police_availability a
        where not exists (select 1 from audit.loads l where l.dataset = 'police.stop_searches'
                          and l.force_id = a.force_id and l.month = a.month
                          and l.status in ('loaded', 'replaced'))
        order by 2, 1""")
    not_published = _not_published(conn)
    quarantine = _quarantine(conn)
    landed = _rows(conn, """
        select file_name, outcome, coalesce(site_code, ''),
               coalesce(to_char(reporting_period_start, 'YYYY-MM-DD') || ' to '
                        || to_char(reporting_period_end, 'YYYY-MM-DD'), ''),
               case when outcome in ('loaded', 'replaced')
                    then case when rows_quarantined > 0 then 'yes' else 'no' end else '' end,
               coalesce(reason, ''), to_char(processed_at, 'YYYY-MM-DD HH24:MI')
        from audit.landed_files
        order by (outcome = 'rejected') desc, landed_id desc limit 40""")
    landed = [(safe_name(r[0]), *r[1:]) for r in landed]  # rows recorded before names were made safe
    landed_counts = _rows(conn, "select outcome, count(*) from audit.landed_files group by 1 order by 1")
    editions = _rows(conn, """
        select e.load_id, to_char(e.fetched_at, 'YYYY-MM-DD HH24:MI'), e.file_format,
               coalesce(e.last_modified, ''), e.figures, e.figures_added, e.figures_revised,
               e.figures_dropped, l.rows_quarantined
        from audit.editions e join audit.loads l using (load_id)
        order by e.load_id desc limit 20""")
    recent = _rows(conn, """
        select dataset, coalesce(force_id, 'all'), coalesce(to_char(month, 'YYYY-MM'), 'edition'),
               status, rows_read, rows_loaded, rows_quarantined, coalesce(error, ''),
               to_char(finished_at, 'YYYY-MM-DD HH24:MI')
        from audit.loads where dataset <> 'ae.attendances'  -- A&E: counts per extract (issue 12)
        order by load_id desc limit 60""")

    docs = cfg.data_docs_dir / "index.html"
    docs_note = "" if docs.exists() else " (not written yet)"
    dbt_docs_note = "" if (cfg.reports_dir / "dbt_docs" / "index.html").exists() else " (written by `make run`)"
    outcomes_note = "" if (cfg.reports_dir / "outcomes.html").exists() else " (written after the next run)"
    now = datetime.now(UTC)
    after = f" after run {html.escape(run_id)}" if run_id else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>Data quality report: serious violence monitoring</title><style>{STYLE}</style></head><body>
<h1>Data quality report: serious violence monitoring</h1>
<p class="muted">Written {now:%Y-%m-%d %H:%M} UTC{after}. Green: the figures can be used. Amber: usable,
but read the warnings. Red: do not use the figures from this stage until the problem is fixed; they
were not published to the tables BI tools read. The dots show the most recent runs, oldest first.</p>
<p class="summary {worst}" id="verdict">{html.escape(verdict)}</p>
<p id="published">{html.escape(_publication(conn))}</p>
<h2>Can last night's figures be trusted?</h2>
{_table(["Feed", "Stage", "Result", "What was checked", "When (UTC)", "Recent runs"], lights,
        "Nothing has run yet.", "lights")}
<h2>Open alerts</h2>
{_table(["Alert", "Feed", "Opened (UTC)", "Last seen (UTC)", "Times seen", "Status", "Notified"], incidents,
        "No alerts are open.", "incidents")}
<h2>What failed, in words</h2>
{_table(["Feed", "Stage", "Dataset", "Severity", "What the check means", "Column", "What was found"],
        failures, "Nothing failed in the latest checks.", "failures")}
<h2>Freshness</h2>
{_table(["Feed", "Latest period held", "Latest period the source has published", "Source last updated",
         "Verdict"], freshness, "No feeds yet.", "freshness")}
<h2>Expected from the sources but not received</h2>
<p class="muted">Listed by data.police.uk as published, but not (yet) loaded here: these are retried every night.</p>
{_table(["Force", "Month"], listed_not_loaded, "Every force-month the source lists is loaded.", "gaps")}
<p class="muted">Force-months data.police.uk has not published at all (counts are shown as missing, never as zero).</p>
{_table(["Force", "Months not published", "From", "To"], not_published, "Every force published every month.",
        "not-published")}
<h2>Rows set aside (quarantined) because they could not be read</h2>
{_table(["Feed", "Force", "Month or edition", "Reason", "Rows"], quarantine, "No rows were set aside.", "quarantine")}
<h2>A&amp;E extracts received</h2>
<p class="muted">Files emergency departments dropped into the landing folder, rejected ones first. A rejected
file was not loaded at all: its reason names the line and column, and the file is in the landing folder's
<code>rejected/</code> folder with a <code>.reason.txt</code> beside it. In all:
{html.escape(", ".join(f"{n} {o}" for o, n in landed_counts) or "none yet")}.</p>
<p class="muted">No row counts here: rows per extract are attendances per department and period, which
only the suppressed figures of <code>marts.ae_assault_monthly</code> may show.</p>
{_table(["File", "Outcome", "Site", "Reporting period", "Rows set aside", "Reason",
         "When (UTC)"], landed, "No A&amp;E extract has arrived yet.", "landed")}
<h2>Editions of published tables (knife crime, hospital admissions)</h2>
<p class="muted">Each edition the publisher releases is kept beside the earlier ones; "revised" counts the
figures it changed (listed in the warehouse table audit.revisions).</p>
{_table(["Edition", "Fetched (UTC)", "Format", "Publisher's date", "Figures", "New", "Revised", "Dropped",
         "Rows set aside"], editions, "No edition loaded yet.", "editions")}
<h2>Recent loads</h2>
{_table(["Dataset", "Force", "Month", "Status", "Rows read", "Rows loaded", "Set aside", "Error",
         "Finished (UTC)"], recent, "Nothing loaded yet.", "loads")}
<p>Detail of every check: <a href="data_docs/index.html">Great Expectations Data Docs</a>{docs_note}.
What every table and column means, and which dashboards read them:
<a href="dbt_docs/index.html">dbt docs</a>{dbt_docs_note}.
The programme's outcomes, VRU areas against the others, in charts and words:
<a href="outcomes.html">outcomes report</a>{outcomes_note}.</p>
</body></html>"""


def _publication(conn: psycopg.Connection) -> str:
    """Which figures BI tools are showing: the marts are published only after every check passed
    (write-audit-publish, `vru.publish`), so after a failed build they still show the last good one."""
    last = _rows(conn, "select published_at, run_id from audit.publications order by publication_id desc limit 1")
    failed = _rows(conn, """
        select max(validated_at) from audit.validation_results where not success and severity = 'critical'""")
    failed_at = failed[0][0] if failed else None
    if not last:
        if failed_at:
            return ("Nothing has been published to the tables BI tools read yet: the first build failed its "
                    "checks (see below), so BI tools show no figures rather than unchecked ones.")
        return "Nothing has been published to the tables BI tools read yet."
    published_at, run_id = last[0]
    when = f"{_when(published_at)} UTC" + (f" (run {run_id})" if run_id else "")
    if failed_at and failed_at > published_at:
        return (f"BI tools still show the figures published {when}: a later batch failed a critical check "
                f"at {_when(failed_at)} UTC (see below), so it was not published, and those earlier figures "
                "were left exactly as they were.")
    return f"BI tools show the figures published {when}, after every check on them passed."


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""


def _observed_words(expectation: str, observed: dict[str, Any] | None) -> str:
    """What the check found, in words: how many records broke the rule (never which ones)."""
    if not observed:
        return ""
    if expectation == "unexpected_rows_expectation" and isinstance(observed.get("observed_value"), int):
        return f"{observed['observed_value']:,} record(s) break the rule"
    if "unexpected_count" in observed and observed.get("element_count"):
        return f"{observed['unexpected_count']:,} of {observed['element_count']:,} rows"
    if "unexpected_count" in observed:
        return f"{observed['unexpected_count']:,} rows"
    value = observed.get("observed_value")
    if isinstance(value, (int, float)):
        return f"found {value:,}"
    return "" if value is None else f"found {str(value)[:120]}"


def _stale_datasets(conn: psycopg.Connection) -> set[str]:
    if conn.execute("select to_regclass('audit.incidents')").fetchone() == (None,):
        return set()
    return {r[0] for r in _rows(conn, """
        select dataset from audit.incidents where kind = 'feed_stale' and resolved_at is null""") if r[0]}


def _incidents(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    if conn.execute("select to_regclass('audit.incidents')").fetchone() == (None,):
        return []
    rows = _rows(conn, """
        select summary, dataset, opened_at, last_seen_at, occurrences, resolved_at,
               coalesce(notified_via, ''), notify_error
        from audit.incidents
        where resolved_at is null or resolved_at > now() - interval '7 days'
        order by resolved_at is not null, opened_at desc limit 50""")
    out = []
    for summary, dataset, opened, seen, times, resolved, via, error in rows:
        status = Light(GREEN, f"Resolved {resolved:%Y-%m-%d %H:%M}") if resolved else Light(RED, "Open")
        notified = f"delivery failed: {error}" if error else via
        out.append((summary, feed_of(dataset) if dataset else "", _when(opened), _when(seen), times,
                    status.html(), notified))
    return out


def _freshness(conn: psycopg.Connection, stale: set[str]) -> list[tuple[Any, ...]]:
    rows = []
    police = _rows(conn, """
        select (select to_char(max(month), 'YYYY-MM') from audit.loads
                where dataset = 'police.stop_searches' and status in ('loaded', 'replaced')),
               (select to_char(max(month), 'YYYY-MM') from raw.police_availability),
               (select value from audit.feed_state
                where dataset = 'police.stop_searches' and key = 'last_updated')""")[0]
    if any(police):
        rows.append((FEEDS["police"], police[0] or "none", police[1] or "unknown", police[2] or "unknown",
                     _freshness_light("police.stop_searches", police[0], police[1], stale)))
    knife = _rows(conn, """
        select (select max(financial_year || ' Q' || financial_quarter) from raw.knife_offences
                where offences is not null),
               (select max(k.financial_year || ' Q' || k.financial_quarter) from raw.knife_offences k
                where k.load_id = (select max(load_id) from audit.editions
                                   where dataset = 'home_office.knife_offences')),
               (select coalesce(last_modified, to_char(fetched_at, 'YYYY-MM-DD HH24:MI'))
                from audit.editions where dataset = 'home_office.knife_offences' order by load_id desc limit 1),
               (select to_char(updated_at, 'YYYY-MM-DD HH24:MI') || ': ' || value from audit.feed_state
                where dataset = 'home_office.knife_offences' and key = 'last_checked')""")[0]
    if any(knife):
        source = (knife[2] or "unknown") + (f" (last checked {knife[3]})" if knife[3] else "")
        rows.append((FEEDS["home_office"], knife[0] or "none", knife[1] or "unknown", source,
                     _freshness_light("home_office.knife_offences", knife[0], knife[1], stale)))
    ae = _rows(conn, """
        select to_char(max(reporting_period_end), 'YYYY-MM-DD'), count(distinct site_code),
               to_char(max(processed_at), 'YYYY-MM-DD HH24:MI')
        from audit.landed_files where outcome in ('loaded', 'replaced')""")[0]
    if ae[0]:
        rows.append((FEEDS["ae"], f"to {ae[0]} ({ae[1]} departments)", "sent by departments, at least monthly",
                     f"last extract taken in {ae[2]}", _freshness_light("ae.attendances", ae[0], None, stale)))
    return rows


def _freshness_light(dataset: str, held: str | None, published: str | None, stale: set[str]) -> _Html:
    if held is None:
        return Light(RED, "Nothing loaded yet").html()
    if published and held < published:
        return Light(AMBER, "Behind the source: the newest period is not loaded yet").html()
    if dataset in stale:
        return Light(AMBER, "Up to date with the source, but the source is late publishing").html()
    return Light(GREEN, "Up to date with the source").html()


_QUOTED = re.compile(r"(column |field )?'([^']*)'")
_WHERE = re.compile(r" \((column|line)[^)]*\)$")


def _reason_kind(reason: str) -> str:
    """The reason without the row's own values and line: rows with one problem group together."""
    reason = _WHERE.sub("", reason)
    return _QUOTED.sub(lambda m: m.group(0) if m.group(1) else "…", reason)


AE_COUNT_WITHHELD = "some (A&E: not counted here)"


def _quarantine(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    ae_kinds: set[tuple[str, str, str, str]] = set()
    for dataset, force, period, reason, n in _rows(conn, """
            select dataset, coalesce(force_id, 'all forces'),
                   coalesce(to_char(month, 'YYYY-MM'), 'edition ' || load_id), reason, count(*)
            from raw.quarantine group by 1, 2, 3, 4 order by 1, 2, 3 limit 5000"""):
        counts[(feed_of(dataset), force, period, _reason_kind(reason))] += n
    # A&E rows are row-level data: only the kind of problem leaves the schema (no values, no counts)
    for site, period, column, reason, n in _rows(conn, """
            select coalesce(l.force_id, 'unknown site'), to_char(l.month, 'YYYY-MM'),
                   coalesce(q.column_name, ''), split_part(q.reason, ': ', 2), count(*)
            from restricted.ae_quarantine q join audit.loads l using (load_id)
            group by 1, 2, 3, 4 order by 1, 2 limit 5000"""):
        kind = f"{column}: {_reason_kind(reason)}" if column else _reason_kind(reason)
        counts[(FEEDS["ae"], site, period, kind)] += n
        ae_kinds.add((FEEDS["ae"], site, period, kind))
    # A&E: the kind of problem per force-month, never how many rows (a count of attendances)
    return [(*key, AE_COUNT_WITHHELD if key in ae_kinds else n) for key, n in sorted(counts.items())][:200]


def _not_published(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    if conn.execute("select to_regclass('marts.stop_search_monthly')").fetchone() == (None,):
        return []
    return _rows(conn, """
        select force_id, count(*), to_char(min(month), 'YYYY-MM'), to_char(max(month), 'YYYY-MM')
        from marts.stop_search_monthly where coverage = 'not_published'
        group by force_id order by force_id""")
