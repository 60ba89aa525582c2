"""The client against a hostile network: servers that ignore paging, trickle, or send gzip bombs.

Each test runs one of the small servers of :mod:`hostile_servers` on loopback, sync and async, and reports its
figure in the run's "reliability" section:

- paging: a walk whose key does not advance, or whose ids come back out of order, ends with a ``CoupaError``
  naming the cause within one extra page; so does an offset walk whose server ignores ``offset``, and so do the
  walks of resolve-by-filter (which also refuses above 10,000 matching records, changing nothing), the bulk
  lookup, the sensor's poke (poke and reschedule modes, and the deferrable sensor's first check) and the trigger;
- memory: a gzip bomb (1 GB inflated) fails with a ``CoupaError`` and raises peak memory by less than 64 MB; an
  error answer whose body never ends is read only as far as its message needs;
- time: every call, token fetch included, ends within ``max_elapsed`` plus one ``read_timeout`` of wall clock
  against a server that trickles one byte at a time (status line and headers too); the trigger's deadline
  holds while a check is in flight; the notifier and the listener leave no thread or socket behind their bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hostile_servers import (
    HostileServer,
    Reply,
    endless_error_body,
    endless_pages,
    ignoring_paging,
    misbehaving_when_resolved,
    token_reply,
    trickle,
)

from airflow_provider_coupa_ihr.client import AsyncCoupaClient, ClientConfig, CoupaClient, CoupaError, RetryPolicy

HERE = Path(__file__).resolve().parent
#: A secret with every character that encodings treat specially.
SECRET = "Sec+ret/@=&%é-" + "x7Q"
NO_RETRY = RetryPolicy(max_attempts=1)


# ------------------------------------------------------------------------------------------------ paging
@pytest.mark.parametrize("mode", ["same", "repeat", "descending"])
def test_walk_that_does_not_advance_ends_with_coupa_error(mode: str, reliability_report: Callable[[str], None]) -> None:
    with HostileServer(ignoring_paging(mode)) as server:
        config = ClientConfig(server.url, client_id="client-id", client_secret=SECRET, rate_limit=None, retry=NO_RETRY)
        with CoupaClient(config) as client, pytest.raises(CoupaError) as error:
            for _ in client.query_records({"status": "Error"}):
                pass
        pages = len(server.api_requests())

        async def run_async() -> int:
            async with AsyncCoupaClient(config) as aclient:
                async for _ in aclient.query_records({"status": "Error"}):
                    pass
            return 0

        before = len(server.api_requests())
        with pytest.raises(CoupaError) as async_error:
            asyncio.run(run_async())
        async_pages = len(server.api_requests()) - before
    reliability_report(f"paging server '{mode}': ends with CoupaError after {pages} pages (async {async_pages})")
    assert pages <= 2
    assert async_pages <= 2
    for err in (error.value, async_error.value):
        assert "id" in str(err).lower(), str(err)
        assert "advance" in str(err) or "order" in str(err), str(err)


# ------------------------------------------------------------------------------------------------ memory
_BOMB_PROBE = textwrap.dedent(
    """
    import asyncio, json, resource, sys, tracemalloc
    sys.path.insert(0, {here!r})
    from hostile_servers import HostileServer, gzip_bomb, gzip_bomb_body
    from airflow_provider_coupa_ihr.client import AsyncCoupaClient, ClientConfig, CoupaClient, CoupaError
    from airflow_provider_coupa_ihr.client import RetryPolicy
    body = gzip_bomb_body(1 << 30)  # made before the baseline is read
    mode = sys.argv[1]
    with HostileServer(gzip_bomb(1 << 30)) as server:
        config = ClientConfig(server.url, client_id="c", client_secret="s", rate_limit=None,
                              retry=RetryPolicy(max_attempts=1))
        if mode == "sync":
            client = CoupaClient(config)
            client.token()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()  # Python's own allocations (bytes read and inflated): not hidden by an earlier RSS peak
        error = None
        try:
            if mode == "sync":
                client.get_record(1)
            else:
                async def go():
                    async with AsyncCoupaClient(config) as aclient:
                        await aclient.get_record(1)
                asyncio.run(go())
        except CoupaError as exc:
            error = type(exc).__name__ + ": " + str(exc)[:200]
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps({{"growth_mb": (after - before) / 1024, "traced_mb": traced / 2**20, "error": error,
                      "wire_bytes": len(body)}}))
    """
)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gzip_bomb_fails_in_bounded_memory(mode: str, reliability_report: Callable[[str], None]) -> None:
    probe = _BOMB_PROBE.format(here=str(HERE))
    done = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    reliability_report(
        f"gzip bomb ({result['wire_bytes'] / 1e6:.1f} MB on the wire, 1 GB inflated), {mode}: peak growth "
        f"{result['growth_mb']:.1f} MB RSS, {result['traced_mb']:.1f} MB traced (< 64 MB), {result['error']}"
    )
    assert result["error"] is not None, "the bomb was swallowed whole"
    assert "max_response_bytes" in result["error"]
    assert result["growth_mb"] < 64
    assert result["traced_mb"] < 64


# ------------------------------------------------------------------------------------------------ time
@pytest.mark.parametrize("what", ["call", "token"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_trickling_server_cannot_stretch_a_call(
    what: str, mode: str, reliability_report: Callable[[str], None]
) -> None:
    budget, read_timeout = 2.0, 1.0
    page = [{"id": i, "status": "x" * 40} for i in range(200)]  # ~10 KB: 100 s at one byte per 10 ms
    with HostileServer(trickle(page, 0.01, token=(what == "call"))) as server:
        config = ClientConfig(
            server.url,
            client_id="client-id",
            client_secret=SECRET,
            rate_limit=None,
            read_timeout=read_timeout,
            retry=RetryPolicy(max_attempts=3, max_elapsed=budget, backoff_base=0.0, backoff_cap=0.0),
        )

        async def call_async() -> None:
            async with AsyncCoupaClient(config) as aclient:
                await aclient.get_record(1)

        def call_sync() -> None:
            with CoupaClient(config) as client:
                client.get_record(1)

        started = time.monotonic()
        with pytest.raises(CoupaError):
            call_sync() if mode == "sync" else asyncio.run(call_async())
        took = time.monotonic() - started
    reliability_report(
        f"slow drip ({what}, {mode}): ended after {took:.2f} s against a budget of {budget:g} s + read_timeout "
        f"{read_timeout:g} s"
    )
    assert took <= budget + read_timeout + 0.5


# ------------------------------------------------------------------------------------------------ helpers
def config_for(server: HostileServer, **settings: Any) -> ClientConfig:
    settings.setdefault("rate_limit", None)
    settings.setdefault("retry", NO_RETRY)
    return ClientConfig(server.url, client_id="client-id", client_secret=SECRET, **settings)


def run_in(mode: str, config: ClientConfig, verb: str, *args: Any, **kwargs: Any) -> Any:
    """``verb(*args, **kwargs)`` on a sync or an async client of ``config``; iterators are drained."""
    if mode == "sync":
        with CoupaClient(config) as client:
            result = getattr(client, verb)(*args, **kwargs)
            return list(result) if hasattr(result, "__next__") else result

    async def go() -> Any:
        async with AsyncCoupaClient(config) as aclient:
            result = getattr(aclient, verb)(*args, **kwargs)
            if hasattr(result, "__anext__"):
                return [r async for r in result]
            return await result

    return asyncio.run(go())


def index_pages(server: HostileServer) -> list[Any]:
    return [r for r in server.api_requests() if r.method == "GET"]


@pytest.fixture
def hostile_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[[HostileServer], None]:
    """Point the ``coupa_default`` Airflow connection at a hostile server (no retries, no client rate limit)."""

    def use(server: HostileServer) -> None:
        connection = {
            "conn_type": "coupa",
            "host": server.url,
            "login": "client-id",
            "password": SECRET,
            "extra": {"rate_limit": 0, "max_attempts": 1},
        }
        monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", json.dumps(connection))

    return use


# ------------------------------------------------------------------------------------------------ paging, more
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_offset_walk_whose_server_ignores_offset_ends(mode: str, reliability_report: Callable[[str], None]) -> None:
    with HostileServer(ignoring_paging("same")) as server:
        with pytest.raises(CoupaError) as error:
            run_in(mode, config_for(server), "query_records", {"status": "Error"}, order_by="document_id")
        pages = len(index_pages(server))
    reliability_report(f"offset walk, server ignoring offset ({mode}): ends with CoupaError after {pages} pages")
    assert pages == 2
    assert "offset" in str(error.value), str(error.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["same", "endless"])
def test_resolve_by_filter_ends_and_changes_nothing(
    kind: str, mode: str, reliability_report: Callable[[str], None]
) -> None:
    """A server ignoring ``id[gt]`` ends the walk at the second page; a server with more than 10,000 matching
    records ends it at the 10,001st record: either way nothing is resolved."""
    script = ignoring_paging("same") if kind == "same" else endless_pages()
    with HostileServer(script) as server:
        with pytest.raises(CoupaError) as error:
            run_in(mode, config_for(server), "resolve_matching", {"status": "Error"})
        pages = len(index_pages(server))
        changes = len([r for r in server.api_requests() if r.method != "GET"])
    reliability_report(
        f"resolve-by-filter, {kind} pages ({mode}): ends with CoupaError after {pages} pages, {changes} records changed"
    )
    assert changes == 0
    if kind == "same":
        assert pages == 2
        assert "advance" in str(error.value)
    else:
        assert pages == 201  # 10,000 records, then a page asking for one more
        assert "more than 10,000 records match" in str(error.value)
        assert "max_records" in str(error.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_resolve_by_filter_with_max_records_changes_that_many(mode: str) -> None:
    with HostileServer(endless_pages()) as server:
        changed = run_in(mode, config_for(server), "resolve_matching", {"status": "Error"}, max_records=60)
        puts = [r for r in server.api_requests() if r.method == "PUT"]
    assert len(changed) == len(puts) == 60


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_bulk_lookup_ends_on_a_server_ignoring_paging(mode: str, reliability_report: Callable[[str], None]) -> None:
    items = [{"document_type": "InvoiceHeader", "document_id": 1, "contact_alert_type": "Technical"}]
    with HostileServer(ignoring_paging("same")) as server:
        with pytest.raises(CoupaError) as error:
            run_in(mode, config_for(server), "find_existing_records", items, time.time() - 60)
        pages = len(index_pages(server))
    reliability_report(f"bulk lookup, server ignoring id[gt] ({mode}): ends with CoupaError after {pages} pages")
    assert pages == 2
    assert "advance" in str(error.value)


@pytest.mark.parametrize("how", ["poke", "reschedule", "deferrable"])
def test_the_sensor_ends_on_a_server_ignoring_paging(
    how: str, hostile_connection: Callable[[HostileServer], None], reliability_report: Callable[[str], None]
) -> None:
    """Nothing matching is unresolved, so the wait is over; the walk for the resolved records meets a server that
    ignores ``id[gt]``, and the task fails (no retries: waiting cannot fix it) instead of walking forever."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor

    with HostileServer(misbehaving_when_resolved("same")) as server:
        hostile_connection(server)
        sensor = CoupaRecordsResolvedSensor(
            task_id="wait",
            filters={"status": "Error"},
            mode="reschedule" if how == "reschedule" else "poke",
            deferrable=how == "deferrable",
            poke_interval=1,
            timeout=30,
        )
        try:
            with pytest.raises(AirflowFailException) as failed:
                sensor.execute({}) if how == "deferrable" else sensor.poke({})
        finally:
            sensor.hook.close()
        walked = len([r for r in server.api_requests() if ("resolved", "true") in r.query])
    reliability_report(f"sensor ({how}), server ignoring id[gt]: fails the task after {walked} pages of the walk")
    assert walked == 2
    assert "advance" in str(failed.value)


