"""Is the programme working? Effect estimates with honest uncertainty, from an area-quarter panel.

A pure module: a panel (one row per force area per quarter, with the measure's count, the
residents it divides by, why a figure cannot be used, and when the area's VRU funding began) in,
result rows out. It knows nothing of Airflow or PostgreSQL (`vru.effects_build` reads and writes).

Method (plain English in dbt_project/models/marts/outcomes/_effects__models.yml):
- outcome: the natural log of the rate per resident, so an effect is a percentage change;
- estimator: Gardner's two-stage difference-in-differences (the "did2s" imputation estimator,
  valid under staggered adoption), from pyfixest: area and quarter effects are fitted on the
  area-quarters without a VRU (never-funded areas, and funded areas before their funding), the
  funded quarters' shortfall against that prediction is the effect; its standard errors are
  clustered by area and corrected for the first stage (pyfixest's GMM variance);
- permutation p-value: the funding start dates are re-assigned among the areas at random
  (PERMUTATIONS times, fixed seed) and the effect re-estimated each time;
- pre-trends: an event study (leads and lags around the funding quarter, reference the quarter
  before funding) and a joint Wald test that every lead is 0; p < ALPHA marks the estimate
  "not interpretable".

Nothing is imputed: an area-quarter whose figure is missing, withheld, partial or across a series
break is left out and counted under its reason.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

METHOD = "did2s imputation (Gardner two-stage)"
PERMUTATIONS = 999
ALPHA = 0.05
LEADS = 8  # quarters before funding shown and tested (relative quarters -8 .. -2; -1 is the reference)
LAGS = 12  # quarters from funding shown (0 .. 12)
# analysis windows: the quarters after funding an estimate averages over (None: every one held)
WINDOWS: dict[str, int | None] = {"all quarters after funding": None, "first two years after funding": 7}
# below these there is nothing worth estimating (said in words, never a number)
MIN_FUNDED_AREAS = 2
MIN_COMPARISON_AREAS = 5
MIN_PRE_QUARTERS = 4  # distinct quarters before funding with a usable figure of a funded area
MIN_POST_QUARTERS = 2
MAX_ZERO_SHARE = 0.10  # of otherwise usable area-quarters: more, and a log rate is not a fair scale

# Why an area-quarter is not used (the panel's `excluded` column, then the estimator's own).
REASONS = ("missing", "suppressed", "partial coverage", "series break", "no population", "zero count",
           "no quarter before funding", "no comparison in quarter", "outside window")

Row = dict[str, Any]


@dataclass(frozen=True)
class MeasureSpec:
    key: str
    label: str
    role: str  # 'outcome' (a Home Office success measure) or 'context'


@dataclass(frozen=True)
class EffectRow:
    measure: str
    measure_label: str
    role: str
    method: str
    analysis_window: str
    status: str  # estimated | not interpretable | not possible | not available
    status_reason: str
    estimate_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    log_rate_effect: float | None
    std_error: float | None
    p_value_model: float | None
    p_value_permutation: float | None
    permutations: int
    pre_trend_p_value: float | None
    pre_trend_leads_tested: int
    pre_trend_failed: bool | None
    areas_used: int
    funded_areas_used: int
    comparison_areas_used: int
    quarters_used: int
    area_quarters_used: int
    funded_area_quarters_used: int
    area_quarters_excluded: int
    exclusions: dict[str, int]
    first_quarter: int | None
    last_quarter: int | None


@dataclass(frozen=True)
class EventStudyRow:
    measure: str
    method: str
    relative_quarter: int
    is_reference: bool
    estimate_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    log_rate_effect: float | None
    std_error: float | None
    funded_area_quarters: int


@dataclass(frozen=True)
class Result:
    effects: list[EffectRow]
    event_study: list[EventStudyRow]


def _pct(log_effect: float | None) -> float | None:
    return None if log_effect is None else 100.0 * math.expm1(log_effect)


def _seed(key: str, window: str) -> int:
    return zlib.crc32(f"{key}|{window}".encode())


def usable_panel(panel: pd.DataFrame, max_lag: int | None = None) -> tuple[pd.DataFrame, Counter[str]]:
    """The area-quarters the estimator can use, and how many of the rest were left out, by reason.

    `panel` columns: area, period (consecutive integers: quarters), first_treated (the period
    funding began; 0 = never funded), count, population, excluded (a REASONS value or None).
    """
    excluded: Counter[str] = Counter(panel["excluded"].dropna())
    df = panel[panel["excluded"].isna()].copy()
    no_pop = df["population"].isna() | (df["population"] <= 0)
    excluded["no population"] += int(no_pop.sum())
    df = df[~no_pop]
    zero = df["count"] <= 0
    excluded["zero count"] += int(zero.sum())
    df = df[~zero]
    df["treated"] = (df["first_treated"] > 0) & (df["period"] >= df["first_treated"])
    if max_lag is not None:
        late = df["treated"] & (df["period"] - df["first_treated"] > max_lag)
        excluded["outside window"] += int(late.sum())
        df = df[~late]
    df, lost = _identified(df)
    excluded.update(lost)
    df["y"] = np.log(df["count"].astype(float) / df["population"].astype(float))
    return df.reset_index(drop=True), +excluded


def _identified(df: pd.DataFrame) -> tuple[pd.DataFrame, Counter[str]]:
    """Drop funded area-quarters whose counterfactual cannot be predicted: an area with no quarter
    before funding (no area effect), a quarter in which no area is unfunded (no quarter effect)."""
    lost: Counter[str] = Counter()
    untreated = df[~df["treated"]]
    no_pre = df["treated"] & ~df["area"].isin(untreated["area"].unique())
    lost["no quarter before funding"] = int(no_pre.sum())
    no_comparison = df["treated"] & ~df["period"].isin(untreated["period"].unique())
    lost["no comparison in quarter"] = int((no_comparison & ~no_pre).sum())
    return df[~(no_pre | no_comparison)], lost


def imputation_att(area: np.ndarray, period: np.ndarray, treated: np.ndarray, y: np.ndarray) -> float:
    """The imputation estimate of the average effect on the funded area-quarters, fast.

    Equals pyfixest's did2s coefficient of the treatment (tests/test_effects.py checks it): area and
    quarter effects fitted by least squares on the untreated rows, the effect the mean of the
    treated rows' residuals. Rows must be identified (`_identified`)."""
    a_codes, a_idx = np.unique(area, return_inverse=True)
    p_codes, p_idx = np.unique(period, return_inverse=True)
    return _att(a_idx, len(a_codes), p_idx, len(p_codes), treated, y)


