"""Hostile and broken tables end as a refused edition, in seconds and under a memory limit.

Each file is made here: a zip bomb, a billion-laughs content.xml, an XLSX cell at column ZZZZZZ,
ODS rows and cells repeated 10^9 times with a value, a run of 10^9 spaces, text nested 100,000
deep, too many shared strings or zip members, malformed zips, cut-off XML, CSV that cannot be
decoded or parsed, and a download longer than the limit served over real HTTP from 127.0.0.1.
Each is loaded through a feed (the HES feed for files, the knife crime feed over HTTP) in a child
process whose address space is capped (RLIMIT_AS, 1 GiB; the imports need about 70 MB of it),
with the real PostgreSQL of the test session, and must:

* finish within seconds, with the child's exit code 0 (no crash, no MemoryError);
* return status 'refused' with a reason in our words that names the limit or the fault and
  never quotes the file (each file carries a marker that must not appear in the reason);
* be recorded in audit.loads as 'refused' with that reason, and nothing loaded into raw.

The measured time and peak memory of each case are printed (run with -s to see them).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 1 << 30  # RLIMIT_AS of the child: 1 GiB
SECONDS = 30  # a case that takes longer has failed (the measured times are a few seconds at most)
MARKER = "Jane-Doe-DOB-1990"  # in every crafted file: never in a reason

_ODS_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
_ODS_HEAD = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODS_NS}><office:body>'
             '<office:spreadsheet><table:table table:name="Data">')
_ODS_TAIL = "</table:table></office:spreadsheet></office:body></office:document-content>"
_HEADER_ROW = ("<table:table-row>" + "".join(
    f'<table:table-cell office:value-type="string"><text:p>{h}</text:p></table:table-cell>'
    for h in ("ICD-10 code", "Financial year", "FCEs", "Admissions")) + "</table:table-row>")


# ------------------------------------------------------------------------------------------------
# Crafted files
# ------------------------------------------------------------------------------------------------


def _ods(content: str | bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        archive.writestr("content.xml", content)
    return buffer.getvalue()


_XLSX_CONTENT_TYPES = (
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>{shared}</Types>')
_XLSX_SHARED_STRINGS = ('<Override PartName="/xl/sharedStrings.xml" '
                        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')


def _xlsx(sheet: str, shared: str | None = None) -> bytes:
    """The smallest workbook Excel opens: its list of parts, workbook, relationships and one sheet."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml",
                         _XLSX_CONTENT_TYPES.format(shared=_XLSX_SHARED_STRINGS if shared is not None else ""))
        archive.writestr("xl/workbook.xml", f'<workbook {ns} {rel_ns}><sheets><sheet name="Data {MARKER}" sheetId="1" '
                                            'r:id="rId1"/></sheets></workbook>')
        archive.writestr("xl/_rels/workbook.xml.rels",
                         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                         '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.openxmlformats.org'
                         '/officeDocument/2006/relationships/worksheet"/></Relationships>')
        archive.writestr("xl/worksheets/sheet1.xml", f"<worksheet {ns}><sheetData>{sheet}</sheetData></worksheet>")
        if shared is not None:
            archive.writestr("xl/sharedStrings.xml", shared)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """An .ods whose content.xml is valid XML that inflates to 1 GiB (4x the default member
    limit) from about 1 MB: blank space after the header row."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        with archive.open("content.xml", "w", force_zip64=True) as member:
            member.write((_ODS_HEAD + _HEADER_ROW + f"<!-- {MARKER} -->").encode())
            block = b" " * (1 << 24)
            for _ in range(64):  # 64 x 16 MiB
                member.write(block)
            member.write(_ODS_TAIL.encode())
    return buffer.getvalue()


def billion_laughs() -> bytes:
    entities = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return _ods(f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "{MARKER}">{entities}]>'
                f"<office:document-content {_ODS_NS}><office:body><office:spreadsheet><table:table>"
                "<table:table-row><table:table-cell><text:p>&lol9;</text:p></table:table-cell></table:table-row>"
                f"{_ODS_TAIL}")


def xlsx_column_zzzzzz() -> bytes:
    return _xlsx(f'<row r="1"><c r="ZZZZZZ1" t="inlineStr"><is><t>{MARKER}</t></is></c></row>')


def ods_rows_repeated() -> bytes:
    row = (f'<table:table-row table:number-rows-repeated="1000000000"><table:table-cell '
           f'office:value-type="string"><text:p>{MARKER}</text:p></table:table-cell></table:table-row>')
    return _ods(_ODS_HEAD + _HEADER_ROW + row + _ODS_TAIL)


def ods_columns_repeated() -> bytes:
    row = (f'<table:table-row><table:table-cell table:number-columns-repeated="1000000000" '
           f'office:value-type="string"><text:p>{MARKER}</text:p></table:table-cell></table:table-row>')
    return _ods(_ODS_HEAD + _HEADER_ROW + row + _ODS_TAIL)


def ods_spaces_1e9() -> bytes:
    """One cell whose text is a run of 10^9 spaces (<text:s text:c="1000000000"/>): 1 GB as text."""
    row = (f'<table:table-row><table:table-cell office:value-type="string"><text:p>{MARKER}'
           '<text:s text:c="1000000000"/></text:p></table:table-cell></table:table-row>')
    return _ods(_ODS_HEAD + _HEADER_ROW + row + _ODS_TAIL)


def ods_deep_nesting() -> bytes:
    """A cell's text nested 100,000 spans deep."""
    depth = 100_000
    row = ('<table:table-row><table:table-cell office:value-type="string"><text:p>'
           + "<text:span>" * depth + MARKER + "</text:span>" * depth + "</text:p></table:table-cell></table:table-row>")
    return _ods(_ODS_HEAD + _HEADER_ROW + row + _ODS_TAIL)


