"""The knife crime dbt models (stg_home_office__knife_offences, knife_crime_quarterly) built by dbt
against a real PostgreSQL (embedded) from two hand-made editions.

The dbt unit tests (dbt_project/models/**/_*unit_tests*.yml, marts/home_office/_home_office__models.yml)
cover the logic on fixtures; this checks what they cannot: the real seeds, the contract, the data tests, and that an
offence missing from the knife_offence_groups seed fails the build naming the offence.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from vru.config import dbt_env

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
DATASET = "home_office.knife_offences"
OFFENCES = (
    "Homicide",
    "Attempted murder",
    "Threats to kill",
    "Assault with injury",
    "Assault with intent to cause serious harm",
    "Robbery of business property",
    "Robbery of personal property",
    "Rape",
    "Sexual assault",
)
FORCES = {"Durham": "durham", "Greater Manchester": "greater-manchester"}
DURHAM_MID_2019 = 636_897  # seeds/population_mid_year.csv: the estimate of 2019/20


def edition(load_id: int, quarters: list[tuple[int, int]], changes: dict[tuple[str, int, int, str], int | None],
            ) -> list[tuple[object, ...]]:
    """Every offence of every force and quarter, 10 each unless `changes` says otherwise (None = withheld)."""
    rows: list[tuple[object, ...]] = []
    for name, force_id in FORCES.items():
        for fy_start, quarter in quarters:
            for offence in OFFENCES:
                value = changes.get((force_id, fy_start, quarter, offence), 10)
                rows.append((load_id, "0" * 64, None, len(rows) + 2, f"{fy_start}/{(fy_start + 1) % 100:02d}",
                             fy_start, quarter, name, force_id, offence, value, None if value is not None else "[x]"))
    return rows


def load(conn: psycopg.Connection, load_id: int, rows: list[tuple[object, ...]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.knife_offences (load_id, sha256, sheet, line_no, financial_year, fy_start, "
            "financial_quarter, force_name, force_id, offence, offences, value_marker) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        cur.execute(
            "insert into audit.editions (load_id, dataset, url, file_format, sha256, size_bytes, figures, "
            "figures_added, figures_revised, figures_dropped) values (%s, %s, 'https://example.org/knife.ods', "
            "'ods', %s, 1, %s, 0, 0, 0)", (load_id, DATASET, "0" * 64, len(rows)))


def dbt_build(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # target and logs outside the checkout: the checkout's target/manifest.json is the DAG's.
    return subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", "+knife_crime_quarterly", "--indirect-selection", "cautious"],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def knife_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the dbt-built knife relations are dropped afterwards (other tests make their own)."""
    yield conn
    conn.execute("drop view if exists staging.stg_home_office__knife_offences cascade")
    conn.execute("drop table if exists marts_build.knife_crime_quarterly cascade")


def test_build_takes_the_latest_editions_figures(knife_conn: psycopg.Connection, clean_warehouse: str,
                                                  tmp_path: Path) -> None:
    # edition 1: 2017/18 Q3 and 2019/20 Q1-Q2; edition 2 drops 2017/18, revises one figure of 2019/20 Q2,
    # withholds one and adds 2020/21 Q1
    load(knife_conn, 1, edition(1, [(2017, 3), (2019, 1), (2019, 2)], {}))
    load(knife_conn, 2, edition(2, [(2019, 1), (2019, 2), (2020, 1)], {
        ("durham", 2019, 2, "Robbery of personal property"): 13,
        ("durham", 2020, 1, "Rape"): None,
    }))

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]

    columns = ("total_offences", "robbery", "rape", "coverage", "withheld_figures", "rate_per_100k", "population",
               "population_source",
               "is_comparable", "series_breaks", "is_revised", "edition_load_id")
    mart = {(r[0], r[1], r[2]): dict(zip(columns, r[3:], strict=True)) for r in knife_conn.execute(
        f"select force_id, fy_start, financial_quarter, {', '.join(columns)} from marts_build.knife_crime_quarterly")}
    assert len(mart) == 2 * 4
    # only in the old edition: still current
    assert mart[("durham", 2017, 3)]["total_offences"] == 90 and mart[("durham", 2017, 3)]["edition_load_id"] == 1
    revised = mart[("durham", 2019, 2)]
    assert (revised["total_offences"], revised["robbery"], revised["is_revised"]) == (93, 23, True)
    assert revised["rate_per_100k"] == round(Decimal(93 * 100_000) / DURHAM_MID_2019, 2)
    assert (revised["population"], revised["population_source"]) == (
        DURHAM_MID_2019, "ONS mid-2019 estimates, original edition (before Census 2021; later revised by ONS), "
                         "by police force area")
    before_estimates = mart[("durham", 2017, 3)]  # 2017/18: before the first estimate (mid-2018)
    assert (before_estimates["population"], before_estimates["rate_per_100k"]) == (None, None)
    assert mart[("durham", 2019, 1)]["is_revised"] is False
    withheld = mart[("durham", 2020, 1)]
    assert (withheld["coverage"], withheld["withheld_figures"], withheld["rape"], withheld["total_offences"],
            withheld["rate_per_100k"]) == ("partial", 1, None, 80, None)
    assert withheld["series_breaks"] == "ndqis_2020" and withheld["is_comparable"] is True
    gmp = mart[("greater-manchester", 2017, 3)]
    assert (gmp["is_comparable"], gmp["series_breaks"]) == (False, "gmp_undercount_to_2017")
    assert mart[("greater-manchester", 2019, 2)]["is_comparable"] is False  # iOPS, from July 2019

    first = knife_conn.execute(
        "select offences, first_published_offences, editions from staging.stg_home_office__knife_offences "
        "where force_id = 'durham' and fy_start = 2019 and financial_quarter = 2 "
        "and offence = 'Robbery of personal property'").fetchone()
    assert first == (13, 10, 2)


def test_an_unmapped_offence_fails_the_build_naming_it(knife_conn: psycopg.Connection, clean_warehouse: str,
                                                       tmp_path: Path) -> None:
    rows = edition(1, [(2019, 1)], {})
    rows.append((1, "0" * 64, None, 999, "2019/20", 2019, 1, "Durham", "durham",
                 "Possession of article with blade or point", 4, None))
    load(knife_conn, 1, rows)

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode != 0
    assert "FAIL 1 assert_knife_offences_all_mapped" in done.stdout, done.stdout[-5000:]
    assert ('Knife offences missing from seeds/knife_offence_groups.csv (add each with its offence group): '
            '"Possession of article with blade or point"') in done.stdout
    assert "SKIP relation marts_build.knife_crime_quarterly" in done.stdout
