"""Airflow hooks: the ``coupa`` connection type."""
