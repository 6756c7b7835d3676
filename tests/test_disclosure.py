"""Disclosure control against a reader who subtracts (issue 12, part 2).

A reader may hold everything we publish: the marts (dbt-built here from crafted attendances, against
the session's real PostgreSQL), earlier builds of them, whatever the BI role can read in `audit`,
the data quality report, alert payloads and what the ingest returns to Airflow. None of it may give
a count of A&E attendances from 1 to 4, nor a count of rows per extract.

- `test_bi_role_reads_no_per_extract_ae_counts`: a BI-role session reads every relation it can in
  `audit` after real extracts were taken in and validated, looking for their row counts and sizes.
- `test_report_alerts_and_task_results_carry_no_per_extract_counts`: the report HTML, the
  validation failure text an alert carries, the task's return value (XCom) and its log.
- `test_no_subtraction_within_a_build_pins_a_small_count`: a brute-force attacker over one build of
  ae_assault_monthly, vru_outcomes_quarterly and vru_programme_comparison, from the issue's example
  and random small counts: bands, knife or sharp within all, months into quarters, areas into groups.
- `test_differencing_successive_builds_pins_no_small_count`: three builds (a partial month within
  the publication lag, a late extract completing a published partial month, a replaced extract),
  the attacker differencing every pair.

The attacker knows the publication rule (Kerckhoffs): it tries the documented rules, keeps the one
that reproduces the built mart from the true counts, and enumerates every set of true counts that
rule would have published as shown. A withheld cell is disclosed when its feasible values (or the
difference between two builds) come down to one value from 1 to 4.
"""

from __future__ import annotations

import calendar
import csv
import io
import itertools
import json
import logging
import os
import random
import re
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import publish_built
from test_dbt_ae import BANDS, DATASET, DBT, FLAGS, MEASURES, PROJECT
from vru import warehouse
from vru.archive import Archive
from vru.config import dbt_env, settings
from vru.feeds import ae
from vru.landing import Limits, process_landing
from vru_sample import istv as sample_istv

AGE_OF_BAND = {"under 25": "18-24", "25 and over": "35-44", "not known": None}
NO_SETTLE = Limits(settle_seconds=0, max_file_bytes=10_000_000)  # files are dropped and taken at once
LAG_MONTHS = 3  # the model's default var('ae_publication_lag_months')

with (PROJECT / "seeds" / "ae_sites.csv").open(newline="", encoding="utf-8") as seed_file:
    SITES: dict[str, list[str]] = defaultdict(list)
    for seed_row in csv.DictReader(seed_file):
        SITES[seed_row["force_id"]].append(seed_row["site_code"])

# ------------------------------------------------------------------------------------------------
# Crafted data and real dbt builds
# ------------------------------------------------------------------------------------------------

Counts = dict[str, tuple[int, int]]  # band (not 'all ages') -> (attendances, of which knife or sharp)


