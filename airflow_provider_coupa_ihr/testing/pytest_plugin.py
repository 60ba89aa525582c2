"""Pytest fixtures for the Coupa emulator, registered through the ``pytest11`` entry point.

pytest loads this module in every project that has the provider installed, so it imports nothing heavy at
module level: aiohttp and Airflow are imported only when a test asks for a fixture.

- ``coupa_emulator``: a fresh :class:`~airflow_provider_coupa_ihr.testing.CoupaEmulator` on a free loopback
  port, with the integration ``coupa_integration_code`` registered, stopped after the test.
- ``coupa_connection``: an Airflow connection (id ``coupa_default``) that points at that emulator, exported as
  ``AIRFLOW_CONN_COUPA_DEFAULT`` for the test's duration, so hooks, operators and ``dag.test()`` find it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator

#: The integration code the fixture registers, so records can reference an integration straight away.
DEFAULT_INTEGRATION_CODE = "AIRFLOW-TEST"


@pytest.fixture
def coupa_integration_code() -> str:
    """Override to register a different integration code in ``coupa_emulator``."""
    return DEFAULT_INTEGRATION_CODE


@pytest.fixture
def coupa_emulator_options() -> dict[str, Any]:
    """Override to pass options to the emulator (e.g. ``{"rate_limit": None}`` or ``{"seed": 7}``)."""
    return {}


@pytest.fixture
def coupa_emulator(coupa_emulator_options: dict[str, Any], coupa_integration_code: str) -> Iterator[CoupaEmulator]:
    from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator

    with CoupaEmulator(**coupa_emulator_options) as emulator:
        if coupa_integration_code:
            emulator.add_integration(coupa_integration_code)
        yield emulator


def connection_json(emulator: CoupaEmulator, **extra: Any) -> str:
    """The ``AIRFLOW_CONN_...`` value for a connection to ``emulator`` (``extra`` adds connection extras)."""
    return emulator.airflow_connection(**extra)


@pytest.fixture
def coupa_connection(coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.providers.common.compat.sdk import Connection

    value = connection_json(coupa_emulator)
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", value)
    data = json.loads(value)
    return Connection(
        conn_id="coupa_default",
        conn_type=data["conn_type"],
        host=data["host"],
        login=data["login"],
        password=data["password"],
        extra=json.dumps(data["extra"]),
    )