def _att(a_idx: np.ndarray, a_n: int, p_idx: np.ndarray, p_n: int, treated: np.ndarray, y: np.ndarray) -> float:
    """imputation_att on integer codes, through the two-way normal equations (an (areas + quarters)^2
    system built with bincount), so a thousand permutations take about a second where pyfixest's
    full fit with its variance takes ~40 ms each."""
    u = ~treated
    au, pu, yu = a_idx[u], p_idx[u], y[u]
    cross = np.bincount(au * p_n + pu, minlength=a_n * p_n).reshape(a_n, p_n).astype(float)
    xtx = np.block([[np.diag(cross.sum(axis=1)), cross], [cross.T, np.diag(cross.sum(axis=0))]])
    xty = np.concatenate([np.bincount(au, yu, a_n), np.bincount(pu, yu, p_n)])
    beta = np.linalg.lstsq(xtx, xty, rcond=None)[0]  # rank-deficient by one: predictions are unique
    fitted = beta[a_idx[treated]] + beta[a_n + p_idx[treated]]
    return float(np.mean(y[treated] - fitted))


def permutation_p_value(df: pd.DataFrame, observed: float, permutations: int, seed: int) -> float:
    """Share of random re-assignments of the funding dates among the areas whose effect is at least
    as far from 0 as the observed one, counting the observed assignment ((1 + k) / (1 + n))."""
    rng = np.random.default_rng(seed)
    areas, a_idx = np.unique(df["area"].to_numpy(), return_inverse=True)
    periods, p_idx = np.unique(df["period"].to_numpy(), return_inverse=True)
    starts = df.groupby("area")["first_treated"].first().reindex(areas).to_numpy()
    period = df["period"].to_numpy()
    y = df["y"].to_numpy()
    extreme = 0
    for _ in range(permutations):
        start = rng.permutation(starts)[a_idx]
        treated = (start > 0) & (period >= start)
        # the rule of _identified: a funded row needs its area and its quarter among the unfunded rows
        area_seen = np.bincount(a_idx[~treated], minlength=len(areas)) > 0
        period_seen = np.bincount(p_idx[~treated], minlength=len(periods)) > 0
        keep = ~treated | (area_seen[a_idx] & period_seen[p_idx])
        if not treated[keep].any():
            continue  # an assignment with no estimable funded quarter says nothing: not counted extreme
        att = _att(a_idx[keep], len(areas), p_idx[keep], len(periods), treated[keep], y[keep])
        extreme += abs(att) >= abs(observed) - 1e-12
    return (1 + extreme) / (1 + permutations)


