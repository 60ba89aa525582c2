"""Airflow plugins of the provider: the Coupa listener (``plugins.coupa.CoupaListenerPlugin``).

Registered through the ``airflow.plugins`` entry point, which every Airflow component loads (Airflow 3 workers
load only entry-point and plugins-folder plugins by default, not those named in provider info alone). Loading
it is cheap and harmless: the listener does nothing until ``[coupa] listener_enabled`` is set.
"""
