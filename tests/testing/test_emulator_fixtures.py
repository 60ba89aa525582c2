"""The pytest plugin's fixtures (registered through the ``pytest11`` entry point, so nothing imports them here)."""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points
from typing import Any

import pytest
import requests
from emulator_helpers import CODE, IHR, TIMEOUT, ihr, session

from airflow_provider_coupa_ihr.testing import CoupaEmulator
from airflow_provider_coupa_ihr.testing.pytest_plugin import DEFAULT_INTEGRATION_CODE, connection_json


def test_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    [entry] = [e for e in entry_points(group="pytest11") if e.name == "coupa_emulator"]
    assert entry.value == "airflow_provider_coupa_ihr.testing.pytest_plugin"


def test_coupa_emulator_is_a_running_loopback_instance(coupa_emulator: CoupaEmulator) -> None:
    assert isinstance(coupa_emulator, CoupaEmulator)
    assert coupa_emulator.host == "127.0.0.1"
    assert coupa_emulator.port > 0
    assert coupa_emulator.url == f"http://127.0.0.1:{coupa_emulator.port}"
    assert requests.get(coupa_emulator.url + "/_emulator/health", timeout=TIMEOUT).json() == {"status": "ok"}
    # It registers the default integration, so records can reference it straight away.
    assert DEFAULT_INTEGRATION_CODE == CODE
    assert coupa_emulator.state.integration_by_code(CODE) is not None
    with session(coupa_emulator) as api:
        assert api.post(IHR, json=ihr()).status_code == 201


def test_each_test_gets_a_fresh_emulator(coupa_emulator: CoupaEmulator) -> None:
    # Other tests in this directory create records; none leak into this one.
    assert coupa_emulator.records() == []
    assert coupa_emulator.faults.faults == []
    assert coupa_emulator.tokens_issued == 0


def test_two_emulators_are_independent(coupa_emulator: CoupaEmulator) -> None:
    with CoupaEmulator(rate_limit=None) as other:
        assert other.port != coupa_emulator.port
        with session(other) as api:
            assert api.post(IHR, json=ihr(integration=None)).status_code == 201
        assert len(other.records()) == 1
    assert coupa_emulator.records() == []


def test_emulator_stops_after_use() -> None:
    coupa = CoupaEmulator().start()
    url = coupa.url
    assert requests.get(url + "/_emulator/health", timeout=TIMEOUT).status_code == 200
    coupa.stop()
    coupa.stop()  # twice is fine
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_emulator/health", timeout=1)


def test_default_options_follow_coupa() -> None:
    with CoupaEmulator() as coupa:
        assert coupa.authority.token_lifetime == 86399
        assert coupa.authority.api_keys == set()
        bucket = coupa.rate_limiter
        assert bucket is not None
        assert (bucket.rate, bucket.burst) == (25.0, 20)
        assert coupa.send_retry_after is True


def test_this_directory_turns_the_rate_limit_off(coupa_emulator: CoupaEmulator) -> None:
    assert coupa_emulator.rate_limiter is None


def test_connection_json() -> None:
    with CoupaEmulator() as coupa:
        data = json.loads(connection_json(coupa, verify=False))
    assert data == {
        "conn_type": "coupa",
        "host": coupa.url,
        "login": coupa.credentials.client_id,
        "password": coupa.credentials.client_secret,
        "extra": {"verify": False},
    }


def test_coupa_connection_sets_the_airflow_env_var(coupa_connection: Any, coupa_emulator: CoupaEmulator) -> None:
    value = json.loads(os.environ["AIRFLOW_CONN_COUPA_DEFAULT"])
    assert value["conn_type"] == "coupa"
    assert value["host"] == coupa_emulator.url
    assert value["login"] == coupa_emulator.credentials.client_id
    assert value["password"] == coupa_emulator.credentials.client_secret
    assert coupa_connection.conn_id == "coupa_default"
    assert coupa_connection.conn_type == "coupa"
    assert coupa_connection.host == coupa_emulator.url
    assert coupa_connection.login == coupa_emulator.credentials.client_id
    assert coupa_connection.password == coupa_emulator.credentials.client_secret
    # The connection's credentials work against the emulator it points at.
    form = {
        "grant_type": "client_credentials",
        "client_id": coupa_connection.login,
        "client_secret": coupa_connection.password,
    }
    assert requests.post(coupa_connection.host + "/oauth2/token", data=form, timeout=TIMEOUT).status_code == 200


class TestOverriddenOptions:
    """A test module (here a class) overrides ``coupa_emulator_options`` and ``coupa_integration_code``."""

    @pytest.fixture
    def coupa_emulator_options(self) -> dict[str, Any]:
        return {"token_lifetime": 120, "extra_document_types": ["ServiceOrder"], "seed": 9}

    @pytest.fixture
    def coupa_integration_code(self) -> str:
        return "CUSTOM-CODE"

    def test_options_reach_the_emulator(self, coupa_emulator: CoupaEmulator) -> None:
        assert coupa_emulator.authority.token_lifetime == 120
        assert coupa_emulator.faults.seed == 9
        assert coupa_emulator.rate_limiter is not None  # the override replaced this directory's {"rate_limit": None}
        assert coupa_emulator.state.integration_by_code("CUSTOM-CODE") is not None
        assert coupa_emulator.state.integration_by_code(CODE) is None
        with session(coupa_emulator) as api:
            body = ihr(integration={"code": "CUSTOM-CODE"}, **{"document-type": "ServiceOrder"})
            assert api.post(IHR, json=body).status_code == 201


class TestNoIntegration:
    @pytest.fixture
    def coupa_integration_code(self) -> str:
        return ""

    def test_empty_code_registers_nothing(self, coupa_emulator: CoupaEmulator) -> None:
        assert coupa_emulator.state.snapshot(coupa_emulator.state.integrations) == []