class Extracts:
    """Writes extracts as the A&E loader does: audit.loads, audit.landed_files and the rows; a
    re-sent extract for the same site and period replaces the earlier one's rows."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.sent: set[tuple[str, str, str]] = set()

    def send(self, site: str, start: str, end: str, counts: Counts) -> None:
        force = next(f for f, sites in SITES.items() if site in sites)
        rows = [(band, i < knife) for band, (n, knife) in counts.items() for i in range(n)]
        outcome = "replaced" if (site, start, end) in self.sent else "loaded"
        self.sent.add((site, start, end))
        with self.conn.cursor() as cur:
            load_id = cur.execute(
                "insert into audit.loads (dataset, force_id, month, origin, sha256, status, rows_read, rows_loaded) "
                "values (%s, %s, date_trunc('month', %s::date), 'landing', 'x', %s, %s, %s) returning load_id",
                (DATASET, force, start, outcome, len(rows), len(rows))).fetchone()[0]  # type: ignore[index]
            sha = f"{load_id:064d}"
            cur.execute(
                "insert into audit.landed_files (dataset, file_name, sha256, size_bytes, outcome, load_id, site_code, "
                "reporting_period_start, reporting_period_end, rows_loaded) values (%s, %s, %s, 1000, %s, %s, %s, "
                "%s, %s, %s)", (DATASET, f"{site}_{start}.csv", sha, outcome, load_id, site, start, end, len(rows)))
            cur.execute("delete from restricted.ae_attendances where site_code = %s and reporting_period_start = %s "
                        "and reporting_period_end = %s", (site, start, end))
            cur.executemany(
                "insert into restricted.ae_attendances (load_id, sha256, line_no, site_code, force_id, "
                "reporting_period_start, reporting_period_end, arrival_at, assault_date, assault_time, "
                "assault_method, assault_location_type, age_band, sex) values (%s, %s, %s, %s, %s, %s, %s, "
                "%s::date + time '10:00', %s, '09:30', %s, '02', %s, '1')",
                [(load_id, sha, line, site, force, start, end, start, start, "03" if knife else "01",
                  AGE_OF_BAND[band]) for line, (band, knife) in enumerate(rows, start=2)])

    def month(self, force: str, month: str, counts: Counts) -> None:
        """Every department of the force sends the whole month; the attendances are at the first."""
        start = date.fromisoformat(month + "-01")
        last = start.replace(day=calendar.monthrange(start.year, start.month)[1]).isoformat()
        for i, site in enumerate(SITES[force]):
            self.send(site, start.isoformat(), last, counts if i == 0 else {})


def dbt_build(url: str, tmp_path: Path, select: str, as_of: str | None = None) -> None:
    command = [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
               "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
               "--select", select, "--indirect-selection", "cautious"]
    if as_of:
        command += ["--vars", json.dumps({"ae_publication_as_of": as_of})]
    done = subprocess.run(command, env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:]
    publish_built(url)  # a BI reader sees what the pipeline publishes after its checks


@pytest.fixture
def marts_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    yield conn
    for mart in ("vru_programme_comparison", "vru_outcomes_quarterly", "ae_assault_monthly"):
        conn.execute(f"drop table if exists marts.{mart}, marts_build.{mart} cascade")


def dict_rows(conn: psycopg.Connection, query: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


# A published equation: per band (all ages first) the shown value, None when withheld.
Published = dict[str, tuple[int | None, ...]]  # measure -> 4 values
Cell = tuple[str, str, str, str]  # force, month, band, measure


def published_mart(conn: psycopg.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """Per force-month: coverage and per measure the four shown values (None = withheld)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in dict_rows(conn, "select *, to_char(month, 'YYYY-MM') as ym from marts.ae_assault_monthly"):
        fm = out.setdefault((r["force_id"], r["ym"]), {"coverage": r["coverage"],
                                                      **{m: [None] * 4 for m in MEASURES}})
        for m in MEASURES:
            assert (r[m] is None) == (r[FLAGS[m]] or r["coverage"] == "no extract")
            fm[m][BANDS.index(r["age_band"])] = r[m]
    return {k: {**v, **{m: tuple(v[m]) for m in MEASURES}} for k, v in out.items() if v["coverage"] != "no extract"}


def true_values(counts: Counts) -> dict[str, tuple[int, ...]]:
    bands = [counts.get(b, (0, 0)) for b in BANDS[1:]]
    att = tuple(n for n, _ in bands)
    knife = tuple(k for _, k in bands)
    return {"attendances": (sum(att), *att), "knife_or_sharp_attendances": (sum(knife), *knife)}


# ------------------------------------------------------------------------------------------------
# The attacker
# ------------------------------------------------------------------------------------------------

# A rule: (true values of one equation, history per band, pending) -> which cells are withheld.
Rule = Callable[[tuple[int, ...], tuple[set[int], ...], bool], tuple[bool, ...]]


def smallest_band_rule(values: tuple[int, ...], history: tuple[set[int], ...], pending: bool) -> tuple[bool, ...]:
    """The rule before issue 12: 1-4 withheld; one withheld cell takes the smallest shown non-zero
    band with it (ties to the first listed)."""
    primary = [1 <= v <= 4 for v in values]
    if sum(primary) == 1:
        candidates = [(values[i], i) for i in range(1, 4) if not primary[i] and values[i] > 0]
        if candidates:
            primary[min(candidates)[1]] = True
    return tuple(primary)


def all_or_nothing_rule(values: tuple[int, ...], history: tuple[set[int], ...], pending: bool) -> tuple[bool, ...]:
    """The model header's rules 1-4: any cell 1-4, a pending partial month, or a change of 1-4
    against any figure published before withholds all four cells."""
    withheld = pending or any(1 <= v <= 4 for v in values) or any(
        1 <= abs(v - h) <= 4 for v, hs in zip(values, history, strict=True) for h in hs)
    return (withheld,) * 4


