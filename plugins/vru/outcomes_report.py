"""The outcomes report: the VRU programme's measures for readers who do not open BI tools.

Written after every run (and by `vru outcomes-report`) to VRU_HOME/reports/outcomes.html from the
two outcome marts only (marts.vru_programme_comparison for the groups, marts.vru_outcomes_quarterly
for the areas). Every number on the page is a value the mart holds, formatted: nothing is
recomputed here, so the page and a BI tool reading the same marts cannot disagree. A figure the
mart does not have (withheld, missing, no baseline) is said in words, never shown as 0.

Per measure: a lead paragraph with the latest VRU vs non-VRU index gap as the mart gives it, an
inline SVG line chart of both groups' rates over the quarters (drawn here: no JavaScript, no
network; a quarter without a figure is a gap in the line), the chart's figures as a table, and a
table of every area's latest quarter.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from vru import warehouse
from vru.config import Settings, settings
from vru.report import write_page
from vru.templating import render

COMPARISON = "marts.vru_programme_comparison"
AREAS = "marts.vru_outcomes_quarterly"
GROUPS = ("VRU areas", "non-VRU areas")
# Blue solid and orange dashed: told apart without colour too.
GROUP_STYLE = {"VRU areas": ("#1d70b8", ""), "non-VRU areas": ("#f47738", "6 4")}
TITLE = "Programme outcomes: VRU areas against the other areas"

_EXTRA_STYLE = """
.lead{font-size:1.05rem;max-width:60rem} .chart{max-width:48rem;width:100%;height:auto;display:block}
.chart text{font-family:system-ui,Arial,sans-serif;font-size:12px;fill:#1b1b1b}
.words{color:#505a5f;font-style:italic} td.num{text-align:right;font-variant-numeric:tabular-nums}
details{margin:.5rem 0} summary{cursor:pointer}
"""


@dataclass(frozen=True)
class Measure:
    key: str  # the marts' column prefix; the section's id
    title: str
    rate_unit: str
    # vru_programme_comparison
    group_rate: str
    group_count: str
    contributing: str
    excluded: str
    index: str | None  # None: the mart does not index this measure
    baseline_rate: str | None
    gap: str | None
    # vru_outcomes_quarterly
    value: str
    area_rate: str | None
    baseline: str | None
    change: str | None
    coverage: str
    baseline_coverage: str | None
    note: str


MEASURES = (
    Measure("ae_knife", "A&E attendances for assault with a knife or sharp object",
            "per 100,000 residents, per quarter", "ae_knife_rate_per_100k", "ae_knife_attendances",
            "ae_knife_areas_contributing", "ae_knife_areas_excluded", "ae_knife_index",
            "ae_knife_baseline_rate_per_100k", "ae_knife_index_gap_vru_vs_non_vru",
            "ae_knife_attendances", "ae_knife_rate_per_100k", "ae_knife_baseline", "ae_knife_change_pct",
            "ae_coverage", "ae_knife_baseline_coverage",
            "All ages. A&E figures exist only for the areas with an emergency department in the ae_sites "
            "seed; small numbers are withheld by the departments' rules. Under-25 attendances are counted, "
            "but there is no under-25 rate: no under-25 population by force area is held."),
    Measure("knife_offences", "Police recorded knife or sharp instrument offences",
            "per 100,000 residents, per quarter", "knife_offences_rate_per_100k", "knife_offences",
            "knife_offences_areas_contributing", "knife_offences_areas_excluded", "knife_offences_index",
            "knife_offences_baseline_rate_per_100k", "knife_offences_index_gap_vru_vs_non_vru",
            "knife_offences", "knife_offences_rate_per_100k", "knife_offences_baseline",
            "knife_offences_change_pct", "knife_offences_coverage", "knife_offences_baseline_coverage",
            "All seven offence groups of the Home Office table. An area whose figures break the series "
            "(not comparable) or have a figure withheld is left out of its group for that quarter."),
    Measure("knife_homicides", "Homicides with a knife or sharp instrument",
            "per 100,000 residents, per quarter", "knife_homicides_rate_per_100k", "knife_homicides",
            "knife_homicides_areas_contributing", "knife_homicides_areas_excluded", "knife_homicides_index",
            "knife_homicides_baseline_rate_per_100k", "knife_homicides_index_gap_vru_vs_non_vru",
            "knife_homicides", None, "knife_homicides_baseline", "knife_homicides_change_pct",
            "knife_offences_coverage", "knife_homicides_baseline_coverage",
            "Small numbers: a change of one or two homicides moves the rate and the index a long way. "
            "Not split by victim age (not published per force)."),
    Measure("stop_search", "Stop and search", "searches per 1,000 residents, per quarter",
            "searches_per_1000", "searches", "stop_search_areas_contributing", "stop_search_areas_excluded",
            None, None, None, "searches", "searches_per_1000", None, None, "stop_search_coverage", None,
            "Context, not a success measure: the marts do not index it against 2018/19, so there is no "
            "VRU vs non-VRU gap. A quarter counts only when all three months are published."),
)

# What an area's missing figure means, by the mart's coverage value.
_MISSING = {
    "ae_coverage": {
        "suppressed": "withheld (small number)",
        "no extract": "missing: no extract for the quarter",
        "no A&E data for this area": "no A&E data for this area",
    },
    "knife_offences_coverage": {"no data": "missing: not in the Home Office table"},
    "stop_search_coverage": {"no data": "missing: no month published"},
}
_BASELINE_WORDS = {
    "no baseline": "no baseline (2018/19 not complete)",
    "zero baseline": "no change: the baseline is 0",
}


class _Html(str):
    """Markup this module wrote itself; every other cell is escaped."""


def write_outcomes_report(cfg: Settings | None = None) -> Path:
    cfg = cfg or settings()
    with psycopg.connect(warehouse.warehouse_url(cfg)) as conn:
        page = _render(conn)
    return write_page(cfg.reports_dir / "outcomes.html", page)


def _rows(conn: psycopg.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone() == (True,)


def _page(body: str) -> str:
    from markupsafe import Markup

    return render("outcomes_report.html.j2", title=TITLE, written=f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
                  comparison=COMPARISON, areas=AREAS, body=Markup(body))  # noqa: S704 - interim


def _render(conn: psycopg.Connection) -> str:
    if not (_exists(conn, COMPARISON) and _exists(conn, AREAS)):
        return _page(f"""<p class="summary" id="not-built">The outcome tables ({COMPARISON} and {AREAS}) have
not been built yet, so there is nothing to show. The nightly transform builds them once the feeds have
loaded (<code>vru run</code>; <code>make run</code> with the bundled sample); this page is rewritten after
every run.</p>""")
    groups = _rows(conn, f"select * from {COMPARISON} where group_name = any(%s) order by quarter_start",
                   (list(GROUPS),))
    if not groups:
        return _page("""<p class="summary" id="not-built">The outcome tables exist but hold no quarter yet:
no feed has loaded figures the transform could use. This page is rewritten after every run.</p>""")
    quarters = sorted({(r["quarter_start"], _quarter(r)) for r in groups})
    by_group = {(r["group_name"], r["quarter_start"]): r for r in groups}
    series = {g: [by_group.get((g, q)) for q, _ in quarters] for g in GROUPS}
    labels = [label for _, label in quarters]
    source = groups[0]["population_source"]
    ae_areas = [r["force_name"] for r in _rows(conn, f"""
        select distinct force_name from {AREAS} where ae_coverage <> 'no A&E data for this area'
        order by force_name""")]
    sections = "\n".join(_section(conn, m, series, labels) for m in MEASURES)
    contents = "".join(f'<li><a href="#{m.key}">{html.escape(m.title)}</a></li>' for m in MEASURES)
    ae_words = ", ".join(ae_areas) if ae_areas else "none yet"
    return _page(f"""<p class="lead">How the Home Office's measures of the Violence Reduction Unit programme
moved in the force areas with a VRU against the other areas, quarter by quarter ({html.escape(labels[0])}
to {html.escape(labels[-1])}). Rates are per resident, so areas of different sizes compare; each group's
index sets its own 2018/19 average (before any VRU) to 100, and the gap is the VRU areas' index minus the
other areas' index: a negative gap means the VRU areas fell further, or rose less, than the others.</p>
<h2>Read with care</h2>
<ul id="caveats">
<li>Denominators are the {html.escape(source)}: mid-year population estimates by force area are not held,
so rates are per 2011 resident.</li>
<li>Under-25 rates are not available: there is no under-25 population by force area. Under-25 A&amp;E
counts are in the warehouse, without a rate.</li>
<li>A&amp;E figures cover only the areas with an emergency department in the ae_sites seed
({html.escape(ae_words)}); the other areas have no A&amp;E figure, which is not the same as none.</li>
<li>A group's figure adds up only its areas whose figure is shown and complete for the quarter; the
chart tables say how many areas that was. A missing or withheld figure is said in words, never shown as 0.</li>
<li>Rates are quarterly, not annualised. Hospital admissions (HES) are published yearly for England only
and are not on this page.</li>
</ul>
<ul>{contents}</ul>
{sections}""")


def _quarter(row: dict[str, Any]) -> str:
    return f"{row['financial_year']} Q{row['financial_quarter']}"


def _num(value: Any, suffix: str = "", sign: bool = False) -> str:
    """A mart value as text: thousands separated, its own decimal places kept (formatting only)."""
    if isinstance(value, (int, Decimal)):
        return f"{value:+,}{suffix}" if sign else f"{value:,}{suffix}"
    return f"{value}{suffix}"


def _words(text: str) -> _Html:
    return _Html(f'<span class="words">{html.escape(text)}</span>')


def _value_cell(value: Any, missing: str, suffix: str = "", sign: bool = False) -> _Html:
    if value is None:
        return _Html(f'<td data-missing="true">{_words(missing)}</td>')
    return _Html(f'<td class="num" data-value="{html.escape(str(value))}">'
                 f"{html.escape(_num(value, suffix, sign))}</td>")


def _table(headers: list[str], rows: list[list[Any]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(c if isinstance(c, _Html) else f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(conn: psycopg.Connection, m: Measure, series: dict[str, list[dict[str, Any] | None]],
             labels: list[str]) -> str:
    values = {g: [r[m.group_rate] if r else None for r in rows] for g, rows in series.items()}
    chart = _chart(m, labels, values)
    data_rows = []
    for i, label in enumerate(labels):
        vru, other = series["VRU areas"][i], series["non-VRU areas"][i]
        row: list[Any] = [label]
        for r in (vru, other):
            row.append(_value_cell(r[m.group_rate] if r else None, _no_rate(m, r)))
        if m.index:
            for r in (vru, other):
                row.append(_value_cell(r[m.index] if r else None, _no_index(m, r)))
            row.append(_value_cell(vru[m.gap] if vru and m.gap else None, "no gap: an index is missing",
                                   sign=True))
        for r in (vru, other):
            row.append(_Html(f"<td>{_words('no row for the group')}</td>") if r is None else
                       _Html(f'<td class="num" data-value="{r[m.contributing]}">'
                             f"{r[m.contributing]} of {r['areas_in_group']}</td>"))
        data_rows.append(row)
    headers = ["Quarter", "VRU areas: rate", "Non-VRU areas: rate"]
    if m.index:
        headers += ["VRU areas: index", "Non-VRU areas: index", "Gap (index points)"]
    headers += ["VRU areas counted", "Non-VRU areas counted"]
    return f"""<section id="{m.key}">
<h2>{html.escape(m.title)}</h2>
<p class="lead" id="{m.key}-lead">{_lead(m, series, labels)}</p>
<p class="muted">{html.escape(m.note)}</p>
{chart}
<details><summary>The chart's figures ({html.escape(m.rate_unit)})</summary>
{_table(headers, data_rows, f"{m.key}-data")}
</details>
{_area_table(conn, m)}
</section>"""


def _no_rate(m: Measure, row: dict[str, Any] | None) -> str:
    if row is None:
        return "no row for the group"
    if not row[m.contributing]:
        return "no figure: no area's figure is complete"
    return "no figure"


def _no_index(m: Measure, row: dict[str, Any] | None) -> str:
    if row is None:
        return "no row for the group"
    if m.baseline_rate and row[m.baseline_rate] is None:
        return "no index: the 2018/19 baseline is not complete"
    return "no index: no rate this quarter"


def _lead(m: Measure, series: dict[str, list[dict[str, Any] | None]], labels: list[str]) -> str:
    """The latest gap and rates in words, each number as the mart holds it."""
    vru, other = series["VRU areas"], series["non-VRU areas"]
    esc = html.escape
    parts = []
    if m.gap and m.index:
        both = [i for i, r in enumerate(vru) if r is not None and r[m.gap] is not None]
        if both:
            i = both[-1]
            v, o = vru[i], other[i]
            assert v is not None and o is not None  # a gap needs both groups' index
            gap = v[m.gap]
            how = ("VRU areas did better against 2018/19" if gap < 0 else
                   "VRU areas did worse against 2018/19" if gap > 0 else "no difference between the groups")
            parts.append(
                f"In {esc(labels[i])}, the latest quarter with an index for both groups, VRU areas stood at "
                f"{esc(_num(v[m.index]))} and the other areas at {esc(_num(o[m.index]))} (2018/19 = 100): "
                f'a gap of <strong data-gap="{esc(str(gap))}">{esc(_num(gap, sign=True))} index points</strong> '
                f"({how}).")
        else:
            parts.append("No quarter has an index for both groups yet, so the marts give no VRU vs non-VRU "
                         "gap: a group's index needs all four quarters of 2018/19.")
    rated = [i for i in range(len(labels))
             if any(r is not None and r[m.group_rate] is not None for r in (vru[i], other[i]))]
    if rated:
        i = rated[-1]
        shown = []
        for name, r in (("VRU areas", vru[i]), ("the other areas", other[i])):
            if r is None or r[m.group_rate] is None:
                shown.append(f"{name} have no figure")
            else:
                shown.append(f"{name} {_num(r[m.group_rate])} ({r[m.contributing]} of {r['areas_in_group']} "
                             "areas counted)")
        parts.append(esc(f"Latest rate ({labels[i]}, {m.rate_unit}): {'; '.join(shown)}."))
    else:
        parts.append("No quarter has a rate for either group yet.")
    return " ".join(parts)


def _area_table(conn: psycopg.Connection, m: Measure) -> str:
    latest = conn.execute(
        f"select coalesce(max(quarter_start) filter (where {m.value} is not null), max(quarter_start)) from {AREAS}"
    ).fetchone()
    rows = _rows(conn, f"select * from {AREAS} where quarter_start = %s order by in_vru_programme desc, force_name",
                 (latest[0] if latest else None,))
    out = []
    for r in rows:
        coverage = r[m.coverage]
        missing = _MISSING.get(m.coverage, {}).get(coverage, "withheld or not published")
        value = _value_cell(r[m.value], missing)
        if r[m.value] is not None and coverage == "partial":
            value = _Html(f'<td class="num" data-value="{r[m.value]}">at least {_num(r[m.value])} '
                          f'{_words("(lower bound)")}</td>')
        row: list[Any] = [_Html(f'<td data-force="{html.escape(r["force_id"])}">{html.escape(r["force_name"])}</td>'),
                          "yes" if r["in_vru_programme"] else "no", _quarter(r), value]
        if m.area_rate:
            row.append(_value_cell(r[m.area_rate], "no rate (figure not complete)" if r[m.value] is not None
                                   else missing))
        if m.baseline and m.change:
            state = r[m.baseline_coverage] if m.baseline_coverage else "no baseline"
            words = _BASELINE_WORDS.get(state, _BASELINE_WORDS["no baseline"])
            row.append(_value_cell(r[m.baseline], words))
            row.append(_value_cell(r[m.change], words if state in _BASELINE_WORDS
                                   else "no change: this quarter is not complete", "%", sign=True))
        row.append(_coverage_words(m, r))
        out.append(row)
    headers = ["Area", "VRU programme", "Quarter", "Figure"]
    if m.area_rate:
        headers.append(f"Rate ({m.rate_unit})")
    if m.baseline:
        headers += ["2018/19 baseline (mean per quarter)", "Change against the baseline"]
    headers.append("Coverage")
    return f"""<h3>By area, latest quarter</h3>
{_table(headers, out, f"{m.key}-areas")}"""


def _coverage_words(m: Measure, r: dict[str, Any]) -> str:
    coverage = r[m.coverage]
    words = {
        "complete": "complete",
        "partial": "partial: a lower bound, no rate or change",
        "suppressed": "withheld (small number)",
        "no extract": "no extract received for the quarter",
        "no A&E data for this area": "no emergency department of this area in the seed",
        "no data": "no data",
    }.get(coverage, coverage)
    if m.coverage == "ae_coverage" and coverage not in ("no A&E data for this area",):
        words += f"; {r['ae_months_complete']} of 3 months complete"
    if m.coverage == "knife_offences_coverage" and r["knife_offences_is_comparable"] is False:
        words += "; not comparable (series break)"
    if m.coverage == "stop_search_coverage":
        words += f"; {r['stop_search_months_published']} of 3 months published"
    return str(words)


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return next(step * magnitude for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * magnitude >= top)


def _chart(m: Measure, labels: list[str], values: dict[str, list[Any]]) -> str:
    """Both groups' rates as an inline SVG line chart; a quarter without a figure breaks the line."""
    shown = [float(v) for vs in values.values() for v in vs if v is not None]
    if not shown:
        return (f'<p class="words" id="{m.key}-chart-empty">No chart: neither group has a rate for any '
                "quarter yet.</p>")
    width, height, left, right, top, bottom = 760, 320, 64, 40, 36, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = _nice(max(shown) * 1.05)
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(v: Any) -> float:
        return top + plot_h * (1 - float(v) / y_max)

    parts = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#505a5f"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#505a5f"/>']
    for k in range(5):
        tick = y_max * k / 4
        ty = y(tick)
        parts.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick:,.{_decimals(y_max)}f}</text>')
    step = max(1, math.ceil(n / 8))
    labelled = set(range(n - 1, -1, -step))  # counted back from the latest quarter, always labelled
    for i, label in enumerate(labels):
        parts.append(f'<line x1="{x(i):.1f}" y1="{top + plot_h}" x2="{x(i):.1f}" y2="{top + plot_h + 4}" '
                     'stroke="#505a5f"/>')
        if i in labelled:
            parts.append(f'<text class="quarter" x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                         f"{html.escape(label)}</text>")
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">Financial quarter</text>')
    for g, vs in values.items():
        colour, dash = GROUP_STYLE[g]
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        group = [f'<g class="series" data-group="{g}">']
        run: list[str] = []
        for i, v in enumerate([*vs, None]):
            if v is not None:
                run.append(f"{x(i):.1f},{y(v):.1f}")
                continue
            if len(run) >= 2:  # a run of one quarter is shown by its marker only
                group.append(f'<polyline data-group="{g}" fill="none" stroke="{colour}" stroke-width="2.5"'
                             f'{dashes} points="{" ".join(run)}"/>')
            run = []
        for i, v in enumerate(vs):
            if v is not None:
                group.append(f'<circle data-group="{g}" data-quarter="{html.escape(labels[i])}" '
                             f'data-value="{v}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                             f"<title>{g}, {html.escape(labels[i])}: {html.escape(_num(v))}</title></circle>")
        group.append("</g>")
        parts.append("".join(group))
    for j, g in enumerate(GROUPS):  # legend, above the plot
        colour, dash = GROUP_STYLE[g]
        lx = left + j * 170
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="legend"><line x1="{lx}" y1="14" x2="{lx + 28}" y2="14" stroke="{colour}" '
                     f'stroke-width="2.5"{dashes}/><text x="{lx + 34}" y="18">{g}</text></g>')
    parts.append(f'<text x="{width - right}" y="18" text-anchor="end">{html.escape(m.rate_unit)}</text>')
    description = (f"{m.title}: {m.rate_unit}, VRU areas against non-VRU areas, {labels[0]} to {labels[-1]}. "
                   "A break in a line is a quarter without a figure. The figures are in the table below.")
    return (f'<svg class="chart" id="{m.key}-chart" data-measure="{m.key}" data-quarters="{n}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{m.key}-chart-title" '
            f'xmlns="http://www.w3.org/2000/svg"><title id="{m.key}-chart-title">{html.escape(description)}</title>'
            + "".join(parts) + "</svg>")


def _decimals(y_max: float) -> int:
    return 0 if y_max >= 10 else 1 if y_max >= 1 else 2 if y_max >= 0.1 else 3
