"""Bounds on reading an untrusted table, and the one error a reader raises when a table breaks them.

A published spreadsheet is a zip of XML parts written by someone else: a 1 KB file can declare a
member that inflates to gigabytes, a cell repeated 10^9 times, a cell reference 300 million
columns to the right, or entities that expand exponentially. The readers in :mod:`vru.tables`
count what a table costs while they stream it, against :class:`vru.config.ReaderLimits`, and stop
at the first limit passed with :class:`TableTooLarge`. Every library error met while reading
(XML, zip, deflate, CSV, text decoding) is turned into :class:`UnreadableTable` at the reader's
boundary by :func:`refusal`, with a reason of our own words: never the file's content (an XML
error message can quote an entity's name, a decoding error a byte, a zip error a member name).
"""

from __future__ import annotations

import csv
import lzma
import re
import struct
import zipfile
import zlib
from typing import IO
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException

from vru.config import ReaderLimits


class UnreadableTable(ValueError):
    """The bytes are not a table this reader understands, or reading them was refused: the
    edition is refused with this reason (which never quotes the file)."""


class TableTooLarge(UnreadableTable):
    """Reading the table would pass one of the readers' limits (VRU_MAX_*)."""


def refusal(exc: BaseException, file_format: str) -> UnreadableTable:
    """The refusal for a library error met while reading a table, in plain words."""
    what = {"ods": "OpenDocument spreadsheet (.ods)", "xlsx": "Excel workbook (.xlsx)", "csv": "CSV file",
            "zip": "zip archive"}.get(file_format, "table")
    if isinstance(exc, DefusedXmlException):
        reason = ("its XML declares entities or a document type that points elsewhere, which no "
                  "spreadsheet needs and XML bombs use; it was not expanded")
    elif isinstance(exc, ParseError):
        line, column = getattr(exc, "position", (0, 0))
        reason = f"its XML is malformed or cut short (line {line}, column {column} of an XML part)"
    elif isinstance(exc, RecursionError):
        reason = "its XML nests elements too deeply to read"
    elif isinstance(exc, UnicodeDecodeError):
        reason = f"its text is neither UTF-8 nor Windows-1252 (an undecodable byte at offset {exc.start})"
    elif isinstance(exc, csv.Error):
        reason = "it is not well-formed CSV (for example a field longer than 131072 characters)"
    elif isinstance(exc, zlib.error):
        reason = "its zip archive is damaged: a file's compressed data is corrupt (zlib.error)"
    elif isinstance(exc, zipfile.BadZipFile | EOFError | lzma.LZMAError | struct.error):
        reason = f"its zip archive is damaged or cut short ({type(exc).__name__})"
    elif isinstance(exc, NotImplementedError | RuntimeError):
        reason = ("its zip archive uses a feature this reader does not support, such as encryption "
                  f"({type(exc).__name__})")
    else:
        reason = f"it could not be read ({type(exc).__name__})"
    return UnreadableTable(f"not a readable {what}: {reason}")


# What reading a table may raise besides our own errors: each becomes a refusal, never a crash.
READ_ERRORS: tuple[type[BaseException], ...] = (
    DefusedXmlException, ParseError, RecursionError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile,
    zipfile.LargeZipFile, zlib.error, EOFError, lzma.LZMAError, struct.error, NotImplementedError,
    RuntimeError, OSError, ValueError, KeyError, IndexError, OverflowError,
)


def too_large(what: str, limit: int, variable: str | None = None) -> TableTooLarge:
    setting = f", set by {variable}" if variable else ""
    return TableTooLarge(f"refused: {what} (the limit is {limit:,}{setting})")


def count(text: str | None, what: str, default: int = 1) -> int:
    """A repeat count or row number from an attribute: digits only, at most 18 of them."""
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise UnreadableTable(f"not a readable table: a {what} is not a whole number")
    return int(text)


