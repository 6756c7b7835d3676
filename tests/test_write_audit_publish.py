"""Write-audit-publish (vru.publish): BI readers see a mart only after its checks passed.

Against a real PostgreSQL, with the real BI login:
- the build schema is invisible to BI readers; the published table gets grants, constraints and
  comments from the build;
- a promotion writes only the rows that changed (an unchanged row keeps its physical version);
- a BI session in a long REPEATABLE READ transaction keeps the old set of marts while a promotion
  commits, without blocking it or being blocked, and the next transaction sees the whole new set;
- a contract change that needs an exclusive lock gives up after the lock timeout while a BI
  query holds the table, and publishes nothing (the published marts stay byte-identical);
- the real dbt project builds its marts in the build schema, and the DAG's gate comes before
  publishing (tests/test_dags.py); tests/test_data_quality_end_to_end.py shows a failed mart gate
  leaving the published marts byte-identical through a real Airflow scheduler.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import REPO
from vru import publish, warehouse
from vru.report import write_report

MARTS = ["wap_probe_a", "wap_probe_b"]


def bi_url(url: str) -> str:
    return warehouse.grant_bi(url, "vru_bi_wap_test", "wap-test-password")


def fingerprint(conn: psycopg.Connection, table: str) -> list[tuple[object, ...]]:
    """Every row with its physical identity (ctid, xmin): equal only if nothing was rewritten."""
    return conn.execute(f"select ctid::text, xmin::text, t::text from {table} as t order by ctid").fetchall()


@pytest.fixture
def probes(clean_warehouse: str) -> Iterator[str]:
    """Two build tables shaped like marts (key, contract, comments), none published yet."""
    with psycopg.connect(clean_warehouse, autocommit=True) as conn:
        for mart in MARTS:
            conn.execute(f"drop table if exists marts.{mart}, marts_build.{mart}")
            conn.execute(f"create table marts_build.{mart} (force_id text not null, month date not null, "
                         "searches integer, rate numeric(6, 4), primary key (force_id, month))")
            conn.execute(f"comment on table marts_build.{mart} is 'One row per force per month.'")
            conn.execute(f"comment on column marts_build.{mart}.searches is 'Searches that month.'")
            conn.execute(f"insert into marts_build.{mart} select 'force' || f, "
                         "date '2020-01-01' + (m || ' month')::interval, f * 100 + m, null "
                         "from generate_series(1, 43) f, generate_series(0, 35) m")
        conn.execute("truncate audit.publications")
    yield clean_warehouse
    with psycopg.connect(clean_warehouse, autocommit=True) as conn:
        for mart in MARTS:
            conn.execute(f"drop table if exists marts.{mart}, marts_build.{mart}")


def promote(url: str, run_id: str = "run") -> dict[str, publish.MartChange]:
    with psycopg.connect(url) as conn:
        return {c.mart: c for c in publish.promote(conn, run_id, MARTS)}


def test_build_is_invisible_and_the_first_promotion_publishes_with_grant_contract_and_comments(probes: str) -> None:
    with psycopg.connect(bi_url(probes)) as bi:
        for statement in ("select count(*) from marts_build.wap_probe_a", "select count(*) from marts.wap_probe_a"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege if "build" in statement
                               else psycopg.errors.UndefinedTable):
                bi.execute(statement)
            bi.rollback()
    changes = promote(probes)
    assert changes["wap_probe_a"].replaced and changes["wap_probe_a"].rows == 43 * 36
    with psycopg.connect(bi_url(probes)) as bi:
        assert bi.execute("select count(*) from marts.wap_probe_a").fetchone() == (43 * 36,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("select count(*) from marts_build.wap_probe_a")
    with psycopg.connect(probes) as conn:
        assert conn.execute("select obj_description('marts.wap_probe_a'::regclass, 'pg_class'), "
                            "col_description('marts.wap_probe_a'::regclass, 3)").fetchone() == (
            "One row per force per month.", "Searches that month.")
        assert conn.execute("select pg_get_constraintdef(oid) from pg_constraint "
                            "where conrelid = 'marts.wap_probe_a'::regclass and contype = 'p'").fetchone() == (
            "PRIMARY KEY (force_id, month)",)
        with pytest.raises(psycopg.errors.NotNullViolation):  # the contract came along
            conn.execute("insert into marts.wap_probe_a (force_id, month) values (null, '2020-01-01')")
        conn.rollback()
        recorded = conn.execute("select run_id, marts from audit.publications").fetchall()
    assert recorded[0][0] == "run" and recorded[0][1]["wap_probe_b"]["rows"] == 43 * 36


def test_a_promotion_writes_only_what_changed_and_nothing_when_nothing_did(probes: str) -> None:
    promote(probes)
    with psycopg.connect(probes, autocommit=True) as conn:
        before = {m: fingerprint(conn, f"marts.{m}") for m in MARTS}
        # tonight's build: one force-month revised, one new month, one month withdrawn, in mart a only
        conn.execute("update marts_build.wap_probe_a set searches = searches + 1 "
                     "where force_id = 'force7' and month = '2021-03-01'")
        conn.execute("insert into marts_build.wap_probe_a values ('force1', '2023-01-01', 5, 0.25)")
        conn.execute("delete from marts_build.wap_probe_a where force_id = 'force2' and month = '2020-01-01'")
    changes = promote(probes, "night 2")
    assert (changes["wap_probe_a"].inserted, changes["wap_probe_a"].deleted) == (2, 2)
    assert (changes["wap_probe_b"].inserted, changes["wap_probe_b"].deleted) == (0, 0)
    with psycopg.connect(probes, autocommit=True) as conn:
        after = {m: fingerprint(conn, f"marts.{m}") for m in MARTS}
        assert after["wap_probe_b"] == before["wap_probe_b"]  # not one row rewritten
        untouched = set(before["wap_probe_a"]) & set(after["wap_probe_a"])
        assert len(untouched) == 43 * 36 - 2  # every other row kept its physical version
        published = conn.execute("select t::text from marts.wap_probe_a t order by 1").fetchall()
        built = conn.execute("select t::text from marts_build.wap_probe_a t order by 1").fetchall()
        assert published == built
    # a night that changed nothing writes nothing
    changes = promote(probes, "night 3")
    assert all((c.inserted, c.deleted) == (0, 0) for c in changes.values())
    with psycopg.connect(probes) as conn:
        assert {m: fingerprint(conn, f"marts.{m}") for m in MARTS} == after


def test_a_long_bi_transaction_sees_the_old_set_and_the_next_one_the_new_set(probes: str) -> None:
    promote(probes)
    with psycopg.connect(probes, autocommit=True) as conn:
        conn.execute("update marts_build.wap_probe_a set searches = -1 where force_id = 'force3'")
        conn.execute("update marts_build.wap_probe_b set searches = -1 where force_id = 'force3'")
    total = "select sum(searches) from marts.{} where force_id = 'force3'"
    with psycopg.connect(bi_url(probes)) as bi:
        bi.execute("begin isolation level repeatable read")
        old_a = bi.execute(total.format("wap_probe_a")).fetchone()
        # the promotion neither waits for the reader nor makes it wait
        started = time.perf_counter()
        changes = promote(probes, "during a BI read")
        assert time.perf_counter() - started < 5
        assert changes["wap_probe_a"].inserted == 36
        old_b = bi.execute(total.format("wap_probe_b")).fetchone()
        assert old_a == old_b and old_a is not None and old_a[0] > 0  # the whole old set, never a mix
        bi.execute("commit")
        assert bi.execute(total.format("wap_probe_a")).fetchone() == bi.execute(
            total.format("wap_probe_b")).fetchone() == (-36,)


def test_a_contract_change_gives_up_on_the_lock_and_publishes_nothing(probes: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    promote(probes)
    with psycopg.connect(probes, autocommit=True) as conn:
        before = {m: fingerprint(conn, f"marts.{m}") for m in MARTS}
        conn.execute("update marts_build.wap_probe_a set searches = 0")  # a change that would apply
        conn.execute("alter table marts_build.wap_probe_b add column arrests integer")  # a new contract
    monkeypatch.setattr(publish, "LOCK_TIMEOUT", "1s")
    with psycopg.connect(bi_url(probes)) as bi:
        bi.execute("select count(*) from marts.wap_probe_b")  # holds ACCESS SHARE until it ends
        started = time.perf_counter()
        with pytest.raises(publish.PromotionError, match="could not lock a published mart within 1s"):
            promote(probes, "blocked")
        assert time.perf_counter() - started < 10
    with psycopg.connect(probes) as conn:
        assert {m: fingerprint(conn, f"marts.{m}") for m in MARTS} == before  # byte for byte
        assert conn.execute("select count(*) from audit.publications where run_id = 'blocked'").fetchone() == (0,)
    # with the reader gone, the retry replaces the table and the other mart's change lands with it
    changes = promote(probes, "retry")
    assert changes["wap_probe_b"].replaced and not changes["wap_probe_a"].replaced
    with psycopg.connect(bi_url(probes)) as bi:  # granted again, and both changes visible together
        assert bi.execute("select count(arrests) from marts.wap_probe_b").fetchone() == (0,)
        assert bi.execute("select sum(searches) from marts.wap_probe_a").fetchone() == (0,)


def test_an_incomplete_build_publishes_nothing(probes: str) -> None:
    promote(probes)
    with psycopg.connect(probes, autocommit=True) as conn:
        before = {m: fingerprint(conn, f"marts.{m}") for m in MARTS}
        conn.execute("update marts_build.wap_probe_a set searches = 0")
        conn.execute("drop table marts_build.wap_probe_b")
    with pytest.raises(publish.PromotionError, match=r"marts_build.wap_probe_b does not exist"):
        promote(probes)
    with psycopg.connect(probes) as conn:
        assert fingerprint(conn, "marts.wap_probe_a") == before["wap_probe_a"]


def test_the_report_says_which_figures_bi_tools_show(probes: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", probes)
    with psycopg.connect(probes, autocommit=True) as conn:
        conn.execute("truncate audit.validation_results")
    page = write_report(run_id="r0").read_text()
    assert "Nothing has been published to the tables BI tools read yet." in page
    promote(probes, "scheduled__night1")
    page = write_report(run_id="r1").read_text()
    assert "BI tools show the figures published" in page and "(run scheduled__night1)" in page
    with psycopg.connect(probes, autocommit=True) as conn:  # the next night's build fails a mart check
        conn.execute(
            "insert into audit.validation_results (validation_id, run_id, stage, dataset, suite, expectation, "
            "severity, meaning, success) values ('v-night2', 'night2', 'marts', 'police.stop_search_monthly', "
            "'marts.police.stop_search_monthly', 'probe', 'critical', 'A probe check.', false)")
    page = write_report(run_id="night2").read_text()
    assert "BI tools still show the figures published" in page and "(run scheduled__night1)" in page
    assert "were left exactly as they were" in page


def test_dbt_builds_every_mart_in_the_build_schema_and_publish_knows_them() -> None:
    manifest = json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())
    marts = {n["name"]: n for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["fqn"][1] == "marts"}
    assert marts and all(n["schema"] == publish.BUILD_SCHEMA for n in marts.values())
    # no BI grant on a build table: grants live on the published tables only
    assert all(not n["config"].get("grants") for n in marts.values())
    assert publish.manifest_marts(REPO / "dbt_project" / "target" / "manifest.json") == sorted(marts)
