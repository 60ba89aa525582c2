"""Coupa's published rate limit (25 requests/s, bursts of 20) as the emulator enforces it: 429, with or without
Retry-After, switched off with ``rate_limit=None``, and a bucket that refills."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from emulator_helpers import IHR, INTEGRATIONS, TIMEOUT, Api, get_token, ihr, session

from airflow_provider_coupa_ihr.testing import CoupaEmulator


@pytest.fixture
def coupa_emulator_options() -> dict[str, Any]:
    """Coupa's defaults (this directory's conftest turns the rate limit off; here it stays on)."""
    return {}


def _burst(api: Api, n: int) -> list[Any]:
    return [api.get(INTEGRATIONS) for _ in range(n)]


def test_default_limit_throttles_a_quick_burst(coupa_emulator: CoupaEmulator, api: Api) -> None:
    responses = _burst(api, 60)
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    # The bucket starts full: the first 20 go through, then the 25/s refill cannot keep up with a tight loop.
    assert statuses[:20] == [200] * 20
    assert statuses.count(429) >= 1
    throttled = next(r for r in responses if r.status_code == 429)
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.json() == {"errors": {"base": ["Too Many Requests"]}}
    assert coupa_emulator.stats()["by_status"]["429"] == statuses.count(429)


def test_throttled_writes_store_nothing(coupa_emulator: CoupaEmulator, api: Api) -> None:
    statuses = [api.post(IHR, json=ihr(**{"document-id": n})).status_code for n in range(60)]
    assert statuses.count(429) >= 1
    assert len(coupa_emulator.records()) == statuses.count(201)


def test_throttled_answer_without_retry_after_when_configured() -> None:
    with CoupaEmulator(send_retry_after=False) as coupa, session(coupa) as api:
        responses = _burst(api, 60)
        throttled = [r for r in responses if r.status_code == 429]
        assert throttled
        assert all("Retry-After" not in r.headers for r in throttled)


def test_throttled_xml_answer(coupa_emulator: CoupaEmulator) -> None:
    with session(coupa_emulator, accept_json=False) as api:
        throttled = [r for r in _burst(api, 60) if r.status_code == 429]
    assert throttled
    assert throttled[0].headers["Content-Type"].startswith("application/xml")
    assert b"<errors><error>Too Many Requests</error></errors>" in throttled[0].content


def test_rate_limit_none_turns_it_off() -> None:
    with CoupaEmulator(rate_limit=None) as coupa, session(coupa) as api:
        assert {r.status_code for r in _burst(api, 80)} == {200}


def test_the_bucket_refills() -> None:
    # 5 per second, bursts of 2: a token every 0.2 s, so three calls in a row cannot all pass.
    with CoupaEmulator(rate_limit=5, burst=2) as coupa, session(coupa) as api:
        assert [r.status_code for r in _burst(api, 3)] == [200, 200, 429]
        time.sleep(0.45)  # two tokens' worth
        assert [r.status_code for r in _burst(api, 2)] == [200, 200]


def test_retry_after_is_the_time_until_a_token() -> None:
    with CoupaEmulator(rate_limit=0.5, burst=1) as coupa, session(coupa) as api:
        assert api.get(INTEGRATIONS).status_code == 200
        throttled = api.get(INTEGRATIONS)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "2"  # one token every 2 s, rounded up to whole seconds


def test_rate_limit_changes_at_run_time(coupa_emulator: CoupaEmulator, api: Api) -> None:
    coupa_emulator.set_rate_limit(None)
    assert {r.status_code for r in _burst(api, 40)} == {200}
    coupa_emulator.set_rate_limit(1, burst=1, send_retry_after=False)
    assert [r.status_code for r in _burst(api, 2)] == [200, 429]
    assert coupa_emulator.send_retry_after is False


def test_token_and_admin_calls_are_not_throttled(coupa_emulator: CoupaEmulator) -> None:
    coupa_emulator.set_rate_limit(1, burst=1)
    tokens = [get_token(coupa_emulator) for _ in range(5)]
    for _ in range(5):
        assert requests.get(coupa_emulator.url + "/_emulator/health", timeout=TIMEOUT).status_code == 200
    # Only API calls draw from the bucket.
    with session(coupa_emulator, token=tokens[-1]) as api:
        assert [r.status_code for r in _burst(api, 2)] == [200, 429]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-token-we-issued"}], ids=["no-token", "bad-token"]
)
def test_a_missing_or_bad_token_is_401_even_when_the_bucket_is_empty(
    coupa_emulator: CoupaEmulator, api: Api, headers: dict[str, str]
) -> None:
    coupa_emulator.set_rate_limit(0.5, burst=1)
    assert api.get(INTEGRATIONS).status_code == 200
    assert api.get(INTEGRATIONS).status_code == 429  # the bucket is empty now
    for _ in range(3):
        refused = requests.get(coupa_emulator.url + INTEGRATIONS, headers=headers, timeout=TIMEOUT)
        assert refused.status_code == 401, refused.text
        assert "Retry-After" not in refused.headers


def test_calls_refused_for_their_token_take_nothing_from_the_bucket(coupa_emulator: CoupaEmulator, api: Api) -> None:
    """Only calls Coupa would serve count against the budget, so a misconfigured neighbour cannot starve a client."""
    coupa_emulator.set_rate_limit(0.5, burst=2)
    for _ in range(10):
        assert requests.get(coupa_emulator.url + INTEGRATIONS, timeout=TIMEOUT).status_code == 401
    assert [r.status_code for r in _burst(api, 3)] == [200, 200, 429]
