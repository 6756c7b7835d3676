"""Shared fixtures: one real embedded PostgreSQL for the whole session (no mocked database)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import psycopg.sql
import pytest
from airflow_client.client import DAGRunResponse

warnings.filterwarnings("ignore", module="platformdirs")

from vru import registry, warehouse  # noqa: E402
from vru.config import settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "plugins" / "vru_sample" / "data" / "police"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Settings that point at a developer's warehouse or the real sources: never inherited by a test.
OUTSIDE = ("VRU_WAREHOUSE_URL", *(f.url_env for f in registry.FEEDS if f.url_env))


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test touches the checkout's .vru/ or a developer's warehouse: VRU_HOME is a temp dir."""
    home = tmp_path_factory.mktemp("vru_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("VRU_HOME", str(home))
    for variable in OUTSIDE:
        patch.delenv(variable, raising=False)
    yield home
    warehouse.EmbeddedWarehouse(home / "warehouse").stop()  # in case code under test started one
    patch.undo()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[warehouse.EmbeddedWarehouse]:
    server = warehouse.EmbeddedWarehouse(tmp_path_factory.mktemp("warehouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def warehouse_url(pg_server: warehouse.EmbeddedWarehouse) -> str:
    url = pg_server.url()
    warehouse.apply_schema(url)
    return url


# What tests load besides each feed's raw table: the shared raw, audit and restricted records.
SHARED_TABLES = ("raw.quarantine", "raw.police_availability", "raw.source_notes", "audit.loads", "audit.feed_state",
                 "audit.validation_results", "audit.editions", "audit.revisions", "audit.incidents",
                 "audit.landed_files", "restricted.ae_quarantine", "restricted.ae_published_cells",
                 "staging.programme_effect_estimates", "staging.programme_event_study_estimates")


def _truncate(url: str) -> None:
    tables = [f.raw_table for f in registry.FEEDS] + list(SHARED_TABLES)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("truncate {}").format(
            psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(*t.split(".")) for t in tables)))


def dag_run(dag_id: str, run_id: str, state: str, run_type: str = "manual") -> DAGRunResponse:
    """A DAG run as Airflow's REST API returns it (the client's model), for tests without Airflow."""
    return DAGRunResponse(dag_id=dag_id, dag_display_name=dag_id, dag_run_id=run_id, dag_versions=[],
                          run_after=datetime(2026, 1, 1, tzinfo=UTC), run_type=run_type, state=state)


@contextmanager
def home_with_warehouse(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A VRU_HOME of its own with its embedded warehouse running, as `vru run` uses one."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VRU_HOME", str(home))
        for variable in OUTSIDE:
            mp.delenv(variable, raising=False)
        server = warehouse.embedded(settings())
        server.start()
        try:
            yield home
        finally:
            server.stop()


def asset_event_extras(home: Path, asset: str) -> list[dict[str, object]]:
    """The extras of every event of `asset` in the local Airflow's metadata database, oldest first
    (its embedded server is started for the query when `vru run` has stopped it)."""
    from dataclasses import replace

    from vru.airflow_local import metadata_database

    with metadata_database(replace(settings(), home=home)) as url, psycopg.connect(url) as meta:
        rows = meta.execute("select e.extra from asset_event e join asset a on a.id = e.asset_id "
                            "where a.name = %s order by e.id", (asset,)).fetchall()
    return [dict(extra) for (extra,) in rows]


@pytest.fixture
def clean_warehouse(warehouse_url: str) -> Iterator[str]:
    """The session warehouse, emptied of loaded data before the test."""
    _truncate(warehouse_url)
    yield warehouse_url


@pytest.fixture
def conn(clean_warehouse: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(clean_warehouse, autocommit=True) as connection:
        yield connection


def publish_built(url: str) -> None:
    """Publish what dbt built in the build schema, as the transform DAG's publish_marts does after
    its checks (write-audit-publish): what a BI reader sees is what was published."""
    from vru import publish

    with psycopg.connect(url) as conn:
        built = [m for m in publish.manifest_marts(REPO / "dbt_project" / "target" / "manifest.json")
                 if conn.execute("select to_regclass(%s)", (f"{publish.BUILD_SCHEMA}.{m}",)).fetchone() != (None,)]
        publish.promote(conn, "test", built)
