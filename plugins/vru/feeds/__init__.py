"""Feed clients: one module per source. They know HTTP and the source's format, not Airflow."""
