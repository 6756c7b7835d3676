"""Airflow assets of the warehouse, declared once and imported by the DAGs that produce or use them.

URIs follow Airflow's postgres scheme (host, port, database, schema, table all named). Host, port
and database come from VRU_WAREHOUSE_URL; credentials never enter a URI.
"""

from __future__ import annotations

from airflow.sdk import Asset

from vru.config import pg_params, settings

_cfg = settings()
_pg = pg_params(_cfg.warehouse_url or "postgresql://localhost:5432/warehouse")
_BASE = f"postgres://{_pg.host if not _pg.host.startswith('/') else 'localhost'}:{_pg.port}/{_pg.dbname}"


def table_asset(schema: str, table: str) -> Asset:
    return Asset(name=f"{schema}.{table}", uri=f"{_BASE}/{schema}/{table}", group="warehouse")


RAW_STOP_SEARCHES = table_asset("raw", "stop_searches")
MART_STOP_SEARCH_MONTHLY = table_asset("marts", "stop_search_monthly")
RAW_KNIFE_OFFENCES = table_asset("raw", "knife_offences")
MART_KNIFE_CRIME_QUARTERLY = table_asset("marts", "knife_crime_quarterly")
RAW_AE_ATTENDANCES = table_asset("restricted", "ae_attendances")
MART_AE_ASSAULT_MONTHLY = table_asset("marts", "ae_assault_monthly")
RAW_SHARP_OBJECT_ADMISSIONS = table_asset("raw", "sharp_object_admissions")
MART_SHARP_OBJECT_ADMISSIONS_YEARLY = table_asset("marts", "sharp_object_admissions_yearly")
MART_VRU_OUTCOMES_QUARTERLY = table_asset("marts", "vru_outcomes_quarterly")
MART_VRU_PROGRAMME_COMPARISON = table_asset("marts", "vru_programme_comparison")
