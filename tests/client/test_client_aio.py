"""AsyncCoupaClient (httpx) against the Coupa emulator over a real loopback socket: the calls triggers and async
notifiers make, with the same retries, token handling and no-duplicate guarantee as the sync client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaError,
    CoupaNotFoundError,
    CoupaServerError,
    CoupaTransportError,
    CoupaValidationError,
)
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator, Fault

CODE = "AIRFLOW-TEST"  # the integration the coupa_emulator fixture registers
FAST = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, token_settle=0)
T = TypeVar("T")


@pytest.fixture
def coupa_emulator_options() -> dict[str, Any]:
    return {"rate_limit": None}


def config_for(coupa: CoupaEmulator, **settings: Any) -> ClientConfig:
    settings = {"rate_limit": None, "retry": FAST, **settings}
    if "api_key" not in settings:
        settings.setdefault("client_id", coupa.credentials.client_id)
        settings.setdefault("client_secret", coupa.credentials.client_secret)
    return ClientConfig(coupa.url, **settings)


def run(
    coupa: CoupaEmulator,
    body: Callable[[AsyncCoupaClient], Awaitable[T]],
    *,
    cache: TokenCache | None = None,
    **settings: Any,
) -> T:
    """Run ``body(client)`` in a fresh event loop with a client for ``coupa``."""

    token_cache = cache if cache is not None else TokenCache()

    async def main() -> T:
        async with AsyncCoupaClient(config_for(coupa, **settings), token_cache=token_cache) as client:
            return await body(client)

    return asyncio.run(main())


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


def seed(coupa: CoupaEmulator, count: int) -> None:
    for i in range(count):
        coupa.state.create(
            coupa.state.records,
            {"document-type": "InvoiceHeader", "document-id": i + 1, "contact-alert-type": "Both", "status": "Success"},
            user=None,
        )


def new_run(coupa: CoupaEmulator) -> int:
    return int(coupa.state.create(coupa.state.runs, {"integration": {"code": CODE}}, user=None)["id"])


def api_calls(coupa: CoupaEmulator, method: str | None = None, path: str = "/api/") -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in coupa.requests(method=method, path_contains=path)]


async def collect(client: AsyncCoupaClient, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return [r async for r in client.query_records(*args, **kwargs)]


# ================================================================================================ the calls
def test_create_record_and_an_action(coupa_emulator: CoupaEmulator) -> None:
    async def body(client: AsyncCoupaClient) -> tuple[dict[str, Any], dict[str, Any]]:
        return await client.create_record(**record()), await client.create_record(
            action="create_alert_and_mark_exported", **record(status="Error", document_id=2)
        )

    created, alerted = run(coupa_emulator, body)
    assert [r["id"] for r in coupa_emulator.records()] == [created["id"], alerted["id"]]
    assert created["integration"]["code"] == CODE
    assert [a["record_id"] for a in coupa_emulator.alerts] == [alerted["id"]]
    assert [e["record_id"] for e in coupa_emulator.exported] == [alerted["id"]]
    assert api_calls(coupa_emulator, "POST") == [("POST", 201), ("POST", 201)]


def test_get_record_whole_and_trimmed(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 1)

    async def body(client: AsyncCoupaClient) -> tuple[dict[str, Any], dict[str, Any]]:
        return await client.get_record(1), await client.get_record(1, fields=["status", {"integration": ["code"]}])

    whole, trimmed = run(coupa_emulator, body)
    assert whole["document_id"] == 1
    assert trimmed == {"status": "Success", "integration": None}
    with pytest.raises(CoupaNotFoundError):
        run(coupa_emulator, lambda c: c.get_record(999))


def test_query_records_pages_filters_and_trims(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 120)
    coupa_emulator.resolve(7)

    async def body(client: AsyncCoupaClient) -> dict[str, list[Any]]:
        return {
            "all": [r["id"] for r in await collect(client)],
            "desc": [r["id"] for r in await collect(client, direction="desc", max_records=60)],
            "filtered": [r["id"] for r in await collect(client, {"document_id[in]": [3, 7, 90], "resolved": False})],
            "trimmed": await collect(client, {"id[gt]": 118}, fields=["status"]),
            "offset": [r["document_id"] for r in await collect(client, order_by="document_id", direction="desc")],
        }

    out = run(coupa_emulator, body)
    assert out["all"] == list(range(1, 121))
    assert out["desc"] == list(range(120, 60, -1))
    assert out["filtered"] == [3, 90]
    assert out["trimmed"] == [{"id": 119, "status": "Success"}, {"id": 120, "status": "Success"}]
    assert out["offset"] == list(range(120, 0, -1))


def test_run_transition_through_run_and_success_and_fail(coupa_emulator: CoupaEmulator) -> None:
    first, second = new_run(coupa_emulator), new_run(coupa_emulator)

    async def body(client: AsyncCoupaClient) -> list[dict[str, Any]]:
        return [
            await client.run_transition(first, "run", total_records=5),
            await client.run_transition(first, "success", records_processed=5),
            await client.run_transition(second, "run"),
            await client.run_transition(second, "fail"),
        ]

    running, done, _, failed = run(coupa_emulator, body)
    assert (running["status"], running["total_records"]) == ("running", 5)
    assert (done["status"], done["records_processed"]) == ("successful", 5)
    assert failed["status"] == "failed"
    assert [r["status"] for r in coupa_emulator.integration_runs()] == ["successful", "failed"]


def test_the_api_key_mode_fetches_no_token() -> None:
    key = "k" * 40
    with CoupaEmulator(rate_limit=None, api_keys=[key]) as coupa:
        coupa.add_integration(CODE)
        created = run(coupa, lambda c: c.create_record(**record()), api_key=key)
        assert coupa.records()[0]["id"] == created["id"]
        assert coupa.tokens_issued == 0
        assert coupa.requests(path_contains="/oauth2") == []


# ================================================================================================ retries
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(coupa_emulator: CoupaEmulator, status: int) -> None:
    seed(coupa_emulator, 1)
    coupa_emulator.faults.add(Fault("status", status=status, count=2))
    assert run(coupa_emulator, lambda c: c.get_record(1))["id"] == 1
    assert api_calls(coupa_emulator) == [("GET", status), ("GET", status), ("GET", 200)]


def test_a_read_timeout_is_retried(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 1)
    coupa_emulator.faults.latency(0.6, count=1, methods=("GET",))
    started = time.monotonic()
    assert run(coupa_emulator, lambda c: c.get_record(1), read_timeout=0.3)["id"] == 1
    assert time.monotonic() - started >= 0.3


def test_a_dropped_connection_is_retried(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 1)
    coupa_emulator.faults.drop(after_acting=False, count=2, methods=("GET",))
    assert run(coupa_emulator, lambda c: c.get_record(1))["id"] == 1
    assert api_calls(coupa_emulator) == [("GET", None), ("GET", None), ("GET", 200)]


def test_a_permanent_503_gives_up_after_the_allowed_attempts(coupa_emulator: CoupaEmulator) -> None:
    coupa_emulator.faults.error_rate(503, 1.0)
    with pytest.raises(CoupaServerError) as caught:
        run(coupa_emulator, lambda c: c.get_record(1))
    assert caught.value.attempts == 6
    assert "gave up after 6 attempts" in str(caught.value)
    assert api_calls(coupa_emulator) == [("GET", 503)] * 6


def test_nothing_listening_is_a_transport_error_saying_nothing_was_sent(coupa_emulator: CoupaEmulator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ClientConfig(f"http://127.0.0.1:{port}", "cid", "secret", rate_limit=None, retry=FAST)

    async def main() -> None:
        async with AsyncCoupaClient(config, token_cache=TokenCache()) as client:
            await client.get_record(1)

    with pytest.raises(CoupaTransportError) as caught:
        asyncio.run(main())
    assert caught.value.sent is False
    assert caught.value.attempts == 6


# ================================================================================================ no duplicates
@pytest.mark.parametrize("after_acting", [True, False])
def test_a_create_after_a_dropped_answer_is_made_once(coupa_emulator: CoupaEmulator, after_acting: bool) -> None:
    coupa_emulator.faults.drop(after_acting=after_acting, count=1, methods=("POST",))
    created = run(coupa_emulator, lambda c: c.create_record(**record()))
    (stored,) = coupa_emulator.records()
    assert created["id"] == stored["id"]


@pytest.mark.parametrize("after_acting", [True, False])
def test_run_success_after_a_dropped_answer_succeeds_once(coupa_emulator: CoupaEmulator, after_acting: bool) -> None:
    run_id = new_run(coupa_emulator)
    coupa_emulator.state.run_action(run_id, "run", {}, user=None)
    coupa_emulator.faults.drop(after_acting=after_acting, count=1, methods=("PUT",))
    assert run(coupa_emulator, lambda c: c.run_transition(run_id, "success"))["status"] == "successful"
    assert coupa_emulator.integration_runs()[0]["status"] == "successful"


# ================================================================================================ tokens
def test_a_token_that_expires_mid_run_is_refreshed_once(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 1)

    async def body(client: AsyncCoupaClient) -> None:
        await client.get_record(1)
        coupa_emulator.expire_tokens()
        await client.get_record(1)
        await client.get_record(1)

    run(coupa_emulator, body)
    assert coupa_emulator.tokens_issued == 2
    assert api_calls(coupa_emulator) == [("GET", 200), ("GET", 401), ("GET", 200), ("GET", 200)]


def test_a_second_401_fails(coupa_emulator: CoupaEmulator) -> None:
    coupa_emulator.faults.add(Fault("status", status=401, count=5, path_contains="/api/"))
    with pytest.raises(CoupaAuthError):
        run(coupa_emulator, lambda c: c.get_record(1))
    assert coupa_emulator.tokens_issued == 2


def test_concurrent_tasks_cause_one_token_fetch(coupa_emulator: CoupaEmulator) -> None:
    seed(coupa_emulator, 1)
    cache = TokenCache()

    async def body(client: AsyncCoupaClient) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(client.get_record(1) for _ in range(20))))

    results = run(coupa_emulator, body, cache=cache)
    assert len(results) == 20
    assert coupa_emulator.tokens_issued == 1
    assert cache.fetches == 1


def test_async_and_sync_clients_share_a_token_cache(coupa_emulator: CoupaEmulator) -> None:
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

    seed(coupa_emulator, 1)
    cache = TokenCache()
    with CoupaClient(config_for(coupa_emulator), token_cache=cache) as sync_client:
        sync_client.get_record(1)
    run(coupa_emulator, lambda c: c.get_record(1), cache=cache)
    assert coupa_emulator.tokens_issued == 1


# ================================================================================================ validation
INVALID: dict[str, Callable[[AsyncCoupaClient], Any]] = {
    "missing required fields": lambda c: c.create_record(status="x"),
    "unknown document type": lambda c: c.create_record(**record(document_type="Invoice-Header")),
    "read-only resolved": lambda c: c.create_record(**record(resolved=False)),
    "bad action": lambda c: c.create_record(action="delete", **record()),
    "bad fields= on a get": lambda c: c.get_record(1, fields=["nope"]),
    "bad id": lambda c: c.get_record(-3),
    "bad run action": lambda c: c.run_transition(1, "explode"),
    "bad filter": lambda c: c.query_records({"status[like]": "x"}),
}


@pytest.mark.parametrize("call", INVALID.values(), ids=INVALID.keys())
def test_validation_errors_are_raised_before_any_request(
    coupa_emulator: CoupaEmulator, call: Callable[[AsyncCoupaClient], Any]
) -> None:
    async def body(client: AsyncCoupaClient) -> None:
        result = call(client)
        if asyncio.iscoroutine(result):
            await result

    with pytest.raises(CoupaValidationError):
        run(coupa_emulator, body)
    assert coupa_emulator.requests() == []


# ================================================================================================ transport details
@contextlib.contextmanager
def redirecting_server() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 answering 302 to a second one, which counts its visitors."""
    visited: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            visited.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.server_address[1]}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (elsewhere, redirect):
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{redirect.server_address[1]}", visited
    finally:
        for server in (redirect, elsewhere):
            server.shutdown()
            server.server_close()