RULES: dict[str, Rule] = {"smallest band": smallest_band_rule, "all or nothing": all_or_nothing_rule}


def identify_rule(truth: dict[tuple[str, str], dict[str, tuple[int, ...]]],
                  published: dict[tuple[str, str], dict[str, Any]],
                  history: Callable[[tuple[str, str], str], tuple[set[int], ...]],
                  pending: Callable[[tuple[str, str], str], bool]) -> Rule:
    """The documented rule that reproduces the published mart from the true counts."""
    for rule in RULES.values():
        if all(tuple(v is None for v in published[fm][m]) == rule(truth[fm][m], history(fm, m), pending(fm, m))
               for fm in published for m in MEASURES):
            return rule
    raise AssertionError("the published mart follows none of the documented rules")


def candidates(shown: tuple[int | None, ...], rule: Rule, history: tuple[set[int], ...], pending: bool,
               bound: int) -> np.ndarray:
    """Every (all, under 25, 25 and over, not known) the rule would have published as `shown`."""
    flags = tuple(v is None for v in shown)
    ranges = [[shown[i]] if shown[i] is not None else range(bound + 1) for i in range(1, 4)]
    found = []
    for bands in itertools.product(*ranges):
        values = (sum(bands), *bands)
        if shown[0] is not None and values[0] != shown[0]:
            continue
        if rule(values, history, pending) == flags:
            found.append(values)
    return np.array(found, dtype=np.int64).reshape(-1, 4)


def feasible(fm: dict[str, Any], rule: Rule, history: Callable[[str], tuple[set[int], ...]], pending: bool,
             bound: int = 12) -> dict[tuple[str, str], set[int]]:
    """Per (measure, band) the values the true count can take, given this force-month's published
    cells, the rule, and knife or sharp <= attendances in every band (exact: joint enumeration)."""
    att = candidates(fm["attendances"], rule, history("attendances"), pending, bound)
    knife = candidates(fm["knife_or_sharp_attendances"], rule, history("knife_or_sharp_attendances"), pending,
                       bound)
    ok = (knife[None, :, :] <= att[:, None, :]).all(axis=2)
    att, knife = att[ok.any(axis=1)], knife[ok.any(axis=0)]
    assert len(att) and len(knife), "the published figures admit no true counts"
    out = {}
    for measure, values in (("attendances", att), ("knife_or_sharp_attendances", knife)):
        for i, band in enumerate(BANDS):
            out[(measure, band)] = set(values[:, i].tolist())
    return out


def sumset(sets: Iterable[set[int]]) -> set[int]:
    total = {0}
    for s in sets:
        total = {a + b for a in total for b in s}
    return total


def propagate(domains: dict[Cell, set[int]], constraints: list[tuple[list[Cell], int]]) -> None:
    """Narrow the domains by every published sum (a value stays when the other cells can make up
    the rest), until nothing changes."""
    changed = True
    while changed:
        changed = False
        for cells, target in constraints:
            for i, cell in enumerate(cells):
                rest = sumset(domains[c] for j, c in enumerate(cells) if j != i)
                keep = {v for v in domains[cell] if target - v in rest}
                assert keep, f"no true count of {cell} is consistent with a published sum"
                if keep != domains[cell]:
                    domains[cell] = keep
                    changed = True


def pinned_small(domains: dict[Any, set[int]]) -> list[tuple[Any, int]]:
    return sorted((cell, next(iter(values))) for cell, values in domains.items()
                  if len(values) == 1 and 1 <= next(iter(values)) <= 4)


# ------------------------------------------------------------------------------------------------
# Within one build: bands, knife or sharp within all, months into quarters, areas into groups
# ------------------------------------------------------------------------------------------------

