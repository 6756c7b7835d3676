"""Generate the bundled HES sample: two editions of NHS Digital's HES admitted patient care
"External Causes" table, in the layout NHS Digital publishes (as in
tests/fixtures/nhs/hosp-epis-stat-admi-ext-caus-2022-23-tab.xlsx).

    .venv/bin/python scripts/make_hes_sample.py   # rewrites plugins/vru_sample/data/hes/

SYNTHETIC FIGURES, NOT PUBLISHED ONES. The figures are made up, deterministically (seeded), in
the shape of the published 2022-23 table: X99 (assault by sharp object) finished consultant
episodes in the 3,000s; admissions about 98% of them, emergencies about 90% of admissions; about
90% male; the ages spread over the published bands like the 2022-23 row, a few episodes of
unknown age left out. The layout is the real one: one sheet `External Cause`, title lines naming
the financial year, the header row `Cause Code: 3 character code and description` (the
description in the cell beside the code), the same 50 columns (single ages 0 and 15-19, five-year
bands, 90+, and a second Emergency/Elective/Other group under "Zero bed day cases"), a `Total`
row, one row per 3-character code (a few accidents, every assault code X85-Y09, a few others) and
a footnote. One financial year per edition, as NHS Digital publishes them:
* edition 1: 2020-21;
* edition 2: 2021-22 (the real 2022-23 table follows it, in the tests).
One assault code row (Y05) has an empty "Gender Unknown" cell: not available, as in real tables.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "plugins" / "vru_sample" / "data" / "hes"

EDITIONS = {1: 2020, 2: 2021}  # edition -> the financial year it publishes (fy_start)
X99_FCES = {2020: 3_412, 2021: 3_688}  # synthetic
SHEET = "External Cause"
AGES = ["Age 0", "Age 1-4", "Age 5-9", "Age 10-14", "Age 15", "Age 16", "Age 17", "Age 18", "Age 19",
        *(f"Age {low}-{low + 4}" for low in range(20, 90, 5)), "Age 90+"]
HEADER = ["Cause Code: 3 character code and description", "", "", "", "", "", "",
          "Finished consultant episodes", "Admissions", "Male", "Female", "Gender Unknown", "Emergency",
          "Waiting list", "Planned", "Other", "Mean time waited", "Median time waited", "Mean length of stay",
          "Median length of stay", "Mean age", *AGES, "Day case", "FCE bed days", "Emergency", "Elective",
          "Other"]
# The measures the feed loads, by their position in HEADER (the first "Emergency").
MEASURE_COLUMNS = {"finished_consultant_episodes": 7, "admissions": 8, "male": 9, "female": 10,
                   "gender_unknown": 11, "emergency_admissions": 12,
                   **{"age_" + a[4:].replace("-", "_").replace("+", "_plus"): 21 + i for i, a in enumerate(AGES)}}
# How episodes spread over the age columns: the published 2022-23 X99 row's shape.
AGE_SHAPE = [1, 6, 2, 63, 103, 128, 164, 179, 159, 634, 526, 476, 414, 299, 216, 171, 76, 66, 18, 18, 8, 7, 4, 10]
ASSAULT = [
    ("X85", "Assault by drugs, medicaments and biological substances", 80),
    ("X86", "Assault by corrosive substance", 30),
    ("X87", "Assault by pesticides", 1),
    ("X88", "Assault by gases and vapours", 6),
    ("X89", "Assault by other specified chemicals and noxious substances", 9),
    ("X90", "Assault by unspecified chemical or noxious substance", 11),
    ("X91", "Assault by hanging, strangulation and suffocation", 160),
    ("X92", "Assault by drowning and submersion", 3),
    ("X93", "Assault by handgun discharge", 14),
    ("X94", "Assault by rifle, shotgun and larger firearm discharge", 20),
    ("X95", "Assault by other and unspecified firearm discharge", 45),
    ("X96", "Assault by explosive material", 2),
    ("X97", "Assault by smoke, fire and flames", 25),
    ("X98", "Assault by steam, hot vapours and hot objects", 12),
    ("X99", "Assault by sharp object", 0),  # X99_FCES
    ("Y00", "Assault by blunt object", 2_300),
    ("Y01", "Assault by pushing from high place", 15),
    ("Y02", "Assault by pushing or placing victim before moving object", 10),
    ("Y03", "Assault by crashing of motor vehicle", 70),
    ("Y04", "Assault by bodily force", 9_800),
    ("Y05", "Sexual assault by bodily force", 90),
    ("Y06", "Neglect and abandonment", 40),
    ("Y07", "Other maltreatment syndromes", 600),
    ("Y08", "Assault by other specified means", 2_600),
    ("Y09", "Assault by unspecified means", 1_450),
]
OTHERS_BEFORE = [("V01", "Pedestrian injured in collision with pedal cycle", 320),
                 ("W26", "Contact with knife, sword or dagger", 5_400)]
OTHERS_AFTER = [("Y10", "Poisoning by and exposure to nonopioid analgesics, antipyretics and antirheumatics, "
                        "undetermined intent", 1_900)]
FOOTNOTE = ("§ - zero bed day cases. In the HES data, day cases are identified by a field called patient "
            "classification. SYNTHETIC sample: these figures were made up for the VRU pipeline's demo.")
BLANK_CELL = ("Y05", "gender_unknown")  # an empty cell: not available


def _year(fy_start: int) -> str:
    return f"{fy_start}-{(fy_start + 1) % 100:02d}"


def _row(fces: int, rng: random.Random) -> list[int | float]:
    """The 43 figures of a code row (FCEs to the zero bed day Other), in HEADER's order."""
    admissions = round(fces * rng.uniform(0.97, 0.99))
    male = round(fces * rng.uniform(0.88, 0.92))
    unknown = min(fces - male, rng.randint(0, 5))
    emergency = round(admissions * rng.uniform(0.88, 0.92))
    waiting = round((admissions - emergency) * 0.8)
    planned = round((admissions - emergency - waiting) * 0.7)
    aged = fces - rng.randint(0, max(1, fces // 100))  # a few of unknown age
    scale = aged / sum(AGE_SHAPE)
    ages = [round(w * scale * rng.uniform(0.9, 1.1)) for w in AGE_SHAPE]
    ages[9] += aged - sum(ages)  # 20-24 takes the rounding, so the bands sum to the episodes of known age
    ages[9] = max(ages[9], 0)
    return [fces, admissions, male, fces - male - unknown, unknown, emergency, waiting, planned,
            admissions - emergency - waiting - planned, round(rng.uniform(5, 60), 6), rng.randint(1, 30),
            round(rng.uniform(2, 4), 6), rng.randint(0, 2), round(rng.uniform(28, 36), 6), *ages,
            round(fces * 0.08), round(fces * rng.uniform(2.5, 3.0)), round(fces * 0.2), rng.randint(0, 20),
            rng.randint(0, 8)]


def figures(edition: int) -> dict[tuple[int, str, str], int | None]:
    """(fy_start, cause code, measure) -> the figure of every assault code in an edition (None: blank)."""
    return {(EDITIONS[edition], code, measure): value
            for code, _, row in _code_rows(edition) if code in {c for c, _, _ in ASSAULT}
            for measure, value in _measures(code, row).items()}


def _measures(code: str, row: list[int | float]) -> dict[str, int | None]:
    cells: dict[str, int | None] = {m: int(row[i - 7]) for m, i in MEASURE_COLUMNS.items()}
    if code == BLANK_CELL[0]:
        cells[BLANK_CELL[1]] = None
    return cells


def _code_rows(edition: int) -> list[tuple[str, str, list[int | float]]]:
    fy_start = EDITIONS[edition]
    rng = random.Random(fy_start * 99)
    rows = []
    for code, description, fces in (*OTHERS_BEFORE, *ASSAULT, *OTHERS_AFTER):
        size = X99_FCES[fy_start] if code == "X99" else round(fces * (1 + (fy_start - 2020) * 0.03))
        rows.append((code, description, _row(size, rng)))
    return rows


def workbook(edition: int, revise: dict[tuple[str, str], int | str] | None = None) -> bytes:
    """An edition as an .xlsx file; `revise` replaces cells ((code, measure) -> value) for a test's
    corrected re-publication."""
    from openpyxl import Workbook

    fy_start = EDITIONS[edition]
    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet["A3"] = f"External Causes - {_year(fy_start)}"
    sheet["A4"] = "Publication date: SYNTHETIC SAMPLE (not published by NHS England)"
    sheet["A5"] = "Link to publication"
    sheet["A8"] = ("External cause codes are recorded in the 19 secondary diagnosis fields (thirteen prior to "
                   "2007-08 and seven prior to 2002-03). The table displays the codes at the 3-character level "
                   "along with descriptions.")
    sheet["A12"] = "SYNTHETIC figures in the layout of NHS England's table, for the VRU pipeline's demo."
    sheet["A14"] = "For more information on data quality please see the data quality note."
    sheet.cell(15, 48, "Zero bed day cases §")
    for column, text in enumerate(HEADER, start=1):
        if text:
            sheet.cell(16, column, text)
    sheet.merge_cells("A16:G16")
    code_rows = _code_rows(edition)
    totals = [sum(int(r[i]) for _, _, r in code_rows) * 3 for i in range(len(code_rows[0][2]))]
    sheet.append([])  # row 17 is empty, as published
    sheet.cell(18, 1, "Total")
    for column, value in enumerate(totals, start=8):
        sheet.cell(18, column, value)
    line = 19
    for code, description, row in code_rows:
        sheet.cell(line, 1, code)
        sheet.cell(line, 2, description)
        sheet.merge_cells(start_row=line, start_column=2, end_row=line, end_column=7)
        for column, value in enumerate(row, start=8):
            sheet.cell(line, column, value)
        if code == BLANK_CELL[0]:
            sheet.cell(line, MEASURE_COLUMNS[BLANK_CELL[1]] + 1).value = None
        for (revised_code, measure), value in (revise or {}).items():
            if revised_code == code:
                sheet.cell(line, MEASURE_COLUMNS[measure] + 1, value)
        line += 1
    sheet.cell(line + 1, 1, FOOTNOTE)
    buffer = io.BytesIO()
    book.save(buffer)
    return _fixed_dates(buffer.getvalue())


def _fixed_dates(xlsx: bytes) -> bytes:
    """The same zip with a fixed date on every entry and in its properties, so that the same figures
    give the same bytes (and the same sha256: the feed tells editions apart by it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>2020-01-01T00:00:00Z", data)
            target.writestr(zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0)), data,
                            compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("hes-sharp-object-edition-*"):
        old.unlink()
    for edition in EDITIONS:
        (OUT / f"hes-sharp-object-edition-{edition}.xlsx").write_bytes(workbook(edition))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
