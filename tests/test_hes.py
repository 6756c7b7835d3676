"""HES sharp object admissions feed: column map, CSV, ODS and XLSX, scope, editions, revisions, refusals,
freshness and the DAG (real PostgreSQL, real HTTP)."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
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
DATE_1 = "Thu, 19 Sep 2019 09:30:00 GMT"
DATE_2 = "Thu, 08 Oct 2020 09:30:00 GMT"
HEADER = ("Financial year,ICD-10 code,Description,Finished consultant episodes,Admissions,Emergency,Male,"
          "Female,Age 0-14,Age 15-59,Age 60-74,Age 75+")
# figure positions in a parsed row (hes.COPY_COLUMNS)
FY, GEO, CAUSE, DESCRIPTION, MEASURE, VALUE, MARKER = 3, 4, 6, 7, 8, 9, 10


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_hes_sample", REPO_ROOT / "scripts" / "make_hes_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def _parse(data: bytes, where: str = "test.csv") -> list[object]:
    return list(hes.parse(data, detect_format(data), where).records)


def _figures(records: list[object]) -> dict[tuple[int, str], tuple[str | None, str | None]]:
    return {(int(r[FY]), r[MEASURE]): (r[VALUE], r[MARKER]) for r in records if isinstance(r, list)}  # type: ignore[index]


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


def _ods_as_xlsx(ods: bytes) -> bytes:
    """The same table as an Excel workbook: same sheets, same line numbers, numbers as numbers."""
    sheets: dict[str, list[list[object]]] = {}
    for row in read_rows(ods, "ods"):
        rows = sheets.setdefault(row.sheet or "Sheet", [])
        rows.extend([[]] * (row.line_no - 1 - len(rows)))  # keep the line numbers
        rows.append([int(c) if c.isdigit() else c for c in row.cells])
    return _xlsx(sheets)


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


# ------------------------------------------------------------------------------------------------
# Parsing: column map, scope, markers
# ------------------------------------------------------------------------------------------------


def test_column_aliases_map_to_the_same_figures() -> None:
    canonical = _parse(_csv(HEADER, "2019-20,X99,Assault by sharp object,4757,4380,4250,4180,560,80,4520,120,30"))
    renamed = _parse(_csv(
        "Age 75 and over,Year,Geography code,Geography,Cause code,Finished consultant episodes (FCEs),"
        "Finished admission episodes,Emergency admissions,Males,Females,Age 0 to 14,Age 15 to 59,Age 60 to 74",
        '30,2019/20,E92000001,England,X99 Assault by sharp object,"4,757",4380,4250,4180,560,80,4520,120'))
    assert _figures(canonical) == _figures(renamed)
    assert len(_figures(canonical)) == 9
    assert _figures(renamed)[(2019, "finished_consultant_episodes")] == ("4757", None)
    first = renamed[0]
    assert first[GEO:DESCRIPTION + 1] == ["E92000001", "England", "X99", "Assault by sharp object"]  # type: ignore[index]


def test_a_missing_column_is_refused_naming_it_and_the_columns_it_had() -> None:
    data = _csv(HEADER.replace(",Age 75+", ",Age 75 or more years"),
                "2019-20,X99,Assault by sharp object,4757,4380,4250,4180,560,80,4520,120,30")
    with pytest.raises(MissingColumns) as caught:
        _parse(data, "edition.csv")
    message = str(caught.value)
    assert "edition.csv" in message and "Missing: age_75_plus" in message
    assert "'Age 75+'" in message  # what it would have accepted
    assert "'Age 75 or more years'" in message  # what it had


def test_the_year_comes_from_the_title_when_there_is_no_year_column() -> None:
    header = HEADER.removeprefix("Financial year,")
    row = "X99,Assault by sharp object,4757,4380,4250,4180,560,80,4520,120,30"
    titled = _parse(_csv("Hospital Admitted Patient Care Activity 2019-20: External causes", header, row))
    assert set(_figures(titled)) == {(2019, m.name) for m in hes.MEASURES}
    with pytest.raises(MissingColumns, match=r"no financial year.*financial_year"):
        _parse(_csv("Hospital Admitted Patient Care Activity: External causes", header, row))


def test_other_causes_totals_notes_and_markers() -> None:
    records = _parse(_csv(
        "Hospital Admitted Patient Care Activity: external causes (title)",
        "",
        HEADER,
        "2019-20,X99,Assault by sharp object,4757,4380,4250,4180,560,*,4520,120,-",
        "2019-20,W26,\"Contact with knife, sword or dagger\",11020,10100,9800,9500,1400,150,10500,240,90",
        "2019-20,X99.1,Assault by sharp object: residential institution,12,11,11,10,2,0,12,0,0",
        "2019-20,X85-Y09,Assault,34000,31000,30000,30000,3800,580,32000,900,200",
        "2019-20,Total,,60000,55000,50000,40000,20000,900,50000,5000,4000",
        "2018-19,X99,Assault by sharp object,4880,4457,4258,4219,658,90,4626,137,2.5",
        "2017-18,X99,Assault by sharp object,4960,4536,4313,-4325,626,86,4698,140,33",
        "2016/2018,X99,Assault by sharp object,4410,4005,3846,3875,532,59,4211,108,27",
        "2015-16,Y99,Unknown cause,1,1,1,1,1,1,1,1,1",
        "2015-16,assault,Assault by sharp object,1,1,1,1,1,1,1,1,1",
        "",
        "* = 1 to 7, suppressed",
    ))
    figures = _figures(records)
    assert set(figures) == {(2019, m.name) for m in hes.MEASURES}  # only X99 of 2019-20 is loaded
    assert figures[(2019, "age_0_14")] == (None, "*") and figures[(2019, "age_75_plus")] == (None, "-")
    assert figures[(2019, "female")] == ("560", None)
    notes = {(r.line_no, r.kind) for r in records if isinstance(r, Noted)}
    assert notes == {(1, "preamble"), (5, "outside_scope"), (6, "outside_scope"), (7, "total"), (8, "total"),
                     (12, "outside_scope"), (15, "footnote")}
    quarantined = {r.line_no: r.reason for r in records if isinstance(r, Quarantined)}
    assert set(quarantined) == {9, 10, 11, 13}
    assert "age_75_plus '2.5' is not a whole number" in quarantined[9] and "line 9" in quarantined[9]
    assert "male '-4325' is negative (column male, line 10)" in quarantined[10]
    assert "financial year '2016/2018'" in quarantined[11]
    assert "cause 'assault' is not an ICD-10 code" in quarantined[13]


def test_another_geography_is_noted_not_loaded() -> None:
    records = _parse(_csv(
        "Year,Area code,Area name,Code,Description,FCEs,FAEs,Emergency,Male,Female,0-14,15-59,60-74,75+",
        "2019-20,E92000001,England,X99,Assault by sharp object,4757,4380,4250,4180,560,80,4520,120,30",
        "2019-20,E12000007,London,X99,Assault by sharp object,1800,1650,1600,1600,180,30,1700,50,10",
    ))
    assert {r[GEO] for r in records if isinstance(r, list)} == {"E92000001"}  # type: ignore[index]
    assert [(r.line_no, r.kind) for r in records if isinstance(r, Noted)] == [(3, "outside_scope")]


def test_ods_is_read_from_stored_values() -> None:
    header = HEADER.split(",")
    data = _ods([["Table 1: external causes"], header,
                 ["2019/20", "X99", "Assault by sharp object", 4757, 4380, 4250, 4180, 560, "*", 4520, 120, 30]])
    assert detect_format(data) == "ods"
    records = _parse(data, "edition.ods")
    figures = _figures(records)
    assert figures[(2019, "finished_consultant_episodes")] == ("4757", None)  # not the text "4,757"
    assert figures[(2019, "age_0_14")] == (None, "*")
    assert [(r.sheet, r.line_no, r.kind) for r in records if isinstance(r, Noted)] == [("Data", 1, "preamble")]


def test_xlsx_is_read_from_stored_values_with_excels_row_numbers() -> None:
    header = HEADER.split(",")
    data = _xlsx({"Cover": [["Hospital Admitted Patient Care Activity"], ["Contents"]],
                  "Data": [["Table 1: external causes"], [], header,
                           ["2019/20", "X99", "Assault by sharp object", 4757, 4380, 4250, 4180, 560, "*", 4520,
                            120, 30]]})
    assert detect_format(data) == "xlsx"
    records = _parse(data, "edition.xlsx")
    figures = _figures(records)
    assert figures[(2019, "finished_consultant_episodes")] == ("4757", None)  # the stored number
    assert figures[(2019, "age_0_14")] == (None, "*")
    assert len(figures) == 9
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


def test_the_same_edition_as_xlsx_and_as_ods_gives_the_same_figures() -> None:
    ods = EDITION_2.read_bytes()
    from_xlsx, from_ods = _parse(_ods_as_xlsx(ods), "edition.xlsx"), _parse(ods, "edition.ods")
    assert _figures(from_xlsx) == _figures(from_ods) and len(_figures(from_ods)) == 8 * 9
    assert [r for r in from_xlsx if isinstance(r, list)] == [r for r in from_ods if isinstance(r, list)]


def test_a_zip_that_is_no_spreadsheet_is_refused_naming_both_formats() -> None:
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a table")
    with pytest.raises(ValueError, match=r"neither an OpenDocument \(\.ods\) nor an Excel \(\.xlsx\)"):
        detect_format(buffer.getvalue())


def test_the_bundled_editions_are_the_generators_figures_and_say_synthetic() -> None:
    generator = _generator()
    for edition, path in ((1, EDITION_1), (2, EDITION_2)):
        figures = _figures(_parse(path.read_bytes(), path.name))
        assert {k: int(v[0]) for k, v in figures.items() if v[0] is not None} == generator.figures(edition)
    assert generator.figures(2)[(2019, "finished_consultant_episodes")] == 4_757
    fces = [v for (year, m), v in generator.figures(2).items() if m == "finished_consultant_episodes"]
    assert all(3_600 <= v <= 5_000 for v in fces)
    assert b"SYNTHETIC" in EDITION_1.read_bytes()
    assert "SYNTHETIC" in (EDITION_1.parent / "README.md").read_text()
    assert (detect_format(EDITION_1.read_bytes()), detect_format(EDITION_2.read_bytes())) == ("csv", "ods")


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


def _current(conn: psycopg.Connection) -> dict[tuple[int, str], int | None]:
    rows = conn.execute(
        """select distinct on (fy_start, geography_code, cause_code, measure) fy_start, measure, value
           from raw.sharp_object_admissions
           order by fy_start, geography_code, cause_code, measure, load_id desc""").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def test_edition_1_then_revised_edition_2_records_the_revision(conn: psycopg.Connection, server: SampleServer,
                                                               tmp_path: Path) -> None:
    expected_1, expected_2 = _generator().figures(1), _generator().figures(2)
    server.api.publish("hes-sharp-object", EDITION_1, DATE_1, folder="nhs")
    first = _ingest(conn, server.hes_url, tmp_path)
    assert first.status == "loaded" and first.file_format == "csv"
    assert (first.figures, first.figures_added, first.rows_noted, first.rows_quarantined) == (7 * 9, 7 * 9, 6, 0)
    assert _current(conn) == expected_1
    notes = conn.execute("select kind, count(*) from raw.source_notes where load_id = %s group by kind",
                         (first.load_id,)).fetchall()
    assert dict(notes) == {"preamble": 1, "outside_scope": 1, "total": 1, "footnote": 3}
    assert conn.execute("select count(*) from raw.sharp_object_admissions where cause_code <> 'X99'"
                        ).fetchone() == (0,)

    server.api.publish("hes-sharp-object", EDITION_2, DATE_2, folder="nhs")
    second = _ingest(conn, server.hes_url, tmp_path)
    assert second.status == "loaded" and second.file_format == "ods"
    assert _current(conn) == expected_2
    assert _current(conn)[(2019, "finished_consultant_episodes")] == 4_757
    assert (second.figures, second.figures_added, second.figures_revised, second.figures_dropped) == (8 * 9, 9, 1, 0)
    revision = conn.execute(
        """select cell, previous_value, new_value, previous_load_id from audit.revisions
           where load_id = %s and change = 'revised'""", (second.load_id,)).fetchall()
    assert revision == [({"fy_start": 2018, "geography_code": "E92000001", "cause_code": "X99",
                          "measure": "finished_consultant_episodes"}, 4_880, 4_893, first.load_id)]
    edition = conn.execute("select figures, figures_revised, file_format, last_modified, etag from audit.editions "
                           "where load_id = %s", (second.load_id,)).fetchone()
    assert edition is not None and edition[:4] == (72, 1, "ods", DATE_2) and edition[4]
    # editions side by side: edition 1's figures are all still there under its load id
    assert conn.execute("select count(*) from raw.sharp_object_admissions where load_id = %s",
                        (first.load_id,)).fetchone() == (63,)


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
    assert conn.execute("select count(*) from raw.sharp_object_admissions").fetchone() == (63,)
    assert len([r for r in server.api.requests if r[0] == "hes-sharp-object"]) == 3
    assert conn.execute("select value from audit.feed_state where dataset = %s and key = 'last_checked'",
                        (hes.DATASET,)).fetchone()[0].startswith("unchanged")  # type: ignore[index]
    # the knife crime folder does not serve the NHS file
    assert server.api.folders["home-office"] == {}


def test_a_missing_column_refuses_the_edition_and_loads_nothing(conn: psycopg.Connection, server: SampleServer,
                                                                tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(EDITION_1.read_bytes().replace(b",Emergency,", b",Emergency (see note),", 1)
                    .replace(b",Admissions,", b",Admitted,", 1))
    server.api.publish("hes-sharp-object", bad, DATE_1, folder="nhs")
    result = _ingest(conn, server.hes_url, tmp_path)
    assert result.status == "refused"
    assert "Missing: admissions" in (result.reason or "") and "'Admitted'" in (result.reason or "")
    assert conn.execute("select count(*) from raw.sharp_object_admissions").fetchone() == (0,)
    status, error, sha = conn.execute("select status, error, sha256 from audit.loads").fetchone()  # type: ignore[misc]
    assert status == "refused" and "admissions" in error and sha  # the bytes are archived
    assert (tmp_path / "archive" / hes.DATASET / sha[:2] / f"{sha}.csv").exists()


def test_the_table_is_found_on_the_publication_page(conn: psycopg.Connection, server: SampleServer,
                                                    tmp_path: Path) -> None:
    server.api.publish("hosp-epis-stat-admi-ext-caus-2019-20-tab.ods", EDITION_2, DATE_2, folder="nhs")
    page = tmp_path / "page.html"
    page.write_text('<html><a href="/nhs/hosp-epis-stat-admi-diag-2019-20-tab.ods">diagnosis</a>'
                    '<a href="/nhs/hosp-epis-stat-admi-ext-caus-2019-20-tab.ods">External causes</a></html>')
    server.api.publish("publication", page, DATE_2, folder="nhs")
    server.api.folders["nhs"]["publication"] = dataclasses.replace(
        server.api.folders["nhs"]["publication"], content_type="text/html; charset=utf-8")
    result = _ingest(conn, server.hes_url.replace("hes-sharp-object", "publication"), tmp_path)
    assert result.status == "loaded" and result.url.endswith("/nhs/hosp-epis-stat-admi-ext-caus-2019-20-tab.ods")


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
    table.write_bytes(_ods_as_xlsx(EDITION_2.read_bytes()))
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
    assert result["status"] == "loaded" and result["figures"] == 72
    assert conn.execute("select run_id from audit.loads where load_id = %s", (result["load_id"],)).fetchone() == (
        "test-run",)

    # 2019/20 ended 31 March 2020: fresh until 641 days later (2020/21 due by the end of 2021)
    fresh = check_freshness(conn, now=datetime(2021, 12, 31, 12, tzinfo=UTC), datasets=[hes.DATASET], cfg=cfg)
    assert fresh[0]["latest_period_end"] == "2020-03-31" and fresh[0]["stale"] is False
    assert fresh[0]["resolved_incident_id"] is not None  # the "nothing loaded yet" incident
    stale = check_freshness(conn, now=datetime(2022, 1, 2, 12, tzinfo=UTC), datasets=[hes.DATASET], cfg=cfg)
    assert stale[0]["stale"] is True and stale[0]["new_incident"] is True
    summary = conn.execute("select summary from audit.incidents where incident_key = %s and resolved_at is null",
                           (f"stale:{hes.DATASET}",)).fetchone()[0]  # type: ignore[index]
    assert summary.startswith("Hospital admissions for assault by sharp object: the latest financial year "
                              "held (2019/20) ended 642 days ago")


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
