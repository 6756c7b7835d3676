"""Published tables (CSV, OpenDocument or Excel spreadsheet) read as rows of text, and their
headers mapped to canonical columns through one declared column map.

Publishers re-title columns between editions ("Force Name" one year, "Police Force Area" the next)
and put title lines above the header and footnotes below the data. A feed declares its columns
with aliases once (:class:`ColumnMap`); :func:`locate_header` finds the header row wherever it is
and refuses a table that lacks a required column, naming it and the columns the table did have.

The ODS reader streams ``content.xml`` with ``iterparse`` (no DOM: each finished row is dropped,
so a 100k-row sheet stays at one row in memory), expands repeated rows and cells that have a
value (empty ones only move the row or column count on), and reads numbers from
``office:value`` (the stored value, not the text a locale formatted, so "1,234" is 1234).

Every reader is bounded (:mod:`vru.bounded`, limits in :class:`vru.config.ReaderLimits`): zip
members are inflated through a counter, and rows, columns, cells, characters, repeats and shared
strings are counted as they are read. A table past a limit, or one a library cannot parse (XML,
zip, deflate, CSV, text encoding, entity declarations), raises :class:`UnreadableTable` with a
plain reason that never quotes the file; the edition is refused, never the task crashed.

The Excel (.xlsx) reader is openpyxl in read-only mode (values only, external links not loaded;
it parses with defusedxml, installed here), over a zip whose every member is inflated through the
same counter, with the shared strings counted against their limits as openpyxl reads them. Each
sheet's rows are streamed with their own row numbers (what a person sees in Excel), cells in the
columns of their references. A number is its stored double (integers without '.0', decimals in
their shortest form), a date cell an ISO date as the ODS reader gives it, a boolean TRUE/FALSE.
The dimension a sheet claims is ignored (openpyxl trusts it: too small hides data, absurd pads
every row): rows are read to the row limit and one past it, which is refused, and every cell a
row writes, empty or not, counts against the cell limit. Why openpyxl and not our own, and what
it costs: docs/decisions.md.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse  # untrusted downloads: no entity expansion
from openpyxl import xml as openpyxl_xml
from openpyxl.cell.text import Text
from openpyxl.reader.excel import ExcelReader
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse as openpyxl_iterparse

from vru.bounded import READ_ERRORS, Budget, CappedReader, ElementGuard, count, refusal, too_large
from vru.bounded import TableTooLarge as TableTooLarge  # what the readers raise, defined with the limits
from vru.bounded import UnreadableTable as UnreadableTable
from vru.config import ReaderLimits, reader_limits

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
    # the sheet's position in the workbook (1 = first; None for CSV): what messages name, since
    # the sheet's title is the file's text
    sheet_number: int | None = None

    @property
    def is_blank(self) -> bool:
        return not any(c.strip() for c in self.cells)

    def text(self) -> str:
        """The row as one CSV line, for keeping it as it was read."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(_trim(self.cells))
        return buffer.getvalue()


def detect_format(data: bytes, limits: ReaderLimits | None = None) -> str:
    """'ods' or 'xlsx' for a spreadsheet (a zip whose contents say which), else 'csv'.

    Raises :class:`UnreadableTable` for a zip that is neither, or is damaged, or is too large.
    """
    if data[:2] != b"PK":
        return "csv"
    budget = Budget(limits or reader_limits())
    try:
        with _open_zip(data, budget) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                with budget.member(archive, "mimetype") as member:
                    if member.read_all(256).strip() == ODS_MIMETYPE:
                        return "ods"
            if "xl/workbook.xml" in names:
                return "xlsx"
    except UnreadableTable:
        raise
    except READ_ERRORS as exc:
        raise refusal(exc, "zip") from None
    raise UnreadableTable("the file is a zip archive but neither an OpenDocument (.ods) nor an Excel "
                          "(.xlsx) spreadsheet")


