"""Parsing the real published files and API shapes, and refusing or quarantining bad input."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from conftest import FIXTURES, SAMPLE
from vru.feeds import police
from vru.loader import Chunk, Quarantined
from vru_sample.server import SampleApi, csv_row_to_api

HEADER = list(police.CSV_COLUMNS)


def chunk_rows(chunk: Chunk) -> list[list[str | None]]:
    """A Chunk's lines as fields: COPY's text format with nothing escaped (the Chunk contract)."""
    assert chunk.text.endswith("\n") and "\\" not in chunk.text and "\r" not in chunk.text
    rows: list[list[str | None]] = [line.split("\t") for line in chunk.text[:-1].split("\n")]
    assert len(rows) == chunk.rows
    return rows


def records(parsed: police.Parsed) -> list[list[str | None] | Quarantined]:
    """Parsed records one by one as fields, whether they came in Chunks (hot path) or alone."""
    out: list[list[str | None] | Quarantined] = []
    for record in parsed.records:
        if isinstance(record, Chunk):
            out.extend(chunk_rows(record))
        elif isinstance(record, Quarantined):
            out.append(record)
        else:
            out.append(list(record))
    return sorted(out, key=lambda r: r.line_no if isinstance(r, Quarantined) else int(r[0] or 0))


def _parse_text(text: str) -> tuple[list[list[str | None]], list[Quarantined]]:
    parsed = police.parse_csv(io.StringIO(text, newline=""), "test.csv")
    rows: list[list[str | None]] = []
    bad: list[Quarantined] = []
    for record in records(parsed):
        if isinstance(record, Quarantined):
            bad.append(record)
        else:
            rows.append(record)
    return rows, bad


def _csv(rows: list[list[str]], header: list[str] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


GOOD = ["Person search", "2019-12-01T00:21:59+00:00", "", "", "53.494342", "-2.889617", "Male",
        "over 34", "White - English/Welsh/Scottish/Northern Irish/British", "White",
        "Misuse of Drugs Act 1971 (section 23)", "Controlled drugs", "A no further action disposal",
        "", "True"]


@pytest.mark.parametrize("path", sorted(SAMPLE.glob("*.csv")) + sorted(FIXTURES.glob("police_uk/*.csv")),
                         ids=lambda p: p.name)
def test_every_real_archive_file_parses_without_loss(path: Path) -> None:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        expected = sum(1 for _ in csv.reader(handle)) - 1
    with open(path, encoding="utf-8-sig", newline="") as handle:
        parsed = police.parse_csv(handle, str(path))
        got = records(parsed)
    assert [r for r in got if isinstance(r, Quarantined)] == []
    assert len(got) == expected
    assert parsed.columns[0] == "line_no" and set(parsed.columns[1:]) == set(police.CSV_COLUMNS.values())


def test_archive_file_name_gives_force_and_month() -> None:
    part = police.archive_file_partition(Path("2019-12-south-yorkshire-stop-and-search.csv"))
    assert (part.force_id, part.month.isoformat()) == ("south-yorkshire", "2019-12-01")
    with pytest.raises(ValueError, match=r"not a data\.police\.uk archive file name"):
        police.archive_file_partition(Path("south-yorkshire.csv"))


def test_bad_rows_are_quarantined_with_reason_and_line() -> None:
    bad_date = [*GOOD[:1], "2019-13-45T99:00:00", *GOOD[2:]]
    bad_number = [*GOOD[:4], "53.49.4342", *GOOD[5:]]
    short = GOOD[:10]
    bad_bool = [*GOOD[:14], "Maybe"]
    rows, bad = _parse_text(_csv([GOOD, bad_date, GOOD, bad_number, short, bad_bool, GOOD]))
    assert len(rows) == 3
    assert [(q.line_no, q.reason.split(":")[0]) for q in bad] == [
        (3, "bad date"), (5, "bad number"), (6, "wrong field count"), (7, "bad boolean")]
    assert "'Latitude'" in bad[1].reason and "53.49.4342" in bad[1].reason
    assert "expected 15, got 10" in bad[2].reason
    assert bad[0].record.startswith("Person search,2019-13-45T99:00:00")
    assert [r[0] for r in rows] == ["2", "4", "8"]  # line numbers of the good rows (header = 1)


def test_numbers_python_accepts_but_postgres_rejects_are_quarantined() -> None:
    rows, bad = _parse_text(_csv([[*GOOD[:4], "5_3.1", *GOOD[5:]], [*GOOD[:4], "\u0665\u0663", *GOOD[5:]],
                                  [*GOOD[:1], "2019-12-01X00:21:59", *GOOD[2:]]]))
    assert rows == [] and [q.reason.split(":")[0] for q in bad] == ["bad number", "bad number", "bad date"]


def test_changed_header_is_refused_naming_missing_and_unexpected_columns() -> None:
    header = [("Law" if c == "Legislation" else c) for c in HEADER] + ["Force"]
    with pytest.raises(police.SchemaMismatch) as err:
        police.parse_csv(io.StringIO(_csv([[*GOOD, "x"]], header)), "2020-01-essex-stop-and-search.csv")
    message = str(err.value)
    assert "2020-01-essex-stop-and-search.csv" in message
    assert "missing ['Legislation']" in message and "unexpected ['Law', 'Force']" in message


def test_reordered_header_is_mapped_by_name() -> None:
    header = list(reversed(HEADER))
    parsed = police.parse_csv(io.StringIO(_csv([list(reversed(GOOD))], header)), "x.csv")
    (row,) = records(parsed)
    assert dict(zip(parsed.columns, row, strict=True))["datetime"] == GOOD[1]


def test_quoted_fields_with_commas_and_line_breaks_take_the_csv_path() -> None:
    quoted = [*GOOD[:3], "Op, with comma\nand a line break", *GOOD[4:]]
    rows, bad = _parse_text(_csv([GOOD, quoted, GOOD]))
    assert bad == [] and len(rows) == 3
    assert rows[1][4] == "Op, with comma\nand a line break"
    assert [r[0] for r in rows] == ["2", "3", "5"]  # the quoted record spans lines 3-4


def _api_fixture() -> dict[str, object]:
    return json.loads((FIXTURES / "police_uk" / "police-data-kit_stop-and-search.json").read_text())


def test_api_json_record_is_typed() -> None:
    parsed = police.parse_api_json(json.dumps([_api_fixture()]).encode(), "stops-force")
    (row,) = list(parsed.records)
    values = dict(zip(parsed.columns, row, strict=True))  # type: ignore[arg-type]
    assert values["line_no"] == "0"
    assert values["latitude"] == "52.63625" and values["longitude"] == "-1.133691"
    assert values["street_id"] == "883415" and values["street_name"] == "On or near Shopping Area"
    assert values["involved_person"] == "true" and values["operation"] is None
    assert values["outcome_id"] == "bu-no-further-action"
    assert values["object_of_search"] == "Offensive weapons"


def test_api_old_false_outcome_and_null_location() -> None:
    stop = _api_fixture() | {"outcome": False, "location": None,
                             "outcome_object": {"id": "", "name": ""}}
    parsed = police.parse_api_json(json.dumps([stop]).encode(), "stops-force")
    values = dict(zip(parsed.columns, next(iter(parsed.records)), strict=True))  # type: ignore[arg-type]
    assert values["outcome"] == "false" and values["latitude"] is None and values["outcome_id"] is None


def test_api_bad_values_are_quarantined_with_their_index() -> None:
    good = _api_fixture()
    bad = good | {"datetime": "yesterday"}
    parsed = police.parse_api_json(json.dumps([good, bad]).encode(), "stops-force")
    records = list(parsed.records)
    assert isinstance(records[1], Quarantined) and records[1].line_no == 1
    assert "bad date" in records[1].reason and '"yesterday"' in records[1].record


def test_truncated_json_is_refused() -> None:
    data = json.dumps([_api_fixture()] * 3).encode()[:-40]
    with pytest.raises(police.SchemaMismatch, match="not valid JSON"):
        police.parse_api_json(data, "stops-force force=essex date=2020-01")


def test_api_record_with_changed_fields_is_refused_naming_them() -> None:
    stop = _api_fixture()
    del stop["legislation"]
    stop["force"] = "essex"
    with pytest.raises(police.SchemaMismatch) as err:
        police.parse_api_json(json.dumps([_api_fixture(), stop]).encode(), "stops-force")
    assert "record 1" in str(err.value)
    assert "missing ['legislation']" in str(err.value) and "unexpected ['force']" in str(err.value)


def test_availability_lists_force_months() -> None:
    listed = police.parse_availability(json.dumps([
        {"date": "2020-02", "stop-and-search": ["essex", "durham"]},
        {"date": "2020-01", "stop-and-search": ["essex"]},
    ]).encode())
    assert [(p.force_id, f"{p.month:%Y-%m}") for p in listed] == [
        ("essex", "2020-01"), ("durham", "2020-02"), ("essex", "2020-02")]


def test_sample_api_shape_round_trips_every_csv_row(tmp_path: Path) -> None:
    """The stand-in serves each archive row once in stops-force; no-location stops are a subset."""
    api = SampleApi(SAMPLE)
    path = SAMPLE / "2020-01-city-of-london-stop-and-search.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    served = json.loads(api.stops("city-of-london", "2020-01") or b"")
    no_location = json.loads(api.stops("city-of-london", "2020-01", no_location_only=True) or b"")
    assert len(served) == len(rows)
    assert len(no_location) == sum(1 for r in rows if not r["Latitude"])
    assert all(s in served for s in no_location)
    parsed = police.parse_api_json(json.dumps(served).encode(), "sample")
    assert not [r for r in parsed.records if isinstance(r, Quarantined)]
    assert csv_row_to_api(rows[0])["datetime"] == rows[0]["Date"]


# Values at and past the edges of the fast path's field shapes (police._FAST_*): calendar days,
# hours, offsets, years, number forms Python and PostgreSQL read differently, boolean spellings.
_EDGE_VALUES = {
    "Date": ["2019-12-01T00:21:59+00:00", "2020-02-28T23:59:59+01:00", "2020-02-29T10:00:00+00:00",
             "2019-02-29T10:00:00+00:00", "2020-04-31T00:00:00+00:00", "2020-04-30T00:00:00Z",
             "9999-12-31T23:59:59+14:59", "1000-01-01T00:00:00-14:59", "0999-01-01T00:00:00+00:00",
             "0000-01-01T00:00:00+00:00", "2020-01-01T24:00:00+00:00", "2020-01-01T23:60:00+00:00",
             "2020-01-01T10:00:00+15:00", "2020-01-01T10:00:00+16:00", "2020-01-01 10:00:00",
             "2020-01-01T10:00:00.5+00:00", "", "2020-1-01T10:00:00+00:00", "2020-01-01T10:00:00+0100",
             "2020-13-01T10:00:00+00:00", "2020-00-10T10:00:00+00:00", "2020-01-00T10:00:00+00:00"],
    "number": ["", "53.494342", "-2.889617", "-180.000001", "1e5", " 53.1", "nan", "inf", "5_3.1",
               "53.49.43", "\u0661\u0663", "+53.1", ".5", "5.", "1234.5", "-0.0000000000000001"],
    "boolean": ["", "True", "False", "true", "false", "TRUE", "yes", " True"],
    "text": ["", "Person search", "\u00fcber \u00df", "a\tb", "x\\y", "\u2028", "  ", "Null", "\\."],
}


def _edge_row(rng: random.Random) -> list[str]:
    """A good row with one or two fields set to edge values."""
    kind = {"Date": "Date", **dict.fromkeys(police._CSV_NUMBER, "number"),
            **dict.fromkeys(police._CSV_BOOLEAN, "boolean")}
    row = list(GOOD)
    for i in rng.sample(range(len(HEADER)), rng.choice([1, 2])):
        row[i] = rng.choice(_EDGE_VALUES[kind.get(HEADER[i], "text")])
    return row


def _as_fields(parsed: police.Parsed) -> tuple[list[object], bool]:
    """(records as comparable values, whether any came in a Chunk: the fast path)."""
    chunked = False
    out: list[object] = []
    for record in parsed.records:
        if isinstance(record, Chunk):
            chunked = True
            out.extend(chunk_rows(record))
        elif isinstance(record, Quarantined):
            out.append((record.line_no, record.reason, record.record))
        else:
            out.append(list(record))
    return out, chunked


def test_fast_path_takes_exactly_what_the_line_by_line_checks_take() -> None:
    """Each line parsed alone (fast path when it matches) and in a block the fast path refuses (a
    quoted record after it sends the whole block line by line) gives the same record or reason."""
    rng = random.Random(15)
    quoted = ",".join(f'"{v}"' for v in GOOD)
    fast_block = police._fast_block_patterns(HEADER)[1].fullmatch
    fast_taken = 0
    for _ in range(600):
        line = ",".join(_edge_row(rng))
        alone, _ = _as_fields(police.parse_csv(io.StringIO(f"{','.join(HEADER)}\r\n{line}\r\n", newline=""), "t"))
        in_slow_block, _ = _as_fields(police.parse_csv(
            io.StringIO(f"{','.join(HEADER)}\r\n{line}\r\n{quoted}\r\n", newline=""), "t"))
        assert alone == [r for r in in_slow_block if not (isinstance(r, list) and r[0] == "3")], line
        if fast_block(f"{line}\r\n"):  # the fast path took it alone: the line-by-line checks agree
            fast_taken += 1
            assert alone == [["2", *line.split(",")]], line
    assert 20 < fast_taken < 580  # both paths were exercised


@pytest.mark.parametrize("line_end", ["\r\n", "\n"])
def test_blocks_give_the_same_records_and_line_numbers_wherever_they_split(
        line_end: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(6)
    rows: list[list[str]] = []
    for i in range(400):
        if i % 37 == 0:
            rows.append([*GOOD[:3], "Op, with comma\nand a line break", *GOOD[4:]])  # quoted, two lines
        elif i % 53 == 0:
            rows.append([])  # a blank line
        else:
            rows.append(_edge_row(rng) if i % 3 == 0 else GOOD)
    out = io.StringIO()
    csv.writer(out, lineterminator=line_end).writerows([HEADER, *rows])
    text = out.getvalue()[:-len(line_end)]  # and the last line without its line end
    whole, _ = _as_fields(police.parse_csv(io.StringIO(text, newline=""), "t"))
    monkeypatch.setattr(police, "_BLOCK_CHARS", 97)  # blocks end at every kind of line
    split, chunked = _as_fields(police.parse_csv(io.StringIO(text, newline=""), "t"))
    assert chunked and sorted(map(str, split)) == sorted(map(str, whole))
    # line numbers are the csv module's own (header = 1; a quoted record counts its first line)
    reader = csv.reader(io.StringIO(text, newline=""))
    expected = {}
    start = 1
    for row in reader:
        if row and row != HEADER:
            expected[start] = row
        start = reader.line_num + 1
    good = {int(r[0]): r[1:] for r in whole if isinstance(r, list)}
    bad = {r[0] for r in whole if isinstance(r, tuple)}
    assert set(good) | bad == set(expected) and not set(good) & bad  # type: ignore[operator]
    assert all(expected[n] == fields for n, fields in good.items())
