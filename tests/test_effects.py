"""The programme effect estimator (vru.effects) on SYNTHETIC panels with a known answer.

No database: the estimator is a pure function of an area-quarter panel (vru.effects_build and
tests/test_effects_build.py read and write the warehouse). The panels (vru_sample.panels) have 43
areas, 18 funded from one quarter and 2 from a later one (staggered, as the programme), area
effects, seasons, a national trend, noise and Poisson counts. The coverage and false-positive
runs use the model's interval and no permutations (fast); the permutation p-value is tested on
its own.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from vru import effects
from vru_sample.panels import synthetic_panel

SPEC = effects.MeasureSpec("knife_offences", "Knife offences", "outcome")
ALL = {"all quarters after funding": None}
PLANTED = -15.0  # synthetic_panel's default effect (0.85: -15% in funded quarters)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", UserWarning)  # pyfixest's notes on its own choices


def test_planted_effect_recovered_within_the_interval_in_at_least_90_of_100_seeds() -> None:
    covered, estimates = 0, []
    for seed in range(100):
        row = effects.estimate(synthetic_panel(seed), SPEC, permutations=0, event_study=False, windows=ALL).effects[0]
        assert row.status == "estimated", row.status_reason
        covered += row.ci_low_pct <= PLANTED <= row.ci_high_pct
        estimates.append(row.estimate_pct)
    assert covered >= 90, covered
    assert abs(float(np.mean(estimates)) - PLANTED) < 1.0  # unbiased on average, not just covered


def test_null_panel_false_positives_near_5_percent() -> None:
    false_positives = 0
    for seed in range(100):
        row = effects.estimate(synthetic_panel(1000 + seed, effect=1.0), SPEC, permutations=0, event_study=False,
                               windows=ALL).effects[0]
        false_positives += not (row.ci_low_pct <= 0.0 <= row.ci_high_pct)
    assert 1 <= false_positives <= 11, false_positives  # 5 expected; binomial(100, 0.05) 99% range ~0-11


def test_diverging_pre_trends_are_flagged_not_interpretable() -> None:
    flagged = 0
    for seed in range(5):
        result = effects.estimate(synthetic_panel(seed, effect=1.0, pre_trend=0.01), SPEC, permutations=0,
                                  windows=ALL)
        flagged += all(r.status == "not interpretable" and r.pre_trend_failed for r in result.effects)
        assert all("diverging" in r.status_reason for r in result.effects if r.pre_trend_failed)
    assert flagged == 5
    # and parallel trends are not flagged (pre-trend p is a probability, the leads near 0)
    clean = effects.estimate(synthetic_panel(7), SPEC, permutations=0, windows=ALL)
    assert clean.effects[0].status == "estimated" and clean.effects[0].pre_trend_failed is False
    assert 0.0 <= clean.effects[0].pre_trend_p_value <= 1.0 and clean.effects[0].pre_trend_leads_tested == 7


def test_event_study_shows_leads_near_zero_and_lags_at_the_planted_effect() -> None:
    rows = {r.relative_quarter: r for r in effects.estimate(synthetic_panel(3), SPEC, permutations=0).event_study}
    assert sorted(rows) == list(range(-effects.LEADS, effects.LAGS + 1))
    assert rows[-1].is_reference and rows[-1].estimate_pct == 0.0
    leads = [rows[k].estimate_pct for k in range(-8, -1)]
    lags = [rows[k].estimate_pct for k in range(0, 13)]
    assert max(abs(v) for v in leads) < 5.0
    assert all(-25.0 < v < -5.0 for v in lags)
    assert all(rows[k].ci_low_pct <= rows[k].estimate_pct <= rows[k].ci_high_pct for k in rows)
    # the 2 later-funded areas reach +12 only if the panel lasts: relative quarters count funded areas
    assert rows[0].funded_area_quarters == 20 and rows[-8].funded_area_quarters == 20


def test_permutation_p_value_small_for_a_real_effect_and_not_for_none() -> None:
    real = effects.estimate(synthetic_panel(11), SPEC, permutations=199, event_study=False, windows=ALL).effects[0]
    assert real.permutations == 199 and real.p_value_permutation == pytest.approx(1 / 200)
    p_values = [effects.estimate(synthetic_panel(2000 + s, effect=1.0), SPEC, permutations=99, event_study=False,
                                 windows=ALL).effects[0].p_value_permutation for s in range(12)]
    assert all(1 / 100 <= p <= 1.0 for p in p_values)
    assert sum(p < 0.05 for p in p_values) <= 3  # roughly uniform under no effect, not piled near 0
    assert float(np.median(p_values)) > 0.15
    # deterministic: the same panel gives the same p (a night with the same data publishes nothing new)
    again = effects.estimate(synthetic_panel(11), SPEC, permutations=199, event_study=False, windows=ALL).effects[0]
    assert again.p_value_permutation == real.p_value_permutation


def test_fast_point_estimate_equals_pyfixest_did2s() -> None:
    df, _ = effects.usable_panel(synthetic_panel(5))
    fast = effects.imputation_att(df["area"].to_numpy(), df["period"].to_numpy(), df["treated"].to_numpy(),
                                  df["y"].to_numpy())
    assert fast == pytest.approx(effects._fit_att(df)[0], abs=1e-9)


def hand_panel() -> pd.DataFrame:
    """3 areas x 3 quarters: area C funded from quarter 3. Log rates (population 1000, counts exp):
    A: 1, 2, 3; B: 2, 3, 4; C: 1.5, 2.5, 4.0. Area + quarter effects from the 8 unfunded cells fit
    exactly (C's level = A's + 0.5), so C's quarter 3 prediction is 3.5 and the effect is 0.5."""
    logs = {"A": (1.0, 2.0, 3.0), "B": (2.0, 3.0, 4.0), "C": (1.5, 2.5, 4.0)}
    rows = [(a, 1 + q, 3 if a == "C" else 0, math.exp(v) * 1000, 1000, None)
            for a, vs in logs.items() for q, v in enumerate(vs)]
    return pd.DataFrame(rows, columns=["area", "period", "first_treated", "count", "population", "excluded"])


