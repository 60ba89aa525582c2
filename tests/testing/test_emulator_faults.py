"""Trouble on demand, each kind shown over a real socket: error statuses (always, or at a seeded rate that
replays), latency, dropped connections before and after acting, 429 storms, early token expiry; narrowed by
method or path; switched from Python and over ``/_emulator/faults``."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import requests
from emulator_helpers import IHR, INTEGRATIONS, RUNS, TIMEOUT, Api, get_token, ihr, session

from airflow_provider_coupa_ihr.testing import CoupaEmulator, Fault

HTTP_DATE = format_datetime(datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc), usegmt=True)


def _admin(coupa: CoupaEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, coupa.url + path, timeout=TIMEOUT, **kwargs)


# ------------------------------------------------------------------------------------------ error statuses
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_error_rate_one_answers_the_status_every_time(coupa_emulator: CoupaEmulator, api: Api, status: int) -> None:
    coupa_emulator.faults.error_rate(status, 1.0)
    for _ in range(3):
        response = api.post(IHR, json=ihr())
        assert response.status_code == status
        assert "errors" in response.json()
        assert "Retry-After" not in response.headers
    assert api.get(IHR).status_code == status
    # The server did not act on any of them.
    assert coupa_emulator.records() == []
    assert coupa_emulator.stats()["by_status"] == {"200": 1, str(status): 4}  # the token, then the faults


def test_status_fault_may_carry_retry_after(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.add(Fault("status", status=503, retry_after=7, count=1))
    first = api.get(IHR)
    assert (first.status_code, first.headers.get("Retry-After")) == (503, "7")
    assert api.get(IHR).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token-we-issued"}, {"X-COUPA-API-KEY": "k" * 40}],
    ids=["no-token", "bad-token", "api-key-while-legacy-auth-is-off"],
)
@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=503),
        Fault("storm", status=429, retry_after=1),
        Fault("drop_before"),
        Fault("drop_after"),
        Fault("latency", seconds=0.05),
    ],
    ids=lambda f: f.kind,
)
def test_faults_never_mask_a_missing_or_bad_token(
    coupa_emulator: CoupaEmulator, headers: dict[str, str], fault: Fault
) -> None:
    """A 401 stays a 401: the token is checked before any injected trouble, so a client retrying 5xx/429 never
    retries its way around a broken credential (the fault still hits the next authenticated call)."""
    fault.count = 1
    coupa_emulator.faults.add(fault)
    for method in ("GET", "POST"):
        response = requests.request(method, coupa_emulator.url + IHR, headers=headers, json=ihr(), timeout=TIMEOUT)
        assert response.status_code == 401, response.text
        assert response.json()["error"] in ("invalid_request", "invalid_token")
    assert coupa_emulator.records() == []
    assert coupa_emulator.faults.faults[0].count == 1  # refused calls did not use the fault up
    with session(coupa_emulator) as api:
        if fault.kind.startswith("drop"):
            with pytest.raises(requests.exceptions.ConnectionError):
                api.get(IHR)
        else:
            assert api.get(IHR).status_code == {"status": 503, "storm": 429, "latency": 200}[fault.kind]
    assert coupa_emulator.faults.faults[0].count == 0


def test_an_expired_token_is_401_whatever_the_faults(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.error_rate(503, 1.0)
    coupa_emulator.expire_tokens()
    response = api.get(IHR)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_a_missing_scope_is_403_whatever_the_faults(coupa_emulator: CoupaEmulator) -> None:
    coupa_emulator.faults.storm(count=5, retry_after=1)
    with session(coupa_emulator, scope="core.integration.read") as api:
        response = api.post(IHR, json=ihr())
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def _statuses(api: Api, n: int) -> list[int]:
    return [api.get(INTEGRATIONS).status_code for _ in range(n)]


def test_fractional_error_rate_replays_with_the_same_seed() -> None:
    runs = []
    for seed in (7, 7, 8):
        with CoupaEmulator(seed=seed, rate_limit=None) as coupa, session(coupa) as api:
            coupa.faults.error_rate(500, 0.5)
            runs.append(_statuses(api, 40))
    same_a, same_b, other = runs
    assert same_a == same_b
    assert set(same_a) == {200, 500}
    assert 5 <= same_a.count(500) <= 35
    assert other != same_a  # the seed, not luck, decides


def test_clear_with_seed_restarts_the_sequence(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.clear(seed=11)
    coupa_emulator.faults.error_rate(502, 0.3)
    first = _statuses(api, 30)
    coupa_emulator.faults.clear(seed=11)
    coupa_emulator.faults.error_rate(502, 0.3)
    assert _statuses(api, 30) == first
    assert 502 in first
    assert 200 in first


def test_error_fault_with_count_stops_after_count(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.error_rate(500, 1.0, count=2)
    assert _statuses(api, 4) == [500, 500, 200, 200]


# ------------------------------------------------------------------------------------------ latency
def test_latency_is_added(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.latency(0.3)
    started = time.perf_counter()
    assert api.get(IHR).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_latency_beyond_the_client_timeout_still_acts(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.latency(0.6, methods=("POST",))
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.post(IHR, json=ihr(), timeout=0.1)
    assert coupa_emulator.records() == []  # still waiting
    deadline = time.monotonic() + 5
    while not coupa_emulator.records() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(coupa_emulator.records()) == 1  # the create landed although the client gave up


def test_latency_adds_up_with_an_error(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.latency(0.2)
    coupa_emulator.faults.error_rate(503, 1.0)
    started = time.perf_counter()
    assert api.get(IHR).status_code == 503
    assert time.perf_counter() - started >= 0.2


# ------------------------------------------------------------------------------------------ dropped connections
def test_drop_before_acting_stores_nothing(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.drop(after_acting=False)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post(IHR, json=ihr())
    assert coupa_emulator.records() == []
    assert coupa_emulator.stats()["by_status"].get("dropped") == 1
    coupa_emulator.faults.clear()
    assert api.post(IHR, json=ihr()).status_code == 201


def test_drop_after_acting_stores_the_record(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.drop(after_acting=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post(IHR, json=ihr(**{"document-id": 555}))
    [stored] = coupa_emulator.records()
    assert stored["document-id"] == 555
    assert coupa_emulator.stats()["by_status"].get("dropped") == 1


def test_drop_after_acting_on_a_post_action_keeps_its_side_effect(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.drop(after_acting=True, count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post(IHR + "/create_alert", json=ihr())
    assert len(coupa_emulator.alerts) == 1
    assert api.get(IHR).status_code == 200  # count=1: the next call is answered


# ------------------------------------------------------------------------------------------ 429 storms
@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(None, None), (2, "2"), (0.2, "1"), (HTTP_DATE, HTTP_DATE)],
    ids=["no-header", "seconds", "fraction-rounds-up", "http-date"],
)
def test_storm_of_429s(coupa_emulator: CoupaEmulator, api: Api, retry_after: Any, header: str | None) -> None:
    coupa_emulator.faults.storm(count=3, retry_after=retry_after)
    responses = [api.post(IHR, json=ihr()) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 201]
    for throttled in responses[:3]:
        assert throttled.headers.get("Retry-After") == header
    assert len(coupa_emulator.records()) == 1


def test_storm_ignores_send_retry_after_setting(coupa_emulator: CoupaEmulator, api: Api) -> None:
    # send_retry_after is about the rate limit; a storm says itself whether it sends the header.
    coupa_emulator.send_retry_after = False
    coupa_emulator.faults.storm(count=1, retry_after=3)
    assert api.get(IHR).headers.get("Retry-After") == "3"


# ------------------------------------------------------------------------------------------ tokens expiring early
def test_tokens_expire_early(coupa_emulator: CoupaEmulator, api: Api) -> None:
    assert api.post(IHR, json=ihr()).status_code == 201
    assert coupa_emulator.expire_tokens() == 1  # long before the advertised 86399 s
    response = api.post(IHR, json=ihr())
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert len(coupa_emulator.records()) == 1
    api.headers["Authorization"] = "Bearer " + get_token(coupa_emulator)
    assert api.post(IHR, json=ihr()).status_code == 201


def test_tokens_expire_early_over_http(coupa_emulator: CoupaEmulator, api: Api) -> None:
    other = get_token(coupa_emulator)
    answer = _admin(coupa_emulator, "POST", "/_emulator/expire_tokens")
    assert answer.json() == {"expired": 2}
    assert api.get(IHR).status_code == 401
    with session(coupa_emulator, token=other) as second:
        assert second.get(IHR).status_code == 401


# ------------------------------------------------------------------------------------------ narrowing
def test_fault_narrowed_by_method(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.error_rate(500, 1.0, methods=("post",))
    assert api.get(IHR).status_code == 200
    assert api.post(IHR, json=ihr()).status_code == 500
    assert api.get(INTEGRATIONS).status_code == 200


def test_fault_narrowed_by_path(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.faults.error_rate(503, 1.0, path_contains="/integration_runs")
    assert api.post(IHR, json=ihr()).status_code == 201
    assert api.post(RUNS, json={"integration": {"code": "AIRFLOW-TEST"}}).status_code == 503
    assert api.get(RUNS).status_code == 503
    assert api.get(IHR).status_code == 200


def test_faults_never_touch_tokens_or_admin(coupa_emulator: CoupaEmulator) -> None:
    coupa_emulator.faults.error_rate(500, 1.0)
    coupa_emulator.faults.drop(after_acting=False)
    assert get_token(coupa_emulator)
    assert _admin(coupa_emulator, "GET", "/_emulator/health").status_code == 200


# ------------------------------------------------------------------------------------------ over HTTP
def test_faults_over_the_admin_path(coupa_emulator: CoupaEmulator, api: Api) -> None:
    answer = _admin(
        coupa_emulator,
        "PUT",
        "/_emulator/faults",
        json={"seed": 5, "faults": [{"kind": "status", "status": 502, "methods": ["GET"], "path_contains": "records"}]},
    )
    assert answer.status_code == 200
    listed = answer.json()
    assert listed["seed"] == 5
    assert listed["faults"][0]["kind"] == "status"
    assert listed["faults"][0]["methods"] == ["GET"]
    assert api.get(IHR).status_code == 502
    assert api.get(INTEGRATIONS).status_code == 200

    added = _admin(coupa_emulator, "POST", "/_emulator/faults", json={"kind": "storm", "count": 1, "retry_after": 4})
    assert added.status_code == 200
    assert [f["kind"] for f in added.json()["faults"]] == ["status", "storm"]
    throttled = api.get(INTEGRATIONS)
    assert (throttled.status_code, throttled.headers.get("Retry-After")) == (429, "4")

    assert _admin(coupa_emulator, "GET", "/_emulator/faults").json()["faults"][1]["count"] == 0
    # PUT replaces the whole plan.
    _admin(coupa_emulator, "PUT", "/_emulator/faults", json={"faults": [{"kind": "drop_after", "count": 1}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post(IHR, json=ihr())
    assert len(coupa_emulator.records()) == 1
    _admin(coupa_emulator, "POST", "/_emulator/faults", json={"kind": "latency", "seconds": 0.2})
    started = time.perf_counter()
    assert api.get(IHR).status_code == 200
    assert time.perf_counter() - started >= 0.2

    cleared = _admin(coupa_emulator, "DELETE", "/_emulator/faults")
    assert cleared.json()["faults"] == []
    assert coupa_emulator.faults.faults == []
    assert api.get(IHR).status_code == 200


def test_fractional_rate_over_http_replays(coupa_emulator: CoupaEmulator, api: Api) -> None:
    plan = {"seed": 21, "faults": [{"kind": "status", "status": 500, "rate": 0.4}]}
    _admin(coupa_emulator, "PUT", "/_emulator/faults", json=plan)
    first = _statuses(api, 25)
    _admin(coupa_emulator, "PUT", "/_emulator/faults", json=plan)
    assert _statuses(api, 25) == first
    assert set(first) == {200, 500}


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PUT", {"faults": [{"kind": "meteor"}]}),
        ("PUT", {"faults": [{"kind": "status", "rate": 2}]}),
        ("PUT", {"faults": [{"kind": "status", "colour": "red"}]}),
        ("POST", {"kind": "storm", "count": -1}),
        ("POST", {"kind": "volcano"}),
    ],
)
def test_bad_faults_over_http_are_400(coupa_emulator: CoupaEmulator, method: str, body: dict) -> None:
    coupa_emulator.faults.error_rate(500, 1.0)
    answer = _admin(coupa_emulator, method, "/_emulator/faults", json=body)
    assert answer.status_code == 400
    assert "faults" in answer.json()["errors"]
    assert len(coupa_emulator.faults.faults) == 1  # the plan in force is untouched
