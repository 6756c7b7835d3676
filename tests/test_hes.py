"""HES sharp object admissions feed: the real 2022-23 table as published, reworded headers, CSV, ODS and
XLSX, scope, editions, revisions, refusals, freshness and the DAG (real PostgreSQL, real HTTP)."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from test_dags import _INSPECT
from vru.archive import Archive
from vru.config import REPO_ROOT, settings
from vru.feeds import hes
from vru.freshness import check_freshness
from vru.http import HttpClient, RetryPolicy
from vru.ingest import ingest_edition
from vru.loader import Noted, Quarantined
from vru.tables import MissingColumns, detect_format, read_rows
from vru_sample.server import SampleApi, SampleServer, bundled_hes_editions, bundled_sample_dir

EDITION_1, EDITION_2 = bundled_hes_editions()
REAL_2022 = REPO_ROOT / "tests" / "fixtures" / "nhs" / "hosp-epis-stat-admi-ext-caus-2022-23-tab.xlsx"
DATE_1 = "Thu, 19 Sep 2021 09:30:00 GMT"
DATE_2 = "Thu, 08 Oct 2022 09:30:00 GMT"
AGES = ["Age 0", "Age 1-4", "Age 5-9", "Age 10-14", "Age 15", "Age 16", "Age 17", "Age 18", "Age 19",
        *(f"Age {low}-{low + 4}" for low in range(20, 90, 5)), "Age 90+"]
# the measures' headers as NHS Digital words them, in the order of hes.MEASURES
PUBLISHED = ["Finished consultant episodes", "Admissions", "Emergency", "Male", "Female", "Gender Unknown", *AGES]
HEADER = ["Financial year", "ICD-10 code", "Description", *PUBLISHED]
# the X99 row of the real 2022-23 table, in that order
X99_2022 = [3775, 3715, 3342, 3430, 341, 4, 1, 6, 2, 63, 103, 128, 164, 179, 159, 634, 526, 476, 414, 299, 216, 171,
            76, 66, 18, 18, 8, 7, 4, 10]
PER_EDITION = 25 * 30  # every assault code X85-Y09, 30 measures each
# figure positions in a parsed row (hes.COPY_COLUMNS)
FY, GEO, CAUSE, DESCRIPTION, MEASURE, VALUE, MARKER = 3, 4, 6, 7, 8, 9, 10


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_hes_sample", REPO_ROOT / "scripts" / "make_hes_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(*rows: Sequence[object] | str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([row] if isinstance(row, str) else row)
    return buffer.getvalue().encode()


def _parse(data: bytes, where: str = "test.csv") -> list[object]:
    return list(hes.parse(data, detect_format(data), where).records)


def _figures(records: list[object], cause: str = "X99") -> dict[tuple[int, str], tuple[str | None, str | None]]:
    return {(int(r[FY]), r[MEASURE]): (r[VALUE], r[MARKER])  # type: ignore[index]
            for r in records if isinstance(r, list) and r[CAUSE] == cause}


def _current_figures(records: list[object]) -> dict[tuple[int, str, str], int | None]:
    """As the generator states them: (fy_start, cause, measure) -> value."""
    return {(int(r[FY]), r[CAUSE], r[MEASURE]): None if r[VALUE] is None else int(r[VALUE])  # type: ignore[index]
            for r in records if isinstance(r, list)}


def _ods(rows: Sequence[Sequence[object]]) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    doc.spreadsheet.addElement(Table(name="Cover"))
    table = Table(name="Data")
    for values in rows:
        tr = TableRow()
        for value in values:
            number = isinstance(value, int)
            cell = TableCell(valuetype="float", value=value) if number else TableCell(valuetype="string")
            cell.addElement(P(text=f"{value:,}" if isinstance(value, int) else str(value)))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    buffer = io.BytesIO()
    doc.write(buffer)
    return buffer.getvalue()


def _xlsx(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    """An Excel workbook written by openpyxl (a producer independent of our reader)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for values in rows:
            sheet.append(list(values))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _edited(xlsx: bytes, edit: Callable[[object], None]) -> bytes:
    """The workbook with its first sheet changed by `edit` (openpyxl), as another edition would be."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(xlsx))
    edit(book.worksheets[0])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _published(sheet: object, code: str) -> dict[str, object]:
    """The figures of a code's row as the file's own cells say, read with openpyxl (not our reader):
    header text -> value, the first of a repeated header."""
    rows = list(sheet.iter_rows(values_only=True))  # type: ignore[attr-defined]
    header_at = next(i for i, r in enumerate(rows) if r[0] and str(r[0]).startswith("Cause Code"))
    header = rows[header_at]
    row = next(r for r in rows[header_at + 1:] if r[0] == code)
    cells: dict[str, object] = {}
    for name, value in zip(header, row, strict=False):
        if name is not None:
            cells.setdefault(str(name), value)
    return cells


# ------------------------------------------------------------------------------------------------
# The real table, as NHS Digital published it
# ------------------------------------------------------------------------------------------------


def test_the_real_2022_23_table_loads_as_published() -> None:
    """tests/fixtures/nhs: the External Causes table of "Hospital Admitted Patient Care Activity
    2022-23", byte for byte. Its X99 row is compared with the file's cells read by openpyxl."""
    from openpyxl import load_workbook

    data = REAL_2022.read_bytes()
    assert detect_format(data) == "xlsx"
    records = _parse(data, REAL_2022.name)  # under the default reader limits
    figures = _figures(records)
    assert {fy for fy, _ in figures} == {2022}
    assert figures[(2022, "finished_consultant_episodes")] == ("3775", None)
    assert figures[(2022, "admissions")] == ("3715", None)
    # the FIRST "Emergency" (admission method), not the zero bed day cases' one (16)
    assert figures[(2022, "emergency_admissions")] == ("3342", None)
    assert set(figures) == {(2022, m.name) for m in hes.MEASURES}

    sheet = load_workbook(REAL_2022, read_only=True).worksheets[0]
    assert sheet.title == "External Cause"
    published = _published(sheet, "X99")
    assert [int(v[0]) for _, v in sorted(figures.items(), key=lambda kv: [m.name for m in hes.MEASURES].index(
        kv[0][1]))] == [published[h] for h in PUBLISHED] == X99_2022
    bands = [int(figures[(2022, m.name)][0]) for m in hes.AGE_BANDS]  # type: ignore[arg-type]
    assert sum(bands) == sum(int(published[a]) for a in AGES) == 3748  # type: ignore[call-overload]
    assert sum(bands) <= 3775  # 27 episodes of unknown age

    rows = [r for r in records if isinstance(r, list)]
    assert {r[FY - 1] for r in rows} == {"2022-23"}  # type: ignore[index]
    assert {r[CAUSE] for r in rows} == {f"X{n}" for n in range(85, 100)} | {f"Y0{n}" for n in range(10)}  # type: ignore[index]
    assert len(rows) == PER_EDITION
    x99 = next(r for r in rows if r[CAUSE] == "X99")
    assert x99[:2] == ["External Cause", "295"] and x99[DESCRIPTION] == "Assault by sharp object"  # type: ignore[index]
    y09 = _figures(records, "Y09")
    assert y09[(2022, "finished_consultant_episodes")] == ("1508", None)  # kept apart, under its own code
    assert not [r for r in records if isinstance(r, Quarantined)]

    notes = [r for r in records if isinstance(r, Noted)]
    kinds = {kind: [r.line_no for r in notes if r.kind == kind] for kind in ("preamble", "total", "footnote")}
    assert kinds == {"preamble": [3, 4, 5, 6, 8, 10, 12, 13, 14, 15], "total": [18], "footnote": [387]}
    outside = [r for r in notes if r.kind == "outside_scope"]
    assert len(outside) == 342 and all(r.sheet == "External Cause" for r in outside)  # V01 ... Y98, not X85-Y09
    assert {r.line_no for r in outside}.isdisjoint({int(r[1]) for r in rows})  # type: ignore[call-overload]
    title = next(r for r in notes if r.line_no == 3)
    assert title.record == "External Causes - 2022-23"


