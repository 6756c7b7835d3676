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
