"""SYNTHETIC area-quarter panels with a known answer, for the effect estimator's tests and benchmark.

43 areas: 18 funded from one quarter, 2 from a later one (the programme's staggered entry), 23
never. Counts are Poisson draws around a rate per resident made of an area effect, a season, a
slow national trend, noise, and the planted effect (a multiple of the rate in funded quarters:
0.85 = -15%). `pre_trend` adds a per-quarter drift to the funded areas before funding (diverging
trends). Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AREAS = 43
FUNDED_FIRST = 18
FUNDED_LATER = 2


def synthetic_panel(seed: int, *, quarters: int = 40, effect: float = 0.85, first_funded: int = 16,
                    later_funded: int = 28, pre_trend: float = 0.0, base_rate: float = 0.0004,
                    population: tuple[int, int] = (500_000, 3_000_000), noise: float = 0.05) -> pd.DataFrame:
    """Columns: area, period (0..quarters-1), first_treated (0 = never; else the period + 1000, so
    never-funded 0 sorts first), count, population, excluded (None)."""
    rng = np.random.default_rng(seed)
    pop = rng.integers(population[0], population[1], AREAS)
    area_effect = rng.normal(0.0, 0.3, AREAS)
    start = np.zeros(AREAS, dtype=int)
    start[:FUNDED_FIRST] = first_funded
    start[FUNDED_FIRST:FUNDED_FIRST + FUNDED_LATER] = later_funded
    rng.shuffle(start)
    period = np.arange(quarters)
    season = 0.08 * np.sin(2 * np.pi * period / 4)
    trend = -0.004 * period
    rows = []
    for a in range(AREAS):
        funded = (start[a] > 0) & (period >= start[a])
        log_rate = (np.log(base_rate) + area_effect[a] + season + trend + rng.normal(0.0, noise, quarters)
                    + np.where(funded, np.log(effect), 0.0))
        if start[a] > 0 and pre_trend:
            log_rate += np.where(period < start[a], pre_trend * (period - start[a]), 0.0)
        counts = rng.poisson(np.exp(log_rate) * pop[a])
        for q in range(quarters):
            rows.append((f"area_{a:02d}", 1000 + q, 1000 + start[a] if start[a] else 0, int(counts[q]), int(pop[a]),
                         None))
    return pd.DataFrame(rows, columns=["area", "period", "first_treated", "count", "population", "excluded"])


def synthetic_outcome_rows(forces: list[str], funded_2019: list[str], funded_2022: list[str], *, withheld: int = 5,
                           series_break: int = 4, suppressed: int = 7) -> list[dict[str, object]]:
    """Rows of vru_outcomes_quarterly (the estimator's columns) over the given force areas, 40
    quarters from 2015/16: knife offences with the planted -15%, A&E attendances with the first
    `suppressed` rows withheld, knife homicides too rare for a log rate, no under-25 or stop and
    search figures; `withheld` Durham quarters partial, `series_break` Greater Manchester
    quarters not comparable."""
    knife = synthetic_panel(21)
    homicides = synthetic_panel(22, base_rate=0.0000002)
    # synthetic areas -> force areas with the same funding start (16: 2019/20 Q1; 28: 2022/23 Q1)
    starts = knife.groupby("area")["first_treated"].first()
    names = {s: sorted(starts[starts == s].index) for s in starts.unique()}
    never = [f for f in forces if f not in funded_2019 and f not in funded_2022]
    to_force = {**dict(zip(names[1016], funded_2019, strict=True)), **dict(zip(names[1028], funded_2022, strict=True)),
                **dict(zip(names[0], never, strict=True))}
    homicide_count = {(r.area, r.period): r.count for r in homicides.itertuples()}
    rows = []
    for r in knife.itertuples():
        force, q = to_force[r.area], r.period - 1000
        fy, fq = 2015 + q // 4, q % 4 + 1
        funded = (force in funded_2019 and fy >= 2019) or (force in funded_2022 and fy >= 2022)
        rows.append({
            "force_id": force, "force_name": force, "financial_year": f"{fy}/{(fy + 1) % 100:02d}", "fy_start": fy,
            "financial_quarter": fq, "quarter_start": f"{fy + (fq == 4)}-{(3 * fq + 3) % 12 + 1:02d}-01",
            "is_vru_area": funded, "in_vru_programme": force in funded_2019 or force in funded_2022,
            "population": r.population, "population_0_24": r.population // 3,
            "ae_coverage": "no A&E data for this area", "ae_knife_attendances_suppressed": False,
            "ae_knife_under_25_suppressed": False, "ae_under_25_rate_coverage": "no complete count",
            "knife_offences": r.count, "knife_offences_coverage": "complete", "knife_offences_is_comparable": True,
            "knife_homicides": homicide_count[(r.area, r.period)], "stop_search_coverage": "no data",
        })
    # A&E: every area has extracts; some cells are withheld (NULL, flagged) and never imputed
    ae = synthetic_panel(23)
    for row, a in zip(rows, ae.itertuples(), strict=True):
        row.update(ae_coverage="complete", ae_knife_attendances=a.count)
    for row in rows[:suppressed]:
        row.update(ae_coverage="suppressed", ae_knife_attendances=None, ae_knife_attendances_suppressed=True)
    for row in [r for r in rows if r["force_id"] == "greater-manchester"][10:10 + series_break]:
        row["knife_offences_is_comparable"] = False
    for row in [r for r in rows if r["force_id"] == "durham"][:withheld]:
        row["knife_offences_coverage"] = "partial"
    return rows
