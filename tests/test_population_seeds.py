"""The population and VRU membership seeds, read as files (no database): ONS's totals, the areas,
membership by year, and that the committed seeds are what the scripts make from the shared data
(when that folder is present: CI runs on a fresh clone without it)."""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "dbt_project" / "seeds"
# the published file the seed is made from, kept in the repo (a fresh clone has no ../shared)
SOURCE = REPO / "tests" / "fixtures" / "population"
# England and Wales, all ages, as ONS publishes them (pfa_mid_year/README.md).
ONS_ENGLAND_AND_WALES = {2018: 59_115_809, 2019: 59_439_840, 2020: 59_719_724, 2021: 59_641_829,
                         2022: 60_245_218, 2023: 60_854_727}
ORIGINAL_18 = {"metropolitan", "greater-manchester", "merseyside", "west-midlands", "west-yorkshire",
               "south-yorkshire", "northumbria", "thames-valley", "kent", "lancashire", "essex",
               "avon-and-somerset", "nottinghamshire", "leicestershire", "bedfordshire", "sussex", "hampshire",
               "south-wales"}


def seed(name: str) -> list[dict[str, str]]:
    with open(SEEDS / f"{name}.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FORCES = {r["force_id"] for r in seed("force_areas")}


def test_population_seed_totals_equal_ons_and_cover_every_area_each_year() -> None:
    rows = seed("population_mid_year")
    by_year: dict[int, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_year[int(r["mid_year"])].append(r)
    assert sorted(by_year) == sorted(ONS_ENGLAND_AND_WALES)
    for year, total in ONS_ENGLAND_AND_WALES.items():
        assert sum(int(r["all_ages"]) for r in by_year[year]) == total, year
        assert sorted(r["force_id"] for r in by_year[year]) == sorted(FORCES), year
        assert len({r["vintage"] for r in by_year[year]}) == 1, year
        assert all(0 < int(r["age_0_24"]) < int(r["all_ages"]) for r in by_year[year]), year
    codes = {r["area_code"]: r["force_id"] for r in seed("force_area_codes")}
    assert all(codes[r["area_code"]] == r["force_id"] for r in rows)
    # Greater London = Metropolitan + City of London (mid-2023: about 8.9 million)
    london = sum(int(r["all_ages"]) for r in by_year[2023] if r["force_id"] in ("metropolitan", "city-of-london"))
    assert 8_500_000 < london < 9_300_000


def test_population_seed_is_the_published_file_copied_exactly() -> None:
    built = script("make_population_seed").build(SOURCE)
    committed = seed("population_mid_year")
    assert [{k: str(v) for k, v in r.items()} for r in built] == committed
    with open(SOURCE / "pfa_population_all_ages_and_0_24_2018_2023.csv", encoding="utf-8", newline="") as handle:
        source = {(r["pfa24_code"], r["year"]): (r["all_ages"], r["age_0_24"]) for r in csv.DictReader(handle)}
    assert {(r["area_code"], r["mid_year"]): (r["all_ages"], r["age_0_24"]) for r in committed} == source


def test_membership_seed_by_year() -> None:
    rows = seed("vru_membership_years")
    member = {(r["force_id"], int(r["fy_start"])): r["is_vru"] == "true" for r in rows}
    years = sorted({y for _, y in member})
    assert years == list(range(2019, 2026)) and len(rows) == 43 * len(years)
    counts = Counter(y for (_, y), is_vru in member.items() if is_vru)
    assert counts == {y: 18 if y < 2022 else 20 for y in years}
    for year in years:
        assert {f for (f, y), v in member.items() if y == year and v} == (
            ORIGINAL_18 | ({"cleveland", "humberside"} if year >= 2022 else set()))
    assert member[("cleveland", 2021)] is False and member[("cleveland", 2022)] is True
    assert member[("humberside", 2021)] is False and member[("humberside", 2022)] is True
    assert member[("city-of-london", 2023)] is False  # London's VRU is the Metropolitan area's


def test_membership_allocations_are_cited_never_guessed() -> None:
    rows: list[dict[str, Any]] = seed("vru_membership_years")
    for r in rows:
        where = f"{r['force_id']} {r['financial_year']}"
        if r["allocation_gbp"]:
            assert r["is_vru"] == "true" and r["allocation_source"] and r["allocation_is_approximate"], where
            if r["fy_start"] != "2019":  # 2019/20 banded figures come from docs/domain.md (force_areas)
                assert r["allocation_source"].startswith("http") and r["allocation_quote"], where
        elif r["is_vru"] == "true":
            assert r["allocation_note"], where  # says why there is no figure
    allocation = {(r["force_id"], r["fy_start"]): r["allocation_gbp"] for r in rows}
    # lower bounds, multi-year sums and VRU+Grip totals are not allocations
    assert allocation[("west-yorkshire", "2020")] == allocation[("west-yorkshire", "2025")] == ""
    assert allocation[("humberside", "2022")] == allocation[("cleveland", "2023")] == ""
    assert allocation[("metropolitan", "2023")] == "9497400" and allocation[("essex", "2024")] == "1512572"
    # 2019/20 as the force_areas seed held it, and the same joining dates as its vru_start_date
    # (which the monthly marts use): the two seeds never disagree on membership
    joined = {r["force_id"]: r["vru_joined"] for r in rows}
    for area in seed("force_areas"):
        assert joined[area["force_id"]] == area["vru_start_date"], area["force_id"]
        if area["vru_allocation_2019_20_gbp"]:
            assert float(allocation[(area["force_id"], "2019")]) == float(area["vru_allocation_2019_20_gbp"])
