"""Knife crime feed: column map, CSV and ODS, editions, revisions, refusals (real PostgreSQL, real HTTP)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from conftest import dag_run
from vru.archive import Archive
from vru.config import REPO_ROOT
from vru.feeds import knife_crime
from vru.http import HttpClient, RetryPolicy
from vru.loader import Noted, Quarantined
from vru.tables import MissingColumns, detect_format, read_rows
from vru_sample.server import SampleApi, SampleServer, bundled_knife_crime_editions, bundled_sample_dir

FORCES = knife_crime.force_names(REPO_ROOT / "dbt_project")
EDITION_1, EDITION_2 = bundled_knife_crime_editions()
DATE_1 = "Thu, 21 Jan 2021 09:30:00 GMT"
DATE_2 = "Thu, 22 Apr 2021 09:30:00 GMT"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample", REPO_ROOT / "scripts" / "make_knife_crime_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def _parse(data: bytes, where: str = "test.csv") -> list[object]:
    return list(knife_crime.parse(data, detect_format(data), where, FORCES).records)


def _ods(sheets: dict[str, list[list[object]]]) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    for name, rows in sheets.items():
        table = Table(name=name)
        for values in rows:
            tr = TableRow()
            for value in values:
                if isinstance(value, int):
                    cell = TableCell(valuetype="float", value=value)
                    cell.addElement(P(text=f"{value:,}"))  # the text a locale shows; the value is what counts
                else:
                    cell = TableCell(valuetype="string")
                    cell.addElement(P(text=str(value)))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)
    buffer = io.BytesIO()
    doc.write(buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# Parsing: column map, formats, rows that are not figures
# ------------------------------------------------------------------------------------------------


def test_column_aliases_map_to_the_same_canonical_columns() -> None:
    canonical = _parse(_csv("Financial Year,Financial Quarter,Force Name,Offence,Number of Offences",
                            "2019/20,1,Merseyside,Homicide,3"))
    renamed = _parse(_csv("Police Force Area [note 2],Offence description,Year,Quarter,Count",
                          "Merseyside,Homicide,2019-20,Q1,3"))
    assert len(canonical) == len(renamed) == 1
    strip = [4, 5, 6, 7, 8, 9]  # force name .. marker (line_no and the year text differ)
    assert [canonical[0][i] for i in strip] == [renamed[0][i] for i in strip]  # type: ignore[index]
    assert renamed[0][3:5] == ["2019", "1"]  # type: ignore[index]


def test_a_missing_column_is_refused_naming_it_and_where_without_quoting_the_file() -> None:
    data = _csv("Financial Year,Financial Quarter,Force Name,Offence,Offences recorded",
                "2019/20,1,Merseyside,Homicide,3")
    with pytest.raises(MissingColumns) as caught:
        _parse(data, "edition.csv")
    message = str(caught.value)
    assert "edition.csv" in message and "Missing: offences" in message
    assert "'Number of Offences'" in message  # what it would have accepted (our words)
    # the closest row by line and the unmatched column by letter: never the file's own text
    assert "line 1, has 5 headed columns; column E matched none" in message
    assert "Offences recorded" not in message


def test_notes_totals_markers_and_bad_figures_are_recognised() -> None:
    records = _parse(_csv(
        "Police recorded crime: knife or sharp instrument offences",
        "",
        "Financial Year,Financial Quarter,Force Name,Offence,Number of Offences",
        '2019/20,1,Merseyside,Robbery of personal property,"1,204"',
        "2019/20,1,Merseyside,Homicide,..",
        "2019/20,1,\"London, City of\",Homicide,[x]",
        "2019/20,1,England and Wales,Homicide,70",
        "2019/20,1,British Transport Police,Homicide,0",
        "2019/20,1,Essex,Rape,2.5",
        "2019/20,5,Essex,Rape,2",
        "2019,1,Essex,Rape,2",
        "2019/20,1,Essex,Rape,-1",
        "",
        "Source: Home Office",
    ))
    figures = [r for r in records if isinstance(r, list)]
    notes = {(r.line_no, r.kind) for r in records if isinstance(r, Noted)}
    quarantined = {r.line_no: r.reason for r in records if isinstance(r, Quarantined)}
    assert [(f[6], f[8], f[9]) for f in figures] == [
        ("merseyside", "1204", None), ("merseyside", None, ".."), ("city-of-london", None, "[x]")]
    assert notes == {(1, "preamble"), (7, "total"), (8, "outside_scope"), (14, "footnote")}
    assert set(quarantined) == {9, 10, 11, 12}
    assert "'2.5' is not a whole number" in quarantined[9] and "line 9" in quarantined[9]
    assert "quarter '5'" in quarantined[10] and "financial_quarter" in quarantined[10]
    assert "financial year '2019'" in quarantined[11]
    assert "negative" in quarantined[12]


def test_an_unknown_force_refuses_the_table_naming_it() -> None:
    data = _csv("Financial Year,Financial Quarter,Force Name,Offence,Number of Offences",
                "2019/20,1,Merseyside,Homicide,3",
                "2019/20,1,Atlantis Constabulary,Homicide,3",
                "2019/20,2,Atlantis Constabulary,Homicide,1")
    with pytest.raises(knife_crime.UnknownForce, match=r"'Atlantis Constabulary' \(first on line 3\)"):
        _parse(data)


def test_ods_is_read_from_stored_values_across_sheets() -> None:
    data = _ods({
        "Cover_sheet": [["Knife crime open data"], ["Contents"]],
        "Notes": [["Note number", "Note text"], ["Note 1", "Figures are provisional"]],
        "Data": [
            ["Table 1: knife or sharp instrument offences"],
            ["Financial year", "Financial quarter", "Force name", "Offence description",
             "Number of offences [note 1]"],
            ["2019/20", 1, "Metropolitan Police", "Robbery of personal property", 4321],
            ["2019/20", "Q2", "Greater Manchester", "Homicide", "[c]"],
        ],
    })
    assert detect_format(data) == "ods"
    records = _parse(data, "edition.ods")
    figures = [r for r in records if isinstance(r, list)]
    assert [(f[0], f[1], f[4], f[6], f[8], f[9]) for f in figures] == [  # type: ignore[index]
        ("Data", "3", "1", "metropolitan", "4321", None), ("Data", "4", "2", "greater-manchester", None, "[c]")]
    assert [(r.sheet, r.line_no, r.kind) for r in records if isinstance(r, Noted)] == [("Data", 1, "preamble")]


def test_the_bundled_editions_are_the_generators_figures() -> None:
    """CSV edition 1 and ODS edition 2 read back to exactly the figures the generator made."""
    generator = _generator()
    for edition, path in ((1, EDITION_1), (2, EDITION_2)):
        figures = [r for r in _parse(path.read_bytes(), path.name) if isinstance(r, list)]
        read = {(f[6], int(f[3]), int(f[4]), f[7]): (int(f[8]) if f[8] is not None else None) for f in figures}
        assert len(read) == len(figures)
        assert read == generator.figures(edition)
    assert detect_format(EDITION_1.read_bytes()) == "csv" and detect_format(EDITION_2.read_bytes()) == "ods"


def test_ods_rows_repeated_as_filler_are_not_expanded() -> None:
    """Spreadsheets end with ~1M repeated empty rows; the reader must skip them, not expand them."""
    import zipfile

    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet>'
        '<table:table table:name="Data"><table:table-row><table:table-cell office:value-type="string">'
        '<text:p>a</text:p></table:table-cell><table:table-cell table:number-columns-repeated="16000"/>'
        '</table:table-row><table:table-row table:number-rows-repeated="1048575">'
        '<table:table-cell table:number-columns-repeated="16384"/></table:table-row>'
        '<table:table-row><table:table-cell office:value-type="float" office:value="7" '
        'table:number-columns-repeated="2"><text:p>7</text:p></table:table-cell></table:table-row>'
        '</table:table></office:spreadsheet></office:body></office:document-content>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content)
    rows = list(read_rows(buffer.getvalue(), "ods"))
    assert [(r.line_no, r.cells) for r in rows] == [(1, ["a"]), (1048577, ["7", "7"])]


# ------------------------------------------------------------------------------------------------
# Loading editions over real HTTP into a real PostgreSQL
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def server() -> SampleServer:
    with SampleServer(SampleApi(bundled_sample_dir())) as running:
        yield running


def _ingest(conn: psycopg.Connection, url: str, tmp_path: Path) -> knife_crime.EditionResult:
    with HttpClient(rate_per_second=50, retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as http:
        return knife_crime.ingest(conn, http, Archive(tmp_path / "archive"), url, FORCES, "test-run")


def _current(conn: psycopg.Connection) -> dict[tuple[str, int, int, str], int | None]:
    rows = conn.execute(
        """select distinct on (force_id, fy_start, financial_quarter, offence)
                  force_id, fy_start, financial_quarter, offence, offences
           from raw.knife_offences order by force_id, fy_start, financial_quarter, offence, load_id desc"""
    ).fetchall()
    return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}


def test_unchanged_edition_loads_nothing(conn: psycopg.Connection, server: SampleServer, tmp_path: Path) -> None:
    server.api.publish("knife-crime", EDITION_1, DATE_1)
    first = _ingest(conn, server.knife_crime_url, tmp_path)
    assert first.status == "loaded" and first.figures == 6192 and first.rows_noted == 144 + 3
    assert first.figures_added == 6192 and first.figures_revised == 0

    # same edition again: the server answers 304 to the stored ETag
    again = _ingest(conn, server.knife_crime_url, tmp_path)
    assert again.status == "unchanged" and "not modified" in (again.reason or "")
    # a server without ETag/Last-Modified: the sha256 of the bytes tells
    server.api.editions["knife-crime"] = server.api.editions["knife-crime"].__class__(
        EDITION_1.read_bytes(), "", "text/csv")
    conn.execute("update audit.editions set etag = null, last_modified = null")
    by_hash = _ingest(conn, server.knife_crime_url, tmp_path)
    assert by_hash.status == "unchanged" and "sha256 unchanged" in (by_hash.reason or "")
    assert conn.execute("select count(*) from audit.editions").fetchone() == (1,)
    assert conn.execute("select count(*) from raw.knife_offences").fetchone() == (6192,)
    requests = [r for r in server.api.requests if r[0] == "knife-crime"]
    assert len(requests) == 3


def test_the_run_summary_counts_editions_not_load_ids(conn: psycopg.Connection, clean_warehouse: str,
                                                      server: SampleServer, tmp_path: Path) -> None:
    from vru.airflow_local import ChainResult
    from vru.registry import feed

    knife_crime_dag = feed("knife_crime").dag_id
    from vru.config import settings
    from vru.runner import summarise_chain

    conn.execute("select setval('audit.loads_load_id_seq', 630)")  # load ids are not edition numbers
    for edition, date in ((EDITION_1, DATE_1), (EDITION_2, DATE_2)):
        server.api.publish("knife-crime", edition, date)
        assert _ingest(conn, server.knife_crime_url, tmp_path).status == "loaded"
    run = dag_run(knife_crime_dag, "test-run", "success")
    lines = summarise_chain(clean_warehouse, ChainResult([run], {f"{knife_crime_dag}/test-run": {}}), settings())
    loaded = [line for line in lines if "knife crime table edition" in line]
    assert [line.split(":")[0] for line in loaded] == ["  knife crime table edition 1 loaded (csv, load 631)",
                                                       "  knife crime table edition 2 loaded (ods, load 632)"]


def test_revised_edition_moves_only_the_changed_figures(conn: psycopg.Connection, server: SampleServer,
                                                        tmp_path: Path) -> None:
    expected_1, expected_2 = _generator().figures(1), _generator().figures(2)
    server.api.publish("knife-crime", EDITION_1, DATE_1)
    first = _ingest(conn, server.knife_crime_url, tmp_path)
    before = _current(conn)
    assert before == expected_1

    server.api.publish("knife-crime", EDITION_2, DATE_2)
    second = _ingest(conn, server.knife_crime_url, tmp_path)
    assert second.status == "loaded" and second.file_format == "ods"
    after = _current(conn)
    assert after == expected_2

    revised = {k for k in expected_1 if expected_1[k] != expected_2[k]}
    added = set(expected_2) - set(expected_1)
    assert revised and len(added) == 43 * 9
    # only the revised cells changed; every other figure is as edition 1 had it
    assert {k for k in before if before[k] != after[k]} == revised
    assert (second.figures_revised, second.figures_added, second.figures_dropped) == (len(revised), len(added), 0)

    rows = conn.execute(
        """select cell->>'force_id', (cell->>'fy_start')::int, (cell->>'financial_quarter')::int,
                  cell->>'offence', change, previous_value, new_value, previous_marker, previous_load_id
           from audit.revisions where load_id = %s""", (second.load_id,)).fetchall()
    by_change: dict[str, dict[tuple[str, int, int, str], tuple[object, ...]]] = {}
    for row in rows:
        by_change.setdefault(row[4], {})[row[:4]] = row[5:]
    assert set(by_change["revised"]) == revised and set(by_change["added"]) == added
    for key in revised:
        previous_value, new_value, previous_marker, previous_load = by_change["revised"][key]
        assert (previous_value, new_value, previous_load) == (expected_1[key], expected_2[key], first.load_id)
        assert previous_marker == (".." if expected_1[key] is None else None)
    # editions are kept side by side: edition 1's figures are all still there under its load id
    assert conn.execute("select count(*) from raw.knife_offences where load_id = %s",
                        (first.load_id,)).fetchone() == (6192,)
    edition = conn.execute("select figures, figures_revised, file_format, last_modified from audit.editions "
                           "where load_id = %s", (second.load_id,)).fetchone()
    assert edition == (6579, len(revised), "ods", DATE_2)


def test_unknown_force_is_refused_and_nothing_is_loaded(conn: psycopg.Connection, server: SampleServer,
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(EDITION_1.read_bytes().replace(b",Essex,", b",Essex Police Service,", 1))
    server.api.publish("knife-crime", bad, DATE_1)
    result = _ingest(conn, server.knife_crime_url, tmp_path)
    assert result.status == "refused"
    assert "'Essex Police Service'" in (result.reason or "") and "force_name_variants.csv" in (result.reason or "")
    assert conn.execute("select count(*) from raw.knife_offences").fetchone() == (0,)
    assert conn.execute("select count(*) from raw.source_notes").fetchone() == (0,)
    status, error, sha = conn.execute("select status, error, sha256 from audit.loads").fetchone()  # type: ignore[misc]
    assert status == "refused" and "Essex Police Service" in error and sha  # the bytes are archived
    assert (tmp_path / "archive" / knife_crime.DATASET / sha[:2] / f"{sha}.csv").exists()


def test_the_table_is_found_on_the_publication_page(conn: psycopg.Connection, server: SampleServer,
                                                    tmp_path: Path) -> None:
    server.api.publish("knife-crime-open-data.ods", EDITION_2, DATE_2)
    page = tmp_path / "page.html"
    page.write_text('<html><a href="/other/prc-outcomes.ods">outcomes</a>'
                    '<a href="/home-office/knife-crime-open-data.ods">Knife crime</a></html>')
    server.api.publish("collection", page, DATE_2)
    server.api.editions["collection"] = server.api.editions["collection"].__class__(
        page.read_bytes(), DATE_2, "text/html; charset=utf-8")
    url = server.knife_crime_url.replace("knife-crime", "collection")
    result = _ingest(conn, url, tmp_path)
    assert result.status == "loaded" and result.url.endswith("/home-office/knife-crime-open-data.ods")
