"""The validation layer against a real PostgreSQL (embedded) and the reviewed suite files.

One server and one Great Expectations import serve the whole module; each validation takes about
a second once GX is imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from vru import validation
from vru.validation import ValidationOutcome, validate

REPO = Path(__file__).resolve().parents[1]
WAREHOUSE_SQL = REPO / "plugins" / "vru" / "sql" / "warehouse.sql"

# Coordinates of the bad batch: none of these may appear in audit or Data Docs.
PARIS = (48.856613, 2.352222)


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data_docs")


def run(warehouse_url: str, docs_dir: Path, stage: str, dataset: str, table: str) -> ValidationOutcome:
    return validate(
        stage, dataset, table, warehouse_url=warehouse_url, docs_dir=docs_dir, run_id=f"test-{stage}"
    )


def audit_rows(warehouse_url: str, validation_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(warehouse_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "select * from audit.validation_results where validation_id = %s "
            "order by expectation, column_name",
            [validation_id],
        )
        return cur.fetchall()


# ------------------------------------------------------------------------------------------
# Raw stop and search records
# ------------------------------------------------------------------------------------------

STOP_COLUMNS = (
    "load_id",
    "force_id",
    "month",
    "line_no",
    "type",
    "datetime",
    "latitude",
    "longitude",
    "gender",
    "age_range",
    "officer_defined_ethnicity",
    "legislation",
    "object_of_search",
    "outcome",
)


def stop(line_no: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "load_id": 1,
        "force_id": "merseyside",
        "month": date(2020, 6, 1),
        "line_no": line_no,
        "type": "Person search",
        "datetime": datetime(2020, 6, 10, 14, 30, tzinfo=UTC),
        "latitude": 53.4084,
        "longitude": -2.9916,
        "gender": "Male",
        "age_range": "18-24",
        "officer_defined_ethnicity": "White",
        "legislation": "Misuse of Drugs Act 1971 (section 23)",
        "object_of_search": "Controlled drugs",
        "outcome": "A no further action disposal",
    }
    row.update(overrides)
    return row


def good_batch() -> list[dict[str, Any]]:
    """Published data at its awkward edges: every one of these is legitimate."""
    return [
        stop(2),
        stop(3),  # identical content to line 2: a group search, not a duplicate
        # UTC quirk: a summer search late on 31 May (local time 1 June) published for June.
        stop(4, datetime=datetime(2020, 5, 31, 23, 30, tzinfo=UTC)),
        stop(5, latitude=None, longitude=None, gender=None, age_range=None, officer_defined_ethnicity=None),
        stop(6, legislation="Environmental Protection Act 1990 (section 34B )", object_of_search="dog"),
        stop(7, outcome="false", type="Person and Vehicle search", age_range="under 10"),
        stop(8, outcome="Suspect arrested", legislation="Criminal Justice Act 1988 (section 139B)"),
        stop(
            9,
            legislation="Criminal Justice and Public Order Act 1994 (section 60)",
            object_of_search="Offensive weapons",
            outcome="Arrest",
            gender="Other",
        ),
        stop(2, force_id="essex", latitude=51.7356, longitude=0.4685),  # same line, other force
        stop(2, month=date(2020, 7, 1), datetime=datetime(2020, 7, 1, 0, 5, tzinfo=UTC)),
    ]


def bad_batch() -> list[dict[str, Any]]:
    return [
        *good_batch(),
        stop(20, legislation="Terrorism Act 2000 (section 47A)"),
        stop(21, latitude=PARIS[0], longitude=PARIS[1]),
        stop(22, datetime=datetime(2020, 7, 6, 12, 0, tzinfo=UTC)),  # 5 days after June
        stop(9),  # line 9 of the same file again
    ]


def load_stops(warehouse_url: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("truncate raw.stop_searches")
        with conn.cursor() as cur:
            cur.executemany(
                f"insert into raw.stop_searches ({', '.join(STOP_COLUMNS)}) "
                f"values ({', '.join(['%s'] * len(STOP_COLUMNS))})",
                [[row[c] for c in STOP_COLUMNS] for row in rows],
            )


def test_good_raw_batch_passes_and_is_audited(warehouse_url: str, docs_dir: Path) -> None:
    load_stops(warehouse_url, good_batch())

    outcome = run(warehouse_url, docs_dir, "raw", "police.stop_searches", "raw.stop_searches")

    assert outcome.success, outcome
    assert outcome.critical_failures == [] and outcome.warnings == []
    assert outcome.evaluated == len(
        validation.load_suite(validation.suite_path_for("raw", "police.stop_searches"))["expectations"]
    )
    assert outcome.docs_index == docs_dir / "index.html" and outcome.docs_index.exists()

    rows = audit_rows(warehouse_url, outcome.validation_id)
    assert len(rows) == outcome.evaluated
    assert all(r["success"] for r in rows)
    assert {r["stage"] for r in rows} == {"raw"} and {r["suite"] for r in rows} == {
        "raw.police.stop_searches"
    }
    assert {r["run_id"] for r in rows} == {"test-raw"}
    assert all(r["meaning"] and r["severity"] in ("critical", "warning") for r in rows)
    by_column = {r["column_name"]: r for r in rows if r["expectation"] == "expect_column_values_to_be_in_set"}
    assert by_column["legislation"]["observed"]["element_count"] == len(good_batch())
    assert by_column["legislation"]["observed"]["unexpected_count"] == 0


def test_bad_raw_batch_fails_the_right_checks_without_leaking_values(
    warehouse_url: str, docs_dir: Path
) -> None:
    load_stops(warehouse_url, bad_batch())

    outcome = run(warehouse_url, docs_dir, "raw", "police.stop_searches", "raw.stop_searches")

    assert not outcome.success
    assert len(outcome.critical_failures) == 2, outcome.critical_failures
    assert any(f.startswith("No record loaded twice:") for f in outcome.critical_failures)
    assert any(f.startswith("Search dates inside the publication month:") for f in outcome.critical_failures)
    assert len(outcome.warnings) == 3, outcome.warnings
    assert any(w.startswith("Known legal power values [legislation]: 1 of") for w in outcome.warnings)
    assert any(
        w.startswith("Locations in Great Britain (latitude) [latitude]: 1 of") for w in outcome.warnings
    )
    assert any(
        w.startswith("Locations in Great Britain (longitude) [longitude]: 1 of") for w in outcome.warnings
    )

    rows = audit_rows(warehouse_url, outcome.validation_id)
    failed = {(r["expectation"], r["column_name"], r["severity"]) for r in rows if not r["success"]}
    assert failed == {
        ("unexpected_rows_expectation", None, "critical"),  # duplicate key
        ("unexpected_rows_expectation", None, "critical"),  # timestamp outside the month
        ("expect_column_values_to_be_in_set", "legislation", "warning"),
        ("expect_column_values_to_be_between", "latitude", "warning"),
        ("expect_column_values_to_be_between", "longitude", "warning"),
    }
    assert sum(not r["success"] for r in rows) == 5
    unexpected_rows = sorted(
        r["observed"]["observed_value"] for r in rows if r["expectation"] == "unexpected_rows_expectation"
    )
    assert unexpected_rows == [1, 1]  # one duplicated key, one out-of-month search

    # No row values anywhere: only counts and observed aggregates are kept.
    for r in rows:
        assert set(r["observed"] or {}) <= set(validation.OBSERVED_KEYS)
    observed_text = json.dumps([r["observed"] for r in rows])
    leaked = [str(v) for row in bad_batch() for v in (row["latitude"], row["longitude"]) if v is not None]
    assert not [v for v in leaked if v in observed_text]
    assert "Terrorism Act" not in observed_text
    docs_text = "\n".join(
        p.read_text(errors="ignore") for p in docs_dir.rglob("*") if p.suffix in (".html", ".json")
    )
    assert str(PARIS[0]) not in docs_text and str(PARIS[1]) not in docs_text
    assert "Terrorism Act" not in docs_text


def test_docs_index_keeps_earlier_validations(warehouse_url: str, docs_dir: Path) -> None:
    index = (docs_dir / "index.html").read_text()
    # The good and the bad raw validation above ran in separate GX contexts: both are listed.
    assert index.count("test-raw") >= 2


# ------------------------------------------------------------------------------------------
# Staging and mart (hand-made tables: the dbt models are built elsewhere)
# ------------------------------------------------------------------------------------------

MART_COLUMNS = (
    "force_id",
    "month",
    "coverage",
    "searches",
    "s60_searches",
    "weapon_searches",
    "arrests",
    "outcome_linked_finds",
    "arrest_rate",
    "find_rate",
)


def published(force: str, month: date, searches: int, arrests: int, finds: int) -> tuple[Any, ...]:
    return (force, month, "published", searches, 0, 1, arrests, finds, arrests / searches, finds / searches)


def make_staging_and_mart(
    warehouse_url: str,
    stops: dict[tuple[str, date], int],
    mart: list[tuple[Any, ...]],
    outcome_category: str = "arrest",
) -> None:
    with psycopg.connect(warehouse_url) as conn:
        # dbt may have built these in the session warehouse (a view and a table): replace either
        for name in ("staging.stg_police__stop_searches", "marts.stop_search_monthly"):
            kind = conn.execute("select relkind from pg_class where oid = to_regclass(%s)", (name,)).fetchone()
            if kind:
                conn.execute(f"drop {'view' if kind[0] == 'v' else 'table'} {name} cascade")
        conn.execute(
            "create table staging.stg_police__stop_searches (force_id text, month date, "
            "outcome_category text, "
            "is_arrest boolean, is_s60 boolean, is_weapon_search boolean, is_outcome_linked_find boolean)"
        )
        conn.execute(
            "create table marts.stop_search_monthly (force_id text, month date, coverage text, "
            "searches bigint, "
            "s60_searches bigint, weapon_searches bigint, arrests bigint, outcome_linked_finds bigint, "
            "arrest_rate numeric, find_rate numeric)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into staging.stg_police__stop_searches values (%s, %s, %s, true, false, true, false)",
                [(force, month, outcome_category) for (force, month), n in stops.items() for _ in range(n)],
            )
            cur.executemany(
                f"insert into marts.stop_search_monthly values ({', '.join(['%s'] * len(MART_COLUMNS))})",
                mart,
            )


JUNE, JULY = date(2020, 6, 1), date(2020, 7, 1)
GOOD_STOPS = {("merseyside", JUNE): 4, ("essex", JUNE): 2, ("merseyside", JULY): 5}
GOOD_MART = [
    published("merseyside", JUNE, 4, 1, 2),
    published("essex", JUNE, 2, 0, 1),
    published("merseyside", JULY, 5, 5, 0),
    ("essex", JULY, "not_published", None, None, None, None, None, None, None),
    ("durham", JULY, "pending", None, None, None, None, None, None, None),
]


def test_good_mart_passes(warehouse_url: str, docs_dir: Path) -> None:
    make_staging_and_mart(warehouse_url, GOOD_STOPS, GOOD_MART)

    outcome = run(warehouse_url, docs_dir, "marts", "police.stop_search_monthly", "marts.stop_search_monthly")

    assert outcome.success, outcome
    assert len(audit_rows(warehouse_url, outcome.validation_id)) == outcome.evaluated


def test_bad_mart_fails_rate_totals_and_missing_month(warehouse_url: str, docs_dir: Path) -> None:
    bad = [
        (*published("merseyside", JUNE, 4, 1, 2)[:8], 1.3, 0.5),  # arrest rate 130%
        published("essex", JUNE, 3, 0, 1),  # staging holds 2 essex June records: June totals differ
        published("merseyside", JULY, 5, 5, 0),
        ("essex", JULY, "not_published", 0, 0, 0, 0, 0, None, None),  # a missing month shown as zero
    ]
    make_staging_and_mart(warehouse_url, GOOD_STOPS, bad)

    outcome = run(warehouse_url, docs_dir, "marts", "police.stop_search_monthly", "marts.stop_search_monthly")

    assert not outcome.success
    checks = sorted(f.split(":")[0] for f in outcome.critical_failures)
    assert checks == [
        "Arrest rate between 0% and 100% [arrest_rate]",
        "Missing months shown as missing, not zero",
        "Monthly totals match the individual records",
    ], outcome.critical_failures
    totals = next(
        r
        for r in audit_rows(warehouse_url, outcome.validation_id)
        if r["expectation"] == "unexpected_rows_expectation"
        and not r["success"]
        and "individual search records" in r["meaning"]
    )
    assert totals["observed"] == {"observed_value": 1}  # only June differs


def test_staging_unmapped_outcome_is_a_warning(warehouse_url: str, docs_dir: Path) -> None:
    make_staging_and_mart(warehouse_url, GOOD_STOPS, GOOD_MART, outcome_category="unmapped")

    outcome = run(
        warehouse_url, docs_dir, "staging", "police.stop_searches", "staging.stg_police__stop_searches"
    )

    assert not outcome.success
    assert outcome.critical_failures == []
    assert outcome.warnings == [
        "Every outcome recognised [outcome_category]: 11 of 11 rows fail in staging.stg_police__stop_searches"
    ]


def test_staging_is_checked_where_it_changed_since_the_last_publication(clean_warehouse: str, docs_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from vru.feeds.police import FEED

    url = clean_warehouse
    make_staging_and_mart(url, GOOD_STOPS, GOOD_MART, outcome_category="unmapped")  # 11 records, all failing

    def load(force: str, month: date, status: str = "loaded") -> None:
        with psycopg.connect(url) as conn:  # its own transaction, as the loader's
            conn.execute("insert into audit.loads (dataset, force_id, month, origin, status, finished_at) "
                         "values ('police.stop_searches', %s, %s, 'api', %s, now())", (force, month, status))

    def publish() -> None:
        with psycopg.connect(url) as conn:
            conn.execute("insert into audit.publications (run_id, duration_ms, marts, raw_snapshot) "
                         "values ('test-scope', 1, '{}', pg_current_snapshot())")

    def unmapped() -> list[str]:
        outcome = validate("staging", "police.stop_searches", "staging.stg_police__stop_searches",
                           warehouse_url=url, docs_dir=docs_dir, run_id="test-scope", scope=FEED.changed_partitions)
        return outcome.warnings

    try:
        for force, month in GOOD_STOPS:
            load(force, month)
        # nothing published yet: every force-month is checked
        assert unmapped() == ["Every outcome recognised [outcome_category]: 11 of 11 rows fail in "
                              "staging.stg_police__stop_searches"]
        publish()
        assert unmapped() == []  # nothing loaded since: no row to check
        load("merseyside", JULY, "replaced")
        load("essex", JUNE, "failed")  # a failed load changed nothing
        expected = ["Every outcome recognised [outcome_category]: 5 of 5 rows fail in "
                    "staging.stg_police__stop_searches"]
        assert unmapped() == expected  # Merseyside's July only
        # a run whose gate failed published nothing: the next run checks the same force-month again
        assert unmapped() == expected
        publish()
        assert unmapped() == []
        # past LOOKUP_AT_MOST changed force-months, the whole table is read once instead
        load("merseyside", JULY, "replaced")
        load("essex", JUNE, "replaced")
        monkeypatch.setattr(validation, "LOOKUP_AT_MOST", 1)
        assert unmapped() == ["Every outcome recognised [outcome_category]: 11 of 11 rows fail in "
                              "staging.stg_police__stop_searches"]
    finally:
        with psycopg.connect(url) as conn:
            conn.execute("delete from audit.publications where run_id = 'test-scope'")


def test_scoped_validation_never_brings_the_rows_into_python(clean_warehouse: str, docs_dir: Path) -> None:
    """The changed partitions are checked in PostgreSQL: no statement GX runs hands more than a few
    rows to this process, however many rows the partitions hold (GX's column-name fallback for a
    query used to fetch them all: 1.5 GB on a national first night)."""
    import sqlalchemy
    from vru.feed import Partitions

    url = clean_warehouse
    make_staging_and_mart(url, {("merseyside", JUNE): 1500, ("essex", JUNE): 1500}, GOOD_MART)
    scope = Partitions(key=("force_id", "month"),
                       query="select 'merseyside' as force_id, date '2020-06-01' as month")
    received: list[int] = []

    def count_rows(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().lower().startswith(("select", "with")):
            received.append(cursor.rowcount)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", count_rows)
    try:
        outcome = validate("staging", "police.stop_searches", "staging.stg_police__stop_searches",
                           warehouse_url=url, docs_dir=docs_dir, run_id="test-rows", scope=scope)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "after_cursor_execute", count_rows)
    assert outcome.success, outcome
    assert received, "no statement seen: the listener is not on GX's engine"
    assert max(received) < 100, sorted(received)[-5:]


def test_missing_table_is_a_setup_error(warehouse_url: str, docs_dir: Path) -> None:
    with pytest.raises(validation.ValidationSetupError, match=r"marts\.no_such_table"):
        run(warehouse_url, docs_dir, "marts", "police.stop_search_monthly", "marts.no_such_table")


# ------------------------------------------------------------------------------------------
# Suite files and module hygiene (no database)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((REPO / "expectations").glob("*.json")), ids=lambda p: p.name)
def test_suite_files_are_reviewed_shape(path: Path) -> None:
    suite = validation.load_suite(path)  # raises unless every expectation has severity and meaning
    assert path.name == f"{suite['name']}.json"
    stage, source, entity = suite["name"].split(".")
    assert stage in ("raw", "staging", "marts") and source and entity
    for expectation in suite["expectations"]:
        assert set(expectation) == {"type", "kwargs", "meta"}
        meaning = expectation["meta"]["meaning"]
        assert meaning.endswith(".") and "expect_" not in meaning
        assert expectation["meta"].get("severity_reason", "").startswith(expectation["meta"]["severity"])
        query = expectation["kwargs"].get("unexpected_rows_query", "")
        for private in ("latitude", "longitude", "gender", "age_range", "ethnicity", "street"):
            # a whole identifier: `gender_unknown`, a national HES count, is not a person's gender
            assert not re.search(rf"\b{private}\b", query), \
                f"{path.name}: row query must return keys only, not {private}"


def test_raw_vocabularies_keep_published_oddities() -> None:
    suite = validation.load_suite(validation.suite_path_for("raw", "police.stop_searches"))
    sets = {
        e["kwargs"]["column"]: set(e["kwargs"]["value_set"])
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set"
    }
    assert "Environmental Protection Act 1990 (section 34B )" in sets["legislation"]
    assert "dog" in sets["object_of_search"]
    assert {"false", "Nothing found - no further action", "Suspect arrested", "Arrest"} <= sets["outcome"]
    assert not any(v in ("", "NA") for values in sets.values() for v in values)


def test_result_format_never_samples_rows() -> None:
    fmt = validation.RESULT_FORMAT
    assert fmt["result_format"] == "BASIC" and fmt["partial_unexpected_count"] == 0
    assert not fmt["include_unexpected_rows"]


def test_urls_for_gx_and_psycopg() -> None:
    socket = "postgresql://postgres:@/postgres?host=/tmp/pg"
    assert validation.sqlalchemy_url(socket) == "postgresql+psycopg://postgres:@/postgres?host=/tmp/pg"
    assert (
        validation.sqlalchemy_url("postgres://u:p@127.0.0.1:5432/w")
        == "postgresql+psycopg://u:p@127.0.0.1:5432/w"
    )
    assert validation.libpq_url("postgresql+psycopg://u@h/w") == "postgresql://u@h/w"


def test_suite_directory_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert validation.expectations_dir() == REPO / "expectations"
    monkeypatch.setenv(validation.EXPECTATIONS_DIR_ENV, str(tmp_path))
    assert (
        validation.suite_path_for("raw", "police.stop_searches") == tmp_path / "raw.police.stop_searches.json"
    )


def test_importing_the_module_does_not_import_gx() -> None:
    code = "import sys, vru.validation; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