def within_build_data() -> dict[tuple[str, str], Counts]:
    """The issue's example (Leicestershire, one department: all ages 14 = 5 + 5 + 4), random small
    counts over January-March 2024 (2023/24 Q4), and three areas (two VRU, one not) whose quarter
    is shown whole."""
    rng = random.Random(12)
    data: dict[tuple[str, str], Counts] = {
        ("leicestershire", "2024-01"): {"under 25": (5, 2), "25 and over": (5, 0), "not known": (4, 0)}}
    for force in ("leicestershire", "derbyshire", "durham", "essex", "merseyside", "south-yorkshire"):
        for month in ("2024-01", "2024-02", "2024-03"):
            if (force, month) not in data:
                counts = {}
                for band in BANDS[1:]:
                    n = rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 7, 9])
                    counts[band] = (n, rng.randint(0, n))
                data[(force, month)] = counts
    # areas whose whole quarter is shown (0 or >= 5 everywhere), so quarter and group sums are published
    for force, counts in (("merseyside", {"under 25": (6, 5), "25 and over": (7, 0), "not known": (0, 0)}),
                          ("south-yorkshire", {"under 25": (9, 0), "25 and over": (5, 5), "not known": (5, 0)}),
                          ("durham", {"under 25": (0, 0), "25 and over": (11, 6), "not known": (0, 0)})):
        for month in ("2024-01", "2024-02", "2024-03"):
            data[(force, month)] = counts
    data[("essex", "2024-02")] = {"under 25": (6, 5), "25 and over": (7, 0), "not known": (0, 0)}
    return data


def test_no_subtraction_within_a_build_pins_a_small_count(marts_conn: psycopg.Connection, clean_warehouse: str,
                                                          tmp_path: Path) -> None:
    data = within_build_data()
    writer = Extracts(marts_conn)
    for (force, month), counts in data.items():
        writer.month(force, month, counts)
    dbt_build(clean_warehouse, tmp_path, "+vru_programme_comparison")

    published = published_mart(marts_conn)
    truth = {fm: true_values(counts) for fm, counts in data.items()}
    assert set(published) == set(truth)
    no_history = (set(), set(), set(), set())
    rule = identify_rule(truth, published, lambda fm, m: no_history, lambda fm, m: False)

    # Bands and knife or sharp within all: exact, per force-month
    domains: dict[Cell, set[int]] = {}
    for (force, month), fm in published.items():
        for (measure, band), values in feasible(fm, rule, lambda m: no_history, False).items():
            domains[(force, month, band, measure)] = values
    assert pinned_small(domains) == [], "a withheld count follows from the bands of its month"

    # Months into quarters (vru_outcomes_quarterly) and areas into groups (vru_programme_comparison):
    # every published sum is one more equation over the monthly cells
    knife = "knife_or_sharp_attendances"
    outcomes = dict_rows(marts_conn, "select * from marts.vru_outcomes_quarterly where quarter_start = '2024-01-01'")
    months = ("2024-01", "2024-02", "2024-03")
    constraints: list[tuple[list[Cell], int]] = []
    contributing: dict[str, list[str]] = defaultdict(list)
    for area in outcomes:
        force = area["force_id"]
        if (force, months[0]) not in published:
            continue
        for column, band in (("ae_knife_attendances", "all ages"), ("ae_knife_under_25", "under 25")):
            if area[column] is not None:
                constraints.append(([(force, m, band, knife) for m in months], area[column]))
        if area["ae_coverage"] == "complete":
            contributing["England and Wales"].append(force)
            contributing["VRU areas" if area["is_vru_area"] else "non-VRU areas"].append(force)  # of the quarter
    groups = dict_rows(marts_conn, "select * from marts.vru_programme_comparison where quarter_start = '2024-01-01'")
    for group in groups:
        assert group["ae_knife_areas_contributing"] == len(contributing[group["group_name"]])
        if group["ae_knife_attendances"] is not None:
            constraints.append(([(f, m, "all ages", knife) for f in contributing[group["group_name"]] for m in months],
                                group["ae_knife_attendances"]))
    assert len(constraints) >= 5  # quarters and groups were published, so the attack had sums to use
    propagate(domains, constraints)
    assert pinned_small(domains) == [], "a withheld count follows from a quarter or a group total"

    # The example is withheld whole, and the sums above never include a withheld month
    assert published[("leicestershire", "2024-01")]["attendances"] == (None,) * 4
    shown_area = {a["force_id"] for a in outcomes if a["ae_knife_attendances"] is not None}
    assert shown_area and all(published[(f, m)][knife][0] is not None for f in shown_area for m in months)


# ------------------------------------------------------------------------------------------------
# Between builds: a pending partial month, a late extract, a replaced extract
# ------------------------------------------------------------------------------------------------

def months_between(month: str, as_of: str) -> bool:
    """Pending: a partial month whose lag has not passed on `as_of` (rule 3)."""
    y, m = map(int, month.split("-"))
    m += 1 + LAG_MONTHS
    y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
    return date(y, m, 1) > date.fromisoformat(as_of)


