"""OAuth 2.0 client credentials, scopes, token expiry and the legacy X-COUPA-API-KEY, over a real socket."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from emulator_helpers import (
    IHR,
    INTEGRATIONS,
    READ,
    RUNS,
    TIMEOUT,
    WRITE,
    Api,
    get_token,
    ihr,
    seed_records,
    session,
    token_response,
)

from airflow_provider_coupa_ihr.testing import CoupaEmulator, OAuthClient

API_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 characters, like Coupa's legacy keys


# ------------------------------------------------------------------------------------------ token endpoint
def test_token_from_form_body(coupa_emulator: CoupaEmulator) -> None:
    response = token_response(coupa_emulator)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 86399
    assert set(body["scope"].split()) == {READ, WRITE}
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32
    assert coupa_emulator.tokens_issued == 1
    assert coupa_emulator.issued_tokens() == [body["access_token"]]


def test_token_with_http_basic_client_auth(coupa_emulator: CoupaEmulator) -> None:
    response = token_response(coupa_emulator, basic=True)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    with session(coupa_emulator, token=token) as api:
        assert api.get(INTEGRATIONS).status_code == 200


def test_swagger_token_path_access_tokens_works_too(coupa_emulator: CoupaEmulator) -> None:
    response = token_response(coupa_emulator, path="/oauth2/access_tokens")
    assert response.status_code == 200, response.text
    with session(coupa_emulator, token=response.json()["access_token"]) as api:
        assert api.get(INTEGRATIONS).status_code == 200


def test_each_token_is_distinct(coupa_emulator: CoupaEmulator) -> None:
    tokens = {get_token(coupa_emulator) for _ in range(3)}
    assert len(tokens) == 3
    assert coupa_emulator.tokens_issued == 3


@pytest.mark.parametrize("basic", [False, True], ids=["form", "basic"])
def test_wrong_secret_is_401_invalid_client(coupa_emulator: CoupaEmulator, basic: bool) -> None:
    wrong = OAuthClient(coupa_emulator.credentials.client_id, "not-the-secret")
    response = token_response(coupa_emulator, client=wrong, basic=basic)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert coupa_emulator.tokens_issued == 0


def test_unknown_client_is_401_invalid_client(coupa_emulator: CoupaEmulator) -> None:
    response = token_response(coupa_emulator, client=OAuthClient("nobody", "x"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_missing_secret_is_401(coupa_emulator: CoupaEmulator) -> None:
    response = requests.post(
        coupa_emulator.url + "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": coupa_emulator.credentials.client_id},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_malformed_basic_header_is_401(coupa_emulator: CoupaEmulator) -> None:
    response = requests.post(
        coupa_emulator.url + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!not-base64!!!"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("grant", ["password", "authorization_code", ""])
def test_unsupported_grant_is_400(coupa_emulator: CoupaEmulator, grant: str) -> None:
    response = token_response(coupa_emulator, grant_type=grant)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_scope_not_allowed_for_client_is_400_invalid_scope() -> None:
    reader = OAuthClient("reader", "reader-secret", (READ,))
    with CoupaEmulator(clients=[reader], rate_limit=None) as coupa:
        response = token_response(coupa, scope=f"{READ} {WRITE}")
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "invalid_scope"
        assert WRITE in body["error_description"]
        assert coupa.tokens_issued == 0
        # Asking for what the client has is fine, and no scope means all of the client's scopes.
        assert token_response(coupa, scope=READ).status_code == 200
        assert token_response(coupa).json()["scope"] == READ


def test_unknown_scope_is_400_invalid_scope(coupa_emulator: CoupaEmulator) -> None:
    response = token_response(coupa_emulator, scope="core.invoice.read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_token_carries_only_the_scopes_asked_for(coupa_emulator: CoupaEmulator) -> None:
    assert token_response(coupa_emulator, scope=READ).json()["scope"] == READ


# ------------------------------------------------------------------------------------------ bearer checks
def _plain(coupa: CoupaEmulator, headers: dict[str, str] | None = None) -> Api:
    api = Api(coupa.url)
    api.headers.update({"Accept": "application/json", **(headers or {})})
    return api


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token-we-issued"},
        {"Authorization": "Bearer "},
        {"Authorization": "Token abc"},
    ],
    ids=["missing", "unknown", "empty", "wrong-scheme"],
)
def test_api_call_without_a_valid_token_is_401(coupa_emulator: CoupaEmulator, headers: dict[str, str]) -> None:
    with _plain(coupa_emulator, headers) as api:
        response = api.get(IHR)
        assert response.status_code == 401
        assert response.json()["error"] in ("invalid_request", "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        created = api.post(IHR, json=ihr())
        assert created.status_code == 401
    assert coupa_emulator.records() == []


def test_expired_token_via_expire_tokens_is_401(coupa_emulator: CoupaEmulator, api: Api) -> None:
    assert api.get(IHR).status_code == 200
    assert coupa_emulator.expire_tokens() == 1
    response = api.get(IHR)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert api.post(IHR, json=ihr()).status_code == 401
    assert coupa_emulator.records() == []
    # A fresh token works again: expiry is per token, not a lock-out.
    api.headers["Authorization"] = "Bearer " + get_token(coupa_emulator)
    assert api.get(IHR).status_code == 200


def test_tiny_token_lifetime_expires_for_real() -> None:
    with CoupaEmulator(token_lifetime=1, rate_limit=None) as coupa:
        answer = token_response(coupa).json()
        assert answer["expires_in"] == 1
        with session(coupa, token=answer["access_token"]) as api:
            assert api.get(INTEGRATIONS).status_code == 200
            time.sleep(1.1)
            response = api.get(INTEGRATIONS)
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_token"


def test_default_token_lifetime_is_86399(coupa_emulator: CoupaEmulator) -> None:
    assert coupa_emulator.authority.token_lifetime == 86399
    assert token_response(coupa_emulator).json()["expires_in"] == 86399


# ------------------------------------------------------------------------------------------ scopes
_WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", IHR, ihr()),
    ("PUT", IHR + "/1", {"status": "Error"}),
    ("PATCH", IHR + "/1", {"status": "Error"}),
    ("POST", IHR + "/acknowledge", ihr()),
    ("POST", IHR + "/mark_exported", ihr()),
    ("POST", IHR + "/create_alert", ihr()),
    ("POST", IHR + "/create_alert_and_mark_exported", ihr()),
    ("PUT", IHR + "/1/resolve", None),
    ("PUT", IHR + "/1/unresolve", None),
    ("POST", RUNS, {"integration": {"code": "AIRFLOW-TEST"}}),
    ("PUT", RUNS + "/1/run", None),
]


@pytest.mark.parametrize(("method", "path", "body"), _WRITES, ids=[f"{m} {p}" for m, p, _ in _WRITES])
def test_read_only_token_cannot_write(
    coupa_emulator: CoupaEmulator, method: str, path: str, body: dict[str, Any] | None
) -> None:
    seed_records(coupa_emulator, [ihr()])
    coupa_emulator.state.create(coupa_emulator.state.runs, {"integration": {"code": "AIRFLOW-TEST"}}, user=None)
    before = coupa_emulator.records()
    with session(coupa_emulator, scope=READ) as api:
        response = api.request(method, path, json=body)
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert WRITE in response.json()["error_description"]
        # The same token reads fine.
        assert api.get(IHR).status_code == 200
    assert coupa_emulator.records() == before
    assert coupa_emulator.integration_runs()[0]["status"] == "pending"


@pytest.mark.parametrize("path", [IHR, IHR + "/1", RUNS, INTEGRATIONS, "/api/integration_errors"])
def test_write_only_token_cannot_read(coupa_emulator: CoupaEmulator, path: str) -> None:
    seed_records(coupa_emulator, [ihr()])
    with session(coupa_emulator, scope=WRITE) as api:
        response = api.get(path)
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        # ...but writes.
        assert api.post(IHR, json=ihr()).status_code == 201


# ------------------------------------------------------------------------------------------ legacy API keys
def test_api_key_is_refused_by_default(coupa_emulator: CoupaEmulator) -> None:
    with _plain(coupa_emulator, {"X-COUPA-API-KEY": API_KEY}) as api:
        assert api.get(IHR).status_code == 401
        assert api.post(IHR, json=ihr()).status_code == 401
    assert coupa_emulator.records() == []


def test_api_key_is_accepted_when_configured() -> None:
    with CoupaEmulator(api_keys=[API_KEY], rate_limit=None) as coupa:
        coupa.add_integration("AIRFLOW-TEST")
        with _plain(coupa, {"X-COUPA-API-KEY": API_KEY}) as api:
            created = api.post(IHR, json=ihr())
            assert created.status_code == 201, created.text
            assert created.json()["created-by"]["login"] == "api-key"
            assert api.get(IHR).status_code == 200
        with _plain(coupa, {"X-COUPA-API-KEY": "f" * 40}) as api:
            wrong = api.get(IHR)
            assert wrong.status_code == 401
            assert wrong.json()["error"] == "invalid_api_key"
        # OAuth keeps working beside the keys.
        with session(coupa) as api:
            assert api.get(IHR).status_code == 200
        assert len(coupa.records()) == 1
