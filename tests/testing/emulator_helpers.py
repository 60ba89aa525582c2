"""Shared helpers for the emulator's own tests.

Every HTTP test talks to a real emulator over a loopback socket with ``requests``. The ``coupa_emulator``,
``coupa_connection`` and ``coupa_emulator_options`` fixtures come from the package's pytest plugin (pytest11
entry point); this directory only narrows the options: the rate limit is off unless a test module asks for it,
so tests that make more than 20 calls in a row cannot be throttled by accident. The rate-limit tests override
``coupa_emulator_options`` to get Coupa's default bucket back.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests

from airflow_provider_coupa_ihr.testing import CoupaEmulator
from airflow_provider_coupa_ihr.testing.auth import OAuthClient

IHR = "/api/integration_history_records"
RUNS = "/api/integration_runs"
ERRORS = "/api/integration_errors"
INTEGRATIONS = "/api/integrations"
READ = "core.integration.read"
WRITE = "core.integration.write"
JSON_ACCEPT = {"Accept": "application/json"}
#: Seconds any single test request may take before the test fails rather than hangs.
TIMEOUT = 10.0
#: The integration code the plugin's ``coupa_emulator`` fixture registers.
CODE = "AIRFLOW-TEST"


class Api(requests.Session):
    """A ``requests.Session`` bound to one emulator: paths starting with ``/`` are joined to its URL and every
    call gets a timeout, so a broken emulator fails a test instead of hanging it."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(method, url, *args, **kwargs)


def token_response(
    emulator: CoupaEmulator,
    *,
    scope: str | None = None,
    client: OAuthClient | None = None,
    path: str = "/oauth2/token",
    basic: bool = False,
    **form: str,
) -> requests.Response:
    """``POST /oauth2/token`` with the client-credentials grant (credentials in the form, or HTTP Basic)."""
    client = client or emulator.credentials
    data: dict[str, str] = {"grant_type": "client_credentials"}
    headers: dict[str, str] = {}
    if basic:
        raw = f"{client.client_id}:{client.client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    else:
        data.update(client_id=client.client_id, client_secret=client.client_secret)
    if scope is not None:
        data["scope"] = scope
    data.update(form)
    return requests.post(emulator.url + path, data=data, headers=headers, timeout=TIMEOUT)


def get_token(emulator: CoupaEmulator, *, scope: str | None = None, client: OAuthClient | None = None) -> str:
    response = token_response(emulator, scope=scope, client=client)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def session(
    emulator: CoupaEmulator,
    *,
    scope: str | None = None,
    client: OAuthClient | None = None,
    accept_json: bool = True,
    token: str | None = None,
) -> Api:
    """An authenticated session for ``emulator``: a fresh token (or ``token``), and ``Accept: application/json``
    unless ``accept_json`` is False (then requests' own ``Accept: */*``, which Coupa answers in XML)."""
    api = Api(emulator.url)
    api.headers["Authorization"] = "Bearer " + (token or get_token(emulator, scope=scope, client=client))
    if accept_json:
        api.headers.update(JSON_ACCEPT)
    return api


def ihr(**overrides: Any) -> dict[str, Any]:
    """A valid IHR body (wire keys) referring to the fixture's integration; ``overrides`` win."""
    body: dict[str, Any] = {
        "contact-alert-type": "Functional",
        "document-type": "InvoiceHeader",
        "document-id": 1001,
        "external-id": "ERP-1001",
        "status": "Success",
        "integration": {"code": CODE},
    }
    body.update(overrides)
    return body


def errors_of(response: requests.Response, resource: str = "integration_history_record") -> list[str]:
    """The messages of a Coupa JSON validation error, checking its shape on the way."""
    body = response.json()
    assert set(body) == {"errors"}, body
    assert isinstance(body["errors"][resource], list), body
    return list(body["errors"][resource])


def parse_xml(response: requests.Response) -> ET.Element:
    """The XML document of an emulator answer (checking it is XML). Our own loopback server, hence no defusedxml."""
    assert response.headers["Content-Type"].startswith("application/xml"), response.headers
    assert response.content.startswith(b"<?xml"), response.content[:100]
    return ET.fromstring(response.content)  # noqa: S314


def all_keys(value: Any) -> Iterator[str]:
    """Every mapping key in a JSON value, however deeply nested."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def seed_records(emulator: CoupaEmulator, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store records straight into the emulator's state (no HTTP), as if another integration had written them."""
    return [emulator.state.create(emulator.state.records, body, user=None) for body in bodies]


@pytest.fixture
def coupa_emulator_options() -> dict[str, Any]:
    """Rate limit off for this directory (see the module docstring); modules override it when they need to."""
    return {"rate_limit": None}


@pytest.fixture
def api(coupa_emulator: CoupaEmulator) -> Iterator[Api]:
    """A read-write JSON session on the fixture emulator."""
    with session(coupa_emulator) as s:
        yield s


@pytest.fixture
def xml_api(coupa_emulator: CoupaEmulator) -> Iterator[Api]:
    """A read-write session that forgets ``Accept: application/json`` (so Coupa answers XML)."""
    with session(coupa_emulator, accept_json=False) as s:
        yield s
