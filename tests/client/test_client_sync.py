"""CoupaClient (requests) against the Coupa emulator over a real loopback socket: every call, every retry path,
tokens, the no-duplicate guarantee for creates, paging, validation before any request, redirects and secrets."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaBadRequestError,
    CoupaError,
    CoupaNotFoundError,
    CoupaRateLimitError,
    CoupaServerError,
    CoupaTransportError,
    CoupaValidationError,
)
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator, Fault, OAuthClient

CODE = "AIRFLOW-TEST"  # the integration the coupa_emulator fixture registers
FAST = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, token_settle=0)
IHR = "/api/integration_history_records"


@pytest.fixture
def coupa_emulator_options() -> dict[str, Any]:
    """No emulator-side rate limit: these tests make many calls in a row (the 429 tests use faults)."""
    return {"rate_limit": None}


def make_client(
    coupa: CoupaEmulator,
    *,
    cache: TokenCache | None = None,
    session: requests.Session | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    **settings: Any,
) -> CoupaClient:
    settings = {"rate_limit": None, "retry": FAST, **settings}
    if "api_key" not in settings:
        settings["client_id"] = client_id or coupa.credentials.client_id
        settings["client_secret"] = client_secret or coupa.credentials.client_secret
    config = ClientConfig(coupa.url, **settings)
    return CoupaClient(config, token_cache=cache if cache is not None else TokenCache(), session=session)


@pytest.fixture
def client(coupa_emulator: CoupaEmulator) -> Iterator[CoupaClient]:
    with make_client(coupa_emulator) as c:
        yield c


def record(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "document_type": "InvoiceHeader",
        "document_id": 1001,
        "contact_alert_type": "Functional",
        "status": "Success",
        "integration": CODE,
    }
    fields.update(overrides)
    return fields


def seed(coupa: CoupaEmulator, count: int, **wire: Any) -> list[dict[str, Any]]:
    """Store records straight into the emulator (no HTTP), document ids 1..count."""
    return [
        coupa.state.create(
            coupa.state.records,
            {
                "document-type": "InvoiceHeader",
                "document-id": i + 1,
                "contact-alert-type": "Functional",
                "status": "Success",
                **wire,
            },
            user=None,
        )
        for i in range(count)
    ]


def api_calls(coupa: CoupaEmulator, method: str | None = None, path: str = "/api/") -> list[tuple[str, int | None]]:
    """(method, status) of each API request the emulator saw on ``path`` (token requests excluded)."""
    return [(r.method, r.status) for r in coupa.requests(method=method, path_contains=path)]


def _dash(value: Any) -> Any:
    """A client answer (snake_case keys) back in Coupa's dash-case, to compare with the emulator's state."""
    if isinstance(value, dict):
        return {k.replace("_", "-"): _dash(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dash(v) for v in value]
    return value


class RecordingSession(requests.Session):
    """A requests session that remembers each request's method, URL, query parameters and headers."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(
            {"method": method, "url": url, "params": list(kwargs.get("params") or []), "headers": kwargs.get("headers")}
        )
        return super().request(method, url, *args, **kwargs)

    def gets(self, path: str = IHR) -> list[dict[str, str]]:
        return [dict(s["params"]) for s in self.sent if s["method"] == "GET" and s["url"].endswith(path)]