def test_hand_computed_small_case() -> None:
    df, excluded = effects.usable_panel(hand_panel())
    assert not excluded and df["treated"].sum() == 1
    att = effects.imputation_att(df["area"].to_numpy(), df["period"].to_numpy(), df["treated"].to_numpy(),
                                 df["y"].to_numpy())
    assert att == pytest.approx(0.5, abs=1e-9)
    assert effects._fit_att(df)[0] == pytest.approx(0.5, abs=1e-9)  # the library agrees
    assert effects._pct(0.5) == pytest.approx(100 * (math.e ** 0.5 - 1))  # +64.9%


def test_exclusions_counted_by_reason_never_imputed() -> None:
    panel = synthetic_panel(2)
    funded = sorted(panel.loc[panel["first_treated"] > 0, "area"].unique())
    first, second = funded[0], funded[1]
    panel.loc[(panel["area"] == first) & (panel["period"].isin([1000, 1001, 1002])), "excluded"] = "suppressed"
    panel.loc[(panel["area"] == "area_40") & (panel["period"] == 1010), "excluded"] = "series break"
    panel.loc[(panel["area"] == "area_41") & (panel["period"] == 1011), "count"] = 0
    panel.loc[(panel["area"] == "area_42") & (panel["period"] == 1012), "population"] = None
    # an area with no usable quarter before funding: its funded quarters cannot be predicted
    start = int(panel.loc[panel["area"] == second, "first_treated"].iloc[0])
    panel.loc[(panel["area"] == second) & (panel["period"] < start), "excluded"] = "missing"
    row = effects.estimate(panel, SPEC, permutations=0, event_study=False, windows=ALL).effects[0]
    after = int(((panel["area"] == second) & (panel["period"] >= start)).sum())
    assert row.exclusions["suppressed"] == 3 and row.exclusions["series break"] == 1
    assert row.exclusions["zero count"] == 1 and row.exclusions["no population"] == 1
    assert row.exclusions["missing"] == start - 1000
    assert row.exclusions["no quarter before funding"] == after
    assert row.area_quarters_used + row.area_quarters_excluded == len(panel)
    assert row.funded_areas_used == 19 and row.areas_used == 42


def test_too_little_data_is_not_possible_and_no_data_not_available() -> None:
    short = synthetic_panel(4, quarters=18, first_funded=16, later_funded=17)  # 1 quarter after funding... 2
    short = short[short["period"] < 1017]
    row = effects.estimate(short, SPEC, permutations=0).effects[0]
    assert row.status == "not possible" and row.estimate_pct is None and "after funding" in row.status_reason
    sparse = synthetic_panel(4, base_rate=0.0000002)  # knife homicides per force: mostly no events
    row = effects.estimate(sparse, SPEC, permutations=0).effects[0]
    assert row.status == "not possible" and "too few events" in row.status_reason and row.estimate_pct is None
    none = synthetic_panel(4).assign(excluded="missing")
    rows = effects.estimate(none, SPEC, permutations=0).effects
    assert [r.status for r in rows] == ["not available"] * len(effects.WINDOWS)
    assert rows[0].exclusions["missing"] == len(none)
