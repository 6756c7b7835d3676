"""Production settings fit for production (issue 12, point 6).

docker-compose.yml, read without a Docker engine: a real auth manager (FAB) with its first admin
from a secret, every published port on 127.0.0.1 only, the Airflow services connecting as the
non-superuser pipeline role, `.env` git-ignored. Against a real embedded PostgreSQL: the pipeline
role owns the schemas and is no superuser, the BI logins carry a statement timeout and an
idle-in-transaction timeout, apply_schema gives up quickly behind a BI reader's lock instead of
queueing, tasks run no DDL (an event trigger records every DDL command), and generated secrets
are 0600 from the moment they exist, even under a umask of 0.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml
from vru import warehouse
from vru.config import settings

ROOT = Path(__file__).resolve().parents[1]
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


# ------------------------------------------------------------------------------------------------
# docker-compose.yml
# ------------------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _defaults(text: str) -> str:
    """Compose interpolation with nothing set: `${X:-d}` gives d, everything else a placeholder."""
    return re.sub(r"\$\{([A-Za-z_]\w*)(:?-([^}]*))?(:?\?[^}]*)?\}",
                  lambda m: m[3] if m[2] else f"<{m[1]}>", text)


def _init_lines() -> list[list[str]]:
    command = _services()["airflow-init"]["command"]
    return [shlex.split(line) for line in command[2].splitlines() if line.strip()]


def test_compose_uses_the_fab_auth_manager_with_the_admin_from_a_secret() -> None:
    for name in AIRFLOW_SERVICES:
        environment = _services()[name]["environment"]
        assert environment.get("AIRFLOW__CORE__AUTH_MANAGER") == FAB, f"{name}: not the FAB auth manager"
        assert not [k for k in environment if "SIMPLE_AUTH_MANAGER" in k], f"{name}: simple auth manager settings"
    # the provider is in the locked stack the image installs (tests/test_compose.py parses the
    # `airflow users` commands below with this auth manager loaded, so the class path is real)
    assert 'name = "apache-airflow-providers-fab"' in (ROOT / "uv.lock").read_text()
    module, _, cls = FAB.rpartition(".")
    spec = importlib.util.find_spec(module)
    assert spec and spec.origin and f"class {cls}(" in Path(spec.origin).read_text()
    lines = _init_lines()
    migrate = lines.index(["airflow", "db", "migrate"])  # creates the FAB tables too
    create = next(i for i, argv in enumerate(lines) if argv[:3] == ["airflow", "users", "create"])
    assert migrate < create, "create the admin after `airflow db migrate`"
    argv = lines[create]
    assert argv[argv.index("--role") + 1] == "Admin"
    assert argv[argv.index("--password") + 1] == "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}", (
        "the admin's password must come from .env (required), never a literal or a default"
    )
    assert "AIRFLOW_ADMIN_PASSWORD=" in (ROOT / ".env.example").read_text()


def test_every_published_port_is_bound_to_loopback() -> None:
    published = 0
    for name, service in _services().items():
        for port in service.get("ports") or []:
            published += 1
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port} is not bound to 127.0.0.1"
            else:
                assert _defaults(str(port)).startswith("127.0.0.1:"), f"{name}: {port} is not bound to 127.0.0.1"
    assert published >= 3, "expected the Airflow API server, Superset and the warehouse to be published"
    assert {"airflow-apiserver", "superset", "warehouse"} <= {n for n, s in _services().items() if s.get("ports")}


def test_dot_env_is_git_ignored() -> None:
    git = shutil.which("git")
    assert git, "git is not installed"
    ignored = subprocess.run([git, "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env (the compose stack's secrets) is not git-ignored"
    template = subprocess.run([git, "check-ignore", "-q", ".env.example"], cwd=ROOT, check=False)
    assert template.returncode == 1, ".env.example is the committed template: it must not be ignored"


def test_the_airflow_services_connect_as_the_non_superuser_pipeline_role() -> None:
    warehouse_env = _services()["warehouse"]["environment"]
    superuser = warehouse_env["POSTGRES_USER"]  # the postgres image makes POSTGRES_USER a superuser
    superuser_password = set(_VAR.findall(warehouse_env["POSTGRES_PASSWORD"]))
    assert superuser != warehouse.PIPELINE_ROLE
    for name in AIRFLOW_SERVICES:
        environment = _services()[name]["environment"]
        for variable in ("VRU_WAREHOUSE_URL", "AIRFLOW_CONN_VRU_WAREHOUSE"):
            url = urlsplit(_defaults(environment[variable]))
            assert url.username == warehouse.PIPELINE_ROLE, f"{name}: {variable} connects as {url.username}"
            assert not set(_VAR.findall(environment[variable])) & superuser_password, (
                f"{name}: {variable} carries the superuser's password")
    # the superuser's password reaches the warehouse itself and the one-shot init job, nothing else
    for name, service in _services().items():
        text = yaml.safe_dump(service)
        if set(_VAR.findall(text)) & superuser_password:
            assert name in ("warehouse", "airflow-init"), f"{name} can connect as the warehouse's superuser"
    admin = urlsplit(_defaults(_services()["airflow-init"]["environment"]["VRU_WAREHOUSE_ADMIN_URL"]))
    assert admin.username == superuser, "airflow-init applies the schema as the warehouse's administrator"
    # the schema is applied once, at start-up, by the init job (before bi-url creates the BI login)
    lines = _init_lines()
    assert lines.index(["vru", "warehouse", "apply-schema"]) < next(
        i for i, argv in enumerate(lines) if argv[:3] == ["vru", "warehouse", "bi-url"])


# ------------------------------------------------------------------------------------------------
# A real PostgreSQL: roles, ownership, timeouts, locks, DDL
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_url(pg_server: warehouse.EmbeddedWarehouse, warehouse_url: str) -> str:
    """The session warehouse with the pipeline role given a login, as `vru warehouse apply-schema`
    does at start-up; the URL the pipeline connects with."""
    warehouse.apply_schema(warehouse_url, pipeline_password=pg_server.pipeline_password())
    return pg_server.pipeline_url()


def test_the_pipeline_role_owns_the_schemas_and_is_no_superuser(pipeline_url: str, warehouse_url: str) -> None:
    with psycopg.connect(pipeline_url, autocommit=True) as conn:
        role = conn.execute("select rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                            "from pg_roles where rolname = current_user").fetchone()
        assert role == (warehouse.PIPELINE_ROLE, False, False, False, False)
        owners = dict(conn.execute(
            "select nspname, nspowner::regrole::text from pg_namespace "
            "where nspname in ('raw', 'staging', 'marts', 'audit', 'restricted')").fetchall())
        assert owners == dict.fromkeys(("raw", "staging", "marts", "audit", "restricted"), warehouse.PIPELINE_ROLE)
        foreign = conn.execute(
            "select c.oid::regclass::text, c.relowner::regrole::text from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in ('raw', 'audit', 'restricted') and c.relkind in ('r', 'p', 'v', 'm', 'S') "
            "and c.relowner <> current_user::regrole").fetchall()
        assert not foreign, f"tables of the package not owned by the pipeline role: {foreign}"
        # it can do the pipeline's work (dbt rebuilds its marts) but nothing a superuser could
        conn.execute("create table marts.prod_settings_probe (x int)")
        conn.execute("drop table marts.prod_settings_probe")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create role prod_settings_intruder")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("alter role vru_bi_reader set statement_timeout = 0")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("copy (select 1) to '/tmp/prod_settings_probe'")  # server files: superuser only


def _show(url: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn:
        return (conn.execute("show statement_timeout").fetchone()[0],  # type: ignore[index]
                conn.execute("show idle_in_transaction_session_timeout").fetchone()[0])  # type: ignore[index]


def test_the_bi_login_has_a_statement_and_an_idle_in_transaction_timeout(warehouse_url: str) -> None:
    bi = warehouse.grant_bi(warehouse_url, "prod_settings_bi", "prod-settings-bi-pw")
    try:
        assert _show(bi) == ("5min", "10min")
        # apply-schema sets them on every login of the group, from its settings
        warehouse.apply_schema(warehouse_url, bi_statement_timeout="1s", bi_idle_in_transaction_timeout="2s")
        assert _show(bi) == ("1s", "2s")
        with psycopg.connect(bi) as conn, pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(3)")
        with psycopg.connect(bi) as conn:
            conn.execute("select 1")  # opens a transaction (not autocommit)
            time.sleep(3)  # idle in the open transaction longer than the timeout: the server ends it
            with pytest.raises(psycopg.Error):
                conn.execute("select 1")
    finally:
        warehouse.apply_schema(warehouse_url)  # the defaults again
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            conn.execute("drop role if exists prod_settings_bi")


def test_apply_schema_gives_up_quickly_behind_a_bi_readers_lock(warehouse_url: str) -> None:
    """A BI session in a long read transaction holds ACCESS SHARE on audit.loads; the schema's
    ALTER TABLE needs ACCESS EXCLUSIVE. Without lock_timeout apply_schema queues for ever (and every
    new reader of the table queues behind it); with it, it fails in about the timeout, clearly."""
    bi = warehouse.grant_bi(warehouse_url, "prod_settings_reader", "prod-settings-reader-pw")
    outcome: dict[str, Any] = {}

    def apply() -> None:
        started = time.monotonic()
        try:
            warehouse.apply_schema(warehouse_url)  # the default lock_timeout, 5 s
            outcome["result"] = "applied"
        except Exception as error:  # recorded for the assertions
            outcome["result"] = error
        outcome["seconds"] = time.monotonic() - started

    try:
        with psycopg.connect(bi) as reader:
            reader.execute("select count(*) from audit.loads")  # the transaction stays open
            worker = threading.Thread(target=apply, daemon=True)
            worker.start()
            worker.join(timeout=30)
            hung = worker.is_alive()
            reader.rollback()  # release: an old apply_schema finishes now
            worker.join(timeout=60)
        assert not hung, "apply_schema was still waiting for the BI reader's lock after 30 s"
        error = outcome["result"]
        assert isinstance(error, warehouse.WarehouseError), f"expected a WarehouseError, got {error!r}"
        assert "lock_timeout=5s" in str(error) and "pg_stat_activity" in str(error)
        assert "prod_settings_reader" in str(error), "the error names the session holding the lock"
        assert outcome["seconds"] < 15, f"took {outcome['seconds']:.1f} s to give up"
        # nothing half-applied: the session is usable and a retry with no reader succeeds. The default
        # timeout (5 s), not less: autovacuum can hold a table's lock until deadlock_timeout (1 s)
        # cancels it for a waiter, so a 1 s retry raced it on CI.
        warehouse.apply_schema(warehouse_url)
    finally:
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            conn.execute("drop role if exists prod_settings_reader")


@pytest.fixture
def ddl_log(warehouse_url: str) -> Iterator[psycopg.Connection]:
    """Every DDL command (CREATE, ALTER, DROP, GRANT...) any session runs, as an event trigger
    records it at ddl_command_start: fired even for `create ... if not exists` that does nothing."""
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table if not exists public.prod_settings_ddl "
                     "(tag text, role text, query text, at timestamptz default now())")
        conn.execute("truncate public.prod_settings_ddl")
        conn.execute("""create or replace function public.prod_settings_record_ddl() returns event_trigger
                        language plpgsql security definer as $$
                        begin
                            insert into public.prod_settings_ddl (tag, role, query)
                            values (tg_tag, session_user, left(current_query(), 200));
                        end $$""")
        conn.execute("drop event trigger if exists prod_settings_ddl_trigger")
        conn.execute("create event trigger prod_settings_ddl_trigger on ddl_command_start "
                     "execute function public.prod_settings_record_ddl()")
        try:
            yield conn
        finally:
            conn.execute("drop event trigger if exists prod_settings_ddl_trigger")


def test_tasks_run_no_ddl(ddl_log: psycopg.Connection, clean_warehouse: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first task of each ingest DAG (police plan, knife crime, HES, A&E take-in) ran
    apply_schema, whose ALTER TABLEs take ACCESS EXCLUSIVE locks BI readers queue behind. Now the
    schema is applied once at start-up and a task runs no DDL at all."""
    from vru import ingest, landing
    from vru_sample.server import (
        SampleApi,
        SampleServer,
        bundled_hes_editions,
        bundled_knife_crime_editions,
        bundled_sample_dir,
    )

    monkeypatch.setattr("vru.incidents.report_incident", lambda *a, **k: None)  # no alert channels here
    with SampleServer(SampleApi(bundled_sample_dir())) as server:
        server.api.publish("knife-crime", bundled_knife_crime_editions()[0], "Thu, 21 Jan 2021 09:30:00 GMT")
        server.api.publish("hes-sharp-object", bundled_hes_editions()[-1], "Thu, 21 Jan 2021 09:30:00 GMT",
                           folder="nhs")
        cfg = dataclasses.replace(
            settings(), warehouse_url=clean_warehouse, police_api_url=server.url,
            knife_crime_url=server.knife_crime_url, hes_url=server.hes_url, home=tmp_path,
            ae_landing=tmp_path / "landing", http_max_attempts=2)
        ddl_log.execute("truncate public.prod_settings_ddl")
        plan = ingest.plan_police(cfg)
        knife = ingest.ingest_edition("knife_crime", "prod-settings", cfg)
        hes = ingest.ingest_edition("hes", "prod-settings", cfg)
        landed = landing.ingest_landed("prod-settings", cfg=cfg)
    assert plan["listed"] and knife["status"] == "loaded" and hes["status"] == "loaded", (plan, knife, hes)
    assert landed["loaded"] == 0
    ran = ddl_log.execute("select tag, role, query from public.prod_settings_ddl order by at").fetchall()
    assert not ran, f"tasks ran DDL: {ran[:5]} ({len(ran)} commands)"