def read_rows(data: bytes, file_format: str, limits: ReaderLimits | None = None) -> Iterator[Row]:
    """Every row of every sheet (ODS, XLSX) or of the file (CSV), in order.

    CSV yields blank lines too; a spreadsheet skips rows with no value (their numbers stay counted).
    Reading stays within `limits` (default: the VRU_MAX_* settings); a table that would pass one,
    or that a library cannot parse, raises :class:`UnreadableTable` (:class:`TableTooLarge` for a
    limit) with a reason that never quotes the file.
    """
    readers = {"csv": _csv_rows, "ods": _ods_rows, "xlsx": _xlsx_rows}
    if file_format not in readers:
        raise UnreadableTable(f"unknown table format {file_format!r}: expected csv, ods or xlsx")
    return _refusing(readers[file_format](data, Budget(limits or reader_limits())), file_format)


def _refusing(rows: Iterator[Row], file_format: str) -> Iterator[Row]:
    """The reader's boundary: a library's error while reading becomes a refusal in plain words."""
    try:
        yield from rows
    except UnreadableTable:
        raise
    except READ_ERRORS as exc:
        raise refusal(exc, file_format) from None


def _open_zip(data: bytes, budget: Budget) -> zipfile.ZipFile:
    budget.zip_directory(data)
    archive = zipfile.ZipFile(io.BytesIO(data))
    try:
        budget.open_zip(archive)
    except UnreadableTable:
        archive.close()
        raise
    return archive


def _member(archive: zipfile.ZipFile, name: str, budget: Budget, what: str) -> CappedReader:
    if name not in archive.NameToInfo:
        raise UnreadableTable(f"not a readable {what}: it has no {name} part")
    return budget.member(archive, name)


