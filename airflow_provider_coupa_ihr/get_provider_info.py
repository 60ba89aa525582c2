"""What Airflow learns about this provider without importing it (the ``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any

from airflow_provider_coupa_ihr import __version__
from airflow_provider_coupa_ihr.hooks.connection_fields import CONN_TYPE, UI_BEHAVIOUR, conn_fields_info
from airflow_provider_coupa_ihr.plugins.config import listener_config

PACKAGE_NAME = "airflow-provider-coupa-ihr"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Coupa Integration History Records",
        "description": "Log integration steps to Coupa's Integration History Record API, raise alerts, and wait "
        "until Coupa users resolve what went wrong.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Coupa",
                "external-doc-url": "https://compass.coupa.com/en-us/products/product-documentation/"
                "integration-technical-documentation/the-coupa-core-api",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "Coupa",
                "python-modules": [
                    "airflow_provider_coupa_ihr.operators.records",
                    "airflow_provider_coupa_ihr.operators.bulk",
                    "airflow_provider_coupa_ihr.operators.runs",
                    "airflow_provider_coupa_ihr.operators.lifecycle",
                ],
            }
        ],
        "sensors": [{"integration-name": "Coupa", "python-modules": ["airflow_provider_coupa_ihr.sensors.coupa"]}],
        "triggers": [{"integration-name": "Coupa", "python-modules": ["airflow_provider_coupa_ihr.triggers.coupa"]}],
        "extra-links": ["airflow_provider_coupa_ihr.operators.base.CoupaRecordLink"],
        "notifications": ["airflow_provider_coupa_ihr.notifications.coupa.CoupaNotifier"],
        # The listener plugin is registered by the ``airflow.plugins`` entry point only: Airflow 3 workers load
        # no provider-info plugins by default, and naming it in both places makes Airflow 3 report the second
        # registration as a plugin import error whenever [core] lazy_discover_providers is off.
        "config": listener_config(),
        "hooks": [{"integration-name": "Coupa", "python-modules": ["airflow_provider_coupa_ihr.hooks.coupa"]}],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_coupa_ihr.hooks.coupa.CoupaHook",
                "hook-name": "Coupa",
                "connection-type": CONN_TYPE,
                "conn-fields": conn_fields_info(),
                "ui-field-behaviour": UI_BEHAVIOUR,
            }
        ],
    }