def test_the_trigger_ends_on_a_server_ignoring_paging(
    hostile_connection: Callable[[HostileServer], None], reliability_report: Callable[[str], None]
) -> None:
    from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

    with HostileServer(misbehaving_when_resolved("same")) as server:
        hostile_connection(server)
        trigger = CoupaRecordsResolvedTrigger(filters={"status": "Error"}, deadline=time.time() + 30, poke_interval=0)
        started = time.monotonic()
        event = asyncio.run(trigger.wait())
        took = time.monotonic() - started
        walked = len([r for r in server.api_requests() if ("resolved", "true") in r.query])
    reliability_report(f"trigger, server ignoring id[gt]: failed event after {walked} pages, {took:.2f} s")
    assert event["status"] == "failed"
    assert event["retry"] is False
    assert "advance" in event["message"]
    assert walked == 2


# ------------------------------------------------------------------------------------------------ memory, more
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_body_that_never_ends_is_read_only_as_far_as_its_message_needs(
    mode: str, reliability_report: Callable[[str], None]
) -> None:
    from airflow_provider_coupa_ihr.client import CoupaServerError

    script = endless_error_body(502)
    with HostileServer(script) as server:
        started = time.monotonic()
        with pytest.raises(CoupaServerError) as error:
            run_in(mode, config_for(server, read_timeout=5.0), "get_record", 1)
        took = time.monotonic() - started
    reliability_report(
        f"endless 502 body ({mode}): CoupaServerError after {took:.2f} s; the server got {script.sent[0] / 1e6:.1f} MB "
        "out before the client hung up"  # type: ignore[attr-defined]
    )
    assert error.value.status == 502
    assert took < 5  # read as far as the message needs, not until a timeout


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_answer_in_an_encoding_not_asked_for_is_refused(mode: str) -> None:
    def script(request: Any) -> Reply:
        if request.path.endswith("/token"):
            return token_reply()
        return Reply(
            200, [("Content-Type", "application/json"), ("Content-Encoding", "br"), ("Content-Length", "2")], [b"{}"]
        )

    with HostileServer(script) as server:
        with pytest.raises(CoupaError) as error:
            run_in(mode, config_for(server), "get_record", 1)
        (sent,) = server.api_requests()
    assert "Content-Encoding is 'br'" in str(error.value)
    assert sent.headers["accept-encoding"] == "gzip, deflate"


