"""What Airflow learns about this provider without importing it (the ``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any

from airflow_provider_coupa_ihr import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-coupa-ihr",
        "name": "Coupa Integration History Records",
        "description": "Log integration steps to Coupa's Integration History Record API and wait for their "
        "resolution.",
        "versions": [__version__],
    }