def xlsx_shared_strings() -> bytes:
    """1.5 million shared strings (the default limit is 1 million) in a 300 KB file."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    strings = f"<si><t>{MARKER}</t></si>" * 1_500_000
    return _xlsx('<row r="1"><c r="A1" t="s"><v>0</v></c></row>', f"<sst {ns}>{strings}</sst>")


def zip_many_members() -> bytes:
    """An .ods with 20,001 files (the default limit is 10,000): refused from the zip's end record,
    before its directory is read (2 million would cost zipfile about 1 GB)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", _ODS_HEAD + _HEADER_ROW + f"<!-- {MARKER} -->" + _ODS_TAIL)
        for i in range(19_999):
            archive.writestr(f"{i}", b"")
    return buffer.getvalue()


def zip_cut_short() -> bytes:
    whole = _ods(_ODS_HEAD + _HEADER_ROW + f"<!-- {MARKER} -->" + _ODS_TAIL)
    return whole[: len(whole) // 2]


def zip_corrupt_deflate() -> bytes:
    """A zip whose directory is intact but whose content.xml's deflate data is garbage."""
    content = (_ODS_HEAD + _HEADER_ROW + f"<!-- {MARKER} -->" * 200 + _ODS_TAIL).encode()
    data = bytearray(_ods(content))
    start = data.index(b"content.xml") + len(b"content.xml")  # the local header's name, then the data
    compressed = len(zlib.compress(content)) - 6
    for i in range(start + 10, start + min(compressed, 400)):
        data[i] ^= 0x5A
    return bytes(data)


def zip_encrypted() -> bytes:
    """An .ods whose content.xml is flagged as encrypted (bit 0 of its local and central headers)."""
    data = bytearray(_ods(_ODS_HEAD + _HEADER_ROW + f"<!-- {MARKER} -->" + _ODS_TAIL))
    for signature, flags, name in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name:at + name + 11] == b"content.xml":
                data[at + flags] |= 1
            at = data.find(signature, at + 1)
    return bytes(data)


