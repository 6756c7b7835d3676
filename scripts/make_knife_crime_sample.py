"""Generate the bundled knife crime sample: two editions of the Home Office open data table.

    .venv/bin/python scripts/make_knife_crime_sample.py   # rewrites plugins/vru_sample/data/knife_crime/

SYNTHETIC FIGURES, NOT PUBLISHED ONES. No real Home Office table can be fetched here, so the
figures are made up, deterministically (seeded), at realistic levels: England and Wales totals per
financial year near the published ones (about 40,000 in 2017/18, 44,500 in 2018/19, 46,000 in
2019/20, 41,000 in 2020/21), split across the 43 police force areas by 2011 Census population
weighted towards the metropolitan forces, and across the offences in roughly the published mix
(robbery and assault with injury or intent most of it, homicide about 0.6%).

The layout follows the open data table as best known (long format: Financial Year, Financial
Quarter, Force Name, Offence, Number of Offences):
* edition 1 (CSV, 2017/18 Q1 - 2020/21 Q4): England and Wales totals rows, footnotes below the
  data, and Greater Manchester's 2020/21 Q4 withheld ("..");
* edition 2 (ODS, as gov.uk publishes accessible spreadsheets: a cover sheet, a notes sheet, then
  a data sheet with title lines above the header and re-titled columns, e.g. "Number of offences
  [note 1]"): adds 2021/22 Q1, fills Greater Manchester's withheld quarter and revises a few
  2020/21 figures, as a revised edition would.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "plugins" / "vru_sample" / "data" / "knife_crime"
SEEDS = REPO / "dbt_project" / "seeds"
CENSUS = REPO / "dbt_project" / "seeds" / "population_census_2011.csv"

YEAR_TOTALS = {2017: 40_000, 2018: 44_500, 2019: 46_000, 2020: 41_000, 2021: 45_000}
QUARTER_SHARE = (0.25, 0.26, 0.25, 0.24)
OFFENCES = (  # offence as published, share of knife offences
    ("Homicide", 0.006),
    ("Attempted murder", 0.016),
    ("Threats to kill", 0.10),
    ("Assault with injury", 0.25),
    ("Assault with intent to cause serious harm", 0.19),
    ("Robbery of business property", 0.035),
    ("Robbery of personal property", 0.39),
    ("Rape", 0.008),
    ("Sexual assault", 0.005),
)
URBAN_WEIGHT = {"metropolitan": 2.3, "city-of-london": 3.0, "west-midlands": 1.7,
                "greater-manchester": 1.3, "merseyside": 1.4, "west-yorkshire": 1.2,
                "south-yorkshire": 1.1, "northumbria": 0.9, "thames-valley": 0.9}
HEADER_CSV = ["Financial Year", "Financial Quarter", "Force Name", "Offence", "Number of Offences"]
HEADER_ODS = ["Financial year", "Financial quarter", "Force name", "Offence description",
              "Number of offences [note 1]"]


def _forces() -> list[tuple[str, str]]:
    """(force_id, name as the Home Office tables spell it), in the seed's order."""
    names: dict[str, str] = {}
    with open(SEEDS / "force_name_variants.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if "Home Office" in row["source"]:
                names.setdefault(row["force_id"], row["name_variant"])
    with open(SEEDS / "force_areas.csv", encoding="utf-8", newline="") as handle:
        return [(r["force_id"], names[r["force_id"]]) for r in csv.DictReader(handle)]


def _population() -> dict[str, int]:
    with open(CENSUS, encoding="utf-8", newline="") as handle:
        return {r["force_id"]: int(r["all_residents"]) for r in csv.DictReader(handle)}


def _quarters(last: tuple[int, int]) -> list[tuple[int, int]]:
    return [(y, q) for y in range(2017, last[0] + 1) for q in range(1, 5) if (y, q) <= last]


def figures(edition: int) -> dict[tuple[str, int, int, str], int | None]:
    """(force_id, fy_start, quarter, offence) -> count (None = withheld) for an edition."""
    rng = random.Random(20191)  # same draws for both editions: edition 2 revises, it does not redraw
    forces = _forces()
    population = _population()
    weights = {f: population[f] * URBAN_WEIGHT.get(f, 0.75) for f, _ in forces}
    total_weight = sum(weights.values())
    cells: dict[tuple[str, int, int, str], int | None] = {}
    for fy, q in _quarters((2021, 1)):
        national = YEAR_TOTALS[fy] * QUARTER_SHARE[q - 1]
        for force_id, _ in forces:
            expected_force = national * weights[force_id] / total_weight
            for offence, share in OFFENCES:
                mean = expected_force * share
                value = max(0, round(rng.gauss(mean, max(1.0, mean ** 0.5))))
                cells[(force_id, fy, q, offence)] = value
    if edition == 1:
        cells = {k: v for k, v in cells.items() if (k[1], k[2]) <= (2020, 4)}
        for offence, _ in OFFENCES:
            cells[("greater-manchester", 2020, 4, offence)] = None
    else:
        revise = random.Random(2)
        keys = sorted(k for k in cells if k[1] == 2020)
        for key in revise.sample(keys, 40):
            cells[key] = max(0, (cells[key] or 0) + revise.choice((-3, -2, -1, 1, 2, 4)))
    return cells


def _rows(edition: int) -> list[list[object]]:
    names = dict(_forces())
    cells = figures(edition)
    rows: list[list[object]] = []
    periods = sorted({(k[1], k[2]) for k in cells})
    for fy, q in periods:
        year = f"{fy}/{(fy + 1) % 100:02d}"
        quarter: object = q if edition == 1 else f"Q{q}"
        for force_id, name in names.items():
            for offence, _ in OFFENCES:
                value = cells[(force_id, fy, q, offence)]
                rows.append([year, quarter, name, offence, ".." if value is None else value])
        for offence, _ in OFFENCES:
            total = sum(cells[(f, fy, q, offence)] or 0 for f in names)
            rows.append([year, quarter, "England and Wales", offence, total])
    return rows


NOTES = [
    "Note 1: Figures are offences involving a knife or sharp instrument recorded by the police.",
    "Note 2: '..' = figure not supplied by the force at the time of publication.",
    "Source: SYNTHETIC sample for the VRU monitoring pipeline (not published figures).",
]


def write_csv(path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER_CSV)
    writer.writerows(_rows(1))
    writer.writerow([])
    for note in NOTES:
        writer.writerow([note])
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def write_ods(path: Path) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    def row(values: list[object]) -> TableRow:
        tr = TableRow()
        for value in values:
            if isinstance(value, int):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
            tr.addElement(cell)
        return tr

    doc = OpenDocumentSpreadsheet()
    cover = Table(name="Cover_sheet")
    for line in ("Police recorded crime: offences involving a knife or sharp instrument, by police "
                 "force area (SYNTHETIC SAMPLE)", "This spreadsheet contains a notes sheet and one data sheet."):
        cover.addElement(row([line]))
    doc.spreadsheet.addElement(cover)
    notes = Table(name="Notes")
    notes.addElement(row(["Note number", "Note text"]))
    for i, note in enumerate(NOTES, start=1):
        notes.addElement(row([f"Note {i}", note.split(": ", 1)[1]]))
    doc.spreadsheet.addElement(notes)
    data = Table(name="Data")
    data.addElement(row(["Table 1: Knife or sharp instrument offences by police force area, "
                         "financial year and quarter"]))
    data.addElement(row(["This worksheet contains one table. Some cells refer to notes on the Notes sheet."]))
    data.addElement(row(HEADER_ODS))
    for values in _rows(2):
        data.addElement(row(values))
    doc.spreadsheet.addElement(data)
    buffer = io.BytesIO()
    doc.write(buffer)
    path.write_bytes(buffer.getvalue())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "knife-crime-edition-1.csv")
    write_ods(OUT / "knife-crime-edition-2.ods")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
