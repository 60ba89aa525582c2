"""Notifiers: log a task's or a DAG run's outcome to Coupa from Airflow's callbacks (``CoupaNotifier``)."""