def test_a_redirect_is_not_followed() -> None:
    with redirecting_server() as (url, visited):
        config = ClientConfig(url, api_key="k" * 40, rate_limit=None, retry=FAST)

        async def main() -> None:
            async with AsyncCoupaClient(config) as client:
                await client.get_record(5)

        with pytest.raises(CoupaError) as caught:
            asyncio.run(main())
    assert caught.value.status == 302
    assert "redirects are not followed" in str(caught.value)
    assert visited == []


def test_a_ca_bundle_path_is_used_without_deprecation_warnings() -> None:
    import certifi

    config = ClientConfig("https://acme.coupahost.com", api_key="k" * 40, verify=certifi.where())

    async def main() -> None:
        async with AsyncCoupaClient(config):
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())


def test_a_given_httpx_client_is_left_open() -> None:
    import httpx

    config = ClientConfig("https://acme.coupahost.com", api_key="k" * 40)

    async def main() -> tuple[bool, bool]:
        given = httpx.AsyncClient()
        async with AsyncCoupaClient(config, client=given) as client:
            assert client.http is given
        still_open = not given.is_closed
        await given.aclose()
        async with AsyncCoupaClient(config) as own:
            pass
        return still_open, own.http.is_closed

    assert asyncio.run(main()) == (True, True)