def xml_cut_short() -> bytes:
    return _ods(_ODS_HEAD + _HEADER_ROW + f'<table:table-row><table:table-cell office:value-type="string">'
                f"<text:p>{MARKER}")


def xml_garbage() -> bytes:
    return _ods(f"<office:document-content {_ODS_NS}><<{MARKER}>>&&\x01")


def csv_undecodable() -> bytes:
    return b"ICD-10 code,Financial year,FCEs\r\nX99," + MARKER.encode() + b",\x81\x8d\x8f\x90\x9d\r\n"


def csv_wide_row() -> bytes:
    return ("ICD-10 code,Financial year\r\nX99," + MARKER + "," * 5_000_000 + "\r\n").encode()


def csv_huge_field() -> bytes:
    return ("ICD-10 code,Financial year\r\nX99,\"" + MARKER * 20_000 + "\"\r\n").encode()


def csv_larger_than_an_edition_may_be() -> bytes:
    return ("ICD-10 code,Financial year,FCEs\r\n" + f"X99,{MARKER},1\r\n" * 100).encode()


CASES: dict[str, tuple[Callable[[], bytes], str, dict[str, str]]] = {
    # name: (file, what the reason must say, environment of the child)
    "zip_bomb": (zip_bomb, "VRU_MAX_UNZIPPED_BYTES", {}),
    "billion_laughs": (billion_laughs, "declares entities", {}),
    # openpyxl reads columns up to ZZZ (18,278) and refuses a reference past it as malformed
    "xlsx_column_zzzzzz": (xlsx_column_zzzzzz, "a cell or row in sheet 1, before its first row is malformed: a "
                                               "reference Excel cannot have (columns end at XFD", {}),
    "ods_rows_repeated_1e9": (ods_rows_repeated, "repeated 1,000,000,000 times (the limit is 10,000, set by "
                                                 "VRU_MAX_TABLE_REPEAT)", {}),
    "ods_columns_repeated_1e9": (ods_columns_repeated, "repeated 1,000,000,000 times (the limit is 10,000, set "
                                                       "by VRU_MAX_TABLE_REPEAT)", {}),
    "ods_spaces_1e9": (ods_spaces_1e9, "a run of 1,000,000,000 spaces (the limit is 65,536)", {}),
    "ods_deep_nesting": (ods_deep_nesting, "nests elements too deeply", {}),
    "xlsx_shared_strings": (xlsx_shared_strings, "VRU_MAX_SHARED_STRINGS", {}),
    "zip_many_members": (zip_many_members, "lists 20,001 files", {}),
    "zip_cut_short": (zip_cut_short, "zip archive is damaged or cut short (BadZipFile)", {}),
    "zip_corrupt_deflate": (zip_corrupt_deflate, "compressed data is corrupt (zlib.error)", {}),
    "zip_encrypted": (zip_encrypted, "does not support, such as encryption (RuntimeError)", {}),
    "xml_cut_short": (xml_cut_short, "XML is malformed or cut short", {}),
    "xml_garbage": (xml_garbage, "XML is malformed or cut short", {}),
    "csv_undecodable": (csv_undecodable, "neither UTF-8 nor Windows-1252", {}),
    "csv_wide_row": (csv_wide_row, "more than 16,384 fields (the limit is 16,384, set by VRU_MAX_TABLE_COLUMNS)", {}),
    "local_file_over_the_size_limit": (csv_larger_than_an_edition_may_be, "larger than 1,000 bytes and was not read",
                                       {"VRU_MAX_DOWNLOAD_BYTES": "1000"}),
    "csv_huge_field": (csv_huge_field, "not well-formed CSV", {}),
}


# ------------------------------------------------------------------------------------------------
# The load, in a child process under a memory limit
# ------------------------------------------------------------------------------------------------