def _csv_rows(data: bytes, budget: Budget) -> Iterator[Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252")  # spreadsheets saved as CSV on Windows
    for line_no, cells in enumerate(csv.reader(_csv_lines(text, budget)), start=1):
        budget.row(line_no, cells)
        yield Row(None, line_no, cells)


def _csv_lines(text: str, budget: Budget) -> Iterator[str]:
    """The CSV's lines, each refused before it is split when it has more commas than a row may
    have columns (the csv module would first build a list of every field)."""
    columns = budget.limits.columns
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        if line.count(",") >= columns:
            raise too_large(f"line {number:,} of the CSV has more than {columns:,} fields", columns,
                            "VRU_MAX_TABLE_COLUMNS")
        yield line


def _trim(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


_MAX_SPACES = 65_536  # one <text:s text:c="..."/>: a run of spaces in a cell


def _cell_text(cell: object) -> str:
    """The text of a cell's paragraphs, with ODS's encoded spaces, tabs and line breaks."""
    parts: list[str] = []

    def walk(element: object) -> None:
        tag = element.tag  # type: ignore[attr-defined]
        if tag == _X_S:
            spaces = count(element.get(f"{{{_TEXT}}}c"), "count of spaces")  # type: ignore[attr-defined]
            if spaces > _MAX_SPACES:
                raise too_large(f"a cell has a run of {spaces:,} spaces", _MAX_SPACES)
            parts.append(" " * spaces)
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
        raw = str(cell.get(_O_VALUE, ""))  # type: ignore[attr-defined]
        # integers stored as floats ("12" or "12.0") read as "12"
        if raw.endswith(".0"):
            raw = raw[:-2]
        return raw
    if value_type == "date":
        return str(cell.get(_O_DATE, ""))  # type: ignore[attr-defined]
    return _cell_text(cell)


class _Stream:
    """Start and end events of an XML part, dropping each finished element from its parent.

    ``iterparse`` builds the whole tree as it goes; dropping what was read keeps memory at the
    size of one row, whatever the number of rows (or of anything else) in the part. A row is
    kept whole until its end event; one with more elements than `row_elements` is refused.
    """

    def __init__(self, source: CappedReader, row_tag: Callable[[str], bool], row_elements: int) -> None:
        self._source = source
        self._is_row = row_tag
        self._row_elements = row_elements

    def rows(self) -> Iterator[tuple[str, Any]]:
        """('start', element) for every element outside rows, ('row', element) for a whole row."""
        stack: list[Any] = []
        in_row = 0  # depth of the open row in the stack (0: none)
        elements = 0
        for event, element in iterparse(self._source, events=("start", "end")):
            if event == "start":
                stack.append(element)
                if in_row:
                    elements += 1
                    if elements > self._row_elements:
                        raise too_large("a row holds too many XML elements", self._row_elements)
                    continue
                if self._is_row(element.tag):
                    in_row, elements = len(stack), 0
                yield "start", element
                continue
            depth = len(stack)
            stack.pop()
            if in_row and depth > in_row:
                continue  # inside a row: kept until the row ends
            if depth == in_row:
                in_row = 0
                yield "row", element
            else:
                yield "end", element
            element.clear()
            if stack:
                stack[-1].remove(element)


def _ods_rows(data: bytes, budget: Budget) -> Iterator[Row]:
    with _open_zip(data, budget) as archive, _member(archive, "content.xml", budget, ".ods file") as content:
        yield from _ods_content_rows(content, budget)


def _ods_content_rows(content: CappedReader, budget: Budget) -> Iterator[Row]:
    sheet: str | None = None
    sheet_number = 0
    line_no = 0
    depth = 0  # nesting of tables (sub-tables are rare; count rows of the outer one only)
    stream = _Stream(content, lambda tag: tag == _T_ROW and depth == 1, 16 * budget.limits.columns)
    for event, element in stream.rows():
        tag = element.tag
        if event == "start":
            if tag == _T_TABLE:
                depth += 1
                if depth == 1:
                    sheet, line_no = element.get(_T_NAME), 0
                    sheet_number += 1
            continue
        if event == "end":
            if tag == _T_TABLE:
                depth -= 1
            continue
        cells = _ods_cells(element, budget, line_no + 1)
        repeat_rows = count(element.get(_T_ROWS_REPEATED), "number of repeated rows")
        if not cells:
            line_no += repeat_rows  # blank rows (often ~1M of filler at a sheet's end): not expanded
            continue
        if repeat_rows > 1:
            budget.repeat(repeat_rows, "row", line_no + 1)
        for _ in range(repeat_rows):
            line_no += 1
            budget.row(line_no, cells)
            yield Row(sheet, line_no, list(cells), sheet_number)


def _ods_cells(row: Any, budget: Budget, line_no: int) -> list[str]:
    """A row's cells, each in its column; empty cells, however often repeated, cost nothing
    until a value follows them (trailing ones never do)."""
    cells: list[str] = []
    empty = 0  # empty cells not placed yet
    for cell in row:
        if cell.tag not in (_T_CELL, _T_COVERED):
            continue
        repeat = count(cell.get(_T_COLS_REPEATED), "number of repeated columns")
        value = _cell_value(cell)
        if not value:
            empty += repeat
            continue
        if repeat > 1:
            budget.repeat(repeat, "cell", line_no)
        budget.column(len(cells) + empty + repeat - 1, line_no)
        cells.extend([""] * empty)
        cells.extend([value] * repeat)
        empty = 0
    return _trim(cells)


_TAGS_PER_COLUMN = 32  # a cell is 2 to 8 tags (<c><v></v></c>, inline <is><t>): rows up to the column limit pass
_WHOLE_PART_BYTES = 16 * 2**20  # a part openpyxl parses whole (workbook, styles, theme, relationships)
_STRING_TAG = f"{{{SHEET_MAIN_NS}}}si"
_PLAIN_TEXT_TAG = f"{{{SHEET_MAIN_NS}}}t"


class _BoundedArchive(zipfile.ZipFile):
    """The workbook's zip as openpyxl reads it: every member inflated through the budget's counter
    (streamed parts: sheets, shared strings) and a part it parses whole held to 16 MiB."""

    def __init__(self, data: bytes, budget: Budget) -> None:
        budget.zip_directory(data)  # before zipfile reads the directory
        super().__init__(io.BytesIO(data))
        self.budget = budget
        try:
            budget.open_zip(self)
        except UnreadableTable:
            self.close()
            raise

    def open(self, name: Any, mode: Any = "r", pwd: bytes | None = None, *, force_zip64: bool = False) -> Any:
        """A part openpyxl streams (a sheet, the shared strings): inflation and tags per row counted."""
        capped = CappedReader(super().open(name, mode, pwd, force_zip64=force_zip64), self.budget)
        return ElementGuard(capped, _TAGS_PER_COLUMN * self.budget.limits.columns)

    def read(self, name: Any, pwd: bytes | None = None) -> bytes:
        with CappedReader(super().open(name, "r", pwd), self.budget) as member:
            data = member.read_all(_WHOLE_PART_BYTES + 1)
        if len(data) > _WHOLE_PART_BYTES:
            raise too_large(f"a part of the workbook read whole (its list of sheets, styles or relationships) "
                            f"inflates to more than {_WHOLE_PART_BYTES:,} bytes", _WHOLE_PART_BYTES)
        return data


class _WorkbookReader(ExcelReader):  # type: ignore[misc]  # openpyxl has no type hints
    """openpyxl's reader in read-only mode (values only, no external links) over the bounded zip,
    with the shared strings counted against their limits as they are read."""

    def __init__(self, data: bytes, budget: Budget) -> None:
        archive = _BoundedArchive(data, budget)
        try:
            super().__init__(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
        except BaseException:
            archive.close()
            raise
        self.archive.close()  # openpyxl's own ZipFile of the data: ours replaces it
        self.archive: _BoundedArchive = archive
        self.budget = budget

    def read_strings(self) -> None:
        """openpyxl's read_string_table, counting each string as it comes (a workbook can declare
        millions in a few hundred KB)."""
        part = self.package.find(SHARED_STRINGS)
        if part is None:
            return
        limits = self.budget.limits
        strings: list[str] = []
        chars = 0
        with self.archive.open(part.PartName[1:]) as source:
            for _, node in openpyxl_iterparse(source):  # defusedxml's iterparse: openpyxl picks it
                if node.tag != _STRING_TAG:
                    continue
                if len(node) == 1 and node[0].tag == _PLAIN_TEXT_TAG:
                    text = node[0].text or ""  # plain text, most strings: openpyxl's Text is slow for it
                else:
                    text = Text.from_tree(node).content  # rich text runs, phonetic guides left out
                text = text.replace("x005F_", "")
                node.clear()
                strings.append(text)
                chars += len(text)
                if len(strings) > limits.shared_strings:
                    raise too_large(f"the workbook has more than {limits.shared_strings:,} shared strings",
                                    limits.shared_strings, "VRU_MAX_SHARED_STRINGS")
                if chars > limits.shared_strings_chars:
                    raise too_large(f"the workbook's shared strings hold more than "
                                    f"{limits.shared_strings_chars:,} characters", limits.shared_strings_chars,
                                    "VRU_MAX_SHARED_STRINGS_CHARS")
        self.shared_strings = strings


def _library_error(exc: BaseException) -> BaseException:
    """The error openpyxl met, out of the ValueError it wraps it in while opening a workbook."""
    while isinstance(exc, ValueError) and not isinstance(exc, UnreadableTable | DefusedXmlException) \
            and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _open_workbook(data: bytes, budget: Budget) -> Any:
    if not openpyxl_xml.DEFUSEDXML:  # OPENPYXL_DEFUSEDXML=False in the environment, or no defusedxml
        raise ImportError("openpyxl is not parsing with defusedxml: .xlsx downloads are not read without it "
                           "(unset OPENPYXL_DEFUSEDXML)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no default style", unsupported extensions: nothing we read
            reader = _WorkbookReader(data, budget)
            try:
                reader.read()
            except BaseException:
                reader.archive.close()
                raise
    except KeyError:
        raise UnreadableTable("not a readable Excel workbook (.xlsx): a part it needs is missing (its list of "
                              "parts, [Content_Types].xml, or its workbook, or a sheet)") from None
    except READ_ERRORS as exc:
        error = _library_error(exc)
        if isinstance(error, UnreadableTable):
            raise error from None
        raise refusal(error, "xlsx") from None
    return reader.wb


def _xlsx_text(value: object) -> str:
    """A cell's value as text: numbers as stored (integers without '.0'), dates as ISO dates,
    booleans as Excel shows them."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()  # a date cell: the day, as the ODS reader gives it
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)  # int; timedelta (a duration format)


def _xlsx_rows(data: bytes, budget: Budget) -> Iterator[Row]:
    workbook = _open_workbook(data, budget)
    try:
        for number, sheet in enumerate(workbook.worksheets, start=1):
            yield from _xlsx_sheet_rows(sheet, number, budget)
    finally:
        workbook.close()


def _xlsx_sheet_rows(sheet: Any, number: int, budget: Budget) -> Iterator[Row]:
    """A sheet's rows with a value, numbered as in Excel.

    The dimension a sheet declares is not trusted (too small hides data, absurd costs time):
    each row is as wide as its last written cell, which openpyxl places no further than column
    ZZZ; every cell written, empty or not, counts against VRU_MAX_TABLE_CELLS; rows are read to
    the row limit and one past it, so a row beyond it is refused rather than dropped.
    """
    name = str(sheet.title)
    last = budget.limits.rows
    sheet.reset_dimensions()
    line_no = 0
    try:
        for line_no, values in enumerate(sheet.iter_rows(max_row=last + 1, values_only=True), start=1):
            if line_no > last:
                raise too_large(f"sheet {number} has a row past line {last:,}", last, "VRU_MAX_TABLE_ROWS")
            if not values:
                continue
            budget.written(len(values), line_no)
            cells = _trim([_xlsx_text(value) for value in values])
            if cells:
                budget.column(len(cells) - 1, line_no)
                budget.row(line_no, cells)
                yield Row(name, line_no, cells, number)
    except UnreadableTable:
        raise
    except READ_ERRORS as exc:
        # openpyxl's messages quote the cell: each is put in our words, naming the sheet by its
        # number (its title is the file's text) and the line
        where = f"sheet {number}, after line {line_no:,}" if line_no else f"sheet {number}, before its first row"
        if isinstance(exc, IndexError):
            reason = f"a cell in {where} refers to a shared string the workbook does not have"
        elif isinstance(exc, ValueError) and not isinstance(exc, DefusedXmlException):
            reason = (f"a cell or row in {where} is malformed: a reference Excel cannot have (columns end at "
                      "XFD, rows at 1,048,576) or a number, string index or date that is not one")
        else:
            raise UnreadableTable(f"{refusal(exc, 'xlsx')} ({where})") from None
        raise UnreadableTable(f"not a readable Excel workbook (.xlsx): {reason}") from None


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
    """The columns a feed reads, each with its aliases.

    A header repeated in a row (HES has two "Emergency" columns) is its first occurrence. With
    `typos`, a header no alias matches is taken for a column none matched when it is one slip
    away (a letter wrong, missing, extra or two swapped: "Finished consultent episodes") from an
    alias of exactly that column, with the same numbers ("Age 15" is never "Age 16"), and no other
    column is one slip away from it.
    """

    def __init__(self, columns: Sequence[Column], *, typos: bool = False) -> None:
        self.columns = tuple(columns)
        self.typos = typos
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
        if self.typos:
            positions.update(self._near_misses(found, positions))
        missing = [c.name for c in self.columns if c.required and c.name not in positions]
        return positions, missing

    def _near_misses(self, found: dict[str, int], positions: dict[str, int]) -> dict[str, int]:
        """Unmatched headers one slip from the aliases of exactly one unmatched column (and back)."""
        taken = set(positions.values())
        open_columns = [c.name for c in self.columns if c.name not in positions]
        near: dict[str, list[str]] = {}  # header -> the open columns it is one slip from
        for text, i in found.items():
            if i not in taken and len(text) >= _TYPO_MIN_LENGTH:
                near[text] = [name for name in open_columns
                              if any(_one_slip(text, alias) for alias in self._aliases[name])]
        matches: dict[str, int] = {}
        for text, names in near.items():
            if len(names) == 1 and sum(names[0] in others for others in near.values()) == 1:
                matches[names[0]] = found[text]
        return matches

    def describe(self, name: str) -> str:
        column = next(c for c in self.columns if c.name == name)
        return f"{name} (headed one of: {', '.join(repr(a) for a in column.aliases)})"


_TYPO_MIN_LENGTH = 6  # shorter headers ("Male", "FCE") are too close to each other to guess at
_NUMBERS = re.compile(r"\d+")


def _one_slip(text: str, alias: str) -> bool:
    """`text` is `alias` with one letter wrong, missing, extra, or two neighbours swapped; the
    numbers in both are the same."""
    if text == alias or len(alias) < _TYPO_MIN_LENGTH or _NUMBERS.findall(text) != _NUMBERS.findall(alias):
        return False
    if len(text) == len(alias):
        diffs = [i for i, (a, b) in enumerate(zip(text, alias, strict=True)) if a != b]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and text[diffs[0]] == alias[diffs[1]] and text[diffs[1]] == alias[diffs[0]])
    shorter, longer = sorted((text, alias), key=len)
    if len(longer) - len(shorter) != 1:
        return False
    i = next((k for k, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b), len(shorter))
    return shorter[i:] == longer[i + 1:]


def locate_header(rows: Iterable[Row], column_map: ColumnMap, where: str) -> tuple[Header, list[Row], Iterator[Row]]:
    """Find the header row among the first rows of a sheet.

    Returns the header, the rows above it (title lines, kept as notes) and an iterator over the
    rows after it. Sheets without the columns (an ODS cover sheet, a notes sheet) are passed over;
    if no sheet has them, :class:`MissingColumns` names the missing columns, the row that came
    closest (line, sheet number) and its columns that matched nothing, by letter, never by text.
    """
    iterator = iter(rows)
    best: tuple[int, Row | None, list[str], set[int]] = (-1, None, [], set())
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
            best = (len(positions), row, missing, set(positions.values()))
        preamble.append(row)
    _, closest, missing, matched = best
    required = missing or [c.name for c in column_map.columns if c.required]
    message = (f"{where}: no header row with every required column. Missing: "
               + "; ".join(column_map.describe(m) for m in required) + ".")
    if closest is not None:
        # where the closest row is and which of its columns matched nothing, by position only: the
        # headers are the file's text, and this message reaches audit records and alerts
        unmatched = [column_letter(i) for i, cell in enumerate(closest.cells) if cell.strip() and i not in matched]
        message += (f" The closest row, {row_place(closest)}, has "
                    f"{sum(1 for cell in closest.cells if cell.strip())} headed columns; "
                    + (f"column{'s' if len(unmatched) > 1 else ''} {', '.join(unmatched)} matched none of the "
                       "feed's columns" if unmatched else "every one matched a column")
                    + " (headers are not quoted here: read them in the kept file).")
    raise MissingColumns(message + " If the publisher renamed a column, add the new header to the feed's "
                         "column map aliases.")


def row_place(row: Row) -> str:
    """'line 12 of sheet 2', or 'line 12' in a CSV: a row's place for messages, naming the sheet
    by its number because its title is the file's text."""
    return f"line {row.line_no}" + (f" of sheet {row.sheet_number}" if row.sheet_number else "")


def column_letter(index: int) -> str:
    """A 0-based column position as a spreadsheet names it: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


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
