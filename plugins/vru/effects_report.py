"""The outcomes report's "Is the programme working?" section: one sentence per measure and an
event-study chart, from marts.vru_programme_effect and marts.vru_programme_event_study only.

As for the rest of the outcomes report, every number is a value the marts hold, formatted; the
words follow the mart's status, so a figure the method cannot stand behind (not interpretable,
not possible, not available) is said in words, never printed as a finding. The chart is inline
SVG drawn here (no JavaScript): the estimate per quarter from funding as a line, its 95% interval
as a band, a quarter without an estimate as a gap in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

EFFECT = "marts.vru_programme_effect"
EVENT_STUDY = "marts.vru_programme_event_study"
WINDOW = "all quarters after funding"  # the headline window; the mart holds the others
ALPHA = Decimal("0.05")

Row = dict[str, Any]


def pct(value: Any) -> str:
    """A mart percentage as text: '-3.2%', '+6.0%' (its own decimal place kept)."""
    return f"{value:+}%" if value else "0.0%"


def sentence(r: Row) -> str:
    """What the estimate says, for a reader who is not a statistician."""
    status = r["status"]
    if status == "not available":
        return f"Not available: {r['status_reason']}."
    if status == "not possible":
        return f"Not possible to estimate yet: {r['status_reason']}."
    if status == "not interpretable":
        return (f"Not interpretable: {r['status_reason']}. The comparison areas do not show what the funded "
                "areas would have done without a VRU, so no overall figure is given; the chart shows the "
                "quarters before funding that fail the check.")
    interval = f"{pct(r['estimate_pct'])} (95% interval {pct(r['ci_low_pct'])} to {pct(r['ci_high_pct'])})"
    permutation_p = r["p_value_permutation"]
    clear = (r["ci_low_pct"] > 0 or r["ci_high_pct"] < 0) and permutation_p is not None and permutation_p < ALPHA
    if not clear:
        return f"No change that we can distinguish from chance: {interval}."
    direction = "fell" if r["estimate_pct"] < 0 else "rose"
    return (f"The rate per resident {direction} in the VRU areas against the comparison areas by {interval}; "
            f"a difference this large arose in only {permutation_p:.1%} of {r['permutations']:,} random "
            "reassignments of the funding dates, so it is unlikely to be chance alone.")


def basis(r: Row) -> str:
    """What the estimate stands on: areas, quarters, what was left out and why, the edition."""
    if r["status"] == "not available":
        return ""
    left_out = {"missing": r["excluded_missing"], "withheld (suppressed)": r["excluded_suppressed"],
                "partial": r["excluded_partial_coverage"], "series break": r["excluded_series_break"],
                "no population": r["excluded_no_population"], "count of 0": r["excluded_zero_count"],
                "no quarter before funding": r["excluded_no_quarter_before_funding"],
                "no comparison area that quarter": r["excluded_no_comparison_in_quarter"]}
    reasons = ", ".join(f"{why} {n:,}" for why, n in left_out.items() if n)
    text = (f"Based on {r['areas_used']} areas ({r['funded_areas_used']} with a VRU, "
            f"{r['comparison_areas_used']} without) over {r['quarters_used']} quarters: "
            f"{r['area_quarters_used']:,} area-quarters used")
    text += f"; left out: {reasons}." if reasons else "; none left out."
    if r["p_value_permutation"] is not None:
        text += f" Permutation test: {r['permutations']} random reassignments of the funding dates."
    if r["edition_date"]:
        text += f" Data as of {r['edition_date']:%d %B %Y} ({r['edition_source']})."
    return text


@dataclass(frozen=True)
class Point:
    x: str
    y: str
    quarter: int
    value: Any
    low: Any
    high: Any


@dataclass(frozen=True)
class EventChart:
    key: str
    width: int
    height: int
    left: int
    right_end: int
    top: int
    bottom_y: int
    zero_y: str
    funding_x: str
    ticks: list[tuple[str, str, str]]  # (y, label y, label)
    quarter_ticks: list[tuple[str, str]]  # (x, label)
    bands: list[str]  # polygon points, one per run of quarters with an interval
    lines: list[str]  # polyline points, one per run
    points: list[Point]
    description: str


def event_chart(key: str, title: str, rows: list[Row]) -> EventChart | None:
    """The event study as a line with its interval band; quarters without an estimate are gaps."""
    shown = [r for r in rows if r["estimate_pct"] is not None]
    if not shown:
        return None
    width, height, left, right, top, bottom = 760, 300, 64, 24, 24, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    quarters = [int(r["relative_quarter"]) for r in rows]
    q_min, q_max = min(quarters), max(quarters)
    values = [float(v) for r in shown for v in (r["ci_low_pct"], r["ci_high_pct"], r["estimate_pct"])] + [0.0]
    step = _step(max(values) - min(values))
    y_low, y_high = math.floor(min(values) / step) * step, math.ceil(max(values) / step) * step
    if y_high == y_low:
        y_high = y_low + step

    def x(q: float) -> float:
        return left + (q - q_min) * plot_w / max(q_max - q_min, 1)

    def y(v: Any) -> float:
        return top + plot_h * (y_high - float(v)) / (y_high - y_low)

    bands, lines, run = [], [], []
    for r in [*sorted(rows, key=lambda r: r["relative_quarter"]), None]:
        if r is not None and r["estimate_pct"] is not None:
            run.append(r)
            continue
        if run:
            upper = [f"{x(p['relative_quarter']):.1f},{y(p['ci_high_pct']):.1f}" for p in run]
            lower = [f"{x(p['relative_quarter']):.1f},{y(p['ci_low_pct']):.1f}" for p in reversed(run)]
            bands.append(" ".join(upper + lower))
            lines.append(" ".join(f"{x(p['relative_quarter']):.1f},{y(p['estimate_pct']):.1f}" for p in run))
        run = []
    ticks = []
    v = y_low
    while v <= y_high + 1e-9:
        ticks.append((f"{y(v):.1f}", f"{y(v) + 4:.1f}", f"{v:+.0f}%" if v else "0%"))
        v += step
    quarter_ticks = [(f"{x(q):.1f}", f"{q:+d}" if q else "0") for q in range(q_min, q_max + 1) if q % 2 == 0]
    points = [Point(f"{x(r['relative_quarter']):.1f}", f"{y(r['estimate_pct']):.1f}", r["relative_quarter"],
                    r["estimate_pct"], r["ci_low_pct"], r["ci_high_pct"]) for r in shown]
    description = (f"{title}: estimated difference in the rate per resident in VRU areas, per cent, by quarter from "
                   f"funding ({q_min} to {q_max}; 0 = the funding quarter, -1 = the reference), with the 95% "
                   "interval as a band. A gap is a quarter without an estimate.")
    return EventChart(key, width, height, left, left + plot_w, top, top + plot_h, f"{y(0):.1f}", f"{x(-0.5):.1f}",
                      ticks, quarter_ticks, bands, lines, points, description)


def _step(span: float) -> float:
    raw = max(span, 1.0) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(s * magnitude for s in (1, 2, 2.5, 5, 10) if s * magnitude >= raw))


@dataclass(frozen=True)
class EffectSection:
    key: str
    title: str
    role: str
    status: str
    sentence: str
    basis: str
    chart: EventChart | None
    other_windows: list[str]


def sections(effect_rows: list[Row], event_rows: list[Row]) -> list[EffectSection]:
    """One per measure, outcomes first, in the mart's measure order as the estimator writes it."""
    out = []
    by_measure: dict[str, list[Row]] = {}
    for r in effect_rows:
        by_measure.setdefault(r["measure"], []).append(r)
    for measure, rows in sorted(by_measure.items(), key=lambda kv: (kv[1][0]["role"] != "outcome",)):
        head = next((r for r in rows if r["analysis_window"] == WINDOW), rows[0])
        study = [e for e in event_rows if e["measure"] == measure and e["method"] == head["method"]]
        chart = event_chart(measure, head["measure_label"], study) if head["status"] in (
            "estimated", "not interpretable") else None
        others = [f"{r['analysis_window']}: {sentence(r)}" for r in rows if r is not head]
        out.append(EffectSection(measure, head["measure_label"], head["role"], head["status"], sentence(head),
                                 basis(head), chart, others))
    return out
