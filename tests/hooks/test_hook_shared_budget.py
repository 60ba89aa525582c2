"""The hook reads a shared rate budget from the connection: ``rate_limit_redis_conn_id`` names a redis connection.

No Redis is needed here: reading the settings sends nothing (the fleet tests use a real redis-server).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.shared_limiter import SharedThrottle
from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook


def _coupa(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    data = {
        "conn_type": "coupa",
        "host": "https://acme.coupahost.com",
        "login": "client-id",
        "password": "client-secret",
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", json.dumps(data))


def _redis(monkeypatch: pytest.MonkeyPatch, conn_id: str = "coupa_budget", **extra: Any) -> None:
    data = {"conn_type": "redis", "host": "10.0.0.7", "port": 6380, "password": "redis-pass", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data))


def test_a_named_redis_connection_becomes_the_shared_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    _coupa(monkeypatch, rate_limit_redis_conn_id="coupa_budget", rate_limit_budget="erp", rate_limit_fallback=5)
    _redis(monkeypatch, db=3)
    config = CoupaHook().config
    budget = config.shared_budget
    assert budget is not None
    assert (budget.redis.host, budget.redis.port, budget.redis.db) == ("10.0.0.7", 6380, 3)
    assert budget.name == "erp"
    assert budget.fallback_rate == 5
    assert "redis-pass" not in repr(config)
    assert budget.fallback(25, 20) == (5, 4)


def test_the_client_draws_from_the_shared_budget_not_a_private_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    _coupa(monkeypatch, rate_limit_redis_conn_id="coupa_budget")
    _redis(monkeypatch)
    with CoupaHook() as hook:
        throttle = hook.client._ctx.throttle
    assert isinstance(throttle, SharedThrottle)
    assert (throttle.rate, throttle.burst) == (25, 20)


def test_without_the_extra_each_process_keeps_its_own_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    _coupa(monkeypatch)
    assert CoupaHook().config.shared_budget is None


def test_a_missing_redis_connection_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    _coupa(monkeypatch, rate_limit_redis_conn_id="nowhere")
    with pytest.raises(Exception, match="nowhere"):
        _ = CoupaHook().config


def test_a_fallback_rate_of_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _coupa(monkeypatch, rate_limit_redis_conn_id="coupa_budget", rate_limit_fallback=0)
    _redis(monkeypatch)
    with pytest.raises(CoupaConfigError, match="rate_limit_fallback"):
        _ = CoupaHook().config
