"""An Airflow-free client for Coupa's integration APIs: the front door.

    from airflow_provider_coupa_ihr.client import ClientConfig, CoupaClient, CoupaError

    with CoupaClient(ClientConfig("https://acme.coupahost.com", client_id="...", client_secret="...")) as coupa:
        coupa.create_record(document_type="InvoiceHeader", document_id=42, contact_alert_type="Functional")

Pure pieces (``records``, ``query``, ``paging``, ``retry``, ``auth``, ``errors``, ...) hold every decision;
``sync`` and ``aio`` are thin I/O loops around them, so the sync and async clients cannot drift apart.

The names below load on first use (:pep:`562`): DAG files import operators, which import from here, every few
seconds, and importing this package must not load requests or httpx.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
    from airflow_provider_coupa_ihr.client.config import ClientConfig
    from airflow_provider_coupa_ihr.client.errors import (
        CoupaAuthError,
        CoupaBadRequestError,
        CoupaConfigError,
        CoupaError,
        CoupaForbiddenError,
        CoupaNotFoundError,
        CoupaRateLimitError,
        CoupaServerError,
        CoupaTransportError,
        CoupaValidationError,
    )
    from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget, WaitState
    from airflow_provider_coupa_ihr.client.retry import RetryPolicy
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

#: Each public name, and the module that defines it.
_HOMES: dict[str, str] = {
    "AsyncCoupaClient": "aio",
    "ClientConfig": "config",
    "CoupaAuthError": "errors",
    "CoupaBadRequestError": "errors",
    "CoupaClient": "sync",
    "CoupaConfigError": "errors",
    "CoupaError": "errors",
    "CoupaForbiddenError": "errors",
    "CoupaNotFoundError": "errors",
    "CoupaRateLimitError": "errors",
    "CoupaServerError": "errors",
    "CoupaTransportError": "errors",
    "CoupaValidationError": "errors",
    "ResolutionTarget": "resolution",
    "RetryPolicy": "retry",
    "WaitState": "resolution",
}

__all__ = [
    "AsyncCoupaClient",
    "ClientConfig",
    "CoupaAuthError",
    "CoupaBadRequestError",
    "CoupaClient",
    "CoupaConfigError",
    "CoupaError",
    "CoupaForbiddenError",
    "CoupaNotFoundError",
    "CoupaRateLimitError",
    "CoupaServerError",
    "CoupaTransportError",
    "CoupaValidationError",
    "ResolutionTarget",
    "RetryPolicy",
    "WaitState",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once loaded, a plain attribute: no second lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
