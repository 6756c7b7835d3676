"""Airflow assets of the warehouse, declared once and imported by the DAGs that produce or use them.

URIs follow Airflow's postgres scheme (host, port, database, schema, table all named). Host, port
and database come from VRU_WAREHOUSE_URL; credentials never enter a URI.
"""

from __future__ import annotations

from airflow.sdk import Asset

from vru import registry
from vru.config import pg_params, settings
from vru.feed import Feed, Mart

_cfg = settings()
_pg = pg_params(_cfg.warehouse_url or "postgresql://localhost:5432/warehouse")
_BASE = f"postgres://{_pg.host if not _pg.host.startswith('/') else 'localhost'}:{_pg.port}/{_pg.dbname}"


def table_asset(schema: str, table: str) -> Asset:
    return Asset(name=f"{schema}.{table}", uri=f"{_BASE}/{schema}/{table}", group="warehouse")


def raw_asset(feed: Feed) -> Asset:
    """The asset a feed's ingest emits when it changed raw (the transform is scheduled on these)."""
    schema, table = feed.raw_table.split(".", 1)
    return table_asset(schema, table)


def mart_asset(mart: Mart) -> Asset:
    """A published mart: publish_marts emits its event once the checked build is visible."""
    return table_asset("marts", mart.name)


RAW = {f.name: raw_asset(f) for f in registry.FEEDS}
# "Raw settled": every load recorded in audit.loads up to the event's snapshot has committed and
# no feed is loading. Emitted by the settle DAG; the transform's one schedule.
SETTLED = table_asset("audit", "loads")
MARTS = [mart_asset(m) for m in registry.marts()]
