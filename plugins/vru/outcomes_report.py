"""The outcomes report: the VRU programme's measures for readers who do not open BI tools.

Written after every run (and by `vru outcomes-report`) to VRU_HOME/reports/outcomes.html from the
two outcome marts only (marts.vru_programme_comparison for the groups, marts.vru_outcomes_quarterly
for the areas). Every number on the page is a value the mart holds, formatted: nothing is
recomputed here, so the page and a BI tool reading the same marts cannot disagree. A figure the
mart does not have (withheld, missing, no baseline) is said in words, never shown as 0.

First, "Is the programme working?": per measure, one sentence on the programme's estimated effect
and an event-study chart (vru.effects_report, from marts.vru_programme_effect and
marts.vru_programme_event_study). Then, per measure: a lead paragraph with the latest VRU vs
non-VRU index gap as the mart gives it, an inline SVG line chart of both groups' rates over the
quarters (drawn here: no JavaScript, no network; a quarter without a figure is a gap in the line),
the chart's figures as a table, and a table of every area's latest quarter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
from psycopg.rows import dict_row

from vru import effects_report, warehouse
from vru.config import Settings, settings
from vru.report import write_page
from vru.templating import render

COMPARISON = "marts.vru_programme_comparison"
AREAS = "marts.vru_outcomes_quarterly"
GROUPS = ("VRU areas", "non-VRU areas")
# Blue solid and orange dashed: told apart without colour too.
GROUP_STYLE = {"VRU areas": ("#1d70b8", ""), "non-VRU areas": ("#f47738", "6 4")}
TITLE = "Programme outcomes: VRU areas against the other areas"

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
            "seed; small numbers are withheld by the departments' rules. Under-25 attendances and their rate "
            "per 100,000 residents aged 0-24 are in the warehouse (not indexed, not charted here)."),
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


Row: TypeAlias = dict[str, Any]  # a mart row by column name (the Measure says which columns)


def write_outcomes_report(cfg: Settings | None = None) -> Path:
    cfg = cfg or settings()
    with psycopg.connect(warehouse.warehouse_url(cfg)) as conn:
        page = _render(conn)
    return write_page(cfg.reports_dir / "outcomes.html", page)


def _rows(conn: psycopg.Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone() == (True,)


def _render(conn: psycopg.Connection) -> str:
    page = {"title": TITLE, "written": f"{datetime.now(UTC):%Y-%m-%d %H:%M}", "comparison": COMPARISON,
            "areas": AREAS}
    if not (_exists(conn, COMPARISON) and _exists(conn, AREAS)):
        return render("outcomes_report.html.j2", **page, state="not built")
    groups = _rows(conn, f"select * from {COMPARISON} where group_name = any(%s) order by quarter_start",
                   (list(GROUPS),))
    if not groups:
        return render("outcomes_report.html.j2", **page, state="empty")
    quarters = sorted({(r["quarter_start"], _quarter(r)) for r in groups})
    by_group = {(r["group_name"], r["quarter_start"]): r for r in groups}
    series = {g: [by_group.get((g, q)) for q, _ in quarters] for g in GROUPS}
    labels = [label for _, label in quarters]
    ae_areas = [r["force_name"] for r in _rows(conn, f"""
        select distinct force_name from {AREAS} where ae_coverage <> 'no A&E data for this area'
        order by force_name""")]
    latest = groups[-1]  # ordered by quarter: the latest quarter's denominators
    effects = None
    if _exists(conn, effects_report.EFFECT) and _exists(conn, effects_report.EVENT_STUDY):
        effects = effects_report.sections(
            _rows(conn, f"select * from {effects_report.EFFECT} order by measure, analysis_window"),
            _rows(conn, f"select * from {effects_report.EVENT_STUDY} order by measure, relative_quarter"))
    return render("outcomes_report.html.j2", **page, state="built", labels=labels, effects=effects,
                  population_source=latest["population_source"], population_quarter=_quarter(latest),
                  ae_areas=", ".join(ae_areas) if ae_areas else "none yet", measures=MEASURES,
                  sections=[_section(conn, m, series, labels) for m in MEASURES])


def _quarter(row: Row) -> str:
    return f"{row['financial_year']} Q{row['financial_quarter']}"


def _num(value: Any, suffix: str = "", sign: bool = False) -> str:
    """A mart value as text: thousands separated, its own decimal places kept (formatting only)."""
    if isinstance(value, (int, Decimal)):
        return f"{value:+,}{suffix}" if sign else f"{value:,}{suffix}"
    return f"{value}{suffix}"


# ------------------------------------------------------------------------------------------------
# What the page shows, per measure: cells, the lead in words, the chart's geometry
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A table cell; templates/outcomes_report.html.j2 writes each kind."""

    kind: str  # num | missing (a figure the mart lacks, in words) | words | force | text
    text: str
    value: Any = None  # num: the mart's value as is (data-value); force: its id (data-force)
    note: str = ""  # num: words after the figure


