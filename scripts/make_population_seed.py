"""Copy the ONS mid-year population estimates by police force area into the dbt seed.

    .venv/bin/python scripts/make_population_seed.py [path/to/pfa_mid_year]

Reads `pfa_population_all_ages_and_0_24_2018_2023.csv` from the shared data folder
(../shared/data/population/pfa_mid_year/, built there by build_pfa.py from ONS local authority
estimates; its README gives the sources and caveats) and writes
dbt_project/seeds/population_mid_year.csv: one row per force area (the project's force ids, matched
on the ONS area code through seeds/force_area_codes.csv) and mid-year, with all ages and ages 0-24
copied exactly, and which ONS edition (vintage) each year is. The seed is committed: CI runs on a
fresh clone without the shared folder. Fails, naming the code or year, on an area code the codes
seed does not know, a year without a vintage below, or England and Wales totals that differ from
ONS's own.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "dbt_project" / "seeds"
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "population" / "pfa_mid_year"
SOURCE_FILE = "pfa_population_all_ages_and_0_24_2018_2023.csv"
OUT = SEEDS / "population_mid_year.csv"

# Which ONS edition each year's figures come from (pfa_mid_year/README.md, "Sources" and "Caveats").
VINTAGES = {
    2018: "ONS mid-2018 estimates, original edition (before Census 2021; later revised by ONS)",
    2019: "ONS mid-2019 estimates, original edition (before Census 2021; later revised by ONS)",
    2020: "ONS mid-2020 estimates, original edition (before Census 2021; later revised by ONS)",
    2021: "ONS mid-2021 estimates (Census 2021 based, 2021 geography)",
    2022: "ONS mid-2022 estimates, revised edition of July 2024",
    2023: "ONS mid-2023 estimates, edition of July 2024",
}
FILES = {
    2018: "ukmidyearestimates20182019ladcodes.xls",
    2019: "ukmidyearestimates20192020ladcodes.xls",
    2020: "ukpopestimatesmid2020on2021geography.xls",
    2021: "ukpopestimatesmid2021on2021geographyfinal.xls",
    2022: "mye22tablesew2021geogs.xlsx",
    2023: "lad_single_year_age_mid2023_policyengine_age.csv (Nomis extract)",
}
# England and Wales totals as ONS publishes them (pfa_mid_year/README.md "Checks").
ONS_ENGLAND_AND_WALES = {2018: 59_115_809, 2019: 59_439_840, 2020: 59_719_724, 2021: 59_641_829,
                         2022: 60_245_218, 2023: 60_854_727}
HEADER = ["force_id", "area_code", "mid_year", "all_ages", "age_0_24", "vintage", "source"]


def build(source_dir: Path) -> list[dict[str, str | int]]:
    with open(SEEDS / "force_area_codes.csv", encoding="utf-8", newline="") as handle:
        force_of = {r["area_code"]: r["force_id"] for r in csv.DictReader(handle)}
    rows: list[dict[str, str | int]] = []
    with open(source_dir / SOURCE_FILE, encoding="utf-8", newline="") as handle:
        for line, r in enumerate(csv.DictReader(handle), start=2):
            code, year = r["pfa24_code"], int(r["year"])
            if code not in force_of:
                raise SystemExit(f"{SOURCE_FILE} line {line}: area code {code} ({r['pfa_name']}) is not in "
                                 "seeds/force_area_codes.csv; add it there first")
            if year not in VINTAGES:
                raise SystemExit(f"{SOURCE_FILE} line {line}: mid-{year} has no vintage in VINTAGES; add its edition")
            rows.append({
                "force_id": force_of[code], "area_code": code, "mid_year": year,
                "all_ages": int(r["all_ages"]), "age_0_24": int(r["age_0_24"]), "vintage": VINTAGES[year],
                "source": f"ONS mid-year estimates by local authority ({FILES[year]}) summed to police force "
                          "areas by ../shared/data/population/pfa_mid_year/build_pfa.py; OGL v3.0",
            })
    for year, total in ONS_ENGLAND_AND_WALES.items():
        got = sum(int(r["all_ages"]) for r in rows if r["mid_year"] == year)
        if got != total:
            raise SystemExit(f"mid-{year}: England and Wales total {got:,} differs from ONS's {total:,}")
    return sorted(rows, key=lambda r: (str(r["force_id"]), int(r["mid_year"])))


def main(argv: list[str]) -> None:
    rows = build(Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE)
    with open(OUT, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT.relative_to(REPO)}: {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv)
