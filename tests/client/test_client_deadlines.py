"""Bounded calls and bounded answers: the call's time bound in the sans-IO flow (driven by hand, on a fake clock),
the settings that feed it, the drivers keeping it on real sockets, and the key cache that must not grow."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client import records
from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
from airflow_provider_coupa_ihr.client.auth import Token
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.deadlines import CallDeadline, time_limit, time_limit_left
from airflow_provider_coupa_ihr.client.errors import (
    CoupaConfigError,
    CoupaError,
    CoupaRateLimitError,
    CoupaTransportError,
)
from airflow_provider_coupa_ihr.client.flow import (
    CallContext,
    GetToken,
    HttpResponse,
    Operation,
    Reserve,
    Send,
    Sleep,
    TransportFailure,
    Verification,
    call,
    fetch_token,
    run_sync,
)
from airflow_provider_coupa_ihr.client.limiter import TokenBucket
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator

BASE = "https://acme.coupahost.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_ctx(clock: FakeClock, **settings: Any) -> CallContext:
    settings.setdefault("rate_limit", None)
    settings.setdefault("retry", RetryPolicy(max_attempts=6, max_elapsed=10, backoff_base=0.5, token_settle=0))
    settings.setdefault("read_timeout", 3.0)
    settings.setdefault("connect_timeout", 1.0)
    config = ClientConfig(BASE, "cid", "secret", **settings)
    return CallContext(config=config, clock=clock, rng=random.Random(3))


def drive(
    flow: Generator[Any, Any, Any],
    clock: FakeClock,
    answer: Callable[[Send], Any],
    reserve: Callable[[], float] = lambda: 0.0,
) -> tuple[list[Any], Any]:
    """Run ``flow``, advancing the fake clock through every Sleep; Sends are answered by ``answer``, throttle
    bookings (Reserve) by ``reserve``, as a client answers them with its throttle."""
    effects: list[Any] = []

    def handle(effect: Any) -> Any:
        effects.append(effect)
        if isinstance(effect, GetToken):
            return Token.issued("tok", 86399, clock())
        if isinstance(effect, Reserve):
            return reserve()
        if isinstance(effect, Sleep):
            clock.now += effect.seconds
            return None
        return answer(effect)

    try:
        return effects, run_sync(flow, handle)
    except CoupaError as error:
        return effects, error


def sends(effects: list[Any]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def ok(body: Any = None) -> HttpResponse:
    return HttpResponse(200, {"content-type": "application/json"}, json.dumps(body or {"id": 1}).encode())


# ------------------------------------------------------------------------------------------------ the bound
def test_a_call_is_bounded_by_max_elapsed_plus_one_read_timeout() -> None:
    clock = FakeClock()
    deadline = CallDeadline.start(make_ctx(clock).config, clock)
    assert (deadline.seconds, deadline.left()) == (13.0, 13.0)
    assert deadline.attempt_timeout() == 4.0  # connect + read
    clock.now += 11
    assert deadline.attempt_timeout() == pytest.approx(2.0)  # never past the call's end
    assert not deadline.may_retry_after(0.5)  # no attempt starts after max_elapsed
    assert deadline.may_throttle(1.5)
    assert not deadline.may_throttle(2.5)


def test_within_and_time_limit_narrow_the_bound() -> None:
    clock = FakeClock()
    config = make_ctx(clock).config
    assert CallDeadline.start(config, clock, within=5).seconds == 5
    assert time_limit_left() is None
    with time_limit(8), time_limit(60):  # the nearest end wins
        left = time_limit_left()
        assert left is not None
        assert 7 < left <= 8
        assert 7 < CallDeadline.start(config, clock).seconds <= 8
        assert CallDeadline.start(config, clock, within=2).last_start == clock() + 2
    assert time_limit_left() is None


def test_every_attempt_carries_the_time_it_may_take() -> None:
    clock = FakeClock()
    effects, result = drive(call(make_ctx(clock), Operation("GET", "/x")), clock, lambda s: ok())
    assert result == {"id": 1}
    (token,) = [e for e in effects if isinstance(e, GetToken)]
    assert token.timeout == 13.0  # a token fetched for the call has what the call has left
    assert [s.timeout for s in sends(effects)] == [4.0]


def test_a_server_that_keeps_every_attempt_to_its_end_cannot_stretch_the_call() -> None:
    clock = FakeClock()

    def slow(send: Send) -> TransportFailure:
        assert send.timeout is not None
        assert send.timeout > 0
        clock.now += send.timeout  # the driver cut the attempt at its deadline
        return TransportFailure("no complete answer in time", True)

    effects, error = drive(call(make_ctx(clock), Operation("GET", "/x")), clock, slow)
    assert isinstance(error, CoupaTransportError)
    assert clock.now - 1000.0 <= 13.0
    assert len(sends(effects)) >= 2  # retried while the bound allowed


def test_a_token_fetch_inside_a_call_ends_within_what_the_call_has_left() -> None:
    clock = FakeClock()
    effects, _ = drive(fetch_token(make_ctx(clock), within=2.5), clock, lambda s: ok({"access_token": "t"}))
    assert [s.timeout for s in sends(effects)] == [2.5]


def test_no_time_left_ends_the_call_without_sending() -> None:
    clock = FakeClock()
    with time_limit(0):
        effects, error = drive(call(make_ctx(clock), Operation("GET", "/x")), clock, lambda s: ok())
    assert sends(effects) == []
    assert isinstance(error, CoupaTransportError)
    assert error.retryable
    assert "no time left" in str(error)


def test_a_retry_sleep_past_a_time_limit_ends_the_call() -> None:
    clock = FakeClock()
    busy = HttpResponse(429, {"retry-after": "3"}, b"")
    with time_limit(2):
        effects, error = drive(call(make_ctx(clock), Operation("GET", "/x")), clock, lambda s: busy)
    assert len(sends(effects)) == 1
    assert isinstance(error, CoupaRateLimitError)
    assert "would pass the call's bound" in str(error)


def test_a_lost_create_is_looked_up_within_what_the_create_has_left() -> None:
    clock = FakeClock()
    query = Operation("GET", "/x")
    op = Operation("POST", "/x", body={"a": 1}, idempotent=False, verify=Verification(lambda: query, lambda r: None))
    answers = iter([TransportFailure("lost", True), ok([]), ok()])

    def answer(send: Send) -> Any:
        clock.now += 1
        return next(answers)

    effects, result = drive(call(make_ctx(clock), op), clock, answer)
    assert result == {"id": 1}
    _create, lookup, _again = sends(effects)
    assert lookup.request.method == "GET"
    assert lookup.timeout is not None
    assert lookup.timeout <= 13.0 - 1 - 1


def test_a_throttle_wait_past_the_bound_ends_the_call_naming_the_rate() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock, rate_limit=0.1, burst=1)
    ctx.throttle = bucket = TokenBucket(0.1, 1, clock=clock)
    first, _ = drive(call(ctx, Operation("GET", "/x")), clock, lambda s: ok(), bucket.reserve)
    assert len(sends(first)) == 1
    bucket.reserve()  # another call booked the next slot: the next waits 20 s, past the 13 s bound
    effects, error = drive(call(ctx, Operation("GET", "/x")), clock, lambda s: ok(), bucket.reserve)
    assert sends(effects) == []
    assert [e for e in effects if isinstance(e, Sleep)] == []
    assert isinstance(error, CoupaRateLimitError)
    assert error.retryable
    assert "rate limit (0.1 requests per second" in str(error)
    assert "past the call's bound of 13 s" in str(error)


def test_a_throttle_wait_within_the_bound_is_slept() -> None:
    clock = FakeClock()
    ctx = make_ctx(clock, rate_limit=0.1, burst=1)
    ctx.throttle = bucket = TokenBucket(0.1, 1, clock=clock)
    drive(call(ctx, Operation("GET", "/x")), clock, lambda s: ok(), bucket.reserve)
    effects, result = drive(call(ctx, Operation("GET", "/x")), clock, lambda s: ok(), bucket.reserve)
    assert result == {"id": 1}
    assert [e.seconds for e in effects if isinstance(e, Sleep)] == [pytest.approx(10.0)]


@pytest.mark.parametrize("status", [200, 503])
def test_an_answer_the_driver_would_not_read_ends_the_call_unretried(status: int) -> None:
    clock = FakeClock()
    refused = CoupaError(["the answer is larger than max_response_bytes"], hint="raise it")
    unreadable = HttpResponse(status, {}, b"", unreadable=refused)
    effects, error = drive(call(make_ctx(clock), Operation("GET", "/x/1")), clock, lambda s: unreadable)
    assert len(sends(effects)) == 1
    assert isinstance(error, CoupaError)
    assert not error.retryable
    assert (error.status, error.method, error.path) == (status, "GET", "/api/x/1")
    assert "max_response_bytes" in str(error)
    assert "raise it" in str(error)


def test_an_unreadable_token_answer_ends_the_fetch() -> None:
    clock = FakeClock()
    unreadable = HttpResponse(200, {}, b"", unreadable=CoupaError(["too big"]))
    effects, error = drive(fetch_token(make_ctx(clock)), clock, lambda s: unreadable)
    assert len(sends(effects)) == 1
    assert isinstance(error, CoupaError)
    assert error.path == "/oauth2/token"


def test_the_clients_ask_for_gzip_and_deflate_only() -> None:
    clock = FakeClock()
    effects, _ = drive(call(make_ctx(clock), Operation("GET", "/x")), clock, lambda s: ok())
    assert sends(effects)[0].request.headers["Accept-Encoding"] == "gzip, deflate"


# ------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("rate", [0.05, 0, -1, math.nan, math.inf, -math.inf])
def test_a_rate_limit_below_a_tenth_or_not_finite_is_refused_with_the_range(rate: float) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        ClientConfig(BASE, "cid", "secret", rate_limit=rate)
    assert "from 0.1" in str(refused.value)
    assert "or None" in str(refused.value)


def test_the_slowest_rate_limit_is_allowed() -> None:
    assert ClientConfig(BASE, "cid", "secret", rate_limit=0.1).rate_limit == 0.1


@pytest.mark.parametrize("cap", [0, 1000, 65535, 2.5e7, "16MB", True, None])
def test_max_response_bytes_must_be_a_whole_number_from_64_kib(cap: Any) -> None:
    with pytest.raises(CoupaConfigError, match="max_response_bytes must be a whole number of bytes from 65536"):
        ClientConfig(BASE, "cid", "secret", max_response_bytes=cap)


def test_max_response_bytes_defaults_to_16_mib() -> None:
    assert ClientConfig(BASE, "cid", "secret").max_response_bytes == 16 * 1024 * 1024


# ------------------------------------------------------------------------------------------------ the drivers
def client_sockets(port: int) -> int:
    """This process's TCP connections to ``port`` (the client side), from /proc."""
    import os

    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def emulator_config(coupa: CoupaEmulator, **settings: Any) -> ClientConfig:
    creds = coupa.credentials
    settings.setdefault("rate_limit", None)
    return ClientConfig(coupa.url, creds.client_id, creds.client_secret, **settings)


