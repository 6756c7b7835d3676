"""Generate the bundled HES sample: two editions of an NHS Digital HES admitted patient care
"external causes" table for assault by sharp object (ICD-10 X99), England.

    .venv/bin/python scripts/make_hes_sample.py   # rewrites plugins/vru_sample/data/hes/

SYNTHETIC FIGURES, NOT PUBLISHED ONES (except one). No real HES table can be fetched here, so the
figures are made up, deterministically (seeded), at the published level: X99 finished consultant
episodes (FCEs) in England between about 3,600 and 5,000 a year over the 2010s, and 4,757 for
2019/20, the one published figure used (as given in the brief for this feed; not re-checked here).
The breakdowns follow the usual shape of the figures: admissions (finished admission episodes)
about 92% of FCEs, nearly all of them emergencies; about 88% male; almost all aged 15-59.

The layout follows the HES tables as best known (one row per cause code, measures in columns),
with a financial year column so that one file holds a series:
* edition 1 (CSV, 2012-13 to 2018-19): a title line, the header, one X99 row per year, one row of
  another cause (W26, contact with knife, sword or dagger: an accident, not an assault) that the
  feed must not load, a group total (X85-Y09, assault) and footnotes;
* edition 2 (ODS: a cover sheet, a notes sheet, then a data sheet with title lines and re-titled
  columns, e.g. "Finished consultant episodes (FCEs)", and a geography code column): adds 2019/20
  and revises one earlier figure (2018/19 FCEs), as a revised edition would.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "plugins" / "vru_sample" / "data" / "hes"

FIRST_YEAR, LAST_YEAR_1, LAST_YEAR_2 = 2012, 2018, 2019
# X99 FCEs, England (synthetic except 2019/20, which is the published 4,757)
FCES = {2012: 3_850, 2013: 3_640, 2014: 3_610, 2015: 4_090, 2016: 4_410, 2017: 4_960, 2018: 4_880, 2019: 4_757}
REVISED = (2018, "finished_consultant_episodes", 4_893)  # edition 2's revision of an edition 1 figure
MEASURES = ("finished_consultant_episodes", "admissions", "emergency_admissions", "male", "female",
            "age_0_14", "age_15_59", "age_60_74", "age_75_plus")
HEADER_CSV = ["Financial year", "ICD-10 code", "Description", "Finished consultant episodes", "Admissions",
              "Emergency", "Male", "Female", "Age 0-14", "Age 15-59", "Age 60-74", "Age 75+"]
HEADER_ODS = ["Year", "Geography code", "Geography", "Cause code", "Cause description",
              "Finished consultant episodes (FCEs)", "Finished admission episodes", "Emergency admissions",
              "Male", "Female", "Age 0 to 14", "Age 15 to 59", "Age 60 to 74", "Age 75 and over"]
X99 = ("X99", "Assault by sharp object")
W26 = ("W26", "Contact with knife, sword or dagger")
ASSAULT = ("X85-Y09", "Assault")


def _breakdown(fces: int, rng: random.Random) -> dict[str, int]:
    admissions = round(fces * rng.uniform(0.90, 0.94))
    male = round(fces * rng.uniform(0.86, 0.89))
    female = fces - male - rng.randint(2, 10)  # the rest: sex not known
    young, older, oldest = (round(fces * rng.uniform(*band))
                            for band in ((0.012, 0.02), (0.02, 0.03), (0.005, 0.009)))
    return {
        "finished_consultant_episodes": fces,
        "admissions": admissions,
        "emergency_admissions": round(admissions * rng.uniform(0.95, 0.98)),
        "male": male,
        "female": female,
        "age_0_14": young,
        "age_15_59": fces - young - older - oldest - rng.randint(0, 5),  # the rest: age not known
        "age_60_74": older,
        "age_75_plus": oldest,
    }


def figures(edition: int) -> dict[tuple[int, str], int]:
    """(fy_start, measure) -> X99 figure for England in an edition."""
    rng = random.Random(9920)  # the same draws for both editions: edition 2 revises, it does not redraw
    cells = {(year, m): v for year in range(FIRST_YEAR, LAST_YEAR_2 + 1)
             for m, v in _breakdown(FCES[year], rng).items()}
    if edition == 1:
        return {k: v for k, v in cells.items() if k[0] <= LAST_YEAR_1}
    cells[REVISED[:2]] = REVISED[2]
    return cells


def _other_cause(fces: int) -> list[int]:
    rng = random.Random(fces)
    return list(_breakdown(fces, rng).values())


def _year(fy_start: int, sep: str) -> str:
    return f"{fy_start}{sep}{(fy_start + 1) % 100:02d}"


NOTES = [
    "Note 1: Figures between 1 and 7 are suppressed and shown as *.",
    "Note 2: Sex and age breakdowns count finished consultant episodes; emergency counts admissions.",
    "Source: SYNTHETIC sample for the VRU monitoring pipeline at published levels (not published figures).",
]


def write_csv(path: Path) -> None:
    cells = figures(1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([f"Hospital Admitted Patient Care Activity, external causes: assault by sharp object, England, "
                     f"{_year(FIRST_YEAR, '-')} to {_year(LAST_YEAR_1, '-')} (SYNTHETIC SAMPLE)"])
    writer.writerow([])
    writer.writerow(HEADER_CSV)
    for year in range(FIRST_YEAR, LAST_YEAR_1 + 1):
        writer.writerow([_year(year, "-"), *X99, *(cells[(year, m)] for m in MEASURES)])
    writer.writerow([_year(LAST_YEAR_1, "-"), *W26, *_other_cause(11_240)])
    writer.writerow([_year(LAST_YEAR_1, "-"), *ASSAULT, *_other_cause(34_380)])
    writer.writerow([])
    for note in NOTES:
        writer.writerow([note])
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def write_ods(path: Path) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    def row(values: Sequence[object]) -> TableRow:
        tr = TableRow()
        for value in values:
            if isinstance(value, int):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=f"{value:,}"))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
            tr.addElement(cell)
        return tr

    cells = figures(2)
    doc = OpenDocumentSpreadsheet()
    cover = Table(name="Cover_sheet")
    for line in ("Hospital Episode Statistics, Admitted Patient Care: external causes (SYNTHETIC SAMPLE)",
                 "This spreadsheet contains a notes sheet and one data sheet."):
        cover.addElement(row([line]))
    doc.spreadsheet.addElement(cover)
    notes = Table(name="Notes")
    notes.addElement(row(["Note number", "Note text"]))
    for i, note in enumerate(NOTES, start=1):
        notes.addElement(row([f"Note {i}", note.split(": ", 1)[1]]))
    doc.spreadsheet.addElement(notes)
    data = Table(name="External_causes")
    data.addElement(row(["Table 1: Finished consultant episodes and admissions for assault by sharp object "
                         "(ICD-10 X99), England, by financial year"]))
    data.addElement(row(["This worksheet contains one table. SYNTHETIC figures at published levels."]))
    data.addElement(row(HEADER_ODS))
    for year in range(FIRST_YEAR, LAST_YEAR_2 + 1):
        data.addElement(row([_year(year, "/"), "E92000001", "England", *X99,
                             *(cells[(year, m)] for m in MEASURES)]))
    data.addElement(row([_year(LAST_YEAR_2, "/"), "E92000001", "England", *W26, *_other_cause(11_020)]))
    data.addElement(row(["Source: NHS Digital, Hospital Episode Statistics (SYNTHETIC SAMPLE)"]))
    doc.spreadsheet.addElement(data)
    buffer = io.BytesIO()
    doc.write(buffer)
    path.write_bytes(_fixed_dates(buffer.getvalue()))


def _fixed_dates(ods: bytes) -> bytes:
    """The same zip with a fixed date on every entry, so that the same figures give the same bytes
    (and the same sha256: the feed tells editions apart by it)."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ods)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type  # the mimetype entry stays first and stored
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "hes-sharp-object-edition-1.csv")
    write_ods(OUT / "hes-sharp-object-edition-2.ods")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
