"""One place that reads the environment. DAGs, the CLI, dbt and tests all ask here.

Every setting is an environment variable (credentials included), so the embedded default and
the docker-compose stack run the same code with different environments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]

# Environment variables the product reads (docker-compose.yml is checked against this list).
ENV_VARS = {
    "VRU_HOME": "state folder: embedded warehouse, archive, Airflow home, reports (default .vru/)",
    "VRU_WAREHOUSE_URL": "PostgreSQL 15+ URL of the warehouse as the pipeline role vru_pipeline (a non-superuser "
                         "owning the schemas); unset = embedded PostgreSQL",
    "VRU_WAREHOUSE_ADMIN_URL": "URL of an administrator of that warehouse (creates roles): only `vru warehouse "
                               "apply-schema` and `bi-url` use it, at start-up; unset = VRU_WAREHOUSE_URL",
    "VRU_SCHEMA_LOCK_TIMEOUT": "how long apply-schema waits for a lock before it gives up (default 5s)",
    "VRU_BI_STATEMENT_TIMEOUT": "statement_timeout of the BI logins (default 5min)",
    "VRU_BI_IDLE_IN_TRANSACTION_TIMEOUT": "idle_in_transaction_session_timeout of the BI logins (default 10min)",
    "VRU_POLICE_API_URL": "data.police.uk API base (default https://data.police.uk/api)",
    "VRU_POLICE_RATE_LIMIT": "requests per second to the police API (default 10, at most 10)",
    "VRU_KNIFE_CRIME_URL": "Home Office knife crime open data table (.ods/.xlsx/.csv), or the gov.uk page linking it "
                           "(default: the police recorded crime open data tables page)",
    "VRU_HES_URL": "NHS Digital HES admitted patient care external causes table (.xlsx/.ods/.csv), or the publication "
                   "page linking it (default: the HES APC activity publication page)",
    "VRU_ONS_PFA_URL": "ONS police force area data tables workbook (.xlsx), or the ONS dataset page linking its "
                       "editions (default: the dataset page; the first link to a policeforcearea...xlsx is taken)",
    "VRU_AE_LANDING": "folder where emergency departments' ISTV extracts (CSV) land; a new file triggers "
                      "the A&E ingest (default VRU_HOME/landing/ae)",
    "VRU_AE_SETTLE_SECONDS": "seconds a landed A&E file must be unchanged before it is taken in, by the watcher "
                             "and the nightly sweep alike (default 10)",
    "VRU_AE_MAX_FILE_BYTES": "largest A&E file taken in, in bytes; a larger one is set aside with a reason "
                             "(default 209715200, 200 MiB)",
    "VRU_HTTP_MAX_ATTEMPTS": "attempts per request before a force-month fails (default 5)",
    "VRU_HTTP_TIMEOUT": "seconds per HTTP request (default 60)",
    "VRU_BI_USER": "login role for BI tools, read-only on marts and audit (default vru_bi)",
    "VRU_BI_PASSWORD": "its password; unset with the embedded warehouse = generated and kept in VRU_HOME",
    "VRU_DBT_PROJECT_DIR": "dbt project folder (default dbt_project/ in the checkout)",
    "VRU_EXPECTATIONS_DIR": "Great Expectations suites folder (default expectations/)",
    "VRU_ALERT_EMAIL_TO": "who gets incident alert email, comma-separated addresses; unset = no email",
    "VRU_ALERT_SMTP_CONN_ID": "Airflow connection of the SMTP server for alert email (default smtp_default, "
                              "i.e. AIRFLOW_CONN_SMTP_DEFAULT)",
    "VRU_ALERT_WEBHOOK_URL": "URL that receives each new incident as a JSON POST; unset = no webhook",
    "VRU_ALERT_APPRISE_CONN_ID": "Airflow connection (conn type apprise) whose config lists Apprise URLs "
                                 "(Slack, Teams, generic JSON...); each new incident goes to each; unset = no "
                                 "chat alerts",
    "VRU_LINEAGE_DIR": "folder the OpenLineage events of every task are written to, one JSON file per event, when "
                       "no lineage server is set (default VRU_HOME/lineage)",
    "VRU_LINEAGE_URL": "an OpenLineage HTTP endpoint (Marquez, DataHub) that receives the events instead of "
                       "VRU_LINEAGE_DIR; AIRFLOW__OPENLINEAGE__TRANSPORT, when set, overrides both",
    # Limits on what a published table may cost to read: past one, the edition is refused.
    "VRU_MAX_DOWNLOAD_BYTES": "bytes of one downloaded table or page, counted while streaming (the read "
                              "stops past it), and of an edition file loaded by hand (default 104857600, 100 MiB)",
    "VRU_MAX_UNZIPPED_BYTES": "bytes one member of a spreadsheet's zip may decompress to, counted while "
                              "reading (default 268435456, 256 MiB)",
    "VRU_MAX_UNZIPPED_TOTAL_BYTES": "bytes all members of a spreadsheet's zip may decompress to together "
                                    "(default 536870912, 512 MiB)",
    "VRU_MAX_ZIP_MEMBERS": "files a spreadsheet's zip may hold (default 10000)",
    "VRU_MAX_TABLE_ROWS": "rows with a value in one table, all sheets together (default 1048576, Excel's sheet height)",
    "VRU_MAX_TABLE_COLUMNS": "columns per row (default 16384, Excel's)",
    "VRU_MAX_TABLE_CELLS": "cells of all rows read from one table together (default 10000000)",
    "VRU_MAX_TABLE_CHARS": "characters in the cells of one table together, repeats counted (default 134217728)",
    "VRU_MAX_TABLE_REPEAT": "times a row or cell that has a value may repeat (ODS number-rows-repeated, "
                            "number-columns-repeated; empty ones are skipped, not expanded) (default 10000)",
    "VRU_MAX_SHARED_STRINGS": "shared strings of an .xlsx workbook (default 1000000)",
    "VRU_MAX_SHARED_STRINGS_CHARS": "characters of all shared strings of an .xlsx workbook together "
                                    "(default 67108864)",
}

DEFAULT_POLICE_API_URL = "https://data.police.uk/api"
DEFAULT_KNIFE_CRIME_URL = "https://www.gov.uk/government/statistics/police-recorded-crime-open-data-tables"
DEFAULT_HES_URL = ("https://digital.nhs.uk/data-and-information/publications/statistical/"
                   "hospital-admitted-patient-care-activity")
DEFAULT_ONS_PFA_URL = ("https://www.ons.gov.uk/peoplepopulationandcommunity/crimeandjustice/datasets/"
                       "policeforceareadatatables")
DEFAULT_ALERT_SMTP_CONN_ID = "smtp_default"
DEFAULT_AE_SETTLE_SECONDS = 10.0
DEFAULT_AE_MAX_FILE_BYTES = 200 * 1024 * 1024


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _positive_int(name: str, default: int) -> int:
    text = _env(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: must be a whole number above 0") from None
    if value <= 0:
        raise ValueError(f"{name}={value}: must be above 0")
    return value


@dataclass(frozen=True)
class ReaderLimits:
    """What reading one published table may cost; past any limit the edition is refused.

    The defaults are far above the tables we read (the knife crime table has about 10,000 rows,
    the HES table a few hundred) and far below what exhausts a 2 GB worker: a table that needs
    more is hostile or broken, or the publisher changed it beyond recognition, and someone
    should look before it is loaded.
    """

    download_bytes: int = 100 * 2**20
    unzipped_bytes: int = 256 * 2**20  # per zip member
    unzipped_total_bytes: int = 512 * 2**20  # all members together
    zip_members: int = 10_000
    rows: int = 1_048_576  # Excel's and LibreOffice's sheet height
    columns: int = 16_384  # Excel's sheet width
    cells: int = 10_000_000
    chars: int = 128 * 2**20  # text of all cells, a repeated cell counted each time
    repeat: int = 10_000  # a repeated row or cell that has a value
    shared_strings: int = 1_000_000
    shared_strings_chars: int = 64 * 2**20


def reader_limits() -> ReaderLimits:
    """The readers' limits from the environment (VRU_MAX_*), each defaulting to ReaderLimits'."""
    d = ReaderLimits()
    return ReaderLimits(
        download_bytes=_positive_int("VRU_MAX_DOWNLOAD_BYTES", d.download_bytes),
        unzipped_bytes=_positive_int("VRU_MAX_UNZIPPED_BYTES", d.unzipped_bytes),
        unzipped_total_bytes=_positive_int("VRU_MAX_UNZIPPED_TOTAL_BYTES", d.unzipped_total_bytes),
        zip_members=_positive_int("VRU_MAX_ZIP_MEMBERS", d.zip_members),
        rows=_positive_int("VRU_MAX_TABLE_ROWS", d.rows),
        columns=_positive_int("VRU_MAX_TABLE_COLUMNS", d.columns),
        cells=_positive_int("VRU_MAX_TABLE_CELLS", d.cells),
        chars=_positive_int("VRU_MAX_TABLE_CHARS", d.chars),
        repeat=_positive_int("VRU_MAX_TABLE_REPEAT", d.repeat),
        shared_strings=_positive_int("VRU_MAX_SHARED_STRINGS", d.shared_strings),
        shared_strings_chars=_positive_int("VRU_MAX_SHARED_STRINGS_CHARS", d.shared_strings_chars),
    )


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse_url: str | None  # None: use the embedded PostgreSQL under home
    police_api_url: str
    police_rate_limit: float
    knife_crime_url: str
    http_max_attempts: int
    http_timeout: float
    dbt_project_dir: Path
    expectations_dir: Path
    bi_user: str = "vru_bi"
    bi_password: str | None = None
    alert_email_to: str | None = None  # None: no alert email
    alert_smtp_conn_id: str = DEFAULT_ALERT_SMTP_CONN_ID
    alert_webhook_url: str | None = None  # None: no alert webhook
    alert_apprise_conn_id: str | None = None  # None: no chat alerts
    hes_url: str = DEFAULT_HES_URL
    ons_pfa_url: str = DEFAULT_ONS_PFA_URL
    ae_landing: Path | None = None  # None: VRU_HOME/landing/ae
    warehouse_admin_url: str | None = None  # None: VRU_WAREHOUSE_URL (or the embedded superuser)
    schema_lock_timeout: str = "5s"
    bi_statement_timeout: str = "5min"
    bi_idle_in_transaction_timeout: str = "10min"
    ae_settle_seconds: float = DEFAULT_AE_SETTLE_SECONDS
    ae_max_file_bytes: int = DEFAULT_AE_MAX_FILE_BYTES
    lineage_dir_setting: Path | None = None  # None: VRU_HOME/lineage
    lineage_url: str | None = None  # None: events go to files in lineage_dir

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def embedded_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def data_docs_dir(self) -> Path:
        return self.home / "reports" / "data_docs"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def ae_landing_dir(self) -> Path:
        """Where A&E extracts land; `loaded/` and `rejected/` below it hold what was done with them."""
        return self.ae_landing or self.home / "landing" / "ae"

    @property
    def lineage_dir(self) -> Path:
        """Where the OpenLineage file transport writes, when no lineage server is set."""
        return self.lineage_dir_setting or self.home / "lineage"


def settings() -> Settings:
    rate = float(_env("VRU_POLICE_RATE_LIMIT", "10") or 10)
    if not 0 < rate <= 10:
        raise ValueError(
            f"VRU_POLICE_RATE_LIMIT={rate}: must be above 0 and at most 10 requests/s "
            "(data.police.uk allows 15/s on average; we stay well under it)"
        )
    home = Path(_env("VRU_HOME", str(REPO_ROOT / ".vru")) or "").expanduser().resolve()
    return Settings(
        home=home,
        warehouse_url=_env("VRU_WAREHOUSE_URL"),
        police_api_url=(_env("VRU_POLICE_API_URL", DEFAULT_POLICE_API_URL) or "").rstrip("/"),
        police_rate_limit=rate,
        knife_crime_url=_env("VRU_KNIFE_CRIME_URL", DEFAULT_KNIFE_CRIME_URL) or DEFAULT_KNIFE_CRIME_URL,
        http_max_attempts=int(_env("VRU_HTTP_MAX_ATTEMPTS", "5") or 5),
        http_timeout=float(_env("VRU_HTTP_TIMEOUT", "60") or 60),
        dbt_project_dir=Path(_env("VRU_DBT_PROJECT_DIR", str(REPO_ROOT / "dbt_project")) or ""),
        expectations_dir=Path(_env("VRU_EXPECTATIONS_DIR", str(REPO_ROOT / "expectations")) or ""),
        bi_user=_env("VRU_BI_USER", "vru_bi") or "vru_bi",
        bi_password=_env("VRU_BI_PASSWORD"),
        alert_email_to=_env("VRU_ALERT_EMAIL_TO"),
        alert_smtp_conn_id=_env("VRU_ALERT_SMTP_CONN_ID", DEFAULT_ALERT_SMTP_CONN_ID) or DEFAULT_ALERT_SMTP_CONN_ID,
        alert_webhook_url=_env("VRU_ALERT_WEBHOOK_URL"),
        alert_apprise_conn_id=_env("VRU_ALERT_APPRISE_CONN_ID"),
        hes_url=_env("VRU_HES_URL", DEFAULT_HES_URL) or DEFAULT_HES_URL,
        ons_pfa_url=_env("VRU_ONS_PFA_URL", DEFAULT_ONS_PFA_URL) or DEFAULT_ONS_PFA_URL,
        ae_landing=Path(landing).expanduser().resolve() if (landing := _env("VRU_AE_LANDING")) else None,
        warehouse_admin_url=_env("VRU_WAREHOUSE_ADMIN_URL"),
        schema_lock_timeout=_env("VRU_SCHEMA_LOCK_TIMEOUT", "5s") or "5s",
        bi_statement_timeout=_env("VRU_BI_STATEMENT_TIMEOUT", "5min") or "5min",
        bi_idle_in_transaction_timeout=_env("VRU_BI_IDLE_IN_TRANSACTION_TIMEOUT", "10min") or "10min",
        ae_settle_seconds=_at_least("VRU_AE_SETTLE_SECONDS", DEFAULT_AE_SETTLE_SECONDS, 0),
        ae_max_file_bytes=int(_at_least("VRU_AE_MAX_FILE_BYTES", DEFAULT_AE_MAX_FILE_BYTES, 1)),
        lineage_dir_setting=Path(folder).expanduser().resolve() if (folder := _env("VRU_LINEAGE_DIR")) else None,
        lineage_url=_env("VRU_LINEAGE_URL"),
    )


def _at_least(name: str, default: float, minimum: float) -> float:
    value = float(_env(name, str(default)) or default)
    if value < minimum:
        raise ValueError(f"{name}={value}: must be at least {minimum}")
    return value


@dataclass(frozen=True)
class PgParams:
    """libpq parameters of a PostgreSQL URL (what dbt's profile needs: it takes no URL)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


def pg_params(url: str) -> PgParams:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host", [""])[0]) or "127.0.0.1"
    return PgParams(
        host=unquote(host),
        port=parts.port or int(query.get("port", ["5432"])[0]),
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
    )


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and summaries."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def dbt_env(url: str) -> dict[str, str]:
    """Environment for dbt_project/profiles.yml, derived from the one warehouse URL."""
    p = pg_params(url)
    return {
        "VRU_PG_HOST": p.host,
        "VRU_PG_PORT": str(p.port),
        "VRU_PG_USER": p.user,
        "VRU_PG_PASSWORD": p.password,
        "VRU_PG_DATABASE": p.dbname,
    }
