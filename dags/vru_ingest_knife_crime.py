"""The knife_crime feed's nightly ingest: one edition feed, built by the factory in `vru.ingest_dags`
from its declaration in `vru.feeds.knife_crime` (the DAG's docs in the Airflow UI come from there)."""

from vru.feeds import knife_crime
from vru.ingest_dags import edition_ingest_dag

edition_ingest_dag(knife_crime.FEED)