def _value_cell(value: Any, missing: str, suffix: str = "", sign: bool = False) -> Cell:
    if value is None:
        return Cell("missing", missing)
    return Cell("num", _num(value, suffix, sign), value)


@dataclass(frozen=True)
class Gap:
    """The latest quarter with an index for both groups, as the mart gives it."""

    quarter: str
    vru_index: str
    other_index: str
    gap: Any  # the mart's value (data-gap)
    gap_text: str
    how: str


@dataclass(frozen=True)
class Lead:
    indexed: bool  # the marts index this measure: there is a gap to tell (or to say is missing)
    gap: Gap | None
    latest_rate: str | None  # the latest rates in words; None: no quarter has one


@dataclass(frozen=True)
class Section:
    measure: Measure
    lead: Lead
    chart: Chart | None  # None: no group has a rate for any quarter
    data_headers: list[str]
    data_rows: list[list[Cell]]
    area_headers: list[str]
    area_rows: list[list[Cell]]


def _section(conn: psycopg.Connection, m: Measure, series: dict[str, list[Row | None]],
             labels: list[str]) -> Section:
    values = {g: [r[m.group_rate] if r else None for r in rows] for g, rows in series.items()}
    data_rows = []
    for i, label in enumerate(labels):
        vru, other = series["VRU areas"][i], series["non-VRU areas"][i]
        row = [Cell("text", label)]
        for r in (vru, other):
            row.append(_value_cell(r[m.group_rate] if r else None, _no_rate(m, r)))
        if m.index:
            for r in (vru, other):
                row.append(_value_cell(r[m.index] if r else None, _no_index(m, r)))
            row.append(_value_cell(vru[m.gap] if vru and m.gap else None, "no gap: an index is missing",
                                   sign=True))
        for r in (vru, other):
            row.append(Cell("words", "no row for the group") if r is None else
                       Cell("num", f"{r[m.contributing]} of {r['areas_in_group']}", r[m.contributing]))
        data_rows.append(row)
    headers = ["Quarter", "VRU areas: rate", "Non-VRU areas: rate"]
    if m.index:
        headers += ["VRU areas: index", "Non-VRU areas: index", "Gap (index points)"]
    headers += ["VRU areas counted", "Non-VRU areas counted"]
    area_headers, area_rows = _area_table(conn, m)
    return Section(m, _lead(m, series, labels), _chart(m, labels, values), headers, data_rows, area_headers,
                   area_rows)


def _no_rate(m: Measure, row: Row | None) -> str:
    if row is None:
        return "no row for the group"
    if not row["areas_in_group"]:
        return "no area in the group this quarter"
    if not row[m.contributing]:
        return "no figure: no area's figure is complete"
    return "no figure"


def _no_index(m: Measure, row: Row | None) -> str:
    if row is None:
        return "no row for the group"
    if not row["areas_in_group"]:
        return "no area in the group this quarter"
    if m.baseline_rate and row[m.baseline_rate] is None:
        return "no index: the 2018/19 baseline is not complete"
    return "no index: no rate this quarter"


def _lead(m: Measure, series: dict[str, list[Row | None]], labels: list[str]) -> Lead:
    """The latest gap and rates in words, each number as the mart holds it."""
    vru, other = series["VRU areas"], series["non-VRU areas"]
    gap = None
    if m.gap and m.index:
        both = [i for i, r in enumerate(vru) if r is not None and r[m.gap] is not None]
        if both:
            i = both[-1]
            v, o = vru[i], other[i]
            assert v is not None and o is not None  # a gap needs both groups' index
            value = v[m.gap]
            how = ("VRU areas did better against 2018/19" if value < 0 else
                   "VRU areas did worse against 2018/19" if value > 0 else "no difference between the groups")
            gap = Gap(labels[i], _num(v[m.index]), _num(o[m.index]), value, _num(value, sign=True), how)
    rated = [i for i in range(len(labels))
             if any(r is not None and r[m.group_rate] is not None for r in (vru[i], other[i]))]
    latest_rate = None
    if rated:
        i = rated[-1]
        shown = []
        for name, r in (("VRU areas", vru[i]), ("the other areas", other[i])):
            if r is None or r[m.group_rate] is None:
                shown.append(f"{name} have no figure")
            else:
                shown.append(f"{name} {_num(r[m.group_rate])} ({r[m.contributing]} of {r['areas_in_group']} "
                             "areas counted)")
        latest_rate = f"Latest rate ({labels[i]}, {m.rate_unit}): {'; '.join(shown)}."
    return Lead(bool(m.gap and m.index), gap, latest_rate)