def test_differencing_successive_builds_pins_no_small_count(marts_conn: psycopg.Connection, clean_warehouse: str,
                                                             tmp_path: Path) -> None:
    writer = Extracts(marts_conn)
    # build 1, as of 10 February 2024
    leics = {"under 25": (12, 0), "25 and over": (9, 0), "not known": (0, 0)}  # one department: complete
    writer.month("leicestershire", "2024-01", leics)
    derby_1 = {"under 25": (7, 0), "25 and over": (6, 0)}  # first of two departments only: pending
    writer.send(SITES["derbyshire"][0], "2024-01-01", "2024-01-31", derby_1)
    durham_1 = {"under 25": (8, 0), "25 and over": (7, 0)}  # October: partial, lag passed: published
    writer.send(SITES["durham"][0], "2023-10-01", "2023-10-31", durham_1)
    states: list[dict[tuple[str, str], Counts]] = []
    as_of = ("2024-02-10", "2024-02-20", "2024-03-01")
    builds: list[dict[tuple[str, str], dict[str, Any]]] = []

    def build(i: int, state: dict[tuple[str, str], Counts]) -> None:
        dbt_build(clean_warehouse, tmp_path / f"build{i}", "+ae_assault_monthly", as_of=as_of[i])
        builds.append(published_mart(marts_conn))
        states.append(state)

    build(0, {("leicestershire", "2024-01"): leics, ("derbyshire", "2024-01"): derby_1,
              ("durham", "2023-10"): durham_1})
    # build 2: Leicestershire's extract is re-sent with 2 more attendances aged 25 and over (23);
    # Derbyshire's second department sends 3 under 25 (complete); Durham's second department
    # sends 3 under 25 (the published partial October becomes complete, 15 -> 18)
    leics_2 = {**leics, "25 and over": (11, 0)}
    writer.month("leicestershire", "2024-01", leics_2)
    writer.send(SITES["derbyshire"][1], "2024-01-01", "2024-01-31", {"under 25": (3, 0)})
    writer.send(SITES["durham"][1], "2023-10-01", "2023-10-31", {"under 25": (3, 0)})
    derby_2 = {"under 25": (10, 0), "25 and over": (6, 0)}
    durham_2 = {"under 25": (11, 0), "25 and over": (7, 0)}
    build(1, {("leicestershire", "2024-01"): leics_2, ("derbyshire", "2024-01"): derby_2,
              ("durham", "2023-10"): durham_2})
    # build 3: Leicestershire re-sent again, 25 and over now 15 (27): every figure 0 or >= 5 away
    # from everything published before, so it is shown again
    leics_3 = {**leics, "25 and over": (15, 0)}
    writer.month("leicestershire", "2024-01", leics_3)
    build(2, {("leicestershire", "2024-01"): leics_3, ("derbyshire", "2024-01"): derby_2,
              ("durham", "2023-10"): durham_2})

    history: list[dict[Cell, set[int]]] = []  # what a reader has seen before build i
    seen: dict[Cell, set[int]] = defaultdict(set)
    for published in builds:
        history.append({k: set(v) for k, v in seen.items()})
        for (force, month), fm in published.items():
            for m in MEASURES:
                for band, value in zip(BANDS, fm[m], strict=True):
                    if value is not None:
                        seen[(force, month, band, m)].add(value)

    domains: list[dict[Cell, set[int]]] = []
    for i, (published, state) in enumerate(zip(builds, states, strict=True)):
        truth = {fm: true_values(counts) for fm, counts in state.items()}
        assert set(published) == set(truth)

        def hist(fm: tuple[str, str], m: str, i: int = i) -> tuple[set[int], ...]:
            return tuple(history[i].get((*fm, b, m), set()) for b in BANDS)

        def pend(fm: tuple[str, str], m: str, i: int = i, published: Any = published) -> bool:
            return bool(published[fm]["coverage"] == "partial" and months_between(fm[1], as_of[i]))

        rule = identify_rule(truth, published, hist, pend)
        cells: dict[Cell, set[int]] = {}
        for fm, row in published.items():
            bound = max([12, *(v + 5 for cell, vs in history[i].items() if cell[:2] == fm for v in vs)])
            for (m, band), values in feasible(row, rule, lambda m, fm=fm: hist(fm, m), pend(fm, "attendances"),
                                              bound).items():
                cells[(*fm, band, m)] = values
        assert pinned_small(cells) == [], f"build {i + 1}: a withheld count follows from its own figures"
        domains.append(cells)

    # Differencing: for every pair of builds and every cell, the change must not come down to one
    # value from 1 to 4 (in either direction)
    disclosed = []
    for i, j in itertools.combinations(range(len(builds)), 2):
        for cell in domains[i].keys() & domains[j].keys():
            changes = {b - a for a in domains[i][cell] for b in domains[j][cell]}
            if len(changes) == 1 and 1 <= abs(next(iter(changes))) <= 4:
                disclosed.append((i + 1, j + 1, cell, next(iter(changes))))
    assert disclosed == [], "differencing two builds reveals a small count"

    # What happened, rule by rule: the pending partial month was withheld, then shown complete;
    # the late and the re-sent extracts withheld the month they changed by 1 to 4; a change of 6
    # shows the month again
    assert builds[0][("derbyshire", "2024-01")]["attendances"] == (None,) * 4
    assert builds[1][("derbyshire", "2024-01")]["attendances"] == (16, 10, 6, 0)
    assert builds[0][("durham", "2023-10")]["attendances"] == (15, 8, 7, 0)
    assert builds[1][("durham", "2023-10")]["attendances"] == (None,) * 4
    assert builds[0][("leicestershire", "2024-01")]["attendances"] == (21, 12, 9, 0)
    assert builds[1][("leicestershire", "2024-01")]["attendances"] == (None,) * 4
    assert builds[2][("leicestershire", "2024-01")]["attendances"] == (27, 12, 15, 0)
    recorded = marts_conn.execute(
        "select value from restricted.ae_published_cells where force_id = 'leicestershire' "
        "and age_band = 'all ages' and measure = 'attendances' order by value").fetchall()
    assert recorded == [(21,), (27,)]  # the history of what was published, in the restricted schema


