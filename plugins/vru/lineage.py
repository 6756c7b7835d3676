"""OpenLineage: what each task reads and writes, and where the events go.

Airflow's OpenLineage provider emits a START and a COMPLETE (or FAIL) event for every task. The dbt
tasks (Cosmos) name their inputs and outputs from dbt's own artifacts; the ingest and validation
tasks, plain Python, declare theirs here with `@declares(inputs=..., outputs=...)`, and
`vru.lineage_extractor` (registered with Airflow as an extractor) hands the declaration to the
provider. A warehouse table is declared as its Airflow asset (`vru.assets`), which the Postgres
provider translates to OpenLineage's naming: namespace `postgres://<host>:<port>`, name
`<database>.<schema>.<table>`, as the dbt integration names the same tables, so one table is one
node whichever tool wrote it. A source outside the warehouse (a publisher's URL) is a `Source`.

Events go to one JSON file each under `VRU_LINEAGE_DIR` (default `VRU_HOME/lineage`), or to an
OpenLineage HTTP endpoint (Marquez, DataHub) when `VRU_LINEAGE_URL` is set;
`AIRFLOW__OPENLINEAGE__TRANSPORT` (any transport the OpenLineage client knows) overrides both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from vru.config import Settings
from vru.feed import Check

if TYPE_CHECKING:
    from airflow.sdk import Asset

# Airflow is imported only where an asset is made (`tables`): the local-run harness reads the
# settings below without importing Airflow.

EXTRACTOR = "vru.lineage_extractor.DeclaredLineageExtractor"
JOB_NAMESPACE = "vru"
FILE_PREFIX = "openlineage"  # the file transport writes <dir>/openlineage-<timestamp>.json
_ATTRIBUTE = "vru_lineage"
# Settings with which the operator chose a transport of their own (Airflow's and the client's)
_OWN_TRANSPORT = ("AIRFLOW__OPENLINEAGE__TRANSPORT", "AIRFLOW__OPENLINEAGE__CONFIG_PATH",
                  "AIRFLOW__OPENLINEAGE__CONFIG_CONN_ID", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")


@dataclass(frozen=True)
class Source:
    """A dataset outside the warehouse, read over HTTP: the publisher's host and the path read."""

    namespace: str  # scheme://host[:port]
    name: str  # the path


def source(url: str, path: str = "") -> Source:
    """The OpenLineage name of a publisher's URL (plus `path` below it). Credentials, query and
    fragment are left out: a URL's user and password must never reach a lineage event."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return Source(namespace=f"{parts.scheme}://{netloc}", name=(parts.path.rstrip("/") + path) or "/")


@dataclass(frozen=True)
class Lineage:
    inputs: tuple[Asset | Source, ...]
    outputs: tuple[Asset | Source, ...]


F = TypeVar("F", bound=Callable[..., Any])


def declares(*, inputs: Iterable[Asset | Source] = (), outputs: Iterable[Asset | Source] = ()) -> Callable[[F], F]:
    """Declare what a TaskFlow task reads and writes; put it under `@task`:

        @task
        @lineage.declares(inputs=[source(url)], outputs=[raw_asset(FEED)])
        def check_and_load(): ...

    Unlike `outlets`, a declared output emits no Airflow asset event: the load task writes raw,
    but only `publish_raw` tells the transform DAG (and only when something was loaded).
    """
    declared = Lineage(tuple(inputs), tuple(outputs))

    def mark(function: F) -> F:
        setattr(function, _ATTRIBUTE, declared)
        return function

    return mark


def declared(function: object) -> Lineage | None:
    """What `function` was declared to read and write, if it was."""
    found = getattr(function, _ATTRIBUTE, None)
    return found if isinstance(found, Lineage) else None


def tables(checks: Iterable[Check]) -> list[Asset]:
    """The tables a gate validates, as warehouse assets (in order, each once)."""
    from vru.assets import table_asset

    names = dict.fromkeys(c.table for c in checks)
    return [table_asset(*name.split(".", 1)) for name in names]


def transport(cfg: Settings) -> dict[str, Any]:
    """The OpenLineage client's transport: HTTP to VRU_LINEAGE_URL, else a file per event."""
    if cfg.lineage_url:
        return {"type": "http", "url": cfg.lineage_url, "endpoint": "api/v1/lineage", "timeout": 5}
    # append=False: one file per event. Tasks run in parallel processes; lines appended to one
    # file by several writers could interleave (a dbt event is several kB).
    return {"type": "file", "log_file_path": str(cfg.lineage_dir / FILE_PREFIX), "append": False}


def airflow_settings(cfg: Settings, environ: Mapping[str, str], *, create: bool = True) -> dict[str, str]:
    """The AIRFLOW__OPENLINEAGE__* settings of every Airflow process, given its environment.

    Our extractor is added to any the operator configured; the transport is ours only when the
    operator chose none. Creates the lineage folder when events go there (unless `create` is
    False): the file transport does not.
    """
    extractors = [e for e in environ.get("AIRFLOW__OPENLINEAGE__EXTRACTORS", "").split(";") if e.strip()]
    out = {
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": ";".join([*extractors, *([] if EXTRACTOR in extractors else [EXTRACTOR])]),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": environ.get("AIRFLOW__OPENLINEAGE__NAMESPACE") or JOB_NAMESPACE,
    }
    own = any(environ.get(name) for name in _OWN_TRANSPORT) or any(
        name.startswith("OPENLINEAGE__TRANSPORT") and value for name, value in environ.items())
    if not own:
        chosen = transport(cfg)
        if chosen["type"] == "file" and create:
            cfg.lineage_dir.mkdir(parents=True, exist_ok=True)
        out["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(chosen)
    return out


def read_events(folder: Path) -> list[dict[str, Any]]:
    """The events the file transport wrote to `folder`, in the order they happened."""
    events = [json.loads(path.read_text()) for path in folder.glob(f"{FILE_PREFIX}-*.json")]
    return sorted(events, key=lambda e: str(e.get("eventTime", "")))


def dataset_name(dataset: Mapping[str, Any]) -> str:
    """One string for a dataset: its namespace and name, joined by one slash."""
    name = str(dataset["name"])
    return f"{dataset['namespace']}{'' if name.startswith('/') else '/'}{name}"


def edges(events: Sequence[Mapping[str, Any]], event_type: str = "COMPLETE") -> set[tuple[str, str, str]]:
    """(input, job, output) of every job's events of `event_type`; a job with only inputs or only
    outputs gives ("", job, output) or (input, job, ""). A dbt task lists the relation it built
    among its inputs too (its tests read it): that loop onto itself is left out."""
    found: set[tuple[str, str, str]] = set()
    for event in events:
        if event.get("eventType") != event_type:
            continue
        job = str(event["job"]["name"])
        inputs = [dataset_name(d) for d in event.get("inputs") or []] or [""]
        outputs = [dataset_name(d) for d in event.get("outputs") or []] or [""]
        found.update((i, job, o) for i in inputs for o in outputs if (i or o) and i != o)
    return found
