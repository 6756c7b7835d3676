"""What a feed is: the declaration each feed module makes once (`vru.feeds.<name>.FEED`).

Everything that differs from one feed to another, and that something other than the feed's own
parser needs, is here: its name and dataset, its DAG and schedule, its raw table and the tables its
data quality suites check, its marts, its freshness rule, what monitoring staff call it, and where
its source is configured. The DAGs, the transform's gates, incidents, freshness, the data quality
report, `vru run`, the CLI and the test fixtures all read these declarations through
`vru.registry`; none of them lists feeds of its own. No Airflow here: the declarations are plain
data, importable by the CLI and tests without a scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

    from vru.archive import Archive
    from vru.config import Settings
    from vru.editions import EditionResult
    from vru.http import HttpClient

# A load that changed raw: a new partition or edition ("loaded") or a revised one ("replaced").
# audit.loads.status and audit.landed_files.outcome use these words; SQL takes the tuple as a
# parameter (`status = any(%s)`) and dbt its twin, the macro `successful_load_statuses()`.
SUCCESSFUL_LOADS: tuple[str, ...] = ("loaded", "replaced")
# A load that failed: the server (retried next run) or the content (refused until it changes).
FAILED_LOADS: tuple[str, ...] = ("failed", "refused")

Kind = Literal["api", "edition", "files"]
Period = Literal["month", "quarter", "financial year", "rolling year"]  # rolling: the 12 months ending


@dataclass(frozen=True)
class Freshness:
    """Is the latest period held as recent as the publisher's schedule says it should be?"""

    publisher: str
    period: Period
    publication_lag_days: int  # from the end of a period to its publication, at the latest
    cycle_days: int  # between two releases: how much older the latest period gets before the next
    # One row, one column: the last day of the latest period held (or null). Run with the parameter
    # %(successful)s (SUCCESSFUL_LOADS, as an array), so a literal % is written %%.
    latest_period_end_sql: str
    # The same for the latest period the source itself lists (its availability, or its latest
    # edition), where the feed records it; None: the source lists nothing (files sent to us).
    published_period_end_sql: str | None = None

    @property
    def max_age_days(self) -> int:
        """Stale past this: the release after the one we hold is overdue."""
        return self.publication_lag_days + self.cycle_days


class Check(NamedTuple):
    """One data quality suite (`expectations/<stage>.<dataset>.json`) and the table it checks.

    A mart's table is named without its schema: the transform checks it in the build schema,
    before it is published.
    """

    stage: str  # raw | staging | marts
    dataset: str
    table: str


class Partitions(NamedTuple):
    """Which partitions of a feed's tables changed: `query` (SQL, code) returns their `key`
    columns, which its raw and staging tables both have (e.g. force_id, month)."""

    key: tuple[str, ...]
    query: str


@dataclass(frozen=True)
class Mart:
    name: str  # the table BI tools read: marts.<name>
    dataset: str  # its audit name, <feed prefix>.<name>
    label: str  # what monitoring staff call it

    @property
    def check(self) -> Check:
        return Check("marts", self.dataset, self.name)


@dataclass(frozen=True)
class Feed:
    name: str  # found by this everywhere: vru.feeds.<name>, DAG vru_ingest_<name>
    dataset: str  # its audit name, <source>.<entity> (stored in audit tables: never renamed)
    kind: Kind  # api: partitions from an API; edition: a table republished whole; files: files landing
    label: str  # what monitoring staff call it ("Knife crime")
    source_label: str  # the same with its source, for the report ("Knife crime (Home Office)")
    raw_table: str  # schema.table the ingest loads
    schedule: str  # cron, Europe/London: the nightly run (a files feed also starts on each file)
    freshness: Freshness
    marts: tuple[Mart, ...]
    staging_table: str | None = None  # checked by expectations/staging.<dataset>.json when set
    tags: tuple[str, ...] = ()
    retries: int = 2
    retry_delay_minutes: int = 5
    url_setting: str | None = None  # the Settings attribute (and VRU_ env var) of its source
    # Edition feeds: check the source for a new edition and load it; load editions from files (CLI).
    ingest: Callable[[psycopg.Connection, HttpClient, Archive, str, str | None, Settings], EditionResult] | None = None
    load_file: Callable[[psycopg.Connection, Archive, Path, str | None, Settings], EditionResult] | None = None
    doc_md: str = ""
    edition_label: str = ""  # an edition feed: what one edition is, in the run summary ("knife crime table")
    # A partitioned feed: the partitions loaded since the last publication, which the gates check
    # in its raw and staging tables (vru.validation: a row-level check reads only their rows; a
    # check of the whole table, columns or row count, the whole table). None: whole tables.
    changed_partitions: Partitions | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        return f"vru_ingest_{self.name}"

    @property
    def prefix(self) -> str:
        """The first part of its datasets' audit names (police, home_office, nhs, ae)."""
        return self.dataset.split(".", 1)[0]

    @property
    def raw_check(self) -> Check:
        return Check("raw", self.dataset, self.raw_table)

    @property
    def mart_gate_checks(self) -> tuple[Check, ...]:
        """What the transform checks after dbt: the staging suite (if any), then the marts."""
        staging = (Check("staging", self.dataset, self.staging_table),) if self.staging_table else ()
        return staging + tuple(m.check for m in self.marts)

    def source_url(self, cfg: Settings) -> str:
        if not self.url_setting:
            raise ValueError(f"the {self.name} feed has no source URL (it is a {self.kind} feed)")
        return str(getattr(cfg, self.url_setting))

    @property
    def url_env(self) -> str | None:
        return f"VRU_{self.url_setting.upper()}" if self.url_setting else None


@dataclass(frozen=True)
class Derived:
    """Marts built from several feeds (the programme's outcomes): checked and published like a
    feed's marts, with no ingest of their own."""

    prefix: str
    label: str
    marts: tuple[Mart, ...]