def _fit_att(df: pd.DataFrame) -> tuple[float, float, float, float, float]:
    """(coefficient, std error, p, 2.5%, 97.5%) of the funded dummy, from pyfixest's did2s."""
    import pyfixest as pf  # imported when used: ~4 s, never at DAG parse

    data = df.assign(treat=df["treated"].astype(int))
    fit = pf.did2s(data, yname="y", first_stage="~ 0 | area + period", second_stage="~ i(treat, ref=0)",
                   treatment="treat", cluster="area")
    row = fit.tidy().iloc[0]
    return (float(row["Estimate"]), float(row["Std. Error"]), float(row["Pr(>|t|)"]), float(row["2.5%"]),
            float(row["97.5%"]))


def _event_columns(df: pd.DataFrame) -> dict[int, str]:
    rel = df["period"] - df["first_treated"]
    funded = df["first_treated"] > 0
    columns = {}
    for k in [*range(-LEADS, -1), *range(0, LAGS + 1)]:
        name = f"ev_m{-k}" if k < 0 else f"ev_p{k}"
        hit = funded & (rel == k)
        if hit.any():
            columns[k] = name
    return columns


def _fit_event_study(df: pd.DataFrame) -> tuple[dict[int, tuple[float, float, float, float]], float | None, int]:
    """Per relative quarter: (coefficient, std error, 2.5%, 97.5%); the pre-trend joint test's p; leads tested.

    did2s with one dummy per relative quarter (-LEADS..-2 and 0..LAGS; -1 and earlier leads are the
    reference), funded quarters after LAGS dropped so they cannot sit in the reference."""
    import pyfixest as pf

    data = df[~(df["treated"] & (df["period"] - df["first_treated"] > LAGS))].copy()
    columns = _event_columns(data)
    if not columns:
        return {}, None, 0
    rel = data["period"] - data["first_treated"]
    for k, name in columns.items():
        data[name] = ((data["first_treated"] > 0) & (rel == k)).astype(float)
    fit = pf.did2s(data.assign(treat=data["treated"].astype(int)), yname="y",
                   first_stage="~ 0 | area + period", second_stage="~ " + " + ".join(columns.values()),
                   treatment="treat", cluster="area")
    tidy = fit.tidy()
    out = {k: (float(tidy.loc[n, "Estimate"]), float(tidy.loc[n, "Std. Error"]), float(tidy.loc[n, "2.5%"]),
               float(tidy.loc[n, "97.5%"])) for k, n in columns.items() if n in tidy.index}
    leads = [n for k, n in columns.items() if k < 0 and n in tidy.index and np.isfinite(tidy.loc[n, "Std. Error"])]
    if not leads:
        return out, None, 0
    names = list(tidy.index)
    r = np.zeros((len(leads), len(names)))
    for i, n in enumerate(leads):
        r[i, names.index(n)] = 1.0
    test = fit.wald_test(R=r)
    return out, float(test["pvalue"]), len(leads)


def _counts(df: pd.DataFrame) -> dict[str, Any]:
    funded = df.loc[df["first_treated"] > 0, "area"].unique()
    return {
        "areas_used": int(df["area"].nunique()),
        "funded_areas_used": len(funded),
        "comparison_areas_used": int(df["area"].nunique() - len(funded)),
        "quarters_used": int(df["period"].nunique()),
        "area_quarters_used": len(df),
        "funded_area_quarters_used": int(df["treated"].sum()),
        "first_quarter": int(df["period"].min()) if len(df) else None,
        "last_quarter": int(df["period"].max()) if len(df) else None,
    }


def _not_possible(df: pd.DataFrame, excluded: Counter[str], usable_before_zero: int) -> str | None:
    """Why the data cannot support an estimate (said in words), or None."""
    if excluded["zero count"] > MAX_ZERO_SHARE * max(usable_before_zero, 1):
        return (f"{excluded['zero count']} of {usable_before_zero} area-quarters had none: too few events for a "
                "change in the rate per resident to be estimated")
    c = _counts(df)
    if c["funded_areas_used"] < MIN_FUNDED_AREAS:
        return f"{c['funded_areas_used']} funded areas with usable figures (at least {MIN_FUNDED_AREAS} needed)"
    if c["comparison_areas_used"] < MIN_COMPARISON_AREAS:
        return (f"{c['comparison_areas_used']} never-funded areas with usable figures "
                f"(at least {MIN_COMPARISON_AREAS} needed)")
    funded = df[df["first_treated"] > 0]
    pre = funded.loc[~funded["treated"], "period"].nunique()
    post = funded.loc[funded["treated"], "period"].nunique()
    if pre < MIN_PRE_QUARTERS:
        return f"{pre} quarters before funding with usable figures (at least {MIN_PRE_QUARTERS} needed)"
    if post < MIN_POST_QUARTERS:
        return f"{post} quarters after funding with usable figures (at least {MIN_POST_QUARTERS} needed)"
    return None


