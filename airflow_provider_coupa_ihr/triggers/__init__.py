"""Airflow triggers: the deferred (triggerer-side) half of the Coupa sensors."""
