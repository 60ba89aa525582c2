"""``CoupaListenerPlugin``: the plugin that registers :data:`~.listener.coupa_listener` with Airflow."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

from airflow_provider_coupa_ihr.plugins.listener import coupa_listener

__all__ = ["PLUGIN_NAME", "CoupaListenerPlugin"]

PLUGIN_NAME = "coupa_ihr_listener"


class CoupaListenerPlugin(AirflowPlugin):
    """Logs opted-in tasks' outcomes to Coupa; inert unless ``[coupa] listener_enabled = True``."""

    name = PLUGIN_NAME
    listeners: list[Any] = [coupa_listener]