# ================================================================================================ every call
def test_create_record_stores_one_record_and_returns_it(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    created = client.create_record(**record(external_id="ERP-1001", responses=[("E0", "all good")]))
    (stored,) = coupa_emulator.records()
    assert _dash(created) == stored
    assert created["id"] == stored["id"]
    assert created["document_type"] == "InvoiceHeader"
    assert created["integration"]["code"] == CODE
    assert created["responses"][0]["response_code"] == "E0"
    assert created["resolved"] is False
    assert api_calls(coupa_emulator) == [("POST", 201)]
    assert coupa_emulator.alerts == coupa_emulator.exported == coupa_emulator.acknowledged == []


@pytest.mark.parametrize(
    ("action", "alerts", "exported", "acknowledged"),
    [
        ("create_alert", 1, 0, 0),
        ("mark_exported", 0, 1, 0),
        ("create_alert_and_mark_exported", 1, 1, 0),
        ("acknowledge", 0, 0, 1),
    ],
)
@pytest.mark.parametrize("style", ["action=", "method"])
def test_each_ihr_action_has_its_side_effect(
    coupa_emulator: CoupaEmulator,
    client: CoupaClient,
    action: str,
    alerts: int,
    exported: int,
    acknowledged: int,
    style: str,
) -> None:
    fields = record(status="Error", contact_alert_type="Technical", document_id=77)
    created = client.create_record(action=action, **fields) if style == "action=" else getattr(client, action)(**fields)
    assert [r["id"] for r in coupa_emulator.records()] == [created["id"]]
    assert coupa_emulator.requests(method="POST")[-1].path == f"{IHR}/{action}"
    assert len(coupa_emulator.alerts) == alerts
    assert len(coupa_emulator.exported) == exported
    assert len(coupa_emulator.acknowledged) == acknowledged
    for effect in coupa_emulator.alerts + coupa_emulator.exported + coupa_emulator.acknowledged:
        assert (effect["record_id"], effect["document_id"]) == (created["id"], 77)
    if alerts:
        assert coupa_emulator.alerts[0]["contact_alert_type"] == "Technical"


def test_get_record_whole_and_trimmed_by_fields(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    created = client.create_record(**record())
    assert client.get_record(created["id"]) == created
    trimmed = client.get_record(created["id"], fields=["id", "status", {"integration": ["code"]}])
    assert trimmed == {"id": created["id"], "status": "Success", "integration": {"code": CODE}}


def test_get_record_of_an_unknown_id_is_not_found_at_once(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    with pytest.raises(CoupaNotFoundError) as caught:
        client.get_record(4242)
    assert caught.value.status == 404
    assert api_calls(coupa_emulator) == [("GET", 404)]


def test_update_record_changes_only_what_is_given(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    created = client.create_record(**record(external_id="ERP-1"))
    updated = client.update_record(created["id"], status="Error", responses=[("E42", "Supplier blocked")])
    stored = coupa_emulator.record(created["id"])
    assert stored["status"] == updated["status"] == "Error"
    assert stored["external-id"] == "ERP-1"
    assert [(r["response-code"], r["response-message"]) for r in stored["responses"]] == [("E42", "Supplier blocked")]


def test_resolve_and_unresolve(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    created = client.create_record(**record(status="Error"))
    assert client.resolve(created["id"])["resolved"] is True
    assert coupa_emulator.record(created["id"])["resolved"] is True
    assert client.unresolve(created["id"])["resolved"] is False
    assert coupa_emulator.record(created["id"])["resolved"] is False
    assert api_calls(coupa_emulator, "PUT") == [("PUT", 200), ("PUT", 200)]


def test_query_records_with_coupa_operators(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    coupa_emulator.add_integration("OTHER")
    rows = []
    for i in range(1, 13):
        rows.append(
            coupa_emulator.state.create(
                coupa_emulator.state.records,
                {
                    "document-type": "InvoiceHeader" if i % 2 else "OrderHeader",
                    "document-id": i,
                    "contact-alert-type": "Functional",
                    "status": "Error" if i % 3 == 0 else "Success",
                    "external-id": f"ERP-{i:03d}" if i < 10 else None,
                    "integration": {"code": CODE if i <= 6 else "OTHER"},
                },
                user=None,
            )
        )
    coupa_emulator.resolve(4)
    since = rows[0]["created-at"]

    def ids(filters: dict[str, Any], **kw: Any) -> list[int]:
        return [r["id"] for r in client.query_records(filters, **kw)]

    assert ids({"status": "Error"}) == [3, 6, 9, 12]
    assert ids({"document_type": "OrderHeader", "status[not_eq]": "Error"}) == [2, 4, 8, 10]
    assert ids({"document_id[gt]": 9}) == [10, 11, 12]
    assert ids({"document_id[lt_or_eq]": 2}) == [1, 2]
    assert ids({"document_id[in]": [1, 5, 12]}) == [1, 5, 12]
    assert ids({"document_id[not_in]": range_list(1, 10)}) == [11, 12]
    assert ids({"external_id[starts_with]": "ERP-00"}) == list(range(1, 10))
    assert ids({"external_id[contains]": "-00", "external_id[ends_with]": "7"}) == [7]
    assert ids({"external_id[blank]": True}) == [10, 11, 12]
    assert ids({"integration[code]": "OTHER"}) == list(range(7, 13))
    assert ids({"resolved": False, "integration[code]": CODE}) == [1, 2, 3, 5, 6]
    assert ids({"created_at[gt_or_eq]": since}) == list(range(1, 13))
    assert ids({"status": "Nothing"}) == []
    trimmed = list(client.query_records({"status": "Error"}, fields=["document_id", {"integration": ["code"]}]))
    assert trimmed[0] == {"id": 3, "document_id": 3, "integration": {"code": CODE}}


def range_list(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


def test_runs_move_through_run_success_and_fail(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    run = client.create_run(CODE)
    assert run["status"] == "pending"
    assert run["integration"]["code"] == CODE
    running = client.run_transition(run["id"], "run", total_records=10)
    assert (running["status"], running["total_records"]) == ("running", 10)
    assert running["start_time"]
    done = client.run_transition(run["id"], "success", records_processed=10)
    assert (done["status"], done["records_processed"]) == ("successful", 10)
    assert done["end_time"]
    assert client.get_run(run["id"])["status"] == "successful"
    assert coupa_emulator.integration_runs(id=run["id"])[0]["status"] == "successful"

    other = client.create_run(CODE, total_records=3)
    client.run_transition(other["id"], "run")
    assert client.run_transition(other["id"], "fail")["status"] == "failed"
    assert coupa_emulator.integration_runs(id=other["id"])[0]["status"] == "failed"
    # Coupa refuses to move a finished run: a 400, not retried.
    with pytest.raises(CoupaBadRequestError, match="cannot change once the run is failed"):
        client.run_transition(other["id"], "run")
    assert api_calls(coupa_emulator, "PUT")[-1] == ("PUT", 400)


def test_integration_errors_create_query_and_resolve(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    run = client.create_run(CODE)
    error = client.create_integration_error(integration_run=run["id"], **record(status="Error"))
    alerted = client.create_integration_error(
        action="create_alert", integration_run=run["id"], **record(status="Error", document_id=2)
    )
    assert [e["id"] for e in coupa_emulator.integration_errors()] == [error["id"], alerted["id"]]
    assert len(coupa_emulator.alerts) == 1
    assert [e["id"] for e in client.query_integration_errors({"integration_run_id": run["id"]})] == [
        error["id"],
        alerted["id"],
    ]
    assert [e["id"] for e in client.query_integration_errors({"document_id": 2})] == [alerted["id"]]
    assert client.resolve_integration_error(error["id"])["resolved"] is True
    assert coupa_emulator.integration_errors(id=error["id"])[0]["resolved"] is True
    assert client.resolve_integration_error(error["id"], resolved=False)["resolved"] is False
    assert [e["id"] for e in client.query_integration_errors({"resolved": False}, max_records=1)] == [error["id"]]
    assert [e["id"] for e in client.get_run(run["id"])["integration_errors"]] == [error["id"], alerted["id"]]


def test_get_integration(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    integration = client.get_integration(CODE)
    assert integration is not None
    assert integration["code"] == CODE
    assert client.get_integration("NOPE") is None


def test_a_refusal_by_coupa_is_a_bad_request_with_its_words_and_not_retried(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    with pytest.raises(CoupaBadRequestError) as caught:
        client.create_record(**record(integration="NO-SUCH-CODE"))
    assert caught.value.status == 400
    assert any("NO-SUCH-CODE" in m for m in caught.value.messages)
    assert "gave up" not in str(caught.value)
    assert api_calls(coupa_emulator) == [("POST", 400)]
    assert coupa_emulator.records() == []


def test_extra_document_types_allow_a_newer_type() -> None:
    newer = "Payables::FutureThing"
    with CoupaEmulator(rate_limit=None, extra_document_types=[newer]) as coupa:
        coupa.add_integration(CODE)
        with make_client(coupa) as strict, pytest.raises(CoupaValidationError) as caught:
            strict.create_record(**record(document_type=newer))
        assert "extra_document_types" in str(caught.value)
        assert coupa.requests() == []
        with make_client(coupa, extra_document_types=(newer,)) as allowing:
            created = allowing.create_record(**record(document_type=newer))
        assert coupa.records()[0]["document-type"] == newer == created["document_type"]


# ================================================================================================ retries
def test_429_with_retry_after_waits_as_asked(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    client.token()
    coupa_emulator.faults.storm(count=1, retry_after=1)
    started = time.monotonic()
    assert client.get_integration(CODE) is not None
    assert time.monotonic() - started >= 1.0
    assert api_calls(coupa_emulator) == [("GET", 429), ("GET", 200)]


def test_429_without_retry_after_backs_off_by_itself(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    client.token()
    coupa_emulator.faults.storm(count=3)
    started = time.monotonic()
    assert client.get_integration(CODE) is not None
    assert time.monotonic() - started < 1.0
    assert api_calls(coupa_emulator) == [("GET", 429)] * 3 + [("GET", 200)]


def test_the_emulators_own_rate_limit_is_ridden_out() -> None:
    with CoupaEmulator(rate_limit=25, burst=5) as coupa:
        coupa.add_integration(CODE)
        with make_client(coupa) as client:  # no client-side throttle: Coupa's 429s do the pacing
            for _ in range(6):
                assert client.get_integration(CODE) is not None
        statuses = [s for _, s in api_calls(coupa)]
        assert statuses.count(200) == 6
        assert 429 in statuses


def test_the_client_throttle_keeps_under_coupas_limit() -> None:
    with CoupaEmulator(rate_limit=25, burst=5) as coupa:
        coupa.add_integration(CODE)
        with make_client(coupa, rate_limit=20, burst=5) as client:
            for _ in range(12):
                client.get_integration(CODE)
        assert 429 not in [s for _, s in api_calls(coupa)]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_are_retried(coupa_emulator: CoupaEmulator, client: CoupaClient, status: int) -> None:
    client.token()
    coupa_emulator.faults.add(Fault("status", status=status, count=2))
    assert client.get_integration(CODE) is not None
    assert api_calls(coupa_emulator) == [("GET", status), ("GET", status), ("GET", 200)]


def test_a_503_on_a_create_is_sent_again_without_a_lookup(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    client.token()
    coupa_emulator.faults.add(Fault("status", status=503, count=1))
    created = client.create_record(**record())
    assert api_calls(coupa_emulator) == [("POST", 503), ("POST", 201)]
    assert [r["id"] for r in coupa_emulator.records()] == [created["id"]]


def test_a_500_on_a_create_is_looked_up_before_it_is_sent_again(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    client.token()
    coupa_emulator.faults.add(Fault("status", status=500, count=1))
    created = client.create_record(**record())
    assert api_calls(coupa_emulator) == [("POST", 500), ("GET", 200), ("POST", 201)]
    assert [r["id"] for r in coupa_emulator.records()] == [created["id"]]


def test_a_read_timeout_is_retried(coupa_emulator: CoupaEmulator) -> None:
    with make_client(coupa_emulator, read_timeout=0.3) as client:
        client.token()
        coupa_emulator.faults.latency(0.6, count=1, methods=("GET",))
        started = time.monotonic()
        assert client.get_integration(CODE) is not None
        assert time.monotonic() - started >= 0.3
    # The emulator logs the stalled request once it has answered into the void.
    deadline = time.monotonic() + 2
    while len(coupa_emulator.requests(method="GET")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.status for r in coupa_emulator.requests(method="GET")] == [200, 200]


def test_a_create_that_timed_out_is_found_not_sent_again(coupa_emulator: CoupaEmulator) -> None:
    with make_client(coupa_emulator, read_timeout=0.3) as client:
        client.token()
        # Coupa acts 0.4 s after the create arrives, past the client's patience; the lookup that follows is slow
        # too, so it reads Coupa's state after the create has landed.
        coupa_emulator.faults.latency(0.4, count=1, methods=("POST",))
        coupa_emulator.faults.latency(0.6, count=1, methods=("GET",))
        created = client.create_record(**record())
    (stored,) = coupa_emulator.records()
    assert created["id"] == stored["id"]
    assert len(coupa_emulator.requests(method="POST", path_contains="/api/")) == 1


def test_a_connection_dropped_before_acting_is_retried(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    client.token()
    coupa_emulator.faults.drop(after_acting=False, count=2, methods=("GET",))
    assert client.get_integration(CODE) is not None
    assert api_calls(coupa_emulator) == [("GET", None), ("GET", None), ("GET", 200)]


def test_a_connection_dropped_after_an_update_acted_is_retried(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    created = client.create_record(**record())
    coupa_emulator.faults.drop(after_acting=True, count=1, methods=("PUT",))
    assert client.update_record(created["id"], status="Error")["status"] == "Error"
    assert api_calls(coupa_emulator, "PUT") == [("PUT", None), ("PUT", 200)]


def test_a_permanent_503_gives_up_after_the_allowed_attempts(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    client.token()
    coupa_emulator.faults.error_rate(503, 1.0)
    with pytest.raises(CoupaServerError) as caught:
        client.get_integration(CODE)
    assert caught.value.status == 503
    assert caught.value.attempts == 6
    assert "gave up after 6 attempts" in str(caught.value)
    assert api_calls(coupa_emulator) == [("GET", 503)] * 6


def test_max_attempts_bounds_the_attempts(coupa_emulator: CoupaEmulator) -> None:
    policy = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.05, token_settle=0)
    with make_client(coupa_emulator, retry=policy) as client:
        coupa_emulator.faults.error_rate(502, 1.0, methods=("POST",))
        with pytest.raises(CoupaServerError, match="gave up after 2 attempts"):
            client.create_record(**record())
    assert [m for m, _ in api_calls(coupa_emulator)] == ["POST", "GET", "POST"]  # a 502 is looked up first
    assert coupa_emulator.records() == []


def test_a_retry_after_too_long_gives_up_at_once(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    client.token()
    coupa_emulator.faults.storm(count=5, retry_after=600)
    started = time.monotonic()
    with pytest.raises(CoupaRateLimitError) as caught:
        client.get_integration(CODE)
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 600
    assert "max_retry_after" in str(caught.value)
    assert api_calls(coupa_emulator) == [("GET", 429)]


def test_retry_after_as_an_http_date_from_the_emulator(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    from email.utils import formatdate

    client.token()
    coupa_emulator.faults.storm(count=1, retry_after=formatdate(time.time() + 2, usegmt=True))
    started = time.monotonic()
    assert client.get_integration(CODE) is not None
    assert time.monotonic() - started >= 0.9  # whole seconds on the wire: 1 to 2 s from now
    assert api_calls(coupa_emulator) == [("GET", 429), ("GET", 200)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_listening_is_a_transport_error_saying_nothing_was_sent() -> None:
    config = ClientConfig(f"http://127.0.0.1:{_free_port()}", "cid", "secret", rate_limit=None, retry=FAST)
    with CoupaClient(config, token_cache=TokenCache()) as client, pytest.raises(CoupaTransportError) as caught:
        client.get_integration(CODE)
    assert caught.value.sent is False
    assert caught.value.attempts == 6
    assert "gave up after 6 attempts" in str(caught.value)


# ================================================================================================ tokens
def test_a_token_that_expires_mid_run_is_refreshed_once(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    created = client.create_record(**record())
    assert coupa_emulator.tokens_issued == 1
    coupa_emulator.expire_tokens()
    assert client.get_record(created["id"])["id"] == created["id"]
    assert coupa_emulator.tokens_issued == 2
    assert api_calls(coupa_emulator) == [("POST", 201), ("GET", 401), ("GET", 200)]
    client.get_record(created["id"])
    assert coupa_emulator.tokens_issued == 2


def test_a_short_lived_token_is_renewed_before_it_expires() -> None:
    with CoupaEmulator(rate_limit=None, token_lifetime=2) as coupa:
        coupa.add_integration(CODE)
        with make_client(coupa) as client:
            client.get_integration(CODE)
            time.sleep(1.1)  # past the renewal point (half of a 2 s life), before expiry
            client.get_integration(CODE)
        assert coupa.tokens_issued == 2
        assert api_calls(coupa) == [("GET", 200), ("GET", 200)]  # renewed ahead, never refused


def test_a_record_of_a_run_whose_answer_was_lost_is_not_made_twice(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    run = client.create_run(CODE)
    client.create_record(**record(integration_run=run["id"], document_id=5))
    coupa_emulator.faults.drop(after_acting=True, count=1, methods=("POST",))
    created = client.create_record(**record(integration_run=run["id"], document_id=5, status="Error"))
    assert [r["id"] for r in coupa_emulator.records(status="Error")] == [created["id"]]
    assert created["integration_run_id"] == run["id"]
    assert len(coupa_emulator.records()) == 2


def test_a_second_401_fails_after_one_refresh(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    client.token()
    coupa_emulator.faults.add(Fault("status", status=401, count=5, path_contains="/api/"))
    with pytest.raises(CoupaAuthError) as caught:
        client.get_integration(CODE)
    assert coupa_emulator.tokens_issued == 2
    assert api_calls(coupa_emulator) == [("GET", 401), ("GET", 401)]
    assert "freshly fetched token" in str(caught.value)


def test_one_token_for_a_thousand_calls(coupa_emulator: CoupaEmulator) -> None:
    cache = TokenCache()
    with make_client(coupa_emulator, cache=cache) as client:
        for _ in range(1000):
            client.get_integration(CODE)
    assert coupa_emulator.tokens_issued == 1
    assert cache.fetches == 1
    assert len(api_calls(coupa_emulator)) == 1000


def test_clients_sharing_a_cache_share_the_token(coupa_emulator: CoupaEmulator) -> None:
    cache = TokenCache()
    with make_client(coupa_emulator, cache=cache) as first, make_client(coupa_emulator, cache=cache) as second:
        first.get_integration(CODE)
        second.get_integration(CODE)
    assert coupa_emulator.tokens_issued == 1


def test_concurrent_threads_cause_one_token_fetch(coupa_emulator: CoupaEmulator) -> None:
    cache = TokenCache()
    clients = [make_client(coupa_emulator, cache=cache) for _ in range(12)]
    barrier = threading.Barrier(len(clients))

    def work(client: CoupaClient) -> dict[str, Any] | None:
        barrier.wait()
        return client.get_integration(CODE)

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(work, clients))
    assert all(r is not None and r["code"] == CODE for r in results)
    assert coupa_emulator.tokens_issued == 1
    assert cache.fetches == 1
    for c in clients:
        c.close()


def test_a_wrong_secret_fails_on_the_token_request_with_a_hint(coupa_emulator: CoupaEmulator) -> None:
    with make_client(coupa_emulator, client_secret="not-the-secret") as client, pytest.raises(CoupaAuthError) as caught:
        client.get_integration(CODE)
    assert caught.value.path == "/oauth2/token"
    assert "Setup > OAuth2" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    assert [r.status for r in coupa_emulator.requests()] == [401]


def test_the_api_key_mode_sends_the_key_and_fetches_no_token() -> None:
    key = "k" * 40
    with CoupaEmulator(rate_limit=None, api_keys=[key]) as coupa:
        coupa.add_integration(CODE)
        session = RecordingSession()
        with make_client(coupa, api_key=key, session=session) as client:
            created = client.create_record(**record())
            assert client.get_record(created["id"])["id"] == created["id"]
            assert [r["id"] for r in client.query_records()] == [created["id"]]
        assert coupa.tokens_issued == 0
        assert coupa.requests(path_contains="/oauth2") == []
        assert len(session.sent) == 3
        for sent in session.sent:
            assert sent["headers"]["X-COUPA-API-KEY"] == key
            assert "Authorization" not in sent["headers"]
        with make_client(coupa, api_key="w" * 40) as wrong, pytest.raises(CoupaAuthError):
            wrong.get_integration(CODE)
        assert api_calls(coupa)[-1] == ("GET", 401)  # once: nothing to refresh
        assert len(api_calls(coupa)) == 4


# ================================================================================================ no duplicates
def test_a_create_whose_answer_was_lost_after_acting_is_not_made_twice(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    client.create_record(**record(document_id=1))  # an unrelated record the lookup must not adopt
    coupa_emulator.faults.drop(after_acting=True, count=1, methods=("POST",))
    created = client.create_record(**record(document_id=2, responses=[("E1", "x")]))
    records = coupa_emulator.records(document_id=2)
    assert len(records) == 1
    assert _dash(created) == records[0]
    assert len(coupa_emulator.records()) == 2
    assert api_calls(coupa_emulator)[1:] == [("POST", None), ("GET", 200)]


def test_an_alert_whose_answer_was_lost_alerts_once(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    coupa_emulator.faults.drop(after_acting=True, count=1, methods=("POST",))
    created = client.create_alert(**record(status="Error"))
    assert [r["id"] for r in coupa_emulator.records()] == [created["id"]]
    assert len(coupa_emulator.alerts) == 1


def test_a_create_dropped_before_acting_is_made_once_by_the_retry(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    coupa_emulator.faults.drop(after_acting=False, count=1, methods=("POST",))
    created = client.create_record(**record())
    (stored,) = coupa_emulator.records()
    assert created["id"] == stored["id"]
    assert api_calls(coupa_emulator) == [("POST", None), ("GET", 200), ("POST", 201)]


@pytest.mark.parametrize("after_acting", [True, False])
def test_create_run_after_a_dropped_answer_makes_one_run(
    coupa_emulator: CoupaEmulator, client: CoupaClient, after_acting: bool
) -> None:
    coupa_emulator.faults.drop(after_acting=after_acting, count=1, methods=("POST",))
    run = client.create_run(CODE)
    (stored,) = coupa_emulator.integration_runs()
    assert run["id"] == stored["id"]
    assert run["status"] == "pending"


@pytest.mark.parametrize("after_acting", [True, False])
def test_run_success_after_a_dropped_answer_succeeds_once(
    coupa_emulator: CoupaEmulator, client: CoupaClient, after_acting: bool
) -> None:
    run = client.create_run(CODE)
    client.run_transition(run["id"], "run", total_records=1)
    coupa_emulator.faults.drop(after_acting=after_acting, count=1, methods=("PUT",))
    done = client.run_transition(run["id"], "success")
    assert done["status"] == "successful"
    assert coupa_emulator.integration_runs(id=run["id"])[0]["status"] == "successful"
    puts = api_calls(coupa_emulator, "PUT", "/success")
    assert puts == ([("PUT", None)] if after_acting else [("PUT", None), ("PUT", 200)])


def test_an_integration_error_whose_answer_was_lost_is_not_made_twice(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    run = client.create_run(CODE)
    coupa_emulator.faults.drop(after_acting=True, count=1, methods=("POST",))
    error = client.create_integration_error(integration_run=run["id"], **record(status="Error"))
    assert [e["id"] for e in coupa_emulator.integration_errors()] == [error["id"]]


# ================================================================================================ paging
@pytest.mark.parametrize(("count", "requests_made"), [(0, 1), (1, 1), (50, 2), (51, 2), (1000, 21)])
def test_paging_returns_every_record_once_in_order(
    coupa_emulator: CoupaEmulator, client: CoupaClient, count: int, requests_made: int
) -> None:
    seed(coupa_emulator, count)
    ids = [r["id"] for r in client.query_records()]
    assert ids == list(range(1, count + 1))
    assert len(api_calls(coupa_emulator, "GET")) == requests_made


def test_paging_stops_at_max_records_asking_only_for_what_is_left(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 1000)
    session = RecordingSession()
    with make_client(coupa_emulator, session=session) as client:
        assert [r["id"] for r in client.query_records(max_records=120)] == list(range(1, 121))
        assert [p["limit"] for p in session.gets()] == ["50", "50", "20"]
        assert [p.get("id[gt]") for p in session.gets()] == [None, "50", "100"]
        assert list(client.query_records(max_records=0)) == []
    assert len(api_calls(coupa_emulator)) == 3


def test_paging_by_another_field_uses_offsets(coupa_emulator: CoupaEmulator) -> None:
    for i in range(120):
        doc = (i * 37) % 120 + 1  # every document id once, out of id order
        coupa_emulator.state.create(
            coupa_emulator.state.records,
            {"document-type": "InvoiceHeader", "document-id": doc, "contact-alert-type": "Both"},
            user=None,
        )
    session = RecordingSession()
    with make_client(coupa_emulator, session=session) as client:
        docs = [r["document_id"] for r in client.query_records(order_by="document_id", direction="desc")]
    assert docs == list(range(120, 0, -1))
    assert [p["offset"] for p in session.gets()] == ["0", "50", "100"]
    assert all(p["order_by"] == "document_id" and p["dir"] == "desc" for p in session.gets())
    assert not any("id[gt]" in p or "id[lt]" in p for p in session.gets())


@pytest.mark.parametrize("direction", ["desc", "DESC"])
def test_paging_descending_by_id(coupa_emulator: CoupaEmulator, client: CoupaClient, direction: str) -> None:
    seed(coupa_emulator, 120)
    ids = [r["id"] for r in client.query_records(direction=direction)]
    assert ids == list(range(120, 0, -1))


def test_paging_from_an_id(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    seed(coupa_emulator, 120)
    assert [r["id"] for r in client.query_records({"id[gt]": 60})] == list(range(61, 121))


def test_paging_with_fields_keeps_the_id(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    seed(coupa_emulator, 60)
    rows = list(client.query_records(fields=["status"]))
    assert len(rows) == 60
    assert rows[-1] == {"id": 60, "status": "Success"}


def test_resolving_records_while_walking_unresolved_ones_skips_none(
    coupa_emulator: CoupaEmulator, client: CoupaClient
) -> None:
    seed(coupa_emulator, 120)
    seen = []
    for row in client.query_records({"resolved": False}):
        seen.append(row["id"])
        client.resolve(row["id"])
    assert seen == list(range(1, 121))
    assert coupa_emulator.records(resolved=False) == []

    # Why the walk pages by key: the same loop paged by offset skips every record that moved up a page.
    for row in coupa_emulator.records():
        coupa_emulator.resolve(row["id"], False)
    by_offset = []
    for row in client.query_records({"resolved": False}, order_by="document_id"):
        by_offset.append(row["id"])
        client.resolve(row["id"])
    assert len(by_offset) < 120


def test_a_query_is_lazy_but_validated_at_once(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    pages = client.query_records({"status": "Error"})
    assert coupa_emulator.requests() == []
    assert list(pages) == []
    assert len(api_calls(coupa_emulator)) == 1


# ================================================================================================ validation
INVALID: dict[str, Callable[[CoupaClient], Any]] = {
    "missing required fields": lambda c: c.create_record(status="Success"),
    "unknown document type": lambda c: c.create_record(**record(document_type="InvoiceHeadr")),
    "non-integer document id": lambda c: c.create_record(**record(document_id="12a")),
    "256-character string": lambda c: c.create_record(**record(external_id="x" * 256)),
    "unknown field": lambda c: c.create_record(**record(stauts="Error")),
    "read-only resolved": lambda c: c.create_record(**record(resolved=True)),
    "bad contact_alert_type": lambda c: c.create_record(**record(contact_alert_type="Everyone")),
    "bad responses shape": lambda c: c.create_record(**record(responses="it broke")),
    "bad responses item": lambda c: c.create_record(**record(responses=[("E1",)])),
    "bad integration reference": lambda c: c.create_record(**record(integration=5)),
    "bad action": lambda c: c.create_record(action="delete", **record()),
    "bad filter operator": lambda c: c.query_records({"status[like]": "Err"}),
    "unknown filter field": lambda c: c.query_records({"stauts": "Error"}),
    "bad filter value": lambda c: c.query_records({"document_id": "many"}),
    "bad fields= on a query": lambda c: c.query_records(fields=["stauts"]),
    "bad fields= on a get": lambda c: c.get_record(1, fields="id"),
    "empty fields= on a get": lambda c: c.get_record(1, fields=[]),
    "bad order_by": lambda c: c.query_records(order_by="nope"),
    "bad direction": lambda c: c.query_records(direction="up"),
    "bad max_records": lambda c: c.query_records(max_records=-1),
    "bad run action": lambda c: c.run_transition(1, "explode"),
    "bad run field": lambda c: c.run_transition(1, "run", total_records=-1),
    "bad run id": lambda c: c.run_transition("abc", "run"),
    "bad get_run id": lambda c: c.get_run(1.5),
    "create_run without a code": lambda c: c.create_run(""),
    "bad record id on get": lambda c: c.get_record(0),
    "bad record id on resolve": lambda c: c.resolve(-1),
    "bad record id on unresolve": lambda c: c.unresolve("x"),
    "bad record id on update": lambda c: c.update_record(True, status="Error"),
    "empty update": lambda c: c.update_record(1),
    "update of resolved": lambda c: c.update_record(1, resolved=True),
    "error without its run": lambda c: c.create_integration_error(**record()),
    "bad error action": lambda c: c.create_integration_error(action="acknowledge", integration_run=1, **record()),
    "bad error id": lambda c: c.resolve_integration_error(0),
    "bad error filter": lambda c: c.query_integration_errors({"nope": 1}),
}


@pytest.mark.parametrize("call", INVALID.values(), ids=INVALID.keys())
def test_validation_errors_are_raised_before_any_request(
    coupa_emulator: CoupaEmulator, client: CoupaClient, call: Callable[[CoupaClient], Any]
) -> None:
    with pytest.raises(CoupaValidationError) as caught:
        call(client)
    assert isinstance(caught.value, ValueError)
    assert caught.value.status is None
    assert str(caught.value).startswith("Not sent to Coupa")
    assert coupa_emulator.requests() == []
    assert coupa_emulator.tokens_issued == 0


def test_a_document_type_typo_suggests_the_right_one(coupa_emulator: CoupaEmulator, client: CoupaClient) -> None:
    with pytest.raises(CoupaValidationError) as caught:
        client.create_record(**record(document_type="invoiceheader"))
    assert "did you mean 'InvoiceHeader'?" in str(caught.value)
    assert "extra_document_types" in str(caught.value)
    with pytest.raises(CoupaValidationError, match="did you mean status"):
        client.create_record(**record(stauts="Error"))
    assert coupa_emulator.requests() == []


# ================================================================================================ redirects
@contextlib.contextmanager
def redirecting_server() -> Iterator[tuple[str, list[str], list[str]]]:
    """A server on 127.0.0.1 that answers 302 to everything, pointing at a second server that counts visitors."""
    redirected: list[str] = []
    visited: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def _any(self) -> None:
            visited.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *args: Any) -> None:
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}"

    class Redirect(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            redirected.append(f"{self.command} {self.path}")
            self.send_response(302)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *args: Any) -> None:
            pass

    redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in (elsewhere, redirect)]
    for t in threads:
        t.start()
    try:
        yield f"http://127.0.0.1:{redirect.server_address[1]}", redirected, visited
    finally:
        for s in (redirect, elsewhere):
            s.shutdown()
            s.server_close()


def test_a_redirected_api_call_is_not_followed() -> None:
    with redirecting_server() as (url, redirected, visited):
        config = ClientConfig(url, api_key="k" * 40, rate_limit=None, retry=FAST)
        with CoupaClient(config) as client, pytest.raises(CoupaError) as caught:
            client.get_record(5)
    assert caught.value.status == 302
    assert "redirects are not followed" in str(caught.value)
    assert redirected == ["GET /api/integration_history_records/5"]
    assert visited == []


def test_a_redirected_token_request_is_not_followed() -> None:
    with redirecting_server() as (url, redirected, visited):
        config = ClientConfig(url, "cid", "redirect-secret", rate_limit=None, retry=FAST)
        with CoupaClient(config, token_cache=TokenCache()) as client, pytest.raises(CoupaError) as caught:
            client.create_record(**record())
    assert caught.value.status == 302
    assert "redirects are not followed" in str(caught.value)
    assert redirected == ["POST /oauth2/token"]
    assert visited == []


# ================================================================================================ secrets
def test_no_secret_reaches_a_log_line_or_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret, wrong_secret = f"S3cret-{uuid.uuid4().hex}", f"Wr0ng-{uuid.uuid4().hex}"
    key, wrong_key = uuid.uuid4().hex + "K" * 8, uuid.uuid4().hex + "W" * 8
    texts: list[str] = []

    def failing(call: Callable[[], Any]) -> None:
        with pytest.raises(CoupaError) as caught:
            call()
        error = caught.value
        texts.extend([str(error), repr(error), *error.messages, error.hint or "", str(error.__context__)])

    with CoupaEmulator(clients=[OAuthClient("secret-test", secret)], api_keys=[key], rate_limit=None) as coupa:
        coupa.add_integration(CODE)
        with make_client(coupa, client_id="secret-test", client_secret=secret) as client:
            created = client.create_record(**record(responses=[("E1", "ok")]))
            list(client.query_records({"status": "Success"}, fields=["id"]))
            coupa.expire_tokens()  # a 401, then a refresh
            client.get_record(created["id"])
            coupa.faults.error_rate(503, 1.0, count=1)  # a retry warning
            client.get_record(created["id"])
            coupa.faults.drop(after_acting=True, count=1, methods=("POST",))  # the lookup after a lost answer
            client.create_record(**record(document_id=2))
            failing(lambda: client.create_record(**record(integration="NOPE")))  # a 400
            failing(lambda: client.get_record(99999))  # a 404
            coupa.faults.add(Fault("status", status=401, count=2, path_contains="/api/"))
            failing(lambda: client.get_integration(CODE))  # 401 twice
            texts.extend([repr(client.token()), str(client.token()), repr(client.config), str(client.config)])
        with make_client(coupa, client_id="secret-test", client_secret=wrong_secret) as bad:
            failing(lambda: bad.get_integration(CODE))  # the token endpoint says no
        with make_client(coupa, api_key=key) as keyed:
            keyed.create_record(**record(document_id=3))
            list(keyed.query_records())
            texts.extend([repr(keyed.config), str(keyed.config)])
        with make_client(coupa, api_key=wrong_key) as bad_key:
            failing(lambda: bad_key.get_integration(CODE))
        tokens = coupa.issued_tokens()

    assert len(tokens) >= 3
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG from the HTTP stack was captured
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    haystack = "\n".join(
        [caplog.text, *(r.getMessage() for r in caplog.records), *(repr(r.args) for r in caplog.records), *texts]
    )
    for value in (secret, wrong_secret, key, wrong_key, *tokens):
        assert value not in haystack