# ------------------------------------------------------------------------------------------------
# Headers reworded between editions
# ------------------------------------------------------------------------------------------------


def _table(header: Sequence[str], *rows: Sequence[object]) -> bytes:
    return _csv("Hospital Admitted Patient Care Activity: External Causes - 2022-23", header, *rows)


def _x99_row(figures: Sequence[object] = tuple(X99_2022)) -> list[object]:
    return ["X99", "Assault by sharp object", *figures]


REWORDED: dict[str, Callable[[str], str]] = {
    "brackets and units": lambda h: {"Finished consultant episodes": "Finished consultant episodes (FCEs)",
                                     "Admissions": "Admissions [note 3]", "Age 90+": "Age 90+ (years)"}.get(h, h),
    "line breaks": lambda h: h.replace(" ", "\n", 1).replace("-", " -\n"),
    "FCE and FAE": lambda h: {"Finished consultant episodes": "FCEs", "Admissions": "Finished Admission Episodes",
                              "Male": "Male FCEs"}.get(h, h),
    "case and spacing": lambda h: "  " + h.upper().replace(" ", "   ") + " ",
    "other wordings": lambda h: {"Emergency": "Emergency admissions", "Gender Unknown": "Gender not known",
                                 "Age 1-4": "Aged 1 to 4", "Age 90+": "Age 90 and over",
                                 "Age 15": "Aged 15"}.get(h, h),
    "typos": lambda h: {"Finished consultant episodes": "Finsihed consultant episodes", "Admissions": "Admisions",
                        "Gender Unknown": "Gender Unkown", "Age 20-24": "Aeg 20-24"}.get(h, h),
}


