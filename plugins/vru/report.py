"""The data quality report for Home Office monitoring staff: one HTML page, plain English.

Written after every transform run (and by `vru report`) to VRU_HOME/reports/index.html from the
`audit` tables only: no row-level data. It links to the Great Expectations Data Docs for detail.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from vru import warehouse
from vru.config import Settings, settings

_STYLE = """
body{font-family:system-ui,Arial,sans-serif;margin:2rem;max-width:70rem;color:#1b1b1b}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left} th{background:#f2f2f2}
.light{display:inline-block;width:.9rem;height:.9rem;border-radius:50%;vertical-align:middle;margin-right:.4rem}
.green{background:#00703c}.amber{background:#ffbf47}.red{background:#d4351c}.grey{background:#b1b4b6}
.muted{color:#505a5f}
"""


_FRESHNESS_HEADERS = ["Feed", "Latest month held", "Latest month the source has published",
                      "Source last updated (as of the last complete night)"]
_EDITION_HEADERS = ["Edition", "Fetched (UTC)", "Format", "Publisher's date", "Figures", "New", "Revised",
                    "Dropped", "Rows set aside"]
_LOAD_HEADERS = ["Dataset", "Force", "Month", "Status", "Rows read", "Rows loaded", "Set aside", "Error",
                 "Finished (UTC)"]


def _rows(conn: psycopg.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


class _Html(str):
    """Markup this module wrote itself; every other cell is escaped (errors quote the source)."""


def _light(colour: str, label: str) -> _Html:
    return _Html(f'<span class="light {colour}"></span>{html.escape(label)}')


def _table(headers: list[str], rows: list[tuple[Any, ...]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, _Html) else html.escape('' if c is None else str(c))}</td>"
                         for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(run_id: str | None = None, cfg: Settings | None = None) -> Path:
    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    with psycopg.connect(url) as conn:
        latest = _rows(conn, """
            select distinct on (stage, dataset) stage, dataset, validation_id, validated_at
            from audit.validation_results order by stage, dataset, validated_at desc""")
        lights = []
        failures = []
        for stage, dataset, validation_id, validated_at in latest:
            results = _rows(conn, """
                select severity, success, meaning, expectation, column_name
                from audit.validation_results where validation_id = %s""", (validation_id,))
            bad_critical = [r for r in results if not r[1] and r[0] == "critical"]
            bad_warning = [r for r in results if not r[1] and r[0] != "critical"]
            colour, word = (("red", "Do not use: critical checks failed") if bad_critical else
                            ("amber", "Usable, with warnings") if bad_warning else
                            ("green", "All checks passed"))
            lights.append((stage, dataset, _light(colour, word), len(results),
                           f"{validated_at:%Y-%m-%d %H:%M} UTC"))
            for severity, _, meaning, expectation, column in bad_critical + bad_warning:
                failures.append((stage, dataset, severity, meaning or expectation,
                                 column or ""))
        loads = _rows(conn, """
            select dataset, coalesce(force_id, 'all'), coalesce(to_char(month, 'YYYY-MM'), 'edition'),
                   status, rows_read, rows_loaded, rows_quarantined, coalesce(error, ''),
                   to_char(finished_at, 'YYYY-MM-DD HH24:MI')
            from audit.loads order by load_id desc limit 60""")
        quarantine = _rows(conn, r"""
            select q.dataset, coalesce(q.force_id, 'all'), coalesce(to_char(q.month, 'YYYY-MM'), 'edition'),
                   regexp_replace(split_part(q.reason, ':', 1), ' \(.*$', ''),
                   count(*)
            from raw.quarantine q
            join audit.loads l on l.load_id = q.load_id
            group by 1, 2, 3, 4 order by 1, 2, 3, 4""")
        gaps = _rows(conn, """
            select a.force_id, to_char(a.month, 'YYYY-MM')
            from raw.police_availability a
            where not exists (select 1 from audit.loads l where l.dataset = 'police.stop_searches'
                              and l.force_id = a.force_id and l.month = a.month
                              and l.status in ('loaded', 'replaced'))
            order by 2, 1""")
        freshness = _rows(conn, """
            select 'Stop and search (data.police.uk)',
                   coalesce(to_char(max(l.month), 'YYYY-MM'), 'none'),
                   coalesce((select to_char(max(month), 'YYYY-MM') from raw.police_availability), 'unknown'),
                   coalesce((select value from audit.feed_state
                             where dataset = 'police.stop_searches' and key = 'last_updated'), 'unknown')
            from audit.loads l where l.dataset = 'police.stop_searches' and l.status in ('loaded', 'replaced')""")
        freshness += _rows(conn, """
            select 'Knife crime (Home Office open data table)',
                   coalesce((select max(financial_year || ' Q' || financial_quarter) from raw.knife_offences
                             where offences is not null), 'none'),
                   coalesce((select max(k.financial_year || ' Q' || k.financial_quarter)
                             from raw.knife_offences k
                             where k.load_id = (select max(load_id) from audit.editions
                                                where dataset = 'home_office.knife_offences')), 'unknown'),
                   coalesce((select coalesce(last_modified, to_char(fetched_at, 'YYYY-MM-DD HH24:MI'))
                             from audit.editions where dataset = 'home_office.knife_offences'
                             order by load_id desc limit 1), 'unknown')
                   || coalesce('; last checked ' || (select to_char(updated_at, 'YYYY-MM-DD HH24:MI') || ': '
                               || value from audit.feed_state
                               where dataset = 'home_office.knife_offences' and key = 'last_checked'), '')""")
        editions = _rows(conn, """
            select e.load_id, to_char(e.fetched_at, 'YYYY-MM-DD HH24:MI'), e.file_format,
                   coalesce(e.last_modified, ''), e.figures, e.figures_added, e.figures_revised,
                   e.figures_dropped, l.rows_quarantined
            from audit.editions e join audit.loads l using (load_id)
            order by e.load_id desc limit 20""")
    docs = cfg.data_docs_dir / "index.html"
    docs_note = "" if docs.exists() else " (not written yet)"
    now = datetime.now(UTC)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Data quality report: serious violence monitoring</title><style>{_STYLE}</style></head><body>
<h1>Data quality report: serious violence monitoring</h1>
<p class="muted">Written {now:%Y-%m-%d %H:%M} UTC{f' after run {html.escape(run_id)}' if run_id else ''}.
Green: the figures can be used. Amber: usable, but read the warnings. Red: do not use the figures
from this stage until the problem is fixed; they were not published to the marts.</p>
<h2>Can last night's figures be trusted?</h2>
{_table(["Stage", "Dataset", "Result", "Checks run", "Checked at"], lights, "No checks have run yet.")}
<h2>What failed, in words</h2>
{_table(["Stage", "Dataset", "Severity", "What the check means", "Column"], failures, "Nothing failed.")}
<h2>Freshness</h2>
{_table(_FRESHNESS_HEADERS, freshness, "No feeds yet.")}
<h2>Editions of published tables (knife crime)</h2>
<p class="muted">Each edition the publisher releases is kept beside the earlier ones; "revised" counts the
figures it changed. The changed figures are listed in the warehouse table audit.revisions.</p>
{_table(_EDITION_HEADERS, editions, "No edition loaded yet.")}
<h2>Published by the source but not loaded</h2>
{_table(["Force", "Month"], gaps, "Every force-month the source lists is loaded.")}
<h2>Rows set aside (quarantined) because they could not be read</h2>
{_table(["Dataset", "Force", "Month", "Reason", "Rows"], quarantine, "No rows were set aside.")}
<h2>Recent loads</h2>
{_table(_LOAD_HEADERS, loads, "Nothing loaded yet.")}
<p>Detail of every check: <a href="data_docs/index.html">Great Expectations Data Docs</a>{docs_note}.</p>
</body></html>"""
    cfg.reports_dir.mkdir(parents=True, exist_ok=True)
    target = cfg.reports_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
