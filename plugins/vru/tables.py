"""Published tables (CSV, OpenDocument or Excel spreadsheet) read as rows of text, and their
headers mapped to canonical columns through one declared column map.

Publishers re-title columns between editions ("Force Name" one year, "Police Force Area" the next)
and put title lines above the header and footnotes below the data. A feed declares its columns
with aliases once (:class:`ColumnMap`); :func:`locate_header` finds the header row wherever it is
and refuses a table that lacks a required column, naming it and the columns the table did have.

The ODS reader streams ``content.xml`` with ``iterparse`` (no DOM: a 100k-row sheet stays small in
memory), expands repeated rows and cells, and reads numbers from ``office:value`` (the stored
value, not the text a locale formatted, so "1,234" is 1234).

The Excel (.xlsx) reader does the same with SpreadsheetML: the workbook's sheet list and
relationships say which part holds which sheet, shared strings are read once, and each sheet's
rows are streamed with their own row numbers (what a person sees in Excel), cells placed by their
references so an empty cell Excel did not write still takes its column. A number is its stored
value; a date is stored as a day number and is read as that number (none of our tables has a date
cell).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from defusedxml.ElementTree import iterparse  # untrusted downloads: no entity expansion

ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"

_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_T_TABLE = f"{{{_TABLE}}}table"
_T_ROW = f"{{{_TABLE}}}table-row"
_T_CELL = f"{{{_TABLE}}}table-cell"
_T_COVERED = f"{{{_TABLE}}}covered-table-cell"
_T_NAME = f"{{{_TABLE}}}name"
_T_ROWS_REPEATED = f"{{{_TABLE}}}number-rows-repeated"
_T_COLS_REPEATED = f"{{{_TABLE}}}number-columns-repeated"
_O_VALUE_TYPE = f"{{{_OFFICE}}}value-type"
_O_VALUE = f"{{{_OFFICE}}}value"
_O_DATE = f"{{{_OFFICE}}}date-value"
_X_P = f"{{{_TEXT}}}p"
_X_S = f"{{{_TEXT}}}s"
_X_TAB = f"{{{_TEXT}}}tab"
_X_BREAK = f"{{{_TEXT}}}line-break"

_HEADER_SCAN_ROWS = 60  # title lines a sheet may have above its header


@dataclass(frozen=True)
class Row:
    """One row of a table: where it is (sheet, 1-based line) and its cells as text ('' = empty)."""

    sheet: str | None
    line_no: int
    cells: list[str]

    @property
    def is_blank(self) -> bool:
        return not any(c.strip() for c in self.cells)

    def text(self) -> str:
        """The row as one CSV line, for keeping it as it was read."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(_trim(self.cells))
        return buffer.getvalue()


def detect_format(data: bytes) -> str:
    """'ods' or 'xlsx' for a spreadsheet (a zip whose contents say which), else 'csv'."""
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                if "mimetype" in names and archive.read("mimetype").strip() == ODS_MIMETYPE:
                    return "ods"
                if "xl/workbook.xml" in names:
                    return "xlsx"
        except zipfile.BadZipFile:
            pass
        raise UnreadableTable("the file is a zip archive but neither an OpenDocument (.ods) nor an Excel "
                              "(.xlsx) spreadsheet")
    return "csv"


class UnreadableTable(ValueError):
    """The bytes are not a table this reader understands."""


def read_rows(data: bytes, file_format: str) -> Iterator[Row]:
    """Every row of every sheet (ODS, XLSX) or of the file (CSV), in order.

    CSV yields blank lines too; a spreadsheet skips rows with no value (their numbers stay counted).
    """
    if file_format == "csv":
        return _csv_rows(data)
    if file_format == "ods":
        return _ods_rows(data)
    if file_format == "xlsx":
        return _xlsx_rows(data)
    raise UnreadableTable(f"unknown table format {file_format!r}: expected csv, ods or xlsx")