_CHILD = """
import json, resource, sys, time
limit, job = int(sys.argv[1]), json.loads(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
started = time.monotonic()
from pathlib import Path
import psycopg
from vru.archive import Archive
from vru.feeds import hes, knife_crime
from vru.http import HttpClient, RetryPolicy
with psycopg.connect(job["warehouse"], autocommit=True) as conn:
    archive = Archive(Path(job["archive"]))
    if "url" in job:
        forces = knife_crime.force_names(Path(job["dbt"]))
        with HttpClient(rate_per_second=50, retry=RetryPolicy(max_attempts=1)) as http:
            result = knife_crime.ingest(conn, http, archive, job["url"], forces, run_id="bounded")
    else:
        result = hes.load_file(conn, archive, Path(job["path"]), run_id="bounded")
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(json.dumps({"result": result.to_dict(), "seconds": round(time.monotonic() - started, 2),
                  "peak_rss_mb": round(int(status["VmHWM"].split()[0]) / 1024),
                  "peak_vm_mb": round(int(status["VmPeak"].split()[0]) / 1024)}))
"""


def run_child(job: dict[str, str], env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(MEMORY_LIMIT), json.dumps(job)],
        capture_output=True, text=True, timeout=SECONDS + 15, cwd=REPO,
        env={**os.environ, **env},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"the load crashed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    outcome["wall_seconds"] = round(elapsed, 2)
    return outcome


def _assert_refused_and_recorded(conn: psycopg.Connection, outcome: dict[str, Any], dataset: str,
                                 says: str) -> str:
    result = outcome["result"]
    reason = result["reason"] or ""
    assert result["status"] == "refused", result
    assert says in reason, reason
    assert MARKER not in reason and "lol" not in reason, reason
    rows = conn.execute("select status, error, run_id from audit.loads where dataset = %s", (dataset,)).fetchall()
    assert rows == [("refused", reason, "bounded")], rows
    table = sql.Identifier("raw", "sharp_object_admissions" if dataset.startswith("nhs") else "knife_offences")
    assert conn.execute(sql.SQL("select count(*) from {}").format(table)).fetchone() == (0,)
    assert outcome["seconds"] < SECONDS, outcome
    return reason


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_or_broken_file_is_a_refused_edition(case: str, conn: psycopg.Connection,
                                                       clean_warehouse: str, tmp_path: Path) -> None:
    make, says, env = CASES[case]
    path = tmp_path / f"{case}.bin"
    path.write_bytes(make())
    outcome = run_child({"warehouse": clean_warehouse, "archive": str(tmp_path / "archive"), "path": str(path)},
                        env)
    reason = _assert_refused_and_recorded(conn, outcome, "nhs.sharp_object_admissions", says)
    print(f"\n[bounded] {case}: {path.stat().st_size:,} bytes; {outcome['seconds']} s in the load "
          f"({outcome['wall_seconds']} s with start-up), peak RSS {outcome['peak_rss_mb']} MB, peak address space "
          f"{outcome['peak_vm_mb']} MB; reason: {reason}")


# ------------------------------------------------------------------------------------------------
# A download longer than the limit, over real HTTP
# ------------------------------------------------------------------------------------------------