# ------------------------------------------------------------------------------------------------
# Secret files
# ------------------------------------------------------------------------------------------------


def test_secret_files_are_0600_from_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a umask of 0 a file written and then chmod-ed is 0666 until the chmod; the secrets
    must be created 0600. chmod is disabled here, so a write-then-chmod leaves the file wide."""
    from vru import airflow_local

    chmods: list[str] = []
    monkeypatch.setattr(Path, "chmod", lambda self, mode, **kw: chmods.append(str(self)))
    monkeypatch.setattr(os, "chmod", lambda path, mode, **kw: chmods.append(str(path)))
    old_umask = os.umask(0)
    try:
        server = warehouse.EmbeddedWarehouse(tmp_path / "warehouse")
        server.root.mkdir()
        superuser = server._password()
        cfg = dataclasses.replace(settings(), home=tmp_path, warehouse_url=None, bi_password=None)
        bi = warehouse.bi_password(cfg)
        jwt = airflow_local._secret(tmp_path / "secrets" / "airflow_jwt")
        _assert_private({server.root / "password": superuser, cfg.embedded_dir / "bi_password": bi,
                         tmp_path / "secrets" / "airflow_jwt": jwt}, chmods)
        pipeline = server.pipeline_password()
        _assert_private({server.root / "pipeline_password": pipeline}, chmods)
    finally:
        os.umask(old_umask)
    # a second call reads the same secret, and no temporary file is left behind
    assert server.pipeline_password() == pipeline
    assert not [p for p in server.root.iterdir() if p.name.startswith(".")]


def _assert_private(files: dict[Path, str], chmods: list[str]) -> None:
    for path, value in files.items():
        assert len(value) >= 24 and path.read_text().strip() == value
        assert path.stat().st_mode & 0o777 == 0o600, f"{path}: mode {oct(path.stat().st_mode & 0o777)}"
        assert str(path) not in chmods, f"{path} was written, then chmod-ed: wider in between"
