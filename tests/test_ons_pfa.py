"""ONS police force area tables feed: the four real 2018 editions loaded in order into a real
PostgreSQL, checked against the workbooks read independently with openpyxl and against cells read
by eye; the traps the real files do not hold (NA, '..', a whole NA force row, a sheet name with a
trailing space), a renamed and renumbered sheet and a workbook without knife tables on modified
copies made here."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import psycopg
import pytest
from vru.archive import Archive
from vru.config import REPO_ROOT
from vru.feeds import ons_pfa
from vru.loader import Noted, Quarantined
from vru_sample.server import bundled_ons_pfa_editions

# the four real editions, bundled as the sample of `make run` (plugins/vru_sample/data/ons_pfa/)
MARCH, JUNE, SEPTEMBER, DECEMBER = bundled_ons_pfa_editions()
FIXTURES = MARCH.parent
EDITIONS = (MARCH, JUNE, SEPTEMBER, DECEMBER)  # publication order
# The offences of Table P4, left to right, as printed above its column pairs (read by eye).
P4_OFFENCES = ("total_selected", "attempted_murder", "threats_to_kill", "assault_with_injury", "robbery",
               "rape_and_sexual_assault", "homicide")
REFERENCE = ons_pfa.Reference.from_seeds(REPO_ROOT / "dbt_project")
FORCE = re.compile(r"^(E23|W15)\d{6}$")


def _records(data: bytes, where: str = "test.xlsx") -> list[Any]:
    return list(ons_pfa.parse(data, "xlsx", where, REFERENCE).records)


def _figures(records: list[Any]) -> dict[tuple[str, str, str, str], tuple[str | None, str | None]]:
    """(area code, offence, period end, measure) -> (value, marker) of parsed rows."""
    cols = ons_pfa.COPY_COLUMNS
    out = {}
    for r in records:
        if isinstance(r, list):
            row = dict(zip(cols, r, strict=True))
            key = (row["area_code"], row["offence"], row["period_end"], row["measure"])
            out[key] = (row["value"], row["value_marker"])
    return out


def _modified(path: Path, change: Any) -> bytes:
    workbook = openpyxl.load_workbook(path)
    change(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _p4_cells(path: Path) -> Iterator[tuple[str, str, str, Any]]:
    """(area code, offence, measure, cell value) of every force row of Table P4, read with openpyxl."""
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = next(workbook[name] for name in workbook.sheetnames if name.strip() == "Table P4")
        for row in sheet.iter_rows(min_row=6, values_only=True):
            code = str(row[0] or "").strip()
            if not FORCE.match(code):
                continue
            for i, offence in enumerate(P4_OFFENCES):
                yield code, offence, "offences", row[2 + 2 * i]
                yield code, offence, "percent_knife", row[3 + 2 * i]
    finally:
        workbook.close()


# ------------------------------------------------------------------------------------------------
# Parsing (no database)
# ------------------------------------------------------------------------------------------------


def test_the_area_code_seed_names_each_of_the_43_forces_once() -> None:
    seeds = REPO_ROOT / "dbt_project" / "seeds"
    with open(seeds / "force_area_codes.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(seeds / "force_areas.csv", encoding="utf-8", newline="") as handle:
        forces = {r["force_id"] for r in csv.DictReader(handle)}
    assert len(rows) == 43 and all(FORCE.match(r["area_code"]) and r["source"] for r in rows)
    assert len({r["area_code"] for r in rows}) == 43
    assert sorted(r["force_id"] for r in rows) == sorted(forces)


@pytest.mark.parametrize("path", EDITIONS, ids=lambda p: p.stem)
def test_each_real_edition_parses_whole_under_the_default_reader_limits(path: Path) -> None:
    records = _records(path.read_bytes())
    assert not [r for r in records if isinstance(r, Quarantined)]
    figures = _figures(records)
    periods = {k[2] for k in figures}
    # 43 forces x 7 offences x 2 measures for the latest period, and the series' earlier periods
    series_periods = 7 if path is MARCH else 9
    assert len(figures) == 43 * 7 * 2 + 43 * series_periods * 2
    assert len(periods) == series_periods + 1
    assert {k[0] for k in figures} == {r for r in REFERENCE.codes}


def test_footnote_digits_newlines_and_titles_are_cleaned() -> None:
    assert ons_pfa.clean("Greater Manchester7") == "Greater Manchester"
    assert ons_pfa.clean("ENGLAND AND WALES7,8,9,10,11,12") == "ENGLAND AND WALES"
    assert ons_pfa.clean("Homicide5,6") == "Homicide"
    assert ons_pfa.clean("Number of\n offences\n involving a\n knife6") == "Number of offences involving a knife"
    assert ons_pfa.clean("East ") == "East"
    assert str(ons_pfa.parse_period("Apr '10 to Mar '11")) == "2011-03-31"
    assert str(ons_pfa.parse_period("Jul '17 to Jun '18")) == "2018-06-30"
    assert ons_pfa.parse_period("% change July 2017 to June 2018 compared with:") is None
    assert ons_pfa.parse_period("Apr '10 to Jun '11") is None  # not 12 months
    title = "Table P4:  Knife ... by police force area, English regions and Wales, year ending June 20181,2,3"
    assert ons_pfa.period_from_title([title]) == ("year ending June 2018", ons_pfa.parse_period("Jul '17 to Jun '18"))


def test_tables_are_found_when_sheets_are_renamed_renumbered_and_retitled() -> None:
    def rename(workbook: Any) -> None:
        p4, p5 = workbook["Table P4"], workbook["Table P5"]
        p4.title, p5.title = "Knife 1 ", "Table 9"  # a trailing space, and another number
        p4["A1"] = "Table 3a: Offences involving a knife or sharp instrument, year ending June 20181,2"
        workbook.move_sheet(p5, offset=-workbook.index(p5))  # the series first, before the cover
        workbook.move_sheet(p4, offset=-workbook.index(p4) + 3)

    moved_records = _records(_modified(JUNE, rename))
    moved, original = _figures(moved_records), _figures(_records(JUNE.read_bytes()))
    assert moved.keys() == original.keys()
    for key, (value, marker) in original.items():
        # openpyxl writes a float back with 16 significant digits, not Excel's 17: close, not equal
        again, again_marker = moved[key]
        assert again_marker == marker and (value is None) == (again is None), key
        assert value is None or again is None or math.isclose(float(value), float(again), rel_tol=1e-14), key
    sheets = {r[0] for r in moved_records if isinstance(r, list)}
    assert sheets == {"Knife 1 ", "Table 9"}  # kept as read, trailing space included


def test_a_workbook_without_knife_tables_is_refused_naming_what_is_missing() -> None:
    def drop_both(workbook: Any) -> None:
        del workbook["Table P4"], workbook["Table P5"]

    def drop_series(workbook: Any) -> None:
        del workbook["Table P5"]

    with pytest.raises(ons_pfa.KnifeTableMissing) as refused:
        _records(_modified(JUNE, drop_both), "june.xlsx")
    message = str(refused.value)
    assert message.startswith("june.xlsx: no knife crime table found")
    assert "knife table by offence" in message and "knife table of 12-month periods" in message
    for content in ("Police recorded crime by offence group", "Greater Manchester", "E23000005", "343089",
                    "Crime in England & Wales"):
        assert content not in message  # cells of the sheets it did have are never quoted

    with pytest.raises(ons_pfa.KnifeTableMissing) as refused:
        _records(_modified(JUNE, drop_series))
    assert "12-month periods" in str(refused.value) and "table by offence" not in str(refused.value)


def _traps(workbook: Any) -> None:
    """The traps the real knife tables do not hold, put into the June edition."""
    p4, p5 = workbook["Table P4"], workbook["Table P5"]
    p4.title = "Table P4 "  # a trailing space in the sheet name
    assert p4["B16"].value == "Greater Manchester7" and p5["B18"].value == "Greater Manchester6"
    for column in "CDEFGHIJKLMNOP":  # the whole force row NA (as some editions publish GMP)
        p4[f"{column}16"] = "NA"
    p5["U18"], p5["V18"] = "NA", "NA"  # the latest period of the series, the same cell
    assert p4["B47"].value == "Kent" and p4["B48"].value == "Surrey9"
    p4["K47"] = ".."  # Kent, robbery: not available
    p4["N48"] = "N/A"  # Surrey, % of rape and sexual assault


def test_markers_and_a_whole_na_row_are_kept_as_null_with_the_marker_never_zero() -> None:
    records = _records(_modified(JUNE, _traps))
    assert not [r for r in records if isinstance(r, Quarantined)]
    figures = _figures(records)
    gmp = {k: v for k, v in figures.items() if k[0] == "E23000005" and k[2] == "2018-06-30"}
    assert len(gmp) == 14 and set(gmp.values()) == {(None, "NA")}
    assert figures[("E23000032", "robbery", "2018-06-30", "offences")] == (None, "..")
    assert figures[("E23000031", "rape_and_sexual_assault", "2018-06-30", "percent_knife")] == (None, "N/A")
    # City of London's attempted murder: a real 0, and '-' for its percentage (base under 50)
    assert figures[("E23000034", "attempted_murder", "2018-06-30", "offences")] == ("0", None)
    assert figures[("E23000034", "attempted_murder", "2018-06-30", "percent_knife")] == (None, "-")
    assert all((v is None) == (m is not None) for v, m in figures.values())


def test_tables_that_disagree_on_a_cell_refuse_the_edition() -> None:
    def disagree(workbook: Any) -> None:
        workbook["Table P5"]["U18"] = 2553  # GMP's latest total, 2552 in P4

    records = ons_pfa.parse(_modified(JUNE, disagree), "xlsx", "june.xlsx", REFERENCE).records
    with pytest.raises(ons_pfa.EditionInconsistent, match="differs between the two knife tables"):
        list(records)


# ------------------------------------------------------------------------------------------------
# The four real editions loaded in order (real PostgreSQL)
# ------------------------------------------------------------------------------------------------


def _load(conn: psycopg.Connection, tmp_path: Path, path: Path) -> ons_pfa.EditionResult:
    return ons_pfa.load_file(conn, Archive(tmp_path / "archive"), path, REFERENCE, "test-run")


@pytest.fixture
def loaded(conn: psycopg.Connection, tmp_path: Path) -> dict[Path, int]:
    ids = {}
    for path in EDITIONS:
        result = _load(conn, tmp_path, path)
        assert result.status == "loaded", result.reason
        assert result.rows_quarantined == 0
        assert result.load_id is not None
        ids[path] = result.load_id
    return ids


def test_every_p4_force_cell_of_every_edition_is_loaded_as_published(conn: psycopg.Connection,
                                                                     loaded: dict[Path, int]) -> None:
    for path, load_id in loaded.items():
        rows = conn.execute("select area_code, offence, measure, value, value_marker from raw.pfa_knife_offences "
                            "where load_id = %s and table_kind = 'by_offence'", (load_id,)).fetchall()
        held = {(a, o, m): (v, k) for a, o, m, v, k in rows}
        published = list(_p4_cells(path))
        assert len(published) == len(held) == 43 * 7 * 2
        for code, offence, measure, cell in published:
            value, marker = held[(code, offence, measure)]
            if isinstance(cell, str):
                assert (value, marker) == (None, cell.strip()), (path.name, code, offence, measure)
            else:
                assert marker is None and float(value) == float(cell), (path.name, code, offence, measure)


def test_hard_facts_read_by_eye(conn: psycopg.Connection, loaded: dict[Path, int]) -> None:
    def cell(path: Path, code: str, offence: str, period_end: str, measure: str) -> tuple[Decimal | None, str | None]:
        row = conn.execute("select value, value_marker from raw.pfa_knife_offences where load_id = %s and "
                           "area_code = %s and offence = %s and period_end = %s and measure = %s",
                           (loaded[path], code, offence, period_end, measure)).fetchone()
        assert row is not None, (path.name, code, offence, period_end, measure)
        return row[0], row[1]

    # June, Table P4 line 44: Metropolitan Police, total of selected offences 14947 (11.449691677199434%)
    assert cell(JUNE, "E23000001", "total_selected", "2018-06-30", "offences") == (Decimal(14947), None)
    assert cell(JUNE, "E23000001", "total_selected", "2018-06-30", "percent_knife") == (
        Decimal("11.449691677199434"), None)
    # June, Table P4 line 34: West Midlands the force (E23000014) 2965; line 30, the region (E12000005), 4327
    assert cell(JUNE, "E23000014", "total_selected", "2018-06-30", "offences") == (Decimal(2965), None)
    # June, Table P4 line 10: Cleveland, attempted murder '-' in both columns
    assert cell(JUNE, "E23000013", "attempted_murder", "2018-06-30", "offences") == (None, "-")
    # June, Table P4 line 12: Northumbria, rape and sexual assault % stored as 5.4779512462339086E-2
    assert cell(JUNE, "E23000007", "rape_and_sexual_assault", "2018-06-30", "percent_knife") == (
        Decimal("0.054779512462339086"), None)
    # December, Table P5 line 18: Greater Manchester, Jan '17 to Dec '17: 1484 (3.4954657873042043%)
    assert cell(DECEMBER, "E23000005", "total_selected", "2017-12-31", "offences") == (Decimal(1484), None)
    # March, Table P5: Greater Manchester, Apr '10 to Mar '11: 2034; June and later restate it as 2049
    assert cell(MARCH, "E23000005", "total_selected", "2011-03-31", "offences") == (Decimal(2034), None)
    assert cell(JUNE, "E23000005", "total_selected", "2011-03-31", "offences") == (Decimal(2049), None)

    names = conn.execute("select distinct area_code, area_name, force_id from raw.pfa_knife_offences "
                         "where area_code in ('E23000005', 'E23000014', 'E23000031')").fetchall()
    assert sorted(names) == [("E23000005", "Greater Manchester", "greater-manchester"),
                             ("E23000014", "West Midlands", "west-midlands"), ("E23000031", "Surrey", "surrey")]
    assert conn.execute("select count(*) from raw.pfa_knife_offences where area_name ~ '[0-9]$' "
                        "or offence_name ~ '[0-9]$' or area_code !~ '^(E23|W15)'").fetchone() == (0,)
    offence_names = {r[0] for r in conn.execute("select distinct offence_name from raw.pfa_knife_offences "
                                                "where load_id = %s", (loaded[JUNE],))}
    assert {"Homicide", "Rape and sexual assault", "Total of selected serious offences"} <= offence_names


def test_regions_totals_and_btp_are_notes(conn: psycopg.Connection, loaded: dict[Path, int]) -> None:
    notes = conn.execute("select kind, record from raw.source_notes where load_id = %s and kind in "
                         "('total', 'outside_scope')", (loaded[DECEMBER],)).fetchall()
    records = [(kind, record.split(",")[0], record.split(",")[1].strip()) for kind, record in notes]
    codes = {code for _, code, _ in records if code}
    assert {"K04000001", "E92000001", "W92000004"} <= codes
    assert {c for c in codes if c.startswith("E12")} == {f"E1200000{i}" for i in range(1, 10)}
    # the region (published "West Midlands " with a trailing space), not the force E23000014
    assert ("total", "E12000005", "West Midlands") in records
    assert ("outside_scope", "", "British Transport Police") in records
    excluding = [r for r in records if "excluding Greater Manchester" in r[2]]
    assert {r[0] for r in excluding} == {"total"} and len(excluding) == 2  # England and Wales, England
    assert conn.execute("select count(*) from raw.pfa_knife_offences where area_code like 'E12%%' "
                        "or area_name ilike '%%transport%%'").fetchone() == (0,)
    kinds = dict(conn.execute("select kind, count(*) from raw.source_notes where load_id = %s group by kind",
                              (loaded[DECEMBER],)).fetchall())
    assert kinds["preamble"] == 6 and kinds["footnote"] > 20


def test_revisions_between_editions_are_recorded_and_the_latest_edition_holds_the_current_figure(
        conn: psycopg.Connection, loaded: dict[Path, int]) -> None:
    revised = conn.execute(
        "select previous_value, new_value from audit.revisions where dataset = %s and load_id = %s and "
        "change = 'revised' and cell = %s::jsonb",
        (ons_pfa.DATASET, loaded[JUNE], '{"area_code": "E23000005", "offence": "total_selected", '
                                        '"period_end": "2011-03-31", "measure": "offences"}')).fetchall()
    assert revised == [(Decimal(2034), Decimal(2049))]
    # a revised percentage keeps its decimals (audit.revisions values are numeric)
    percent = conn.execute(
        "select previous_value, new_value from audit.revisions where load_id = %s and "
        "cell ->> 'area_code' = 'E23000005' and cell ->> 'period_end' = '2011-03-31' and "
        "cell ->> 'measure' = 'percent_knife'", (loaded[JUNE],)).fetchone()
    # the double the file stores, in its shortest form (Excel wrote it as 7.8306063522617899)
    assert percent == (Decimal("7.83060635226179"), Decimal("7.888354186717998"))
    counts = conn.execute("select load_id, figures_revised, figures_dropped from audit.editions "
                          "where dataset = %s order by load_id", (ons_pfa.DATASET,)).fetchall()
    assert [c[0] for c in counts] == list(loaded.values())
    assert all(c[1] > 0 for c in counts[1:]) and all(c[2] == 0 for c in counts)
    # the current figure of every cell is the one in the latest edition that has it
    current = dict(conn.execute(
        "select distinct on (area_code, offence, period_end, measure) area_code || ' ' || period_end, value "
        "from raw.pfa_knife_offences where offence = 'total_selected' and measure = 'offences' "
        "order by area_code, offence, period_end, measure, load_id desc").fetchall())
    assert current["E23000005 2011-03-31"] == Decimal(2049)  # June's, repeated by September and December
    assert current["E23000005 2017-12-31"] == Decimal(1484)  # only December has it
    assert current["E23000005 2018-12-31"] == Decimal(3614)  # December, Table P4


def test_an_unchanged_edition_loads_nothing_and_a_modified_one_revises_to_the_marker(
        conn: psycopg.Connection, loaded: dict[Path, int], tmp_path: Path) -> None:
    again = _load(conn, tmp_path, DECEMBER)
    assert again.status == "unchanged"
    na = tmp_path / "june-with-traps.xlsx"
    na.write_bytes(_modified(JUNE, _traps))
    result = _load(conn, tmp_path, na)
    assert result.status == "loaded" and result.rows_quarantined == 0
    gmp = conn.execute("select value, value_marker from raw.pfa_knife_offences where load_id = %s and "
                       "area_code = 'E23000005' and period_end = '2018-06-30'", (result.load_id,)).fetchall()
    assert len(gmp) == 14 and set(gmp) == {(None, "NA")}
    change = conn.execute(
        "select previous_value, new_value, new_marker from audit.revisions where load_id = %s and "
        "cell ->> 'area_code' = 'E23000005' and cell ->> 'offence' = 'total_selected' and "
        "cell ->> 'period_end' = '2018-06-30' and cell ->> 'measure' = 'offences'", (result.load_id,)).fetchone()
    assert change == (Decimal(2552), None, "NA")


def test_an_edition_without_knife_tables_is_refused_and_nothing_is_loaded(conn: psycopg.Connection,
                                                                         tmp_path: Path) -> None:
    def drop(workbook: Any) -> None:
        del workbook["Table P4"], workbook["Table P5"]

    path = tmp_path / "no-knife.xlsx"
    path.write_bytes(_modified(JUNE, drop))
    result = _load(conn, tmp_path, path)
    assert result.status == "refused" and "no knife crime table found" in (result.reason or "")
    assert conn.execute("select count(*) from raw.pfa_knife_offences").fetchone() == (0,)
    assert conn.execute("select count(*) from raw.source_notes").fetchone() == (0,)
    assert conn.execute("select status from audit.loads where dataset = %s", (ons_pfa.DATASET,)).fetchall() == [
        ("refused",)]


def test_notes_parse_without_a_database() -> None:
    records = _records(MARCH.read_bytes())
    notes = [r for r in records if isinstance(r, Noted)]
    # March, Table P5: the region "East " (a trailing space) is a total, by its code E12000006
    assert any(n.kind == "total" and n.record.startswith("E12000006,East") for n in notes)


def test_the_raw_suite_passes_on_the_real_editions_and_catches_a_region_loaded_as_a_force(
        conn: psycopg.Connection, loaded: dict[Path, int], clean_warehouse: str, tmp_path: Path) -> None:
    from vru.validation import load_suite, suite_path_for, validate

    def run() -> Any:
        return validate("raw", ons_pfa.DATASET, ons_pfa.TABLE, warehouse_url=clean_warehouse,
                        docs_dir=tmp_path / "docs", run_id="test-ons-raw")

    outcome = run()
    assert outcome.success, outcome
    assert outcome.evaluated == len(load_suite(suite_path_for("raw", ons_pfa.DATASET))["expectations"])
    # the region West Midlands (E12000005) taken for the force of the same name: caught by its code
    conn.execute("update raw.pfa_knife_offences set area_code = 'E12000005' where area_code = 'E23000014' "
                 "and load_id = %s", (loaded[DECEMBER],))
    outcome = run()
    assert not outcome.success
    assert any(d.startswith("One force per area code") for d in outcome.critical_failures), outcome