@pytest.mark.parametrize("variant", list(REWORDED))
def test_reworded_headers_give_the_same_figures(variant: str) -> None:
    header = ["Cause Code: 3 character code and description", "", *PUBLISHED]
    published = _parse(_table(header, _x99_row()))
    reworded = _parse(_table([REWORDED[variant](h) for h in header], _x99_row()))
    assert _figures(reworded) == _figures(published) and len(_figures(published)) == len(hes.MEASURES)
    assert _figures(reworded)[(2022, "finished_consultant_episodes")] == ("3775", None)


def test_reworded_headers_in_an_excel_cell_with_line_breaks_and_moved_columns() -> None:
    header = ["Code", "Description", "Year", *reversed([h.replace(" ", "\n") for h in PUBLISHED])]
    data = _xlsx({"External Cause": [header, ["X99", "Assault by sharp object", "2022/23", *reversed(X99_2022)]]})
    figures = _figures(_parse(data, "edition.xlsx"))
    assert figures == {(2022, m.name): (str(v), None) for m, v in zip(hes.MEASURES, X99_2022, strict=True)}


def test_a_slip_is_forgiven_only_on_a_long_header_and_never_changes_a_number() -> None:
    """A typo is forgiven when it is one slip from one column's header: "Age 14" is not "Age 15",
    and a short header ("Mael") is too close to others to guess at."""
    header = ["Cause Code: 3 character code and description", "", *PUBLISHED]
    with pytest.raises(MissingColumns) as caught:
        _parse(_table([h if h != "Age 15" else "Age 14" for h in header], _x99_row()), "edition.csv")
    assert "Missing: age_15" in str(caught.value) and "Age 14" not in str(caught.value)
    with pytest.raises(MissingColumns, match=r"Missing: male .*column [A-Z]+ matched none") as caught:
        _parse(_table([{"Male": "Mael"}.get(h, h) for h in header], _x99_row()))
    assert "Mael" not in str(caught.value)
    slipped = _parse(_table([{"Female": "Femael"}.get(h, h) for h in header], _x99_row()))
    assert _figures(slipped)[(2022, "female")] == ("341", None)


