"""``/_emulator/...``: inspecting and steering a running emulator over HTTP (no auth, no limits, no faults)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emulator_helpers import CODE, ERRORS, IHR, INTEGRATIONS, RUNS, TIMEOUT, Api, all_keys, ihr

from airflow_provider_coupa_ihr.testing import CoupaEmulator


def _admin(coupa: CoupaEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    response = requests.request(method, coupa.url + "/_emulator" + path, timeout=TIMEOUT, **kwargs)
    assert response.headers["Content-Type"].startswith("application/json")
    return response


def test_health(coupa_emulator: CoupaEmulator) -> None:
    response = _admin(coupa_emulator, "GET", "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_state_shows_everything(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = api.post(RUNS, json={"integration": {"code": CODE}}).json()
    record = api.post(IHR + "/create_alert", json=ihr()).json()
    error = api.post(ERRORS, json={"contact-alert-type": "Technical", "integration-run": {"id": run["id"]}}).json()
    state = _admin(coupa_emulator, "GET", "/state").json()
    assert set(state) == {
        "integration-history-records",
        "integration-errors",
        "integration-runs",
        "integrations",
        "side-effects",
    }
    assert state["integration-history-records"] == [record]
    assert state["integration-errors"] == [error]
    assert [r["id"] for r in state["integration-runs"]] == [run["id"]]
    assert [i["code"] for i in state["integrations"]] == [CODE]
    [effect] = state["side-effects"]
    assert effect["kind"] == "alert"
    assert effect["record_id"] == record["id"]


def test_records(coupa_emulator: CoupaEmulator, api: Api) -> None:
    assert _admin(coupa_emulator, "GET", "/records").json() == []
    first = api.post(IHR, json=ihr()).json()
    second = api.post(IHR, json=ihr(**{"document-id": 2})).json()
    body = _admin(coupa_emulator, "GET", "/records").json()
    assert body == [first, second]
    assert not [k for k in all_keys(body) if "_" in k]


def test_reset_forgets_data_faults_and_log_but_keeps_tokens(coupa_emulator: CoupaEmulator, api: Api) -> None:
    api.post(IHR + "/mark_exported", json=ihr())
    api.post(RUNS, json={"integration": {"code": CODE}})
    coupa_emulator.faults.error_rate(500, 1.0, path_contains="/integrations")
    assert _admin(coupa_emulator, "POST", "/reset").json() == {"reset": True}
    assert coupa_emulator.records() == []
    assert coupa_emulator.integration_runs() == []
    assert coupa_emulator.exported == []
    assert coupa_emulator.faults.faults == []
    assert coupa_emulator.stats()["requests"] == 0
    # Integrations go too; the old token still works.
    assert api.get(INTEGRATIONS).json() == []
    assert api.post(IHR, json=ihr()).status_code == 400  # its integration code is unknown now
    created = api.post(IHR, json=ihr(integration=None))
    assert created.status_code == 201
    assert created.json()["id"] == 1  # ids start again


def test_stats_count_api_calls_by_status(coupa_emulator: CoupaEmulator, api: Api) -> None:
    api.get(IHR)
    api.post(IHR, json=ihr())
    api.post(IHR, json={})
    api.get(f"{IHR}/999")
    requests.get(coupa_emulator.url + IHR, timeout=TIMEOUT)
    _admin(coupa_emulator, "GET", "/health")  # admin calls are not counted
    stats = _admin(coupa_emulator, "GET", "/stats").json()
    assert stats["tokens_issued"] == 1
    assert stats["by_status"] == {"200": 2, "201": 1, "400": 1, "404": 1, "401": 1}  # the token is one 200
    assert stats["requests"] == 6
    assert stats == coupa_emulator.stats()
    posts = coupa_emulator.requests(method="POST", path_contains="integration_history_records")
    assert [r.status for r in posts] == [201, 400]
    assert all(r.client_id == coupa_emulator.credentials.client_id for r in posts)


def test_expire_tokens(coupa_emulator: CoupaEmulator, api: Api) -> None:
    assert api.get(IHR).status_code == 200
    assert _admin(coupa_emulator, "POST", "/expire_tokens").json() == {"expired": 1}
    assert api.get(IHR).status_code == 401


def test_rate_limit_on_and_off(coupa_emulator: CoupaEmulator, api: Api) -> None:
    answer = _admin(coupa_emulator, "PUT", "/rate_limit", json={"rate": 1, "burst": 2})
    assert answer.json() == {"rate": 1, "burst": 2}
    statuses = [api.get(INTEGRATIONS).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    _admin(coupa_emulator, "PUT", "/rate_limit", json={"rate": 1, "burst": 1, "retry_after": False})
    throttled = [api.get(INTEGRATIONS) for _ in range(2)][-1]
    assert throttled.status_code == 429
    assert "Retry-After" not in throttled.headers
    _admin(coupa_emulator, "PUT", "/rate_limit", json={"rate": None})
    assert {api.get(INTEGRATIONS).status_code for _ in range(30)} == {200}


@pytest.mark.parametrize("action", ["resolve", "unresolve"])
def test_resolve_over_admin(coupa_emulator: CoupaEmulator, api: Api, action: str) -> None:
    record = api.post(IHR, json=ihr()).json()
    if action == "unresolve":
        coupa_emulator.resolve(record["id"])
    answer = _admin(coupa_emulator, "PUT", f"/records/{record['id']}/{action}")
    assert answer.status_code == 200
    expected = action == "resolve"
    assert answer.json()["resolved"] is expected
    assert api.get(f"{IHR}/{record['id']}").json()["resolved"] is expected
    assert _admin(coupa_emulator, "PUT", f"/records/999/{action}").status_code == 404


def test_integrations_over_admin(coupa_emulator: CoupaEmulator, api: Api) -> None:
    answer = _admin(coupa_emulator, "POST", "/integrations", json={"code": "ADMIN-MADE", "end-system": "Oracle"})
    assert answer.status_code == 201
    assert answer.json()["code"] == "ADMIN-MADE"
    assert answer.json()["end-system"] == "Oracle"
    assert api.post(IHR, json=ihr(integration={"code": "ADMIN-MADE"})).status_code == 201
    duplicate = _admin(coupa_emulator, "POST", "/integrations", json={"code": "ADMIN-MADE"})
    assert duplicate.status_code == 400
    assert "integration" in duplicate.json()["errors"]
    nameless = _admin(coupa_emulator, "POST", "/integrations", json={"name": "no code"})
    assert nameless.status_code == 400


def test_admin_needs_no_token_and_ignores_faults(coupa_emulator: CoupaEmulator) -> None:
    coupa_emulator.faults.error_rate(503, 1.0)
    coupa_emulator.set_rate_limit(1, burst=1)
    for _ in range(3):
        assert _admin(coupa_emulator, "GET", "/health").status_code == 200
        assert _admin(coupa_emulator, "GET", "/records").status_code == 200


#: Every admin endpoint that reads a JSON body.
BODY_ENDPOINTS = [
    ("PUT", "/faults"),
    ("POST", "/faults"),
    ("PUT", "/rate_limit"),
    ("POST", "/integrations"),
    ("POST", "/seed"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "data",
    [
        b"not json at all",
        b"{",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}",
        b"[]",
        b"42",
        b'"text"',
        b"null",
    ],
    ids=["text", "truncated", "not-utf8", "nested-beyond-the-parser", "nested-beyond-100", "array", "number",
         "string", "null"],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_400(
    coupa_emulator: CoupaEmulator, method: str, path: str, data: bytes
) -> None:
    coupa_emulator.faults.error_rate(500, 1.0, path_contains="/nothing")
    answer = _admin(coupa_emulator, method, path, data=data, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    [messages] = answer.json()["errors"].values()
    assert messages
    assert len(coupa_emulator.faults.faults) == 1  # nothing changed
    assert coupa_emulator.records() == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/rate_limit", {"rate": "fast"}),
        ("PUT", "/rate_limit", {"rate": 5, "burst": "lots"}),
        ("PUT", "/rate_limit", {"rate": 5, "burst": 0}),
        ("PUT", "/rate_limit", {"rate": -1}),
        ("PUT", "/rate_limit", {"rate": 5, "retry_after": "sometimes"}),
        ("PUT", "/faults", {"faults": "all of them"}),
        ("PUT", "/faults", {"faults": [], "seed": "seven"}),
        ("POST", "/integrations", {"code": "X", "name": {"nested": True}}),
        ("POST", "/integrations", {"name": "no code"}),
        ("POST", "/integrations", {"code": ["not", "text"]}),
        ("POST", "/seed", {"count": "many"}),
        ("POST", "/seed", {"count": 10**9}),
        ("POST", "/seed", {"count": 1, "document_type": "Banana"}),
        ("POST", "/seed", {"count": True}),
        ("POST", "/faults", {"kind": "status", "status": "teapot"}),
        ("POST", "/faults", {"kind": "status", "status": 999}),
        ("POST", "/faults", {"kind": "latency", "seconds": -1}),
        ("POST", "/faults", {"kind": "storm", "retry_after": -5}),
        ("POST", "/faults", {"kind": "status", "methods": "GET"}),
        ("POST", "/faults", {"kind": "status", "path_contains": 7}),
        ("PUT", "/faults", {"faults": [["status"]]}),
    ],
)
def test_bad_values_in_an_admin_body_are_400(
    coupa_emulator: CoupaEmulator, method: str, path: str, body: dict[str, Any]
) -> None:
    coupa_emulator.set_rate_limit(7, burst=3)
    answer = _admin(coupa_emulator, method, path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"]
    assert coupa_emulator.rate_limiter is not None
    assert (coupa_emulator.rate_limiter.rate, coupa_emulator.rate_limiter.burst) == (7, 3)  # nothing changed
    assert coupa_emulator.records() == []


@pytest.mark.parametrize("action", ["resolve", "unresolve"])
def test_admin_resolve_of_an_id_beyond_a_bigint_is_400(coupa_emulator: CoupaEmulator, action: str) -> None:
    assert _admin(coupa_emulator, "PUT", f"/records/{2**63}/{action}").status_code == 400
    assert _admin(coupa_emulator, "PUT", f"/records/{2**63 - 1}/{action}").status_code == 404