def estimate(panel: pd.DataFrame, spec: MeasureSpec, *, permutations: int = PERMUTATIONS,
             event_study: bool = True, windows: dict[str, int | None] | None = None) -> Result:
    """Every window's effect row for one measure, and its event study (one per measure: all quarters)."""
    windows = WINDOWS if windows is None else windows
    effects: list[EffectRow] = []
    study: list[EventStudyRow] = []
    if panel.empty or (panel["excluded"].eq("missing") | panel["count"].isna()).all():
        excluded = Counter(panel["excluded"].fillna("missing"))
        reason = "the data holds no figure for this measure" + (
            f" ({', '.join(f'{why}: {n}' for why, n in sorted(excluded.items()))} area-quarters)" if excluded else "")
        for window in windows:
            effects.append(_row(spec, window, "not available", reason, pd.DataFrame(), excluded))
        return Result(effects, study)
    pre_trend: tuple[float | None, int] = (None, 0)
    for index, (window, max_lag) in enumerate(windows.items()):
        df, excluded = usable_panel(panel, max_lag)
        usable_before_zero = len(df) + excluded["zero count"]
        lacking = _not_possible(df, excluded, usable_before_zero)
        if lacking:
            effects.append(_row(spec, window, "not possible", lacking, df, excluded))
            continue
        if index == 0 and event_study:
            lags, p_pre, leads = _fit_event_study(df)
            pre_trend = (p_pre, leads)
            study = _event_rows(spec, df, lags)
        coef, se, p_model, low, high = _fit_att(df)
        p_perm = (permutation_p_value(df, imputation_att(df["area"].to_numpy(), df["period"].to_numpy(),
                                                         df["treated"].to_numpy(), df["y"].to_numpy()),
                                      permutations, _seed(spec.key, window)) if permutations else None)
        p_pre, leads = pre_trend
        failed = None if p_pre is None else p_pre < ALPHA
        if failed:
            status, why = "not interpretable", (
                f"the funded and comparison areas were already diverging before funding (joint test of "
                f"{leads} quarters before funding: p = {p_pre:.3f})")
        elif p_pre is None and event_study:
            status, why = "not interpretable", "no quarter before funding could be tested for diverging trends"
        else:
            status, why = "estimated", "pre-funding trends: no divergence detected" if event_study else "estimated"
        effects.append(_row(spec, window, status, why, df, excluded, coef=coef, se=se, p_model=p_model,
                            low=low, high=high, p_perm=p_perm, permutations=permutations, p_pre=p_pre,
                            leads=leads, failed=failed))
    return Result(effects, study)


def _row(spec: MeasureSpec, window: str, status: str, reason: str, df: pd.DataFrame, excluded: Counter[str],
         *, coef: float | None = None, se: float | None = None, p_model: float | None = None,
         low: float | None = None, high: float | None = None, p_perm: float | None = None,
         permutations: int = 0, p_pre: float | None = None, leads: int = 0,
         failed: bool | None = None) -> EffectRow:
    counts = _counts(df) if len(df) else {
        "areas_used": 0, "funded_areas_used": 0, "comparison_areas_used": 0, "quarters_used": 0,
        "area_quarters_used": 0, "funded_area_quarters_used": 0, "first_quarter": None, "last_quarter": None}
    return EffectRow(spec.key, spec.label, spec.role, METHOD, window, status, reason, _pct(coef), _pct(low),
                     _pct(high), coef, se, p_model, p_perm, permutations, p_pre, leads, failed,
                     area_quarters_excluded=sum(excluded.values()),
                     exclusions={r: int(excluded.get(r, 0)) for r in REASONS}, **counts)


def _event_rows(spec: MeasureSpec, df: pd.DataFrame, fitted: dict[int, tuple[float, float, float, float]]
                ) -> list[EventStudyRow]:
    rel = (df["period"] - df["first_treated"])[df["first_treated"] > 0]
    rows = []
    for k in range(-LEADS, LAGS + 1):
        n = int((rel == k).sum())
        if k == -1:
            rows.append(EventStudyRow(spec.key, METHOD, k, True, 0.0, 0.0, 0.0, 0.0, 0.0, n))
        elif k in fitted and np.isfinite(fitted[k][1]):
            coef, se, low, high = fitted[k]
            rows.append(EventStudyRow(spec.key, METHOD, k, False, _pct(coef), _pct(low), _pct(high), coef, se, n))
        else:  # no funded area-quarter at this distance from funding: a gap in the chart
            rows.append(EventStudyRow(spec.key, METHOD, k, False, None, None, None, None, None, n))
    return rows


def as_records(result: Result) -> tuple[list[Row], list[Row]]:
    return [asdict(r) for r in result.effects], [asdict(r) for r in result.event_study]