def _csv_rows(data: bytes) -> Iterator[Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252")  # spreadsheets saved as CSV on Windows
    for line_no, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        yield Row(None, line_no, cells)


def _trim(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _cell_text(cell: object) -> str:
    """The text of a cell's paragraphs, with ODS's encoded spaces, tabs and line breaks."""
    parts: list[str] = []

    def walk(element: object) -> None:
        tag = element.tag  # type: ignore[attr-defined]
        if tag == _X_S:
            parts.append(" " * int(element.get(f"{{{_TEXT}}}c", "1")))  # type: ignore[attr-defined]
        elif tag == _X_TAB:
            parts.append("\t")
        elif tag == _X_BREAK:
            parts.append("\n")
        elif element.text:  # type: ignore[attr-defined]
            parts.append(element.text)  # type: ignore[attr-defined]
        for child in element:  # type: ignore[attr-defined]
            walk(child)
            if child.tail:
                parts.append(child.tail)

    paragraphs = []
    for paragraph in cell.iter(_X_P):  # type: ignore[attr-defined]
        parts = []
        walk(paragraph)
        paragraphs.append("".join(parts))
    return "\n".join(paragraphs)


def _cell_value(cell: object) -> str:
    value_type = cell.get(_O_VALUE_TYPE)  # type: ignore[attr-defined]
    if value_type in ("float", "percentage", "currency"):
        raw = cell.get(_O_VALUE, "")  # type: ignore[attr-defined]
        # integers stored as floats ("12" or "12.0") read as "12"
        if raw.endswith(".0"):
            raw = raw[:-2]
        return raw
    if value_type == "date":
        return cell.get(_O_DATE, "")  # type: ignore[attr-defined]
    return _cell_text(cell)


def _ods_rows(data: bytes) -> Iterator[Row]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        content = archive.open("content.xml")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UnreadableTable(f"not a readable .ods file: {exc}") from exc
    sheet: str | None = None
    line_no = 0
    with archive, content:
        depth = 0  # nesting of tables (sub-tables are rare; count rows of the outer one only)
        for event, element in iterparse(content, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if tag == _T_TABLE:
                    depth += 1
                    if depth == 1:
                        sheet, line_no = element.get(_T_NAME), 0
                continue
            if tag == _T_ROW and depth == 1:
                cells: list[str] = []
                for cell in element:
                    if cell.tag not in (_T_CELL, _T_COVERED):
                        continue
                    repeat = int(cell.get(_T_COLS_REPEATED, "1"))
                    value = _cell_value(cell)
                    if repeat > 1 and not value:
                        cells.extend([""] * min(repeat, 1024))  # trailing filler: trimmed below
                    else:
                        cells.extend([value] * repeat)
                cells = _trim(cells)
                repeat_rows = int(element.get(_T_ROWS_REPEATED, "1"))
                element.clear()
                if not cells:
                    line_no += repeat_rows  # blank rows (often ~1M of filler at a sheet's end)
                    continue
                for _ in range(repeat_rows):
                    line_no += 1
                    yield Row(sheet, line_no, list(cells))
            elif tag == _T_TABLE:
                depth -= 1
                element.clear()


def _local(tag: str) -> str:
    """An element's name without its namespace (transitional and strict SpreadsheetML differ)."""
    return tag.rsplit("}", 1)[-1]


def _column_index(reference: str) -> int:
    """'C7' -> 2: the 0-based column of a cell reference."""
    index = 0
    for char in reference:
        if not char.isalpha():
            break
        index = index * 26 + (ord(char.upper()) - 64)
    return index - 1


def _xlsx_text(element: object) -> str:
    """The text of a shared or inline string: its <t>, or its rich text runs' <t> joined; phonetic
    guides (<rPh>) are not the cell's text."""
    parts: list[str] = []
    for child in element:  # type: ignore[attr-defined]
        name = _local(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return "".join(parts)


def _xlsx_sheets(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, part path) in the workbook's order."""
    targets: dict[str, str] = {}
    with archive.open("xl/_rels/workbook.xml.rels") as rels:
        for _, element in iterparse(rels):
            if _local(element.tag) == "Relationship":
                target = element.get("Target", "")
                targets[element.get("Id", "")] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    sheets: list[tuple[str, str]] = []
    with archive.open("xl/workbook.xml") as workbook:
        for _, element in iterparse(workbook):
            if _local(element.tag) == "sheet":
                rel = next((v for k, v in element.attrib.items() if _local(k) == "id"), "")
                if rel in targets:
                    sheets.append((element.get("name", ""), targets[rel]))
    return sheets


def _xlsx_shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    strings: list[str] = []
    with archive.open("xl/sharedStrings.xml") as part:
        for _, element in iterparse(part):
            if _local(element.tag) == "si":
                strings.append(_xlsx_text(element))
                element.clear()
    return strings


def _xlsx_cell_value(cell: object, shared: list[str]) -> str:
    kind = cell.get("t", "n")  # type: ignore[attr-defined]
    if kind == "inlineStr":
        inline = next((c for c in cell if _local(c.tag) == "is"), None)  # type: ignore[attr-defined]
        return _xlsx_text(inline) if inline is not None else ""
    value = next((c.text or "" for c in cell if _local(c.tag) == "v"), "")  # type: ignore[attr-defined]
    if kind == "s":
        return shared[int(value)] if value.isdigit() and int(value) < len(shared) else ""
    if kind == "b":
        return "TRUE" if value == "1" else "FALSE"
    if kind == "n" and value.endswith(".0"):
        return value[:-2]  # integers stored as floats read as integers, as in the ODS reader
    return value  # numbers as stored, formula strings (str), errors (e: "#N/A")


def _xlsx_rows(data: bytes) -> Iterator[Row]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        sheets = _xlsx_sheets(archive)
        shared = _xlsx_shared_strings(archive)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UnreadableTable(f"not a readable .xlsx file: {exc}") from exc
    with archive:
        for name, part in sheets:
            try:
                content = archive.open(part)
            except KeyError as exc:
                raise UnreadableTable(f"not a readable .xlsx file: sheet {name!r} has no part {part}") from exc
            with content:
                line_no = 0
                for _, element in iterparse(content):
                    if _local(element.tag) != "row":
                        continue
                    line_no = int(element.get("r") or line_no + 1)
                    cells: list[str] = []
                    for cell in element:
                        if _local(cell.tag) != "c":
                            continue
                        reference = cell.get("r")
                        column = _column_index(reference) if reference else len(cells)
                        if column > len(cells):
                            cells.extend([""] * (column - len(cells)))  # cells Excel left out
                        cells.append(_xlsx_cell_value(cell, shared))
                    element.clear()
                    cells = _trim(cells)
                    if cells:
                        yield Row(name, line_no, cells)


# ------------------------------------------------------------------------------------------------
# Column maps
# ------------------------------------------------------------------------------------------------


def normalise_header(value: str) -> str:
    """'Force Name [note 2]' -> 'force name': case, spacing, notes and punctuation do not matter."""
    value = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", value)  # [note 2], (number)
    value = re.sub(r"[^0-9a-z]+", " ", value.lower())
    return " ".join(value.split())


@dataclass(frozen=True)
class Column:
    """A canonical column and the headers publishers have used for it (first match wins)."""

    name: str
    aliases: tuple[str, ...]
    required: bool = True


class MissingColumns(ValueError):
    """The table has no header row with every required column."""


@dataclass(frozen=True)
class Header:
    row: Row
    positions: dict[str, int]  # canonical column -> cell index

    def pick(self, row: Row) -> dict[str, str]:
        return {name: (row.cells[i].strip() if i < len(row.cells) else "")
                for name, i in self.positions.items()}


class ColumnMap:
    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self._aliases = {c.name: [normalise_header(a) for a in (c.name, *c.aliases)] for c in columns}

    def match(self, cells: Sequence[str]) -> tuple[dict[str, int], list[str]]:
        """Positions of the columns found in `cells` and the required ones missing."""
        found = {normalise_header(cell): i for i, cell in reversed(list(enumerate(cells))) if cell.strip()}
        positions: dict[str, int] = {}
        for column in self.columns:
            for alias in self._aliases[column.name]:
                if alias in found:
                    positions[column.name] = found[alias]
                    break
        missing = [c.name for c in self.columns if c.required and c.name not in positions]
        return positions, missing

    def describe(self, name: str) -> str:
        column = next(c for c in self.columns if c.name == name)
        return f"{name} (headed one of: {', '.join(repr(a) for a in column.aliases)})"


def locate_header(rows: Iterable[Row], column_map: ColumnMap, where: str) -> tuple[Header, list[Row], Iterator[Row]]:
    """Find the header row among the first rows of a sheet.

    Returns the header, the rows above it (title lines, kept as notes) and an iterator over the
    rows after it. Sheets without the columns (an ODS cover sheet, a notes sheet) are passed over;
    if no sheet has them, :class:`MissingColumns` names the missing columns and the columns of
    the row that came closest.
    """
    iterator = iter(rows)
    best: tuple[int, Row | None, list[str]] = (-1, None, [])
    preamble: list[Row] = []
    sheet: object = object()
    scanned = 0
    for row in iterator:
        if row.sheet != sheet:
            sheet, scanned, preamble = row.sheet, 0, []
        scanned += 1
        if scanned > _HEADER_SCAN_ROWS:
            continue  # this sheet is not the data sheet: skip to the next one
        positions, missing = column_map.match(row.cells)
        if not missing:
            return Header(row, positions), preamble, _same_sheet(row.sheet, iterator)
        if len(positions) > best[0]:
            best = (len(positions), row, missing)
        preamble.append(row)
    _, closest, missing = best
    had = [c for c in (closest.cells if closest else []) if c.strip()]
    place = ""
    if closest is not None:
        sheet_name = f" of sheet {closest.sheet!r}" if closest.sheet else ""
        place = f" (closest: line {closest.line_no}{sheet_name})"
    raise MissingColumns(
        f"{where}: no header row with every required column. Missing: "
        + "; ".join(column_map.describe(m) for m in (missing or [c.name for c in column_map.columns if c.required]))
        + f". The table's columns were: {had}{place}. If the publisher renamed a column, add the new "
        "header to the feed's column map aliases."
    )


def _same_sheet(sheet: str | None, rows: Iterator[Row]) -> Iterator[Row]:
    for row in rows:
        if row.sheet != sheet:
            return
        yield row


_FINANCIAL_YEAR = re.compile(r"^(\d{4})\s*(?:/|-|–|to)\s*(\d{2}|\d{4})$")


def parse_financial_year(value: str) -> int | None:
    """'2019/20', '2019-20', '2019/2020', '2019 to 2020' -> 2019; anything else -> None."""
    match = _FINANCIAL_YEAR.match(value.strip())
    if not match:
        return None
    start, end = int(match[1]), match[2]
    end_year = int(end) if len(end) == 4 else (start // 100) * 100 + int(end)
    if end_year != start + 1 and not (len(end) == 2 and int(end) == (start + 1) % 100):
        return None
    return start


def read_path(path: Path) -> Iterator[Row]:
    data = path.read_bytes()
    return read_rows(data, detect_format(data))
