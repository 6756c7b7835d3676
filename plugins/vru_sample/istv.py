"""SYNTHETIC ISTV extracts for the bundled sample: no real patient data anywhere.

Deterministic (seeded per department and month): the same call always writes the same bytes.
One CSV per emergency department (the sites of seed ae_sites.csv) per calendar month, in the
contract's layout, at realistic levels and shapes, not real counts:

* volume by department size (a large major trauma centre ~170 assault attendances a month, a
  district general ~70), more in summer and December, fewer in the 2020-21 lockdowns;
* arrivals clustered at night and at weekends; the assault a little before the arrival, its time
  unknown for about 1 in 10;
* methods: mostly body part; knife ~5% and other sharp objects ~4% (a little more in the big
  city departments); locations mostly street, home and licensed premises;
* age band and sex shared by every department but one (Darlington shares neither), which
  exercises the mart's 'not known' band; small departments give small cells, which exercises
  suppression.

`python -m vru_sample.istv FOLDER [FIRST_MONTH LAST_MONTH]` writes them (each written to a .part
name and renamed, as departments are told to do).
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import math
import os
import random
import sys
from collections.abc import Iterator, Set
from datetime import date, datetime, timedelta
from pathlib import Path

from vru.config import settings
from vru.feeds.ae import HEADER

FIRST_MONTH = date(2018, 4, 1)  # the 2018/19 baseline year of the VRU programme...
LAST_MONTH = date(2021, 3, 1)  # ...to the end of 2020/21

# Mean assault attendances a month by department (size of the department, not real counts).
VOLUME = {"RWEAA": 170, "RHQNG": 165, "REMRQ": 150, "RTGFG": 130, "REM21": 110, "RBN01": 105,
          "RBL14": 100, "RP5DR": 95, "RAJ01": 90, "RAJ12": 85, "RDEE4": 80, "RFRPA": 70,
          "RFFAA": 65, "RQWG0": 60, "RFSDA": 55, "RXPCP": 50, "RXPDA": 35}
NO_DEMOGRAPHICS = {"RXPDA"}  # Darlington Memorial: shares neither age band nor sex
CITY = {"REMRQ", "REM21", "RHQNG", "RWEAA"}

SEASON = {1: 0.92, 2: 0.9, 3: 0.97, 4: 1.0, 5: 1.05, 6: 1.08, 7: 1.12, 8: 1.1, 9: 1.0, 10: 0.98,
          11: 0.95, 12: 1.12}
LOCKDOWN = {date(2020, 4, 1): 0.55, date(2020, 5, 1): 0.7, date(2020, 6, 1): 0.85,
            date(2020, 11, 1): 0.8, date(2021, 1, 1): 0.65, date(2021, 2, 1): 0.7, date(2021, 3, 1): 0.85}

METHODS = [("01", 0.61), ("02", 0.12), ("03", 0.05), ("04", 0.04), ("05", 0.003), ("06", 0.06), ("99", 0.117)]
OTHER_METHODS = ["thrown object", "pushed over", "strangulation", "vehicle", "burn from hot liquid",
                 "dog set on victim"]
LOCATIONS = [("01", 0.24), ("02", 0.36), ("03", 0.15), ("04", 0.06), ("05", 0.02), ("06", 0.04),
             ("07", 0.03), ("08", 0.01), ("09", 0.04), ("99", 0.05)]
PLACES = {"01": ["own home", "friend's flat", "house party"],
          "02": ["High Street", "park near the river", "car park behind the shops", "Station Road",
                 "outside a takeaway", "bus stop on Market Street"],
          "03": ["nightclub in the town centre", "pub on the corner of Church Lane", "bar queue"],
          "04": ["supermarket", "takeaway", "petrol station"],
          "05": ["school gates", "college canteen"],
          "06": ["shop floor", "hospital car park", "taxi rank"],
          "07": ["train station platform", "on a bus"],
          "08": ["police custody suite", "prison wing"],
          "09": ["football ground", "festival site"]}
AGES = [("0-15", 0.06), ("16-17", 0.06), ("18-24", 0.24), ("25-34", 0.27), ("35-44", 0.18),
        ("45-54", 0.11), ("55-64", 0.05), ("65+", 0.03)]
SEXES = [("1", 0.7), ("2", 0.28), ("X", 0.02)]
HOUR_WEIGHTS = [6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 4, 5, 6, 7, 8, 8]


def _pick(rng: random.Random, table: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:  # normal approximation, rounded, never negative
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def sites() -> dict[str, str]:
    """Site code -> force id, from the seed (the sample's departments are the seed's)."""
    with open(settings().dbt_project_dir / "seeds" / "ae_sites.csv", encoding="utf-8", newline="") as handle:
        return {r["site_code"]: r["force_id"] for r in csv.DictReader(handle)}


def months(first: date = FIRST_MONTH, last: date = LAST_MONTH) -> Iterator[date]:
    month = first
    while month <= last:
        yield month
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)


def file_name(site: str, month: date) -> str:
    return f"istv_{site}_{month:%Y-%m}.csv"


def extract(site: str, month: date) -> bytes:
    """One department's extract for one month, as bytes."""
    rng = random.Random(f"istv/{site}/{month:%Y-%m}")
    last_day = calendar.monthrange(month.year, month.month)[1]
    end = month.replace(day=last_day)
    mean = VOLUME.get(site, 60) * SEASON[month.month] * LOCKDOWN.get(month, 1.0)
    rows = []
    for _ in range(_poisson(rng, mean)):
        while True:
            day = rng.randint(1, last_day)
            weekday = date(month.year, month.month, day).weekday()
            if rng.random() < (1.0 if weekday >= 4 else 0.6):  # Friday to Sunday busier
                break
        hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        arrival = datetime(month.year, month.month, day, hour, rng.randint(0, 59))
        assault = arrival - timedelta(minutes=int(rng.expovariate(1 / 90)) + 5)
        method = _pick(rng, METHODS)
        if site in CITY and method in ("01", "99") and rng.random() < 0.02:
            method = "03"
        location = _pick(rng, LOCATIONS)
        time_known = rng.random() > 0.1
        demographics = site not in NO_DEMOGRAPHICS
        rows.append([
            month.isoformat(), end.isoformat(), site,
            arrival.strftime("%Y-%m-%d %H:%M"),
            assault.strftime("%Y-%m-%d %H:%M") if time_known else assault.strftime("%Y-%m-%d"),
            method,
            rng.choice(OTHER_METHODS) if method == "06" else "",
            location,
            rng.choice(PLACES[location]) if location in PLACES and rng.random() < 0.8 else "",
            _pick(rng, AGES) if demographics else "",
            _pick(rng, SEXES) if demographics else "",
        ])
    rows.sort(key=lambda r: r[3])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def write_extracts(folder: Path, first: date = FIRST_MONTH, last: date = LAST_MONTH,
                   skip_sha256: Set[str] = frozenset()) -> list[Path]:
    """Write every department's monthly extract into `folder` (.part, then renamed), except those
    whose bytes are in `skip_sha256` (already loaded); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for site in sites():
        for month in months(first, last):
            data = extract(site, month)
            if hashlib.sha256(data).hexdigest() in skip_sha256:
                continue
            target = folder / file_name(site, month)
            part = target.with_name(target.name + ".part")
            part.write_bytes(data)
            os.replace(part, target)
            written.append(target)
    return written


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m vru_sample.istv FOLDER [FIRST_MONTH LAST_MONTH]  (months as YYYY-MM)")
    first, last = [date.fromisoformat(a + "-01") for a in args[1:3]] if len(args) >= 3 else [FIRST_MONTH, LAST_MONTH]
    paths = write_extracts(Path(args[0]), first, last)
    print(f"{len(paths)} synthetic ISTV extracts written to {args[0]}")
