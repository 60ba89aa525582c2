"""A faithful local Coupa for tests, demos and users' own DAG tests.

Three ways to start it:

- in-process: ``with CoupaEmulator() as coupa:`` (a free loopback port; ``coupa.url``, ``coupa.credentials``);
- a command: ``coupa-emulator --port 8765`` (or ``python -m airflow_provider_coupa_ihr.testing``);
- pytest: the ``coupa_emulator`` fixture (and ``coupa_connection``, an Airflow connection pointing at it),
  registered automatically when this package is installed.

Inside: :mod:`.emulator` (the Python API), :mod:`.coupa_api` (Coupa's HTTP routes), :mod:`.admin_api`
(``/_emulator/...``, every endpoint listed there), :mod:`.state`, :mod:`.querying`, :mod:`.rendering`,
:mod:`.auth`, :mod:`.faults`; :mod:`.cli` prints ready-to-paste Airflow connection lines.

It needs the ``emulator`` extra (``pip install "airflow-provider-coupa-ihr[emulator]"``) for its HTTP server.
Names are imported lazily, so ``import airflow_provider_coupa_ihr.testing`` costs nothing until used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.testing.auth import DEFAULT_CLIENT, READ_SCOPE, WRITE_SCOPE, OAuthClient
    from airflow_provider_coupa_ihr.testing.coupa_api import RequestRecord
    from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator
    from airflow_provider_coupa_ihr.testing.faults import Fault, FaultPlan

__all__ = [
    "DEFAULT_CLIENT",
    "READ_SCOPE",
    "WRITE_SCOPE",
    "CoupaEmulator",
    "Fault",
    "FaultPlan",
    "OAuthClient",
    "RequestRecord",
]

_WHERE = {
    "CoupaEmulator": "emulator",
    "DEFAULT_CLIENT": "auth",
    "RequestRecord": "coupa_api",
    "Fault": "faults",
    "FaultPlan": "faults",
    "OAuthClient": "auth",
    "READ_SCOPE": "auth",
    "WRITE_SCOPE": "auth",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