def _area_table(conn: psycopg.Connection, m: Measure) -> tuple[list[str], list[list[Cell]]]:
    (latest,) = conn.execute(
        f"select coalesce(max(quarter_start) filter (where {m.value} is not null), max(quarter_start)) from {AREAS}"
    ).fetchone() or (None,)
    out = []
    # VRU membership of the quarter shown (not today's): Cleveland and Humberside from 2022/23
    for r in _rows(conn, f"select * from {AREAS} where quarter_start = %s order by is_vru_area desc, force_name",
                   (latest,)):
        coverage = r[m.coverage]
        missing = _MISSING.get(m.coverage, {}).get(coverage, "withheld or not published")
        value = _value_cell(r[m.value], missing)
        if r[m.value] is not None and coverage == "partial":
            value = Cell("num", f"at least {_num(r[m.value])}", r[m.value], "(lower bound)")
        row = [Cell("force", r["force_name"], r["force_id"]), Cell("text", "yes" if r["is_vru_area"] else "no"),
               Cell("text", _quarter(r)), value]
        if m.area_rate:
            row.append(_value_cell(r[m.area_rate], "no rate (figure not complete)" if r[m.value] is not None
                                   else missing))
        if m.baseline and m.change:
            state = r[m.baseline_coverage] if m.baseline_coverage else "no baseline"
            words = _BASELINE_WORDS.get(state, _BASELINE_WORDS["no baseline"])
            row.append(_value_cell(r[m.baseline], words))
            row.append(_value_cell(r[m.change], words if state in _BASELINE_WORDS
                                   else "no change: this quarter is not complete", "%", sign=True))
        row.append(Cell("text", _coverage_words(m, r)))
        out.append(row)
    headers = ["Area", "VRU area in the quarter", "Quarter", "Figure"]
    if m.area_rate:
        headers.append(f"Rate ({m.rate_unit})")
    if m.baseline:
        headers += ["2018/19 baseline (mean per quarter)", "Change against the baseline"]
    headers.append("Coverage")
    return headers, out


def _coverage_words(m: Measure, r: Row) -> str:
    coverage: str = r[m.coverage]
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


# ------------------------------------------------------------------------------------------------
# The chart: both groups' rates over the quarters, as coordinates for the SVG in the template
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    y: str  # the gridline
    label_y: str
    label: str


@dataclass(frozen=True)
class QuarterTick:
    x: str
    label: str | None  # None: not labelled (too many quarters to label each)


@dataclass(frozen=True)
class Marker:
    x: str
    y: str
    quarter: str
    value: Any  # the mart's value (data-value)
    text: str


@dataclass(frozen=True)
class Series:
    group: str
    colour: str
    dash: str  # stroke-dasharray; '' for a solid line
    lines: list[str]  # polyline points, one per run of quarters with a figure
    markers: list[Marker]
    legend_x: int


@dataclass(frozen=True)
class Chart:
    key: str
    quarters: int
    width: int
    height: int
    left: int
    right_end: int  # x where the plot ends
    top: int
    bottom_y: int  # y of the x axis
    ticks: list[Tick]
    quarter_ticks: list[QuarterTick]
    x_title_x: str
    series: list[Series]
    rate_unit: str
    unit_x: int
    description: str


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return float(next(step * magnitude for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
                      if step * magnitude >= top))


def _chart(m: Measure, labels: list[str], values: dict[str, list[Any]]) -> Chart | None:
    """Both groups' rates as a line chart; a quarter without a figure breaks the line."""
    shown = [float(v) for vs in values.values() for v in vs if v is not None]
    if not shown:
        return None
    width, height, left, right, top, bottom = 760, 320, 64, 40, 36, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = _nice(max(shown) * 1.05)
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(v: Any) -> float:
        return top + plot_h * (1 - float(v) / y_max)

    ticks = [Tick(f"{y(tick):.1f}", f"{y(tick) + 4:.1f}", f"{tick:,.{_decimals(y_max)}f}")
             for tick in (y_max * k / 4 for k in range(5))]
    step = max(1, math.ceil(n / 8))
    labelled = set(range(n - 1, -1, -step))  # counted back from the latest quarter, always labelled
    quarter_ticks = [QuarterTick(f"{x(i):.1f}", label if i in labelled else None) for i, label in enumerate(labels)]
    series = []
    for g, vs in values.items():
        lines, run = [], []
        for i, v in enumerate([*vs, None]):
            if v is not None:
                run.append(f"{x(i):.1f},{y(v):.1f}")
                continue
            if len(run) >= 2:  # a run of one quarter is shown by its marker only
                lines.append(" ".join(run))
            run = []
        markers = [Marker(f"{x(i):.1f}", f"{y(v):.1f}", labels[i], v, _num(v)) for i, v in enumerate(vs)
                   if v is not None]
        colour, dash = GROUP_STYLE[g]
        series.append(Series(g, colour, dash, lines, markers, left + GROUPS.index(g) * 170))
    description = (f"{m.title}: {m.rate_unit}, VRU areas against non-VRU areas, {labels[0]} to {labels[-1]}. "
                   "A break in a line is a quarter without a figure. The figures are in the table below.")
    return Chart(m.key, n, width, height, left, left + plot_w, top, top + plot_h, ticks, quarter_ticks,
                 str(left + plot_w / 2), series, m.rate_unit, width - right, description)


def _decimals(y_max: float) -> int:
    return 0 if y_max >= 10 else 1 if y_max >= 1 else 2 if y_max >= 0.1 else 3
