"""The ons_pfa feed's nightly ingest: one edition feed, built by the factory in `vru.ingest_dags`
from its declaration in `vru.feeds.ons_pfa` (the DAG's docs in the Airflow UI come from there)."""

from vru.feeds import ons_pfa
from vru.ingest_dags import edition_ingest_dag

edition_ingest_dag(ons_pfa.FEED)
