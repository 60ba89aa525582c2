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


@pytest.fixture
def sixty(coupa_emulator: CoupaEmulator) -> list[dict[str, Any]]:
    """60 records: documents 1..60, every third an error, every fifth resolved, the even ones in run 1."""
    coupa_emulator.add_integration("OTHER")
    run = coupa_emulator.state.create(coupa_emulator.state.runs, {"integration": {"code": CODE}}, user=None)
    for n in range(1, 61):
        body = ihr(**{"document-id": n, "status": "Error" if n % 3 == 0 else "Success"})
        if n % 2 == 0:
            body["integration-run"] = {"id": run["id"]}
        if n > 50:
            body["integration"] = {"code": "OTHER"}
        coupa_emulator.state.create(coupa_emulator.state.records, body, user=None)
        if n % 5 == 0:
            coupa_emulator.resolve(n)
    return coupa_emulator.records()


def _record_ids(coupa: CoupaEmulator, params: dict[str, str] | None = None) -> list[int]:
    answer = _admin(coupa, "GET", "/records", params=params)
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, list(range(1, 61))),  # every record: no 50-record pages here
        ({"document_id": "7"}, [7]),
        ({"document-id": "7"}, [7]),
        ({"resolved": "true"}, list(range(5, 61, 5))),
        ({"status": "Error", "resolved": "false"}, [n for n in range(3, 61, 3) if n % 5]),
        ({"document-id[gt]": "55"}, [56, 57, 58, 59, 60]),
        ({"document-id[in]": "1,2,99"}, [1, 2]),
        ({"integration[code]": "OTHER"}, list(range(51, 61))),
        ({"integration-run[id]": "1", "document-id[lt_or_eq]": "10"}, [2, 4, 6, 8, 10]),
        ({"order_by": "id", "dir": "desc", "document-id[gt]": "57"}, [60, 59, 58]),
        ({"offset": "57"}, [58, 59, 60]),
        ({"limit": "55"}, list(range(1, 56))),  # limit is not capped at 50 either
        ({"limit": "2", "offset": "10", "status": "Error"}, [33, 36]),
    ],
)
def test_records_honours_the_filters_the_api_takes(
    coupa_emulator: CoupaEmulator, sixty: list[dict[str, Any]], params: dict[str, str], expected: list[int]
) -> None:
    assert _record_ids(coupa_emulator, params) == expected


def test_records_matches_the_python_api_and_takes_fields(coupa_emulator: CoupaEmulator, sixty: Any) -> None:
    answer = _admin(coupa_emulator, "GET", "/records", params={"status": "Error", "resolved": "false"}).json()
    assert answer == coupa_emulator.records(status="Error", resolved=False)
    trimmed = _admin(coupa_emulator, "GET", "/records", params={"id": "3", "fields": '["id",{"integration":["code"]}]'})
    assert trimmed.json() == [{"id": 3, "integration": {"code": CODE}}]


@pytest.mark.parametrize(
    "params",
    [{"colour": "red"}, {"document-id": "seven"}, {"id": str(2**63)}, {"limit": "-1"}, {"fields": "id"}],
)
def test_records_refuses_a_bad_filter_with_400(coupa_emulator: CoupaEmulator, params: dict[str, str]) -> None:
    answer = _admin(coupa_emulator, "GET", "/records", params=params)
    assert answer.status_code == 400
    assert answer.json()["errors"]["base"]


def test_runs_and_errors_over_admin_take_the_same_filters(coupa_emulator: CoupaEmulator, api: Api) -> None:
    first = api.post(RUNS, json={"integration": {"code": CODE}}).json()
    second = api.post(RUNS, json={"integration": {"code": CODE}}).json()
    assert api.put(f"{RUNS}/{second['id']}/run").status_code == 200
    runs = _admin(coupa_emulator, "GET", "/integration_runs").json()
    assert [r["id"] for r in runs] == [first["id"], second["id"]]
    assert runs == coupa_emulator.integration_runs()
    running = _admin(coupa_emulator, "GET", "/integration_runs", params={"status": "running"}).json()
    assert [r["id"] for r in running] == [second["id"]]
    error = {"contact-alert-type": "Technical", "integration-run": {"id": second["id"]}}
    made = api.post(ERRORS, json=error).json()
    api.post(ERRORS, json={**error, "integration-run": {"id": first["id"]}})
    found = _admin(coupa_emulator, "GET", "/integration_errors", params={"integration-run[status]": "running"})
    assert [e["id"] for e in found.json()] == [made["id"]]
    assert _admin(coupa_emulator, "GET", "/integration_errors", params={"colour": "x"}).status_code == 400


def test_every_admin_route_is_documented(coupa_emulator: CoupaEmulator) -> None:
    from airflow_provider_coupa_ihr.testing import admin_api

    doc = admin_api.__doc__ or ""
    routes = [r for r in coupa_emulator.app().router.routes() if r.resource and "/_emulator" in r.resource.canonical]
    assert len(routes) >= 15
    for route in routes:
        path = route.resource.canonical  # type: ignore[union-attr]
        for documented in (
            [path.replace("{action}", a) for a in ("resolve", "unresolve")] if "{action}" in path else [path]
        ):
            assert f"{route.method:<6}  ``{documented}``" in doc, f"{route.method} {documented} is not documented"


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