class Budget:
    """What one table has cost so far: rows, cells and characters read, and bytes inflated from its zip."""

    def __init__(self, limits: ReaderLimits) -> None:
        self.limits = limits
        self.rows = 0
        self.cells = 0
        self.chars = 0
        self.unzipped = 0
        self.cells_written = 0

    def row(self, line_no: int, cells: list[str]) -> None:
        """Count a row with a value about to be yielded: the rows so far, its width, its cells and text.

        Rows without a value are not counted: a sheet's trailing filler costs nothing, and a row's
        number is only a number.
        """
        limits = self.limits
        width = len(cells)
        self.rows += 1
        if self.rows > limits.rows:
            raise too_large(f"the table has more than {limits.rows:,} rows with a value (passed at line "
                            f"{line_no:,})", limits.rows, "VRU_MAX_TABLE_ROWS")
        if width > limits.columns:
            raise too_large(f"a row (line {line_no:,}) is {width:,} columns wide", limits.columns,
                            "VRU_MAX_TABLE_COLUMNS")
        self.cells += width
        if self.cells > limits.cells:
            raise too_large(f"the table has more than {limits.cells:,} cells (passed at line {line_no:,})",
                            limits.cells, "VRU_MAX_TABLE_CELLS")
        self.chars += sum(len(c) for c in cells)
        if self.chars > limits.chars:
            raise too_large(f"the table's cells hold more than {limits.chars:,} characters (passed at line "
                            f"{line_no:,})", limits.chars, "VRU_MAX_TABLE_CHARS")

    def written(self, width: int, line_no: int) -> None:
        """A spreadsheet row as wide as `width` cells was written, empty ones included (an XLSX row
        reaches as far as its last cell, whatever it holds): what expanding it cost."""
        self.cells_written += width
        if self.cells_written > self.limits.cells:
            raise too_large(f"the table writes more than {self.limits.cells:,} cells, empty ones included "
                            f"(passed at line {line_no:,})", self.limits.cells, "VRU_MAX_TABLE_CELLS")

    def column(self, index: int, line_no: int) -> None:
        """A cell with a value is about to be placed at 0-based column `index`."""
        if index >= self.limits.columns:
            raise too_large(f"a cell (line {line_no:,}) is in column {index + 1:,}", self.limits.columns,
                            "VRU_MAX_TABLE_COLUMNS")

    def repeat(self, times: int, what: str, line_no: int) -> None:
        """A row or cell with a value repeats `times` times."""
        if times > self.limits.repeat:
            raise too_large(f"a {what} with a value (line {line_no:,}) is repeated {times:,} times",
                            self.limits.repeat, "VRU_MAX_TABLE_REPEAT")

    def zip_directory(self, data: bytes) -> None:
        """Refuse a zip whose directory lists more members than allowed, from its end record,
        before :class:`zipfile.ZipFile` reads the directory into memory (a small object per entry)."""
        members, directory_bytes = _zip_directory_size(data)
        limit = self.limits.zip_members
        if members > limit or directory_bytes > limit * _DIRECTORY_BYTES_PER_MEMBER:
            raise too_large(f"the zip archive lists {members:,} files in a directory of {directory_bytes:,} bytes",
                            limit, "VRU_MAX_ZIP_MEMBERS")

    def open_zip(self, archive: zipfile.ZipFile) -> None:
        """Refuse an archive with more members than allowed (before any is read)."""
        members = len(archive.infolist())
        if members > self.limits.zip_members:
            raise too_large(f"the zip archive holds {members:,} files", self.limits.zip_members,
                            "VRU_MAX_ZIP_MEMBERS")

    def member(self, archive: zipfile.ZipFile, name: str) -> CappedReader:
        """Member `name` of the archive, to be read under the per-member and total limits."""
        return CappedReader(archive.open(name), self)

    def inflated(self, member_bytes: int, more: int) -> None:
        limits = self.limits
        self.unzipped += more
        if member_bytes > limits.unzipped_bytes:
            raise too_large(f"a file inside the zip archive inflates to more than {limits.unzipped_bytes:,} bytes",
                            limits.unzipped_bytes, "VRU_MAX_UNZIPPED_BYTES")
        if self.unzipped > limits.unzipped_total_bytes:
            raise too_large(f"the zip archive inflates to more than {limits.unzipped_total_bytes:,} bytes",
                            limits.unzipped_total_bytes, "VRU_MAX_UNZIPPED_TOTAL_BYTES")


_DIRECTORY_BYTES_PER_MEMBER = 1024  # a directory entry is 46 bytes plus its name, extra field and comment
_END = b"PK\x05\x06"  # end of central directory record (22 bytes and a comment of up to 65,535)
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"


def _zip_directory_size(data: bytes) -> tuple[int, int]:
    """(members, bytes) of a zip's central directory as its end record states them; (0, 0) when
    there is no end record (zipfile then refuses the file itself)."""
    at = data.rfind(_END, max(0, len(data) - 22 - 65_535))
    if at < 0 or at + 22 > len(data):
        return 0, 0
    members = int.from_bytes(data[at + 10:at + 12], "little")
    size = int.from_bytes(data[at + 12:at + 16], "little")
    locator = at - 20
    if (members == 0xFFFF or size == 0xFFFFFFFF) and locator >= 0 and data[locator:locator + 4] == _END64_LOCATOR:
        end64 = int.from_bytes(data[locator + 8:locator + 16], "little")
        if data[end64:end64 + 4] == _END64:
            members = int.from_bytes(data[end64 + 32:end64 + 40], "little")
            size = int.from_bytes(data[end64 + 40:end64 + 48], "little")
    return members, size


class CappedReader:
    """A zip member read in chunks, its inflated bytes counted as they come (the size its header
    declares is not trusted); passing a limit raises :class:`TableTooLarge`."""

    _CHUNK = 1 << 16

    def __init__(self, raw: IO[bytes], budget: Budget) -> None:
        self._raw = raw
        self._budget = budget
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self._CHUNK:
            size = self._CHUNK  # never inflate more than a chunk per call, whatever is asked
        data = self._raw.read(size)
        self._read += len(data)
        self._budget.inflated(self._read, len(data))
        return data

    def read_all(self, most: int) -> bytes:
        """Up to `most` bytes (for small parts such as the ODS mimetype)."""
        parts: list[bytes] = []
        got = 0
        while got < most:
            data = self.read(min(self._CHUNK, most - got))
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> CappedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_ROW_OR_STRING = re.compile(rb"</?(?:[A-Za-z_][\w.-]*:)?(?:row|si)[\s/>]")  # SpreadsheetML <row>, <si>


class ElementGuard:
    """A streamed SpreadsheetML part (a sheet, the shared strings) whose tags are counted from its
    bytes between one row or string boundary and the next, before a parser builds them: openpyxl
    builds a whole row (an element and a dict per cell) before anything else sees it, so a row of
    millions of cells in a few MB of deflate must be refused in the bytes."""

    def __init__(self, source: CappedReader, most: int) -> None:
        self._source = source
        self._most = most
        self._tags = 0  # tags since the last boundary (one cut by a chunk's end: counted on, so only later)

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        parts = _ROW_OR_STRING.split(data)
        for number, part in enumerate(parts):
            self._tags = (self._tags if number == 0 else 1) + part.count(b"<")
            if self._tags > self._most:
                raise too_large(f"a row or shared string holds more than {self._most:,} XML tags", self._most)
        return data

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> ElementGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