class _Endless(BaseHTTPRequestHandler):
    """Serves an .ods-looking body of 4 GiB in chunks, with no Content-Length, counting what it sent."""

    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oasis.opendocument.spreadsheet")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"PK\x03\x04" + MARKER.encode() + b"\0" * (1 << 20)
        try:
            for _ in range(4096):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                type(self).sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what we want

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless_server() -> Iterator[tuple[str, type[_Endless]]]:
    handler = type("Endless", (_Endless,), {"sent": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/knife-crime.ods", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_download_longer_than_the_limit_stops_and_is_refused_with_an_incident(
        conn: psycopg.Connection, clean_warehouse: str, tmp_path: Path,
        endless_server: tuple[str, type[_Endless]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, handler = endless_server
    limit = 8 << 20
    outcome = run_child({"warehouse": clean_warehouse, "archive": str(tmp_path / "archive"), "url": url,
                         "dbt": str(REPO / "dbt_project")}, {"VRU_MAX_DOWNLOAD_BYTES": str(limit)})
    says = f"refused: the download is larger than {limit:,} bytes; reading stopped there"
    reason = _assert_refused_and_recorded(conn, outcome, "home_office.knife_offences", says)
    time.sleep(0.5)  # the server notices the closed connection
    assert handler.sent < 64 << 20, f"the client read on: the server sent {handler.sent:,} bytes"
    assert not (tmp_path / "archive").exists() or not any((tmp_path / "archive").rglob("*.ods"))
    print(f"\n[bounded] oversize download: limit {limit:,} bytes, server sent {handler.sent:,} of 4 GiB; "
          f"{outcome['seconds']} s, peak RSS {outcome['peak_rss_mb']} MB, peak address space "
          f"{outcome['peak_vm_mb']} MB; reason: {reason}")

    # The check_and_load task raises EditionRefused on a refused result; its failure callback
    # (every task's, vru.incidents.task_defaults) records the incident in the warehouse.
    from vru.registry import feed

    knife_crime_dag = feed("knife_crime").dag_id
    from vru.incidents import EDITION_REFUSED, EditionRefused, VruIncidentNotifier

    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    for variable in ("VRU_ALERT_EMAIL_TO", "VRU_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(variable, raising=False)
    ti = SimpleNamespace(dag_id=knife_crime_dag, task_id="check_and_load", run_id="bounded", try_number=1,
                         map_index=-1)
    error = EditionRefused(outcome["result"]["dataset"], reason)
    VruIncidentNotifier().notify({"ti": ti, "task_instance": ti, "run_id": "bounded",  # type: ignore[arg-type]
                                  "exception": error})
    incidents = conn.execute("select incident_key, kind, summary, detail, dataset from audit.incidents").fetchall()
    assert len(incidents) == 1
    key, kind, summary, detail, dataset = incidents[0]
    assert (key, kind, dataset) == (f"task:{knife_crime_dag}.check_and_load", EDITION_REFUSED,
                                    "home_office.knife_offences")
    assert summary == ("Knife crime: the new edition was refused, so nothing of it was loaded; the figures "
                       "already held are unchanged.")
    assert reason in detail and MARKER not in detail


# ------------------------------------------------------------------------------------------------
# The limits themselves: configurable, and no cost for what a valid spreadsheet repeats
# ------------------------------------------------------------------------------------------------


def test_the_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from vru.config import ENV_VARS, ReaderLimits, reader_limits

    assert reader_limits() == ReaderLimits()
    assert (ReaderLimits().columns, ReaderLimits().rows) == (16_384, 1_048_576)
    monkeypatch.setenv("VRU_MAX_TABLE_ROWS", "12")
    monkeypatch.setenv("VRU_MAX_DOWNLOAD_BYTES", "1000")
    assert (reader_limits().rows, reader_limits().download_bytes) == (12, 1000)
    monkeypatch.setenv("VRU_MAX_TABLE_CELLS", "lots")
    with pytest.raises(ValueError, match="VRU_MAX_TABLE_CELLS='lots': must be a whole number above 0"):
        reader_limits()
    documented = {name for name in ENV_VARS if name.startswith("VRU_MAX_")}
    assert documented == {"VRU_MAX_DOWNLOAD_BYTES", "VRU_MAX_UNZIPPED_BYTES", "VRU_MAX_UNZIPPED_TOTAL_BYTES",
                          "VRU_MAX_ZIP_MEMBERS", "VRU_MAX_TABLE_ROWS", "VRU_MAX_TABLE_COLUMNS",
                          "VRU_MAX_TABLE_CELLS", "VRU_MAX_TABLE_CHARS", "VRU_MAX_TABLE_REPEAT",
                          "VRU_MAX_SHARED_STRINGS", "VRU_MAX_SHARED_STRINGS_CHARS"}


_VALID_ODS_ROWS = (_HEADER_ROW + "".join(
    "<table:table-row>" + "".join(f'<table:table-cell office:value-type="string"><text:p>{v}</text:p>'
                                  "</table:table-cell>" for v in ("X99", f"20{n}-{n + 1}", "10", "9"))
    + "</table:table-row>" for n in range(10, 20)))


@pytest.mark.parametrize(("limit", "variable"), [
    ({"rows": 5}, "VRU_MAX_TABLE_ROWS"),
    ({"columns": 3}, "VRU_MAX_TABLE_COLUMNS"),
    ({"cells": 20}, "VRU_MAX_TABLE_CELLS"),
    ({"chars": 60}, "VRU_MAX_TABLE_CHARS"),
    ({"unzipped_bytes": 1000}, "VRU_MAX_UNZIPPED_BYTES"),
    ({"unzipped_total_bytes": 1000}, "VRU_MAX_UNZIPPED_TOTAL_BYTES"),
    ({"zip_members": 1}, "VRU_MAX_ZIP_MEMBERS"),
])
def test_each_limit_refuses_a_valid_table_that_passes_it(limit: dict[str, int], variable: str) -> None:
    from vru.config import ReaderLimits
    from vru.tables import TableTooLarge, read_rows

    data = _ods(_ODS_HEAD + _VALID_ODS_ROWS + _ODS_TAIL)
    assert len(list(read_rows(data, "ods"))) == 11  # within the default limits: read as before
    with pytest.raises(TableTooLarge, match=variable):
        list(read_rows(data, "ods", ReaderLimits(**limit)))


def test_shared_string_limits() -> None:
    from vru.config import ReaderLimits
    from vru.tables import TableTooLarge, read_rows

    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    data = _xlsx('<row r="1"><c r="A1" t="s"><v>1</v></c></row>',
                 f"<sst {ns}><si><t>ICD-10 code</t></si><si><t>X99</t></si></sst>")
    assert [r.cells for r in read_rows(data, "xlsx")] == [["X99"]]
    with pytest.raises(TableTooLarge, match=r"VRU_MAX_SHARED_STRINGS\)"):
        list(read_rows(data, "xlsx", ReaderLimits(shared_strings=1)))
    with pytest.raises(TableTooLarge, match="VRU_MAX_SHARED_STRINGS_CHARS"):
        list(read_rows(data, "xlsx", ReaderLimits(shared_strings_chars=12)))


def test_empty_repeats_cost_nothing_however_large() -> None:
    """Filler: an empty cell repeated 10^18 times, an empty row 10^18 times, an empty XLSX cell
    at XFD (Excel's last column) and a row at Excel's last line: skipped without expanding, and the
    cells with a value keep their columns."""
    from vru.tables import read_rows

    row = ('<table:table-row><table:table-cell office:value-type="string"><text:p>a</text:p></table:table-cell>'
           '<table:table-cell table:number-columns-repeated="3"/><table:table-cell office:value-type="float" '
           'office:value="2" table:number-columns-repeated="2"/><table:table-cell '
           'table:number-columns-repeated="999999999999999999"/></table:table-row>'
           '<table:table-row table:number-rows-repeated="999999999999999999"><table:table-cell '
           'table:number-columns-repeated="999999999999999999"/></table:table-row>')
    started = time.monotonic()
    rows = list(read_rows(_ods(_ODS_HEAD + row + _ODS_TAIL), "ods"))
    assert [(r.line_no, r.cells) for r in rows] == [(1, ["a", "", "", "", "2", "2"])]
    xlsx = _xlsx('<row r="1"><c r="B1" t="inlineStr"><is><t>b</t></is></c><c r="XFD1"/></row>'
                 '<row r="1048576"><c r="C1048576"><v>3</v></c></row>')
    assert [(r.line_no, r.cells) for r in read_rows(xlsx, "xlsx")] == [(1, ["", "b"]), (1048576, ["", "", "3"])]
    assert time.monotonic() - started < 2


def test_an_xlsx_sheets_claimed_dimension_is_not_trusted_and_its_limits_hold() -> None:
    """openpyxl's read-only mode trusts a sheet's <dimension>: too small hides data, absurd pads
    every row. The reader ignores it; rows past the row limit, a value past the column limit, too
    many written cells and a member inflating past its limit are refused."""
    from vru.config import ReaderLimits
    from vru.tables import TableTooLarge, read_rows

    rows = ('<row r="1"><c r="A1" t="inlineStr"><is><t>code</t></is></c><c r="C1"><v>7</v></c></row>'
            '<row r="3"><c r="B3"><v>2.5</v></c><c r="E3"/></row>')
    for dimension in (None, "A1", "A1:XFD1048576"):
        data = _xlsx(rows) if dimension is None else _with_dimension(_xlsx(rows), dimension)
        assert [(r.line_no, r.cells) for r in read_rows(data, "xlsx")] == [(1, ["code", "", "7"]),
                                                                           (3, ["", "2.5"])], dimension
    with pytest.raises(TableTooLarge, match=r"sheet 1 has a row past line 2 \(the limit is 2, set by "
                                            r"VRU_MAX_TABLE_ROWS\)"):
        list(read_rows(_xlsx(rows), "xlsx", ReaderLimits(rows=2)))
    with pytest.raises(TableTooLarge, match=r"a cell \(line 1\) is in column 18,278 \(the limit is 16,384"):
        list(read_rows(_xlsx('<row r="1"><c r="ZZZ1"><v>1</v></c></row>'), "xlsx"))
    with pytest.raises(TableTooLarge, match=r"writes more than 4 cells, empty ones included \(passed at line 3\)"):
        list(read_rows(_xlsx(rows), "xlsx", ReaderLimits(cells=4)))
    with pytest.raises(TableTooLarge, match="VRU_MAX_UNZIPPED_BYTES"):
        list(read_rows(_xlsx(rows + "<row/>" * 1000), "xlsx", ReaderLimits(unzipped_bytes=4000)))
    # a row of 600,000 cells in 13 KB: refused from its bytes, before openpyxl builds it (a dict per cell)
    with pytest.raises(TableTooLarge, match=r"a row or shared string holds more than 524,288 XML tags"):
        list(read_rows(_xlsx('<row r="1">' + "<c/>" * 600_000 + "</row>"), "xlsx"))
    assert len(list(read_rows(_xlsx('<row r="1">' + '<c><v>1</v></c>' * 16_384 + "</row>"), "xlsx"))) == 1


def _with_dimension(workbook: bytes, dimension: str) -> bytes:
    """The workbook with <dimension ref="..."/> at the head of its sheet (where Excel writes it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            part = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                part = part.replace(b"<sheetData>", f'<dimension ref="{dimension}"/><sheetData>'.encode())
            target.writestr(info, part)
    return buffer.getvalue()


def test_xlsx_is_not_read_when_openpyxl_would_parse_without_defusedxml(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENPYXL_DEFUSEDXML=False (read by openpyxl at import) would let entities expand: the reader
    stops the task rather than read a download that way."""
    import openpyxl.xml
    from vru.tables import read_rows

    data = _xlsx('<row r="1"><c r="A1"><v>1</v></c></row>')
    assert [r.cells for r in read_rows(data, "xlsx")] == [["1"]]
    monkeypatch.setattr(openpyxl.xml, "DEFUSEDXML", False)
    with pytest.raises(ImportError, match="not parsing with defusedxml"):
        list(read_rows(data, "xlsx"))
