"""Run a reviewed Great Expectations suite against a warehouse table and record every result.

The suites are JSON files under ``expectations/`` named ``<stage>.<source>.<entity>.json``. Every
expectation carries ``meta.severity`` ("critical" stops the downstream, "warning" reports and
continues) and ``meta.meaning`` (one plain-English sentence for the monitoring staff).

Design points (measured on this stack, see the engineering notes):

* ``great_expectations`` takes 10+ s to import, and DAG files import this module: GX is imported
  inside the functions that need it, never at module level.
* Validation runs in PostgreSQL through GX's SQL datasource, never through pandas.
* Results are requested as ``BASIC`` with ``partial_unexpected_count = 0``: GX still returns the
  counts (unexpected_count, element_count, observed_value) but its "sample unexpected values"
  query becomes ``LIMIT 0``, so no row values (coordinates, personal fields) reach the audit table
  or Data Docs, and PostgreSQL stops that query before reading the table.
* Work in proportion to the change: given a ``scope`` (a feed's ``changed_partitions``), the
  row-level expectations read only the rows of those partitions (a GX query asset that looks each
  partition up by its key, so an index or BRIN range serves it) and the table-level ones
  (``expect_table_*``: columns, row count) the whole table. Without one, the whole table.
* The data failing is not an error: ``validate`` returns a :class:`ValidationOutcome` and the
  caller decides. Setup problems (missing suite, unreachable warehouse, missing table) raise
  :class:`ValidationSetupError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vru.feed import Partitions

log = logging.getLogger(__name__)

EXPECTATIONS_DIR_ENV = "VRU_EXPECTATIONS_DIR"
SEVERITIES = ("critical", "warning")

# GX reads a connection string written as "${NAME}" from its config providers without checking the
# URL's host: that is what lets a unix-socket URL through (add_postgres rejects it otherwise). The
# value is handed to the context as its runtime environment, so os.environ is left untouched.
_URL_VARIABLE = "VRU_GX_WAREHOUSE_URL"
_DATASOURCE = "warehouse"
_DOCS_SITE = "vru_data_docs"
_WORK_MEM = "64MB"  # per sort/hash of the validation session only
RESULTS_SUBDIR = "validation_results"  # under docs_dir: GX's JSON results behind the index page
DOCS_INDEX_LIMIT = 200  # validations listed on the index page, newest first

# Counts and observed values only. partial_unexpected_count=0 turns the per-expectation
# "sample unexpected values" query into LIMIT 0 (nothing read, nothing returned) and leaves
# partial_unexpected_list empty; exclude_unexpected_values is a second guard on the same lists.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}

# The only result fields copied to audit.validation_results.observed.
OBSERVED_KEYS = ("observed_value", "unexpected_count", "unexpected_percent", "element_count")

# Row-level A&E data lives in this schema. A count of its rows (a table's row count, how many rows
# fail a check) is a count of attendances, and two runs' counts difference to what one extract
# added: for tables here no count is stored, logged, put in an incident or in the Data Docs (the
# docs are not written for them at all); only whether each check passed, and column names.
RESTRICTED_SCHEMA = "restricted"

# GX loggers that are chatty at INFO in task logs.
_QUIET_LOGGERS = ("great_expectations", "posthog", "tzlocal")


class ValidationSetupError(RuntimeError):
    """The validation could not run (suite file, warehouse or table problem): not a data failure."""


@dataclass(frozen=True)
class ValidationOutcome:
    """What one validation of one table against one suite found."""

    validation_id: str
    stage: str
    dataset: str
    success: bool
    """True when every expectation passed (warnings included)."""
    critical_failures: list[str] = field(default_factory=list)
    """Short plain-English descriptions of failed critical expectations: the downstream must stop."""
    warnings: list[str] = field(default_factory=list)
    """Short plain-English descriptions of failed warning expectations: reported, the run continues."""
    evaluated: int = 0
    """Number of expectations evaluated."""
    docs_index: Path | None = None
    """Data Docs index page for the monitoring staff, or None if it was not written."""

    @property
    def blocking(self) -> bool:
        """True when a critical expectation failed and the downstream must not run."""
        return bool(self.critical_failures)


@dataclass(frozen=True)
class _ExpectationResult:
    expectation: str
    column_name: str | None
    severity: str
    check: str
    meaning: str
    success: bool
    observed: dict[str, Any]
    error: str | None


# --------------------------------------------------------------------------------------------
# Suite files
# --------------------------------------------------------------------------------------------


def expectations_dir() -> Path:
    """Folder of the reviewed suites: $VRU_EXPECTATIONS_DIR, else ``expectations/`` at the repo root."""
    configured = os.environ.get(EXPECTATIONS_DIR_ENV)
    if configured:
        return Path(configured)
    # plugins/vru/validation.py -> parents[2] is the repository root.
    return Path(__file__).resolve().parents[2] / "expectations"


def suite_path_for(stage: str, dataset: str) -> Path:
    """``expectations/<stage>.<source>.<entity>.json`` for dataset ``<source>.<entity>``."""
    return expectations_dir() / f"{stage}.{dataset}.json"


def load_suite(path: Path) -> dict[str, Any]:
    """Read a suite file and check that every expectation says how severe it is and what it means."""
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationSetupError(
            f"expectation suite {path} does not exist: add it under {expectations_dir()} "
            f"or set {EXPECTATIONS_DIR_ENV}"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValidationSetupError(f"expectation suite {path} is not valid JSON: {exc}") from exc

    if not isinstance(suite, dict) or not suite.get("name") or not suite.get("expectations"):
        raise ValidationSetupError(
            f"expectation suite {path} needs a 'name' and a non-empty 'expectations' list"
        )
    for index, expectation in enumerate(suite["expectations"]):
        meta = expectation.get("meta") or {}
        where = f"{path}, expectation {index} ({expectation.get('type')})"
        if meta.get("severity") not in SEVERITIES:
            raise ValidationSetupError(
                f"{where}: meta.severity must be one of {SEVERITIES}, got {meta.get('severity')!r}"
            )
        if not str(meta.get("meaning") or "").strip():
            raise ValidationSetupError(f"{where}: meta.meaning is missing (one plain-English sentence)")
    return suite


# --------------------------------------------------------------------------------------------
# Connection URLs
# --------------------------------------------------------------------------------------------


def sqlalchemy_url(warehouse_url: str) -> str:
    """The URL for GX/SQLAlchemy: a driverless postgres URL gets the psycopg 3 dialect."""
    for prefix in ("postgresql://", "postgres://"):
        if warehouse_url.startswith(prefix):
            return "postgresql+psycopg://" + warehouse_url[len(prefix) :]
    return warehouse_url


def libpq_url(warehouse_url: str) -> str:
    """The URL for psycopg: the SQLAlchemy driver suffix removed."""
    scheme, sep, rest = warehouse_url.partition("://")
    if sep and scheme.startswith("postgres"):
        return "postgresql://" + rest
    return warehouse_url


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate(
    stage: str,
    dataset: str,
    table: str,
    *,
    warehouse_url: str,
    docs_dir: Path,
    run_id: str | None = None,
    suite_path: Path | None = None,
    scope: Partitions | None = None,
) -> ValidationOutcome:
    """Validate ``table`` ('schema.table') with the suite for ``stage`` and ``dataset``.

    Every expectation result is stored in ``audit.validation_results`` (one transaction) and the
    Data Docs site in ``docs_dir`` is updated (open ``docs_dir/index.html``). Returns the outcome
    without raising when the data fails; raises :class:`ValidationSetupError` when the validation
    cannot run at all. ``scope``: the partitions whose rows the row-level expectations check (see
    the module docstring).
    """
    schema_name, dot, table_name = table.partition(".")
    if not dot or not schema_name or not table_name:
        raise ValidationSetupError(f"table must be 'schema.table', got {table!r}")

    path = suite_path or suite_path_for(stage, dataset)
    suite = load_suite(path)
    validation_id = str(uuid.uuid4())
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results, docs_index = _run_suite(
        suite,
        schema_name=schema_name,
        table_name=table_name,
        warehouse_url=warehouse_url,
        docs_dir=docs_dir,
        run_name=run_id or validation_id,
        scope=scope,
    )
    elapsed = time.perf_counter() - started
    if schema_name == RESTRICTED_SCHEMA:
        results = [_without_counts(r) for r in results]

    _store_results(
        results,
        warehouse_url=warehouse_url,
        validation_id=validation_id,
        run_id=run_id,
        stage=stage,
        dataset=dataset,
        suite_name=suite["name"],
    )

    critical = [_describe(r, table) for r in results if not r.success and r.severity == "critical"]
    warnings = [_describe(r, table) for r in results if not r.success and r.severity == "warning"]
    outcome = ValidationOutcome(
        validation_id=validation_id,
        stage=stage,
        dataset=dataset,
        success=all(r.success for r in results),
        critical_failures=critical,
        warnings=warnings,
        evaluated=len(results),
        docs_index=docs_index,
    )
    log.info(
        "validated %s with suite %s in %.1f s: %d expectations, %d critical failures, %d warnings (%s)",
        table,
        suite["name"],
        elapsed,
        len(results),
        len(critical),
        len(warnings),
        validation_id,
    )
    return outcome


def _run_suite(
    suite: Mapping[str, Any],
    *,
    schema_name: str,
    table_name: str,
    warehouse_url: str,
    docs_dir: Path,
    run_name: str,
    scope: Partitions | None = None,
) -> tuple[list[_ExpectationResult], Path | None]:
    with _quiet_gx():
        import great_expectations as gx
        from great_expectations.checkpoint.actions import UpdateDataDocsAction
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        docs = schema_name != RESTRICTED_SCHEMA  # no counts of restricted rows in the Data Docs
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            data_docs_sites={
                _DOCS_SITE: {
                    "class_name": "SiteBuilder",
                    # "How to" buttons point GX users at GX docs; the readers here are monitoring staff.
                    "show_how_to_buttons": False,
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir),
                    },
                    "site_index_builder": {
                        "class_name": "DefaultSiteIndexBuilder",
                        "show_cta_footer": False,
                        "validation_results_limit": DOCS_INDEX_LIMIT,
                    },
                }
            },
        )
        # Validation results are kept next to the site (counts only, see RESULT_FORMAT): the
        # index page lists the results found in this store, so an in-memory store would show
        # only the latest run of this process instead of the history.
        if docs:
            config.stores[config.validation_results_store_name] = {
                "class_name": "ValidationResultsStore",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir / RESULTS_SUBDIR),
                },
            }
        context = gx.get_context(
            mode="ephemeral",
            project_config=config,
            runtime_environment={_URL_VARIABLE: sqlalchemy_url(warehouse_url)},
        )

        try:
            datasource = context.data_sources.add_postgres(
                name=_DATASOURCE,
                connection_string="${" + _URL_VARIABLE + "}",
                # A query asset (the changed partitions) is first copied into a temporary table in
                # PostgreSQL. Without one, GX reads the query's column names by running the whole
                # query and fetching every row into this process (column_reflection_fallback: 1.5 GB
                # for a first night's 1.5M stops); the temporary table also runs the partition
                # lookups once rather than once per expectation (raw, 43 force-months: 3.8 s -> 1.9 s).
                create_temp_table=True,
                # Duplicate-key checks group ~1M keys: with PostgreSQL's default 4 MB work_mem
                # the hash spills to disk and takes twice as long (measured 2.6 s vs 1.3 s).
                kwargs={"connect_args": {"options": f"-c work_mem={_WORK_MEM}"}},  # type: ignore[call-arg]  # in the runtime model, missing from GX's stub
            )
            asset = datasource.add_table_asset(
                name=f"{schema_name}.{table_name}", table_name=table_name, schema_name=schema_name
            )
        except Exception as exc:  # GX wraps connection and missing-table errors in several types
            raise ValidationSetupError(
                f"cannot validate {schema_name}.{table_name}: {exc.__class__.__name__}: {exc}. "
                "Check that the warehouse is running and the table exists (has dbt/the loader run?)."
            ) from exc
        batch_definition = asset.add_batch_definition_whole_table("whole table")

        gx_suite_dict = _gx_suite_dict(suite, schema_name)
        if scope is None:
            parts = [(suite["name"], batch_definition, gx_suite_dict["expectations"])]
        else:
            changed = datasource.add_query_asset(
                name=f"{schema_name}.{table_name} (changed partitions)",
                query=scoped_query(f"{schema_name}.{table_name}", scope),
            ).add_batch_definition_whole_table("changed partitions")
            table_level = [e for e in gx_suite_dict["expectations"] if _is_table_level(e["type"])]
            row_level = [e for e in gx_suite_dict["expectations"] if not _is_table_level(e["type"])]
            parts = [(suite["name"], changed, row_level),
                     (f"{suite['name']} (whole table)", batch_definition, table_level)]
        definitions = []
        for name, data, expectations in parts:
            if not expectations:
                continue
            gx_suite = context.suites.add(
                gx.ExpectationSuite(**{**gx_suite_dict, "name": name, "expectations": expectations})
            )
            definitions.append(
                context.validation_definitions.add(gx.ValidationDefinition(name=name, data=data, suite=gx_suite))
            )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=suite["name"],
                validation_definitions=definitions,
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[_DOCS_SITE])] if docs else [],
                result_format=RESULT_FORMAT,
            )
        )
        checkpoint_result = checkpoint.run(run_id=RunIdentifier(run_name=run_name))

    results: list[_ExpectationResult] = []
    for validation_result in checkpoint_result.run_results.values():
        for result in validation_result.results:
            results.append(_convert(result.to_json_dict()))
    if len(results) != len(suite["expectations"]):
        raise ValidationSetupError(
            f"suite {suite['name']}: {len(suite['expectations'])} expectations but {len(results)} results"
        )

    index = docs_dir / "index.html"
    return results, index if index.exists() else None


BATCH_SCHEMA = "{batch_schema}"


# Above this many changed partitions one scan of the table is cheaper than looking each one up
# (measured at national volume: a raw force-month costs 10-35 ms through the BRIN index, a
# whole-table scan of 1.5M rows 1.4-2 s; with 1,548, a first night, the lookups took 275 s
# against 59 s). The dbt twin is macros/get_where_subquery.sql (tests/test_registry.py).
LOOKUP_AT_MOST = 100


def scoped_query(table: str, scope: Partitions) -> str:
    """The rows of `table` in the partitions `scope.query` returns.

    Up to LOOKUP_AT_MOST partitions, each is looked up by its key (a nested loop: the planner
    cannot tell how few changed, and a semi-join would read the whole table; `offset 0` keeps it
    from flattening the lateral subquery into one); above, the whole table is read once. Which
    branch runs is decided when the query runs (a one-time filter). Table and scope are code,
    never input.
    """
    match = " and ".join(f"t.{column} = changed.{column}" for column in scope.key)
    return (f"select * from (with changed as materialized ({scope.query}) "
            f"select * from {table} where (select count(*) from changed) > {LOOKUP_AT_MOST} "
            f"union all "
            f"select t.* from changed cross join lateral (select * from {table} as t where {match} offset 0) as t "
            f"where (select count(*) from changed) <= {LOOKUP_AT_MOST}) as scoped")


def _is_table_level(expectation_type: str) -> bool:
    """A check of the table as a whole (its columns, its row count): never scoped to partitions."""
    return expectation_type.startswith("expect_table_")


def _gx_suite_dict(suite: Mapping[str, Any], schema_name: str = "") -> dict[str, Any]:
    """The suite as GX takes it, with the plain-English meaning as each expectation's description.

    Data Docs show the description instead of GX's generated wording, so the pages read as the
    meaning sentences the monitoring staff reviewed. GX 1.24 also has a native severity field with
    the same two values: it is set from meta.severity, which stays the one source of truth.

    A query that reads another table of the same stage names its schema `{batch_schema}`: the
    schema of the table under validation (the marts are checked in their build schema before
    they are published, write-audit-publish), so a check never compares the build with the
    published previous night.
    """
    expectations = []
    for expectation in suite["expectations"]:
        meta = dict(expectation["meta"])
        kwargs = dict(expectation["kwargs"])
        query = kwargs.get("unexpected_rows_query")
        if isinstance(query, str) and BATCH_SCHEMA in query:
            kwargs["unexpected_rows_query"] = query.replace(BATCH_SCHEMA, schema_name)
        expectations.append(
            {
                "type": expectation["type"],
                "kwargs": kwargs,
                "meta": meta,
                "description": expectation.get("description") or meta["meaning"],
                "severity": meta["severity"],
            }
        )
    return {"name": suite["name"], "expectations": expectations, "meta": dict(suite.get("meta") or {})}


def _convert(result: Mapping[str, Any]) -> _ExpectationResult:
    config = result.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    meta = config.get("meta") or {}
    column = kwargs.get("column")
    if column is None and kwargs.get("column_list"):
        column = ", ".join(kwargs["column_list"])
    exception = result.get("exception_info") or {}
    error = None
    if exception.get("raised_exception"):
        message = str(exception.get("exception_message") or "unknown error")
        error = message.splitlines()[0][:300]
        log.warning("expectation %s could not be evaluated: %s", config.get("type"), message)
    raw_result = result.get("result") or {}
    observed = {key: _jsonable(raw_result[key]) for key in OBSERVED_KEYS if key in raw_result}
    return _ExpectationResult(
        expectation=str(config.get("type")),
        column_name=column,
        severity=str(meta.get("severity", "critical")),
        check=str(meta.get("check") or config.get("type")),
        meaning=str(meta.get("meaning") or ""),
        success=bool(result.get("success")) and error is None,
        observed=observed,
        error=error,
    )


def _without_counts(result: _ExpectationResult) -> _ExpectationResult:
    """The result with no row count of a restricted table (see RESTRICTED_SCHEMA): a list of
    column names is kept, every number dropped."""
    kept = {key: value for key, value in result.observed.items() if key == "observed_value" and isinstance(value, list)}
    return replace(result, observed=kept)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _describe(result: _ExpectationResult, table: str) -> str:
    """A short sentence naming the check and how badly it failed."""
    observed = result.observed
    if result.error is not None:
        detail = f"could not be checked ({result.error})"
    elif observed.get("unexpected_count") is not None:
        detail = f"{observed['unexpected_count']} of {observed.get('element_count', '?')} rows fail"
    elif result.expectation == "unexpected_rows_expectation" and "observed_value" in observed:
        detail = f"{observed.get('observed_value')} offending rows"
    elif result.expectation.startswith("expect_table_columns"):
        detail = f"columns found: {', '.join(map(str, observed.get('observed_value') or []))}"
    elif "observed_value" in observed:
        detail = f"observed {observed['observed_value']}"
    elif not observed:
        detail = "failed (how many rows: not counted outside the restricted schema)"
    else:
        detail = "failed"
    column = f" [{result.column_name}]" if result.column_name else ""
    return f"{result.check}{column}: {detail} in {table}"


@contextmanager
def _quiet_gx() -> Iterator[None]:
    """Keep task logs readable: GX logs a lot at INFO and its progress bars write to stderr."""
    previous = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


# --------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------

_INSERT = """
insert into audit.validation_results
    (validation_id, run_id, stage, dataset, suite, expectation, column_name, severity, success,
     observed, meaning)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def _store_results(
    results: Sequence[_ExpectationResult],
    *,
    warehouse_url: str,
    validation_id: str,
    run_id: str | None,
    stage: str,
    dataset: str,
    suite_name: str,
) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    rows = [
        (
            validation_id,
            run_id,
            stage,
            dataset,
            suite_name,
            r.expectation,
            r.column_name,
            r.severity,
            r.success,
            Jsonb(r.observed) if r.observed else None,
            r.meaning,
        )
        for r in results
    ]
    try:
        with psycopg.connect(libpq_url(warehouse_url)) as conn:  # commits on clean exit
            with conn.cursor() as cur:
                cur.executemany(_INSERT, rows)
    except psycopg.Error as exc:
        raise ValidationSetupError(
            f"validation {validation_id} ran; storing its results in audit.validation_results failed: {exc}"
        ) from exc