def test_an_unknown_header_is_refused_naming_it() -> None:
    header = ["Cause Code: 3 character code and description", "", *PUBLISHED]
    data = _table([h if h != "Age 90+" else "Age 90 or more years old" for h in header], _x99_row())
    with pytest.raises(MissingColumns) as caught:
        _parse(data, "edition.csv")
    message = str(caught.value)
    assert "edition.csv" in message and "Missing: age_90_plus" in message
    assert "'Age 90+'" in message  # what it would have accepted (our words)
    # where the unknown header is, by position: the file's own text is never repeated
    position = header.index("Age 90+")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    letter = letters[position] if position < 26 else letters[position // 26 - 1] + letters[position % 26]
    assert f"line 2, has {len(header) - 1} headed columns; column {letter} matched none" in message  # under the title
    assert "Age 90 or more" not in message


def test_the_year_comes_from_the_first_title_line_naming_one() -> None:
    header = ["Cause Code: 3 character code and description", "", *PUBLISHED]
    titled = _parse(_csv("External Causes - 2019-20", "recorded since 2002-03 (seven fields prior to 2002-03)",
                         header, _x99_row()))
    assert {fy for fy, _ in _figures(titled)} == {2019}
    with pytest.raises(MissingColumns, match=r"no financial year.*financial_year"):
        _parse(_csv("Hospital Admitted Patient Care Activity: External causes", header, _x99_row()))
    with pytest.raises(MissingColumns, match=r"no financial year"):
        _parse(_csv("External causes 2018-19 and 2019-20", header, _x99_row()))


# ------------------------------------------------------------------------------------------------
# Scope, notes, markers
# ------------------------------------------------------------------------------------------------


def test_other_causes_totals_notes_and_markers() -> None:
    def row(year: str, code: str, description: str, *changes: tuple[int, object]) -> list[object]:
        figures: list[object] = list(X99_2022)
        for i, value in changes:
            figures[i] = value
        return [year, code, description, *figures]

    records = _parse(_csv(
        "Hospital Admitted Patient Care Activity: external causes (title)",
        [],
        HEADER,
        row("2019-20", "X99", "Assault by sharp object", (6, "*"), (29, "-"), (5, "")),
        row("2019-20", "W26", "Contact with knife, sword or dagger"),
        row("2019-20", "X99.1", "Assault by sharp object: residential institution"),
        row("2019-20", "X85-Y09", "Assault"),
        row("2019-20", "Total", ""),
        row("2018-19", "X99", "Assault by sharp object", (29, "2.5")),
        row("2017-18", "X99", "Assault by sharp object", (3, "-3430")),
        row("2016/2018", "X99", "Assault by sharp object"),
        row("2015-16", "Y99", "Activity unspecified"),
        row("2015-16", "assault", "Assault by sharp object"),
        row("2019-20", "Y09", "Assault by unspecified means"),
        ["2019-20", "Y04", "Assault by bodily force"],  # no figure at all: not available
        [],
        ["* = 1 to 7", " suppressed"],
    ))
    figures = _figures(records)
    assert set(figures) == {(2019, m.name) for m in hes.MEASURES}  # only X99 of 2019-20 of the X99 rows
    assert figures[(2019, "age_0")] == (None, "*") and figures[(2019, "age_90_plus")] == (None, "-")
    assert figures[(2019, "gender_unknown")] == (None, hes.BLANK)  # an empty cell: never 0
    assert figures[(2019, "female")] == ("341", None)
    assert _figures(records, "Y09")[(2019, "finished_consultant_episodes")] == ("3775", None)  # context, apart
    assert set(_figures(records, "Y04").values()) == {(None, hes.BLANK)}
    notes = {(r.line_no, r.kind) for r in records if isinstance(r, Noted)}
    assert notes == {(1, "preamble"), (5, "outside_scope"), (6, "outside_scope"), (7, "total"), (8, "total"),
                     (12, "outside_scope"), (17, "footnote")}
    quarantined = {r.line_no: r.reason for r in records if isinstance(r, Quarantined)}
    assert set(quarantined) == {9, 10, 11, 13}
    assert "age_90_plus '2.5' is not a whole number" in quarantined[9] and "line 9" in quarantined[9]
    assert "male '-3430' is negative (column male, line 10)" in quarantined[10]
    assert "financial year '2016/2018'" in quarantined[11]
    assert "cause 'assault' is not an ICD-10 code" in quarantined[13]


def test_another_geography_is_noted_not_loaded() -> None:
    header = ["Year", "Area code", "Area name", "Code", "Description", *PUBLISHED]
    records = _parse(_csv(header, ["2019-20", "E92000001", "England", *_x99_row()],
                          ["2019-20", "E12000007", "London", *_x99_row()]))
    assert {r[GEO] for r in records if isinstance(r, list)} == {"E92000001"}  # type: ignore[index]
    assert [(r.line_no, r.kind) for r in records if isinstance(r, Noted)] == [(3, "outside_scope")]


def test_ods_is_read_from_stored_values() -> None:
    data = _ods([["Table 1: external causes"], HEADER, ["2019/20", *_x99_row([*X99_2022[:6], "*", *X99_2022[7:]])]])
    assert detect_format(data) == "ods"
    records = _parse(data, "edition.ods")
    figures = _figures(records)
    assert figures[(2019, "finished_consultant_episodes")] == ("3775", None)  # not the text "3,775"
    assert figures[(2019, "age_0")] == (None, "*")
    assert [(r.sheet, r.line_no, r.kind) for r in records if isinstance(r, Noted)] == [("Data", 1, "preamble")]


def test_xlsx_is_read_from_stored_values_with_excels_row_numbers() -> None:
    data = _xlsx({"Cover": [["Hospital Admitted Patient Care Activity"], ["Contents"]],
                  "Data": [["Table 1: external causes"], [], HEADER,
                           ["2019/20", *_x99_row([*X99_2022[:6], "*", *X99_2022[7:]])]]})
    assert detect_format(data) == "xlsx"
    records = _parse(data, "edition.xlsx")
    figures = _figures(records)
    assert figures[(2019, "finished_consultant_episodes")] == ("3775", None)  # the stored number
    assert figures[(2019, "age_0")] == (None, "*")
    assert len(figures) == len(hes.MEASURES)
    # the cover sheet's lines and the title are kept as notes; line numbers are Excel's (row 2 blank)
    assert [(r.sheet, r.line_no, r.kind) for r in records if isinstance(r, Noted)][-1] == ("Data", 1, "preamble")
    data_row = next(r for r in records if isinstance(r, list))
    assert data_row[:2] == ["Data", "4"]  # type: ignore[index]


def test_xlsx_cells_excel_left_out_keep_their_columns_and_rich_text_is_joined() -> None:
    from openpyxl import Workbook
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont

    book = Workbook()
    sheet = book.active
    sheet.title = "Table"
    sheet["A1"] = "first"
    sheet["D1"] = 12.5  # B1 and C1 never written
    sheet["A3"] = CellRichText(["Assault by ", TextBlock(InlineFont(b=True), "sharp object")])
    sheet["B3"] = 4757.0
    sheet["C3"] = True
    buffer = io.BytesIO()
    book.save(buffer)
    rows = list(read_rows(buffer.getvalue(), "xlsx"))
    assert [(r.sheet, r.line_no, r.cells) for r in rows] == [
        ("Table", 1, ["first", "", "", "12.5"]),
        ("Table", 3, ["Assault by sharp object", "4757", "TRUE"]),
    ]


def test_xlsx_dates_are_read_as_dates_like_the_ods_reader() -> None:
    """A date cell is a day number with a date format: read as the ISO date the ODS reader gives
    (office:date-value), a time of day kept; numbers stay numbers."""
    import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Period end", "Published", "Offences"])
    sheet.append([datetime.date(2023, 3, 31), datetime.datetime(2023, 7, 20, 9, 30), 45027])
    buffer = io.BytesIO()
    book.save(buffer)
    rows = list(read_rows(buffer.getvalue(), "xlsx"))
    assert rows[1].cells == ["2023-03-31", "2023-07-20T09:30:00", "45027"]


def test_the_same_edition_as_xlsx_and_as_ods_gives_the_same_figures() -> None:
    xlsx = EDITION_2.read_bytes()
    sheet: list[list[object]] = []
    for row in read_rows(xlsx, "xlsx"):
        sheet.extend([[]] * (row.line_no - 1 - len(sheet)))  # keep the line numbers
        sheet.append([int(c) if c.isdigit() else c for c in row.cells])
    ods = _ods(sheet)
    from_xlsx, from_ods = _parse(xlsx, "edition.xlsx"), _parse(ods, "edition.ods")
    assert _current_figures(from_xlsx) == _current_figures(from_ods) and len(_current_figures(from_ods)) == PER_EDITION
    assert [r[1:] for r in from_xlsx if isinstance(r, list)] == [r[1:] for r in from_ods if isinstance(r, list)]


def test_a_zip_that_is_no_spreadsheet_is_refused_naming_both_formats() -> None:
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a table")
    with pytest.raises(ValueError, match=r"neither an OpenDocument \(\.ods\) nor an Excel \(\.xlsx\)"):
        detect_format(buffer.getvalue())


def test_the_bundled_editions_are_the_generators_in_the_published_layout_and_say_synthetic() -> None:
    generator = _generator()
    real = [r.cells for r in read_rows(REAL_2022.read_bytes(), "xlsx") if r.line_no == 16]
    for edition, path in ((1, EDITION_1), (2, EDITION_2)):
        assert path.read_bytes() == generator.workbook(edition), f"{path.name}: run scripts/make_hes_sample.py"
        records = _parse(path.read_bytes(), path.name)
        assert _current_figures(records) == generator.figures(edition)
        assert not [r for r in records if isinstance(r, Quarantined)]
        rows = list(read_rows(path.read_bytes(), "xlsx"))
        assert {r.sheet for r in rows} == {"External Cause"}
        assert [r.cells for r in rows if r.line_no == 16] == real  # the header, word for word
        assert any("SYNTHETIC" in c for r in rows for c in r.cells)
    assert {fy for fy, _, _ in generator.figures(2)} == {2021}
    fces = [v for (_, cause, m), v in generator.figures(2).items()
            if (cause, m) == ("X99", "finished_consultant_episodes")]
    assert all(3_000 <= v <= 4_000 for v in fces)
    assert "SYNTHETIC" in (EDITION_1.parent / "README.md").read_text()


# ------------------------------------------------------------------------------------------------
# Loading editions over real HTTP into a real PostgreSQL
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[SampleServer]:
    with SampleServer(SampleApi(bundled_sample_dir())) as running:
        yield running


def _ingest(conn: psycopg.Connection, url: str, tmp_path: Path) -> hes.EditionResult:
    with HttpClient(rate_per_second=50, retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as http:
        return hes.ingest(conn, http, Archive(tmp_path / "archive"), url, "test-run")


def _current(conn: psycopg.Connection) -> dict[tuple[int, str, str], int | None]:
    rows = conn.execute(
        """select distinct on (fy_start, geography_code, cause_code, measure) fy_start, cause_code, measure, value
           from raw.sharp_object_admissions
           order by fy_start, geography_code, cause_code, measure, load_id desc""").fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_two_years_then_a_revised_year_records_the_revision(conn: psycopg.Connection, server: SampleServer,
                                                            tmp_path: Path) -> None:
    generator = _generator()
    server.api.publish("hes-sharp-object", EDITION_1, DATE_1, folder="nhs")
    first = _ingest(conn, server.hes_url, tmp_path)
    assert first.status == "loaded" and first.file_format == "xlsx"
    assert (first.figures, first.figures_added, first.rows_noted, first.rows_quarantined) == (
        PER_EDITION, PER_EDITION, 12, 0)
    assert _current(conn) == generator.figures(1)
    notes = conn.execute("select kind, count(*) from raw.source_notes where load_id = %s group by kind",
                         (first.load_id,)).fetchall()
    assert dict(notes) == {"preamble": 7, "outside_scope": 3, "total": 1, "footnote": 1}
    assert conn.execute("select count(*) from raw.sharp_object_admissions where cause_code = 'X99'"
                        ).fetchone() == (30,)
    assert conn.execute("select value, value_marker from raw.sharp_object_admissions where cause_code = 'Y05' "
                        "and measure = 'gender_unknown'").fetchone() == (None, hes.BLANK)

    server.api.publish("hes-sharp-object", EDITION_2, DATE_2, folder="nhs")
    second = _ingest(conn, server.hes_url, tmp_path)
    assert second.status == "loaded"
    assert _current(conn) == {**generator.figures(1), **generator.figures(2)}  # the next year beside it
    assert (second.figures, second.figures_added, second.figures_revised, second.figures_dropped) == (
        PER_EDITION, PER_EDITION, 0, 0)

    revised = tmp_path / "hosp-epis-stat-admi-ext-caus-2021-22-tab.xlsx"
    revised.write_bytes(generator.workbook(2, revise={("X99", "finished_consultant_episodes"): 3_701}))
    server.api.publish("hes-sharp-object", revised, DATE_2.replace("08 Oct", "09 Oct"), folder="nhs")
    third = _ingest(conn, server.hes_url, tmp_path)
    assert third.status == "loaded"
    assert (third.figures, third.figures_added, third.figures_revised, third.figures_dropped) == (PER_EDITION, 0, 1, 0)
    assert _current(conn)[(2021, "X99", "finished_consultant_episodes")] == 3_701
    revision = conn.execute(
        """select cell, previous_value, new_value, previous_load_id from audit.revisions
           where load_id = %s and change = 'revised'""", (third.load_id,)).fetchall()
    assert revision == [({"fy_start": 2021, "geography_code": "E92000001", "cause_code": "X99",
                          "measure": "finished_consultant_episodes"}, 3_688, 3_701, second.load_id)]
    edition = conn.execute("select figures, figures_revised, file_format, last_modified, etag from audit.editions "
                           "where load_id = %s", (third.load_id,)).fetchone()
    assert edition is not None and edition[:3] == (PER_EDITION, 1, "xlsx") and edition[4]
    # editions side by side: edition 1's figures are all still there under its load id
    assert conn.execute("select count(*) from raw.sharp_object_admissions where load_id = %s",
                        (first.load_id,)).fetchone() == (PER_EDITION,)


def test_the_real_table_loads_into_raw(conn: psycopg.Connection, tmp_path: Path) -> None:
    """`vru load-hes` on the real 2022-23 file: loaded whole, its notes kept."""
    result = hes.load_file(conn, Archive(tmp_path / "archive"), REAL_2022, run_id="test")
    assert result.status == "loaded", result.reason
    assert (result.figures, result.rows_quarantined) == (PER_EDITION, 0)
    x99 = dict(conn.execute("select measure, value from raw.sharp_object_admissions where cause_code = 'X99' "
                            "and fy_start = 2022 and financial_year = '2022-23'").fetchall())
    assert (x99["finished_consultant_episodes"], x99["admissions"]) == (3_775, 3_715)
    notes = dict(conn.execute("select kind, count(*) from raw.source_notes where load_id = %s group by kind",
                              (result.load_id,)).fetchall())
    assert notes == {"preamble": 10, "outside_scope": 342, "total": 1, "footnote": 1}


def test_an_unchanged_edition_gets_a_304_and_loads_nothing(conn: psycopg.Connection, server: SampleServer,
                                                           tmp_path: Path) -> None:
    server.api.publish("hes-sharp-object", EDITION_1, DATE_1, folder="nhs")
    assert _ingest(conn, server.hes_url, tmp_path).status == "loaded"
    again = _ingest(conn, server.hes_url, tmp_path)
    assert again.status == "unchanged" and "not modified" in (again.reason or "")
    # a server without ETag/Last-Modified: the sha256 of the bytes tells
    server.api.folders["nhs"]["hes-sharp-object"] = dataclasses.replace(
        server.api.folders["nhs"]["hes-sharp-object"], last_modified="")
    conn.execute("update audit.editions set etag = null, last_modified = null")
    by_hash = _ingest(conn, server.hes_url, tmp_path)
    assert by_hash.status == "unchanged" and "sha256 unchanged" in (by_hash.reason or "")
    assert conn.execute("select count(*) from audit.editions").fetchone() == (1,)
    assert conn.execute("select count(*) from raw.sharp_object_admissions").fetchone() == (PER_EDITION,)
    assert len([r for r in server.api.requests if r[0] == "hes-sharp-object"]) == 3
    assert conn.execute("select value from audit.feed_state where dataset = %s and key = 'last_checked'",
                        (hes.DATASET,)).fetchone()[0].startswith("unchanged")  # type: ignore[index]
    # the knife crime folder does not serve the NHS file
    assert server.api.folders["home-office"] == {}


def test_a_missing_column_refuses_the_edition_and_loads_nothing(conn: psycopg.Connection, server: SampleServer,
                                                                tmp_path: Path) -> None:
    def rename(sheet: object) -> None:
        sheet["I16"] = "Admitted"  # type: ignore[index]  # was "Admissions"

    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(_edited(EDITION_1.read_bytes(), rename))
    server.api.publish("hes-sharp-object", bad, DATE_1, folder="nhs")
    result = _ingest(conn, server.hes_url, tmp_path)
    assert result.status == "refused"
    # named by sheet number, line and column letter; the file's text (its header) is not repeated
    assert "Missing: admissions" in (result.reason or "") and "Admitted" not in (result.reason or "")
    assert "line 16 of sheet 1, has" in (result.reason or "") and "columns I, " in (result.reason or "")
    assert conn.execute("select count(*) from raw.sharp_object_admissions").fetchone() == (0,)
    status, error, sha = conn.execute("select status, error, sha256 from audit.loads").fetchone()  # type: ignore[misc]
    assert status == "refused" and "admissions" in error and sha  # the bytes are archived
    assert (tmp_path / "archive" / hes.DATASET / sha[:2] / f"{sha}.xlsx").exists()


def test_the_table_is_found_on_the_publication_page(conn: psycopg.Connection, server: SampleServer,
                                                    tmp_path: Path) -> None:
    server.api.publish("hosp-epis-stat-admi-ext-caus-2021-22-tab.xlsx", EDITION_2, DATE_2, folder="nhs")
    page = tmp_path / "page.html"
    page.write_text('<html><a href="/nhs/hosp-epis-stat-admi-diag-2021-22-tab.xlsx">diagnosis</a>'
                    '<a href="/nhs/hosp-epis-stat-admi-ext-caus-2021-22-tab.xlsx">External causes</a></html>')
    server.api.publish("publication", page, DATE_2, folder="nhs")
    server.api.folders["nhs"]["publication"] = dataclasses.replace(
        server.api.folders["nhs"]["publication"], content_type="text/html; charset=utf-8")
    result = _ingest(conn, server.hes_url.replace("hes-sharp-object", "publication"), tmp_path)
    assert result.status == "loaded" and result.url.endswith("/nhs/hosp-epis-stat-admi-ext-caus-2021-22-tab.xlsx")


def _html(server: SampleServer, name: str, body: str, tmp_path: Path) -> None:
    page = tmp_path / f"{name.replace('/', '_')}.html"
    page.write_text(f"<html><body>{body}</body></html>")
    server.api.publish(name, page, DATE_2, folder="nhs")
    server.api.folders["nhs"][name] = dataclasses.replace(
        server.api.folders["nhs"][name], content_type="text/html; charset=utf-8")


def test_the_series_page_leads_to_the_latest_years_xlsx_table(conn: psycopg.Connection, server: SampleServer,
                                                              tmp_path: Path) -> None:
    """As NHS Digital publishes it (the default VRU_HES_URL): the series page links a page per
    financial year; the latest year's page links the external causes table, an .xlsx."""
    table = tmp_path / "hosp-epis-stat-admi-ext-caus-2019-20-tab.xlsx"
    table.write_bytes(EDITION_2.read_bytes())
    server.api.publish(table.name, table, DATE_2, folder="nhs")
    series = "hospital-admitted-patient-care-activity"
    _html(server, f"{series}/2019-20", f'<a href="/nhs/hosp-epis-stat-admi-diag-2019-20-tab.xlsx">diagnoses</a>'
                                       f'<a href="/nhs/{table.name}">External causes</a>', tmp_path)
    # the series page lists the years out of order, and links other pages too
    _html(server, series, f'<a href="{series}/2018-19">2018-19</a><a href="/about">About</a>'
                          f'<a href="/nhs/{series}/2019-20/">2019-20</a><a href="{series}/2017-18">2017-18</a>',
          tmp_path)
    result = _ingest(conn, server.hes_url.replace("hes-sharp-object", series), tmp_path)
    requested = [endpoint for endpoint, _ in server.api.requests]
    assert "2019-20" in requested and "2018-19" not in requested and "2017-18" not in requested
    assert result.status == "loaded" and result.file_format == "xlsx" and result.url.endswith(table.name)
    assert _current(conn) == _generator().figures(2)
    assert conn.execute("select file_format from audit.editions where load_id = %s",
                        (result.load_id,)).fetchone() == ("xlsx",)


def test_a_latest_year_page_without_the_table_fails_naming_that_page(conn: psycopg.Connection,
                                                                     server: SampleServer, tmp_path: Path) -> None:
    series = "hospital-admitted-patient-care-activity"
    _html(server, f"{series}/2020-21", '<a href="summary.pdf">Summary</a>', tmp_path)
    _html(server, series, f'<a href="{series}/2020-21">2020-21</a>', tmp_path)
    result = _ingest(conn, server.hes_url.replace("hes-sharp-object", series), tmp_path)
    assert result.status == "failed"
    assert f"/nhs/{series}/2020-21: the page links no table matching" in (result.reason or "")
    assert conn.execute("select status from audit.loads").fetchall() == [("failed",)]


def test_a_page_linking_neither_table_nor_publication_fails_naming_both(conn: psycopg.Connection,
                                                                       server: SampleServer, tmp_path: Path) -> None:
    _html(server, "moved", '<a href="/about">About</a>', tmp_path)
    result = _ingest(conn, server.hes_url.replace("hes-sharp-object", "moved"), tmp_path)
    assert result.status == "failed"
    assert "/nhs/moved: the page links neither a table matching" in (result.reason or "")
    assert "nor a publication matching" in (result.reason or "")


def test_pipeline_ingest_and_freshness(conn: psycopg.Connection, clean_warehouse: str, server: SampleServer) -> None:
    """ingest_edition("hes") as the DAG task calls it (settings, archive, HTTP), then the freshness rule."""
    cfg = dataclasses.replace(settings(), warehouse_url=clean_warehouse, hes_url=server.hes_url,
                              alert_email_to=None, alert_webhook_url=None)
    assert check_freshness(conn, datasets=[hes.DATASET], cfg=cfg)[0]["stale"] is True  # nothing loaded yet
    server.api.publish("hes-sharp-object", EDITION_2, DATE_2, folder="nhs")
    result = ingest_edition("hes", "test-run", cfg)
    assert result["status"] == "loaded" and result["figures"] == PER_EDITION
    assert conn.execute("select run_id from audit.loads where load_id = %s", (result["load_id"],)).fetchone() == (
        "test-run",)

    # 2021/22 ended 31 March 2022: fresh until 641 days later (2022/23 due by the end of 2023)
    fresh = check_freshness(conn, now=datetime(2023, 12, 31, 12, tzinfo=UTC), datasets=[hes.DATASET], cfg=cfg)
    assert fresh[0]["latest_period_end"] == "2022-03-31" and fresh[0]["stale"] is False
    assert fresh[0]["resolved_incident_id"] is not None  # the "nothing loaded yet" incident
    stale = check_freshness(conn, now=datetime(2024, 1, 2, 12, tzinfo=UTC), datasets=[hes.DATASET], cfg=cfg)
    assert stale[0]["stale"] is True and stale[0]["new_incident"] is True
    summary = conn.execute("select summary from audit.incidents where incident_key = %s and resolved_at is null",
                           (f"stale:{hes.DATASET}",)).fetchone()[0]  # type: ignore[index]
    assert summary.startswith("Hospital admissions for assault by sharp object: the latest financial year "
                              "held (2021/22) ended 642 days ago")


# ------------------------------------------------------------------------------------------------
# The DAG, parsed as the dag-processor parses it
# ------------------------------------------------------------------------------------------------


def test_dag_checks_nightly_and_publishes_only_a_new_edition(tmp_path: Path) -> None:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow_home"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__UNIT_TEST_MODE="True")
    done = subprocess.run([sys.executable, "-c", _INSPECT, str(REPO_ROOT / "dags" / "vru_ingest_hes.py")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("JSON:")), None)
    assert line, done.stderr[-4000:]
    parsed = json.loads(line[5:])
    assert parsed["import_errors"] == {} and parsed["heavy_modules"] == []
    dag = parsed["dags"]["vru_ingest_hes"]
    assert dag["timetable"] == "CronTriggerTimetable" and dag["summary"] == "45 2 * * *"
    assert "Europe/London" in dag["timezone"] and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["doc"] and dag["owner"] == "data-engineering"
    tasks = dag["tasks"]
    assert tasks["check_and_load"]["down"] == ["check_freshness", "publish_raw"]
    assert tasks["publish_raw"]["outlets"] == ["raw.sharp_object_admissions"]
    assert tasks["check_freshness"]["trigger_rule"] == "all_done"
    assert tasks["check_and_load"]["retries"] >= 1
    assert all(t["doc"] for t in tasks.values())
    assert all(t["failure"] == ["VruIncidentNotifier"] for t in tasks.values())
