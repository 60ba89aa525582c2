"""The ``[coupa]`` configuration section: the listener's options, their defaults and their documentation.

Plain data with no Airflow import, because ``get_provider_info()`` (read by every Airflow component at start)
publishes it, and :class:`~.listener.ListenerSettings` reads the same defaults.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_coupa_ihr import __version__
from airflow_provider_coupa_ihr.client.records import DEFAULT_CONTACT_ALERT_TYPE

__all__ = ["DEFAULTS", "SECTION", "listener_config"]

SECTION = "coupa"

#: option -> (type, default as Airflow config text, description, example)
_OPTIONS: dict[str, tuple[str, str, str, str | None]] = {
    "listener_enabled": (
        "boolean",
        "False",
        "Switch the Coupa listener on: it then logs the success and failure of opted-in tasks to Coupa "
        "(opt in with the DAG tag listener_dag_tag, listener_dag_ids, or the param coupa_log).",
        "True",
    ),
    "listener_conn_id": ("string", "coupa_default", "The Coupa connection the listener writes through.", None),
    "listener_dag_tag": ("string", "coupa-log", "DAGs with this tag have their tasks logged.", "coupa-log"),
    "listener_dag_ids": (
        "string",
        "",
        "Comma-separated DAG ids whose tasks are logged whatever their tags.",
        "invoice_export,supplier_sync",
    ),
    "listener_timeout": (
        "float",
        "5",
        "Seconds the listener may add to a task per event, everything included (connection, token, request, "
        "retries). When Coupa is slower or down, the record is given up with a warning; the task is unaffected.",
        "2.5",
    ),
    "listener_document_type": (
        "string",
        "",
        "Document type of the records, for tasks without a coupa_document_type param.",
        "LookupValue",
    ),
    "listener_document_id": (
        "string",
        "",
        "Document id of the records, for tasks without a coupa_document_id param. A task naming no document "
        "either way is not logged (a warning says so).",
        "1",
    ),
    "listener_integration": (
        "string",
        "",
        "Integration code the records belong to, for tasks without a coupa_integration param.",
        "AIRFLOW",
    ),
    "listener_contact_alert_type": (
        "string",
        DEFAULT_CONTACT_ALERT_TYPE,
        "Whose contacts Coupa alerts for a failed task: Technical, Functional or Both.",
        "Both",
    ),
    "listener_log_success": (
        "boolean",
        "True",
        "Log successes too (False: only failures, as alerts).",
        "False",
    ),
}

#: option -> default, as Airflow config text.
DEFAULTS: dict[str, str] = {name: spec[1] for name, spec in _OPTIONS.items()}


def listener_config() -> dict[str, Any]:
    """The provider info's ``config`` entry (Airflow's provider-config format)."""
    return {
        SECTION: {
            "description": "Options of the Coupa listener, which logs task outcomes of opted-in DAGs to Coupa's "
            "Integration History Records without extra tasks.",
            "options": {
                name: {
                    "description": description,
                    "version_added": __version__,
                    "type": kind,
                    "example": example,
                    "default": default,
                }
                for name, (kind, default, description, example) in _OPTIONS.items()
            },
        }
    }
