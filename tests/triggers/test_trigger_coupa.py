"""CoupaRecordsResolvedTrigger against the emulator: JSON round trip, deadline, errors as events, one event only."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time
from typing import Any

import pytest
from wait_helpers import error_record

from airflow_provider_coupa_ihr.client import aio
from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json
from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

pytestmark = pytest.mark.usefixtures("coupa_connection")


def events(trigger: CoupaRecordsResolvedTrigger) -> list[dict[str, Any]]:
    """Every event the trigger yields, running it to its end (not just to the first event)."""

    async def drain() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(drain())


def trigger(**kwargs: Any) -> CoupaRecordsResolvedTrigger:
    kwargs.setdefault("deadline", time.time() + 20)
    kwargs.setdefault("poke_interval", 0.05)
    return CoupaRecordsResolvedTrigger(**kwargs)


# ---------------------------------------------------------------------------------------------- serialising
def test_serialize_is_json_only_and_round_trips_to_an_equal_trigger():
    original = CoupaRecordsResolvedTrigger(
        coupa_conn_id="coupa_eu",
        filters={"integration[code]": "ERP", "document-id": "7"},
        deadline=1_800_000_000.5,
        since="2026-11-25T10:00:00+00:00",
        poke_interval=30,
        exponential_backoff=True,
        max_wait=600,
        polls=3,
    )
    classpath, kwargs = original.serialize()
    assert classpath == "airflow_provider_coupa_ihr.triggers.coupa.CoupaRecordsResolvedTrigger"
    through_json = json.loads(json.dumps(kwargs))
    assert through_json == kwargs  # nothing JSON would change (no tuples, datetimes, sets...)
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**through_json)
    assert rebuilt.serialize() == (classpath, kwargs)
    ids = CoupaRecordsResolvedTrigger(record_ids=[3, 1], deadline=1.0).serialize()[1]
    assert ids["record_ids"] == [3, 1]
    assert ids["filters"] is None


# ---------------------------------------------------------------------------------------------- outcomes
def test_resolved_while_waiting_yields_one_event_with_the_records(coupa_emulator):
    ids = [error_record() for _ in range(3)]
    for record_id in ids[:2]:
        coupa_emulator.resolve(record_id)
    threading.Timer(0.3, coupa_emulator.resolve, args=(ids[2],)).start()
    (event,) = events(trigger(record_ids=ids))
    assert event["status"] == "resolved"
    assert [r["id"] for r in event["records"]] == ids
    assert all(r["resolved"] is True for r in event["records"])
    json.dumps(event)  # the payload travels as JSON


def test_a_query_wait_ends_when_nothing_matching_is_unresolved(coupa_emulator):
    first, second, other = error_record(), error_record(), error_record(8)
    coupa_emulator.resolve(first)
    threading.Timer(0.3, coupa_emulator.resolve, args=(second,)).start()
    started = "2026-01-01T00:00:00+00:00"
    (event,) = events(trigger(filters={"document-id": "7"}, since=started))
    assert event["status"] == "resolved"
    assert [r["id"] for r in event["records"]] == [first, second]
    assert other not in [r["id"] for r in event["records"]]


def test_the_deadline_ends_the_wait_with_a_timeout_event_naming_what_is_unresolved(coupa_emulator):
    record_id = error_record()
    started = time.monotonic()
    (event,) = events(trigger(record_ids=[record_id], deadline=time.time() + 0.6, poke_interval=10))
    elapsed = time.monotonic() - started
    assert event["status"] == "timeout"
    assert event["waiting"] == [record_id]
    assert f"Still unresolved at the last check: {record_id}." in event["message"]
    assert elapsed < 3  # the deadline cut the 10 s interval short


def test_a_deadline_already_passed_checks_once_then_times_out(coupa_emulator):
    resolved, unresolved = error_record(), error_record()
    coupa_emulator.resolve(resolved)
    assert events(trigger(record_ids=[resolved], deadline=time.time() - 5))[0]["status"] == "resolved"
    assert events(trigger(record_ids=[unresolved], deadline=time.time() - 5))[0]["status"] == "timeout"


def test_an_unknown_record_fails_at_once_without_retries(coupa_emulator):
    known = error_record()
    started = time.monotonic()
    (event,) = events(trigger(record_ids=[known, 404_404], deadline=time.time() + 30))
    assert time.monotonic() - started < 3
    assert event["status"] == "failed"
    assert event["retry"] is False
    assert event["missing"] == [404_404]
    assert "404404" in event["message"]


def test_an_error_retrying_cannot_fix_becomes_a_failed_event(coupa_emulator):
    record_id = error_record()
    coupa_emulator.faults.error_rate(403, 1.0)
    (event,) = events(trigger(record_ids=[record_id]))
    assert event["status"] == "failed"
    assert event["retry"] is False
    assert "403" in event["message"]
    assert "core.integration.read" in event["message"]  # the client's hint says what to grant


def test_transient_errors_are_waited_out_not_fatal(coupa_emulator, monkeypatch):
    # One attempt per call, so each 503 reaches the trigger rather than being absorbed by the client's retries.
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa_emulator, max_attempts=1))
    record_id = error_record()
    coupa_emulator.resolve(record_id)
    coupa_emulator.faults.error_rate(503, 1.0, count=3, path_contains="integration_history_records")
    (event,) = events(trigger(record_ids=[record_id]))
    assert event["status"] == "resolved"
    statuses = [r.status for r in coupa_emulator.requests(method="GET", path_contains="integration_history_records")]
    assert statuses == [503, 503, 503, 200]


def test_transient_errors_until_the_deadline_say_so_in_the_timeout(coupa_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa_emulator, max_attempts=1))
    record_id = error_record()
    coupa_emulator.faults.error_rate(503, 1.0, path_contains="integration_history_records")
    (event,) = events(trigger(record_ids=[record_id], deadline=time.time() + 0.5, poke_interval=0.1))
    assert event["status"] == "timeout"
    assert "The last check failed: Coupa answered 503" in event["message"]


def test_bad_filters_and_missing_connections_become_failed_events(monkeypatch):
    (bad_filter,) = events(trigger(filters={"resolved": "false"}))
    assert bad_filter["status"] == "failed"
    assert bad_filter["retry"] is False
    assert "set by the wait itself" in bad_filter["message"]
    (no_conn,) = events(trigger(record_ids=[1], coupa_conn_id="no_such_connection"))
    assert no_conn["status"] == "failed"
    assert "no_such_connection" in no_conn["message"]


def test_an_unexpected_error_becomes_a_failed_event_that_task_retries_may_fix(coupa_emulator, monkeypatch):
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(aio.AsyncCoupaClient, "check_resolution", broken)
    (event,) = events(trigger(record_ids=[error_record()]))
    assert event == {
        "status": "failed",
        "message": "Coupa wait failed unexpectedly: RuntimeError: something nobody expected",
        "retry": True,
        "missing": [],
    }


# ---------------------------------------------------------------------------------------------- plumbing
def test_the_connection_is_read_without_blocking_the_event_loop(coupa_emulator, monkeypatch):
    """Airflow 3.3.2+ reads it with ``aget_connection``; older lines read it synchronously in a worker thread
    (``get_async_connection``). Either way, never on the event loop's own thread."""
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    record_id = error_record()
    coupa_emulator.resolve(record_id)
    on_the_loop: list[bool] = []
    original = CoupaHook.get_connection

    def watched(_hook: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_the_loop.append(True)
        except RuntimeError:
            on_the_loop.append(False)
        return original(*args, **kwargs)

    monkeypatch.setattr(CoupaHook, "get_connection", watched)
    assert events(trigger(record_ids=[record_id]))[0]["status"] == "resolved"
    assert True not in on_the_loop


def test_the_client_is_closed_however_the_wait_ends_even_when_cancelled(coupa_emulator, monkeypatch):
    closed: list[bool] = []
    original = aio.AsyncCoupaClient.aclose

    async def counting_aclose(self: aio.AsyncCoupaClient) -> None:
        closed.append(True)
        await original(self)

    monkeypatch.setattr(aio.AsyncCoupaClient, "aclose", counting_aclose)
    record_id = error_record()
    events(trigger(record_ids=[record_id], deadline=time.time() + 0.2))
    assert closed == [True]

    async def cancel_mid_wait() -> None:
        task = asyncio.ensure_future(trigger(record_ids=[record_id], poke_interval=0.05).run().__anext__())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not any(aio._POOLS.get(asyncio.get_running_loop(), {}).values())  # no pool left open

    asyncio.run(cancel_mid_wait())
    assert closed == [True, True]


def test_a_long_wait_logs_what_it_waits_on_when_that_changes_not_every_poll(coupa_emulator, caplog):
    first, second = error_record(), error_record()
    threading.Timer(0.4, coupa_emulator.resolve, args=(first,)).start()
    waiter = trigger(record_ids=[first, second], deadline=time.time() + 0.9)
    waiter._log = logging.getLogger("coupa.test.trigger")  # a plain logger caplog sees (Airflow 3 uses structlog)
    caplog.set_level("DEBUG", logger="coupa.test.trigger")
    (event,) = events(waiter)
    assert event["status"] == "timeout"
    waiting = [r for r in caplog.records if r.getMessage().startswith("Waiting for")]
    assert len(waiting) > 4  # polled every 0.05 s
    assert [r.getMessage() for r in waiting if r.levelname == "INFO"] == [
        f"Waiting for 2 of 2 records to be resolved: {first}, {second}",
        f"Waiting for 1 of 2 records to be resolved: {second}",
    ]


def test_the_trigger_polls_with_jitter() -> None:
    from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

    trigger = CoupaRecordsResolvedTrigger(deadline=0, record_ids=[1], poke_interval=60)
    delays = {round(trigger._delay(1), 6) for _ in range(50)}
    assert len(delays) > 40
    assert all(54 <= d <= 66 for d in delays)