# ------------------------------------------------------------------------------------------------ time, more
def test_the_trigger_deadline_holds_while_a_check_is_in_flight(
    hostile_connection: Callable[[HostileServer], None], reliability_report: Callable[[str], None]
) -> None:
    from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

    page = [{"id": 1, "resolved": False, "status": "Error"}]  # ~150 bytes with the head: 7 s at 20 bytes a second
    with HostileServer(trickle(page, 0.05)) as server:
        hostile_connection(server)
        budget = 1.5
        trigger = CoupaRecordsResolvedTrigger(record_ids=[1], deadline=time.time() + budget, poke_interval=0)
        started = time.monotonic()
        event = asyncio.run(trigger.wait())
        took = time.monotonic() - started
    reliability_report(f"trigger deadline {budget:g} s, check trickling: {event['status']} event after {took:.2f} s")
    assert event["status"] == "timeout"
    assert "cut short" in event["message"]
    assert took <= budget + 0.5


def open_client_sockets(port: int) -> int:
    """This process's TCP sockets connected to ``port`` (from /proc: the client side of each connection)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def client_threads() -> set[threading.Thread]:
    """Live threads but the hostile server's own."""
    return {t for t in threading.enumerate() if t.name != "hostile-server" and "process_request" not in t.name}


@pytest.mark.parametrize("who", ["notifier", "listener"])
def test_the_notifier_and_the_listener_leave_no_thread_or_socket_past_their_bound(
    who: str,
    hostile_connection: Callable[[HostileServer], None],
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Callable[[str], None],
) -> None:
    """Ten records logged at once to a Coupa that trickles its answers: each call gives up within the bound, and
    right then no thread or socket of theirs is left (observed before: ten threads still alive ten seconds on)."""
    from airflow_provider_coupa_ihr.notifications.coupa import create_record_or_time_out
    from airflow_provider_coupa_ihr.plugins.listener import coupa_listener

    bound = 1.5
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "True")
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_TIMEOUT", str(bound))
    fields = {"document_type": "Supplier", "document_id": 9, "contact_alert_type": "Technical", "status": "Success"}
    task = SimpleNamespace(params={"coupa_log": True, "coupa_document_type": "Supplier", "coupa_document_id": 9})
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number=1, map_index=-1, state="success", task=task)
    outcomes: list[str] = []

    def log_one() -> None:
        if who == "listener":
            coupa_listener.handle(ti, failed=False, error=None)  # never raises
            return
        try:
            create_record_or_time_out("coupa_default", "create", fields, timeout=bound)
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    with HostileServer(trickle({"id": 1}, 0.05)) as server:
        hostile_connection(server)
        port = int(server.url.rsplit(":", 1)[1])
        before = client_threads()
        callers = [threading.Thread(target=log_one, name=f"caller-{i}") for i in range(10)]
        started = time.monotonic()
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        took = time.monotonic() - started
        left_threads = sorted(t.name for t in client_threads() - before)
        left_sockets = open_client_sockets(port)
        posts = len([r for r in server.api_requests() if r.method == "POST"])
    reliability_report(
        f"{who}, 10 records to a trickling Coupa, bound {bound:g} s: all returned after {took:.2f} s; then "
        f"{len(left_threads)} threads and {left_sockets} sockets left"
    )
    assert posts == 10
    assert took <= bound + 0.5
    assert left_threads == []
    assert left_sockets == 0
    if who == "notifier":
        assert outcomes == ["CoupaTransportError"] * 10  # the calls ended themselves, not the caller's patience


def test_the_deferrable_sensors_first_check_cannot_outlast_its_timeout(
    hostile_connection: Callable[[HostileServer], None], reliability_report: Callable[[str], None]
) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor

    with HostileServer(trickle([{"id": 1, "resolved": False}], 0.05)) as server:
        hostile_connection(server)
        sensor = CoupaRecordsResolvedSensor(task_id="wait", record_ids=[1], deferrable=True, timeout=1.5)
        started = time.monotonic()
        with pytest.raises(AirflowSensorTimeout):
            sensor.execute({})
        took = time.monotonic() - started
    reliability_report(f"deferrable sensor, timeout 1.5 s, first check trickling: timed out after {took:.2f} s")
    assert took <= 1.5 + 0.5