# ------------------------------------------------------------------------------------------------
# Audit tables, the report, alerts, the task's result and log
# ------------------------------------------------------------------------------------------------

LOADED, SET_ASIDE = 37, 29  # distinctive row counts of the extract below


def extract_with_counts(site: str, month: date) -> bytes:
    """A real-looking extract of LOADED good rows and SET_ASIDE rows with a method outside the codes."""
    rows = list(csv.reader(io.StringIO(sample_istv.extract(site, month).decode("utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    method = header.index("assault_method")
    out = [header]
    for i in range(LOADED + SET_ASIDE):
        row = list(body[i % len(body)])
        if i >= LOADED:
            row[method] = "07"
        out.append(row)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(out)
    return buffer.getvalue().encode("utf-8")


@pytest.fixture
def landed(conn: psycopg.Connection, clean_warehouse: str, tmp_path: Path) -> dict[str, Any]:
    """One extract taken in by the real landing code (its result as the task would return it),
    then the raw A&E suite run over the restricted table (its failures as an alert would carry)."""
    from vru.validation import validate

    landing = tmp_path / "landing"
    landing.mkdir()
    site = SITES["leicestershire"][0]
    data = extract_with_counts(site, date(2019, 6, 1))
    (landing / "istv_extract.csv").write_bytes(data)
    reference = ae.Reference.from_seeds(settings().dbt_project_dir)
    summary = process_landing(conn, landing, Archive(tmp_path / "archive"), reference, "disclosure-run", NO_SETTLE)
    assert [(f.outcome, f.rows_loaded, f.rows_quarantined) for f in summary.files] == [("loaded", LOADED, SET_ASIDE)]
    # a row the raw suite fails on (arrival outside the period), so failures are reported
    conn.execute("update restricted.ae_attendances set arrival_at = arrival_at + interval '40 days' "
                 "where line_no = 2")
    outcome = validate("raw", DATASET, "restricted.ae_attendances", warehouse_url=clean_warehouse,
                       docs_dir=tmp_path / "docs", run_id="disclosure-run")
    assert not outcome.success
    return {"summary": summary, "outcome": outcome, "size": len(data), "docs": tmp_path / "docs"}


COUNTS = re.compile(rf"(?<![\d:.\-/]){'|'.join(map(str, (LOADED, SET_ASIDE, LOADED + SET_ASIDE)))}(?![\d:\-/])")


def test_bi_role_reads_no_per_extract_ae_counts(landed: dict[str, Any], clean_warehouse: str) -> None:
    bi_url = warehouse.grant_bi(clean_warehouse, "disclosure_probe", "disclosure-probe-password")
    forbidden = {LOADED, SET_ASIDE, LOADED + SET_ASIDE, landed["size"]}
    found = []
    with psycopg.connect(bi_url) as bi:
        relations = [r for (r,) in bi.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'audit' and c.relkind in ('r', 'v', 'm') "
            "and has_table_privilege(c.oid, 'select') order by 1")]
        for relation in relations:
            with bi.cursor(row_factory=psycopg.rows.dict_row) as cur:
                for row in cur.execute(f"select * from audit.{relation}"):
                    text = json.dumps(row, default=str)
                    if DATASET not in text and "istv" not in text and "ae_" not in text:
                        continue
                    for column, value in row.items():
                        if column.endswith("_id") or column == "duplicate_of":
                            continue
                        numbers = ([value] if isinstance(value, int) and not isinstance(value, bool) else
                                   [int(n) for n in re.findall(r"\d+", json.dumps(value))]
                                   if isinstance(value, (dict, list)) else [])
                        found += [(relation, column, n) for n in numbers if n in forbidden]
                        if column in ("observed",) and row.get("stage") != "marts" and value:
                            found.append((relation, column, "counts of a restricted table"))
    assert found == [], "the BI role reads A&E row counts per extract"
    # it still reads the quality results, and which A&E files arrived (without counts)
    assert {"loads", "validation_results", "incidents", "ae_extracts_received"} <= set(relations)


def test_report_alerts_and_task_results_carry_no_per_extract_counts(
        landed: dict[str, Any], clean_warehouse: str, caplog: pytest.LogCaptureFixture, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from vru.incidents import Incident, Origin, _email_body, _webhook_payload
    from vru.report import write_report

    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    page = write_report(run_id="disclosure-run", cfg=settings()).read_text(encoding="utf-8")
    assert "A&amp;E extracts received" in page and "istv_extract.csv" in page
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert [c for c in cells if COUNTS.fullmatch(c.strip()) or (COUNTS.search(c) and "row" in c)] == []
    assert not re.search(rf"\b{LOADED}\b row|\b{SET_ASIDE}\b row", page)

    # the validation failures of the restricted table are what the failed task's alert carries
    failures = "\n".join(landed["outcome"].critical_failures)
    assert "Arrival within the reporting period" in failures
    assert not re.search(r"\d+ of \d+ rows|\d+ offending rows|observed \d+", failures), failures
    incident = Incident("task:vru_transform.validate_raw", "validation_failed", "A&E: critical checks failed",
                        failures, DATASET, "raw")
    origin = Origin(run_id="disclosure-run")
    payload = json.dumps(_webhook_payload(incident, 1, datetime.now(UTC), origin, settings()))
    body = _email_body(incident, 1, datetime.now(UTC), origin, settings())
    for text in (payload, body):
        assert not COUNTS.search(re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.+]*", "", text)), text
    # no Data Docs of the restricted table (they show counts)
    docs = [p for p in landed["docs"].rglob("*") if p.is_file()]
    assert not any("ae.attendances" in p.read_text(errors="replace") for p in docs)

    # what the take_in task returns (XCom) and logs: files and extracts, not rows
    result = landed["summary"].to_dict()
    assert not COUNTS.search(json.dumps(result)), result
    assert result["extracts_with_rows_set_aside"] == 1
    with caplog.at_level(logging.INFO, logger="vru.landing"):
        landing = tmp_path / "again"
        landing.mkdir()
        (landing / "istv_again.csv").write_bytes(extract_with_counts(SITES["leicestershire"][0], date(2019, 7, 1)))
        with psycopg.connect(clean_warehouse, autocommit=True) as conn:
            process_landing(conn, landing, Archive(tmp_path / "archive2"),
                            ae.Reference.from_seeds(settings().dbt_project_dir), "disclosure-run-2", NO_SETTLE)
    # the log goes through logging (caplog) or, under Airflow's structlog set-up, to stdout
    captured = capsys.readouterr()
    log = "\n".join([*caplog.messages, captured.out, captured.err])
    assert "istv_again.csv: loaded" in log
    assert not COUNTS.search(re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.]*Z?|\d{4}-\d\d-\d\d", "", log)), log