def test_no_token_reaches_the_logs(coupa_emulator: CoupaEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seed(coupa_emulator, 1)

    async def body(client: AsyncCoupaClient) -> None:
        await client.get_record(1)
        coupa_emulator.expire_tokens()
        coupa_emulator.faults.error_rate(503, 1.0, count=1)
        await client.get_record(1)
        coupa_emulator.faults.drop(after_acting=True, count=1, methods=("POST",))
        await client.create_record(**record())

    run(coupa_emulator, body)
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)  # the HTTP stack at DEBUG
    tokens = coupa_emulator.issued_tokens()
    assert len(tokens) == 2
    for value in (*tokens, coupa_emulator.credentials.client_secret):
        assert value not in caplog.text


def test_the_async_lookup_of_earlier_writes_goes_on_past_a_chunk_whose_query_fails(
    coupa_emulator: CoupaEmulator,
) -> None:
    """The async twin of ``CoupaClient.look_up_earlier_writes``: one chunk of 50 documents failing its lookup leaves
    only its own items unsettled."""
    since = time.time() - 5
    items = [record(document_id=i) for i in range(1, 121)]  # chunks: 1-50, 51-100, 101-120
    for document_id in (3, 60, 110):
        run(coupa_emulator, lambda c, d=document_id: c.create_record(**items[d - 1]))
    coupa_emulator.faults.add(Fault("status", status=503, count=1, methods=("GET",), path_contains="/api/"))
    earlier = run(coupa_emulator, lambda c: c.look_up_earlier_writes(items, since), retry=RetryPolicy(max_attempts=1))
    assert (earlier.chunks, earlier.chunks_failed) == (3, 1)
    assert sorted(earlier.not_looked_up) == list(range(50))
    assert earlier.found == {59: 2, 109: 3}


def test_an_answer_that_is_not_a_record_is_a_coupa_error_not_a_type_error() -> None:
    from airflow_provider_coupa_ihr.client.flow import answer_object

    assert answer_object({"id": 1}) == {"id": 1}
    for answer in (None, [], "ok"):
        with pytest.raises(CoupaError, match="is not a record"):
            answer_object(answer)