def test_answers_read_as_a_stream_give_their_connection_back_to_the_pool(coupa_emulator: CoupaEmulator) -> None:
    port = int(coupa_emulator.url.rsplit(":", 1)[1])
    with CoupaClient(emulator_config(coupa_emulator), token_cache=TokenCache()) as client:
        for _ in range(5):
            assert client.get_integration("nothing-like-this") is None
        assert client_sockets(port) == 1  # one kept-alive connection, not one per call
    assert client_sockets(port) == 0


@contextmanager
def raw_server(reply: Callable[[bytes], bytes | None]) -> Iterator[str]:
    """A one-thread HTTP server on loopback writing ``reply(request head)`` as is (None: a token answer)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                head = conn.recv(65536)
                if b"/oauth2/token" in head.split(b"\r\n", 1)[0]:
                    body = json.dumps({"access_token": "t", "token_type": "bearer", "expires_in": 9999}).encode()
                    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
                    conn.sendall(answer + b"Connection: close\r\n\r\n" + body)
                    continue
                data = reply(head)
                if data:
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def gzip_answer(body: bytes, encoding: str = "gzip") -> bytes:
    data = gzip.compress(body)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {encoding}\r\n"
    return head.encode() + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data) + data


def run_both(config: ClientConfig, verb: str, *args: Any) -> list[Any]:
    with CoupaClient(config, token_cache=TokenCache()) as client:
        sync = getattr(client, verb)(*args)

    async def go() -> Any:
        async with AsyncCoupaClient(config, token_cache=TokenCache()) as aclient:
            return await getattr(aclient, verb)(*args)

    return [sync, asyncio.run(go())]


def test_both_clients_inflate_a_gzip_answer_themselves() -> None:
    with raw_server(lambda head: gzip_answer(b'{"id": 7, "document-type": "Supplier"}')) as url:
        config = ClientConfig(url, "cid", "secret", rate_limit=None, retry=RetryPolicy(max_attempts=1))
        assert run_both(config, "get_record", 7) == [{"id": 7, "document_type": "Supplier"}] * 2


def test_both_clients_refuse_an_answer_past_their_cap() -> None:
    big = b'{"id": 7, "pad": "' + b"x" * 200_000 + b'"}'
    with raw_server(lambda head: gzip_answer(big)) as url:
        config = ClientConfig(
            url, "cid", "secret", rate_limit=None, retry=RetryPolicy(max_attempts=1), max_response_bytes=100_000
        )
        with pytest.raises(CoupaError, match=r"max_response_bytes \(100,000 bytes\)"):
            run_both(config, "get_record", 7)
        with CoupaClient(config, token_cache=TokenCache()) as client, pytest.raises(CoupaError) as sync_error:
            client.get_record(7)
    assert sync_error.value.status == 200
    assert sync_error.value.path == "/api/integration_history_records/7"


def test_the_sync_client_ends_an_attempt_whose_headers_never_finish() -> None:
    """Headers trickled forever (a byte every 50 ms, never the blank line): each read is well within the read
    timeout, so only the attempt's deadline ends it."""

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            listener.settimeout(0.2)
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    while not stop.is_set():
                        conn.sendall(b"X")
                        time.sleep(0.05)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        retry = RetryPolicy(max_attempts=1, max_elapsed=0.5)
        config = ClientConfig(
            f"http://127.0.0.1:{port}", api_key="k" * 20, rate_limit=None, read_timeout=1.0, retry=retry
        )
        started = time.monotonic()
        with CoupaClient(config) as client, pytest.raises(CoupaTransportError) as error:
            client.get_record(1)
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert took <= 1.5 + 0.3  # max_elapsed + read_timeout
    assert "no complete answer within" in str(error.value)


# ------------------------------------------------------------------------------------------------ the key cache
def test_the_snake_case_key_cache_is_bounded_against_server_chosen_keys() -> None:
    records._SNAKE.clear()
    hostile = json.dumps({f"key-{i}": i for i in range(3 * records.SNAKE_CACHE_SIZE)})
    parsed = json.loads(hostile, object_pairs_hook=records.snake_object)
    assert parsed["key_0"] == 0
    assert parsed[f"key_{3 * records.SNAKE_CACHE_SIZE - 1}"] == 3 * records.SNAKE_CACHE_SIZE - 1
    assert len(records._SNAKE) <= records.SNAKE_CACHE_SIZE
    long_key = "x-" * 100
    assert records.to_python_keys({long_key: 1}) == {"x_" * 100: 1}
    assert long_key not in records._SNAKE
