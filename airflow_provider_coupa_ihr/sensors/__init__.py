"""Airflow sensors: wait until Coupa users resolve integration history records."""
