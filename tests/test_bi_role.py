"""The read-only BI login: reads the marts and the data quality results, nothing else."""

from __future__ import annotations

import psycopg
import pytest
from vru import warehouse


@pytest.fixture
def bi_url(clean_warehouse: str) -> str:
    with psycopg.connect(clean_warehouse, autocommit=True) as conn:
        conn.execute("drop table if exists marts.bi_probe, staging.bi_probe")
        # made after the grants, as dbt makes them: the default privileges must cover it
        conn.execute("create table marts.bi_probe as select 1 as n")
        conn.execute("create table staging.bi_probe as select 1 as n")
        conn.execute("insert into raw.quarantine (load_id, dataset, origin, sha256, line_no, reason, record) "
                     "values (1, 'x', 'api', 's', 1, 'r', 'row-level')")
    return warehouse.grant_bi(clean_warehouse, "bi_probe_user", "bi-probe-password")


def test_bi_login_reads_marts_and_quality_results(bi_url: str) -> None:
    with psycopg.connect(bi_url) as conn:
        assert conn.execute("select n from marts.bi_probe").fetchone() == (1,)
        assert conn.execute("select count(*) from audit.validation_results").fetchone() == (0,)
        assert conn.execute("select count(*) from audit.incidents").fetchone() == (0,)
        # the A&E files received, without their per-extract row counts (tests/test_disclosure.py)
        assert conn.execute("select count(*) from audit.ae_extracts_received").fetchone() == (0,)


@pytest.mark.parametrize("query", [
    "select count(*) from raw.stop_searches",
    "select count(*) from raw.quarantine",
    "select count(*) from raw.knife_offences",
    "select count(*) from restricted.ae_attendances",  # row-level A&E data
    "select count(*) from restricted.ae_quarantine",
    "select count(*) from restricted.ae_published_cells",
    "select rows_loaded from audit.landed_files",  # rows per A&E extract: attendances by site and period
    "select n from staging.bi_probe",
    "insert into marts.bi_probe values (2)",
    "create table marts.bi_own (n int)",
])
def test_bi_login_cannot_read_raw_or_staging_or_write(bi_url: str, query: str) -> None:
    with psycopg.connect(bi_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(query)


def test_bi_password_can_be_rotated(clean_warehouse: str, bi_url: str) -> None:
    new_url = warehouse.grant_bi(clean_warehouse, "bi_probe_user", "a-new-password")
    with psycopg.connect(new_url) as conn:
        assert conn.execute("select n from marts.bi_probe").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(bi_url).close()
