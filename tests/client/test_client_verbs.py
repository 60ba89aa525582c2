"""The verbs the Airflow layer calls through the hook, against the emulator over loopback HTTP (sync and async):
validate without sending, resolve by id and by filter, a bulk batch (plan, find what an earlier try wrote,
write on a pool), one resolution check, and a run's lifecycle."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client import batch
from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import CoupaConfigError, CoupaError, CoupaValidationError
from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget, WaitState
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator, Fault

CODE = "AIRFLOW-TEST"  # the integration the coupa_emulator fixture registers
FAST = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, token_settle=0)
IHR = "/api/integration_history_records"


@pytest.fixture
def coupa_emulator_options() -> dict[str, Any]:
    return {"rate_limit": None}


def config_for(coupa: CoupaEmulator, **settings: Any) -> ClientConfig:
    settings = {"rate_limit": None, "retry": FAST, **settings}
    return ClientConfig(coupa.url, coupa.credentials.client_id, coupa.credentials.client_secret, **settings)


@pytest.fixture
def client(coupa_emulator: CoupaEmulator) -> Iterator[CoupaClient]:
    with CoupaClient(config_for(coupa_emulator), token_cache=TokenCache()) as c:
        yield c


def arun(coupa: CoupaEmulator, verb: str, *args: Any, **kwargs: Any) -> Any:
    """``await AsyncCoupaClient(...).<verb>(*args, **kwargs)`` in a fresh event loop."""

    async def main() -> Any:
        async with AsyncCoupaClient(config_for(coupa), token_cache=TokenCache()) as client:
            return await getattr(client, verb)(*args, **kwargs)

    return asyncio.run(main())


def record(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "document_type": "InvoiceHeader",
        "document_id": 1001,
        "contact_alert_type": "Functional",
        "status": "Error",
        "integration": CODE,
    }
    fields.update(overrides)
    return fields


def seed(coupa: CoupaEmulator, count: int, **wire: Any) -> list[dict[str, Any]]:
    return [
        coupa.state.create(
            coupa.state.records,
            {"document-type": "InvoiceHeader", "document-id": i + 1, "contact-alert-type": "Functional", **wire},
            user=None,
        )
        for i in range(count)
    ]


def api_calls(coupa: CoupaEmulator, method: str | None = None, path: str = "/api/") -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in coupa.requests(method=method, path_contains=path)]


def resolved_ids(coupa: CoupaEmulator) -> list[int]:
    return sorted(int(r["id"]) for r in coupa.state.records.rows.values() if r.get("resolved"))


# ---------------------------------------------------------------------------------------------- validate
def test_validate_record_returns_the_wire_body_and_sends_nothing(client: CoupaClient, coupa_emulator: CoupaEmulator):
    body = client.validate_record(action="create_alert", **record(responses=[("E1", "blocked")]))
    assert body["document-type"] == "InvoiceHeader"
    assert body["integration"] == {"code": CODE}
    assert body["responses"] == [{"response-code": "E1", "response-message": "blocked"}]
    with pytest.raises(CoupaValidationError) as refused:
        client.validate_record(**record(document_type="Invoce", contact_alert_type="Nobody"))
    with pytest.raises(CoupaValidationError) as same:
        client.create_record(**record(document_type="Invoce", contact_alert_type="Nobody"))
    assert str(refused.value) == str(same.value)
    with pytest.raises(CoupaValidationError, match="action must be one of"):
        client.validate_record(action="shout", **record())
    assert api_calls(coupa_emulator) == []


# ---------------------------------------------------------------------------------------------- resolve
def test_resolve_records_by_id_skips_the_excluded_and_checks_every_id_first(
    client: CoupaClient, coupa_emulator: CoupaEmulator
):
    ids = [int(r["id"]) for r in seed(coupa_emulator, 4, status="Error")]
    done = client.resolve_records(f"[{ids[0]}, {ids[1]}, {ids[2]}]", exclude=[ids[1]])
    assert [r["id"] for r in done] == [ids[0], ids[2]]
    assert all(r["resolved"] is True for r in done)
    assert resolved_ids(coupa_emulator) == [ids[0], ids[2]]
    assert [r["id"] for r in client.unresolve_records([ids[0]])] == [ids[0]]
    assert resolved_ids(coupa_emulator) == [ids[2]]

    before = len(api_calls(coupa_emulator))
    with pytest.raises(CoupaValidationError) as refused:
        client.resolve_records([ids[0], "x", 0], exclude=["y"])
    assert refused.value.problems == [
        "record_ids: 'x' is not a Coupa record id (a whole number from 1)",
        "record_ids: 0 is not a Coupa record id (a whole number from 1)",
        "exclude: 'y' is not a Coupa record id (a whole number from 1)",
    ]
    assert len(api_calls(coupa_emulator)) == before


def test_resolve_matching_adds_the_resolved_filter_and_collects_ids_before_changing_them(
    client: CoupaClient, coupa_emulator: CoupaEmulator
):
    rows = seed(coupa_emulator, 60, status="Error")  # more than a page: the walk must not be disturbed
    ids = [int(r["id"]) for r in rows]
    client.resolve(ids[-1])  # resolved already: not matched again (the verb adds resolved=false)
    done = client.resolve_matching({"status": "Error"}, exclude={ids[0]})
    assert [r["id"] for r in done] == ids[1:-1]
    assert resolved_ids(coupa_emulator) == ids[1:]
    calls = coupa_emulator.requests(path_contains=IHR)[1:]
    first_put = next(i for i, r in enumerate(calls) if r.method == "PUT")
    assert [r.method for r in calls[:first_put]] == ["GET", "GET"]  # every id collected before the first change
    assert {r.method for r in calls[first_put:]} == {"PUT"}

    undone = client.unresolve_matching({"status": "Error"}, max_records=5)
    assert [r["id"] for r in undone] == ids[1:6]
    assert client.resolve_matching({"status": "Nothing like this"}) == []


def test_async_resolve_verbs_match_the_blocking_ones(coupa_emulator: CoupaEmulator):
    ids = [int(r["id"]) for r in seed(coupa_emulator, 3, status="Error")]
    assert [r["id"] for r in arun(coupa_emulator, "resolve_records", ids, exclude=[ids[2]])] == ids[:2]
    assert [r["id"] for r in arun(coupa_emulator, "unresolve_matching", {"status": "Error"})] == ids[:2]
    assert [r["id"] for r in arun(coupa_emulator, "resolve_matching", {"status": "Error"}, exclude=[ids[0]])] == ids[1:]
    assert resolved_ids(coupa_emulator) == ids[1:]


# ---------------------------------------------------------------------------------------------- a batch
def test_plan_records_checks_every_item_and_reports_all_problems_at_once(client: CoupaClient):
    planned = client.plan_records(
        [{"document_id": 1}, {"document_id": 2, "action": "create_alert"}],
        defaults={"document_type": "InvoiceHeader", "contact_alert_type": "Both", "integration": CODE},
        action="mark_exported",
    )
    assert [action for action, _ in planned] == ["mark_exported", "create_alert"]
    assert planned[1][1] == {
        "document_type": "InvoiceHeader",
        "contact_alert_type": "Both",
        "integration": CODE,
        "document_id": 2,
    }

    with pytest.raises(CoupaValidationError) as refused:
        client.plan_records([{"document_id": "x"}, "nope", {"document_id": 3, "action": "shout"}], defaults=record())
    problems = refused.value.problems
    assert problems[0].startswith("item 0: document_id")
    assert problems[1] == "item 1: must be a dict of record fields, got str"
    assert problems[2].startswith("item 2: action must be one of")
    assert "batch (nothing was sent)" in str(refused.value)

    with pytest.raises(CoupaValidationError) as many:
        client.plan_records([{"document_id": "x"}] * 25, defaults=record())
    assert len(many.value.problems) == 21
    assert many.value.problems[-1] == "... and 5 more"
    with pytest.raises(CoupaValidationError, match="items must be a list"):
        client.plan_records({"document_id": 1})


def test_create_records_writes_on_a_pool_reports_each_outcome_and_closes_every_thread_client(
    client: CoupaClient, coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
):
    planned = client.plan_records([{"document_id": i} for i in range(1, 13)], defaults=record(status="Success"))
    closed: list[int] = []
    real_close = CoupaClient.close

    def close(self: CoupaClient) -> None:
        closed.append(id(self))
        real_close(self)

    monkeypatch.setattr(CoupaClient, "close", close)
    seen: list[dict[str, Any]] = []
    threads: set[str] = set()

    def on_outcome(outcome: dict[str, Any]) -> None:
        threads.add(threading.current_thread().name)
        seen.append(outcome)

    outcomes = client.create_records(planned, max_workers=4, skip={0, 5}, on_outcome=on_outcome)
    assert [o["index"] for o in outcomes] == [i for i in range(12) if i not in (0, 5)]
    assert all(o["status"] == "created" and set(o) == {"index", "status", "id"} for o in outcomes)
    assert sorted(o["index"] for o in seen) == [o["index"] for o in outcomes]
    assert threads == {threading.current_thread().name}
    assert 1 <= len(closed) <= 4  # one client per worker thread, every one closed
    stored = {int(r["document-id"]) for r in coupa_emulator.state.records.rows.values()}
    assert stored == {i + 1 for i in range(12) if i not in (0, 5)}


def test_create_records_reports_failures_with_whether_a_retry_may_help(
    client: CoupaClient, coupa_emulator: CoupaEmulator
):
    planned = client.plan_records([{"document_id": 1}, {"document_id": 2}], defaults=record())
    coupa_emulator.faults.add(Fault("status", status=400, count=1, methods=("POST",), path_contains=IHR))
    outcomes = client.create_records(planned, max_workers=1)
    failed = [o for o in outcomes if o["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["id"] is None
    assert failed[0]["retryable"] is False
    assert "400" in failed[0]["error"]
    with pytest.raises(ValueError, match="max_workers"):
        client.create_records(planned, max_workers=0)


def test_find_existing_records_pairs_each_stored_record_with_one_item(
    client: CoupaClient, coupa_emulator: CoupaEmulator
):
    since = time.time() - 5
    items = [record(document_id=i, status="Success") for i in (1, 2, 2, 3)] + [
        record(document_type="Supplier", document_id=1, status="Success")
    ]
    client.create_record(**items[0])
    client.create_record(**items[1])  # one record for the two identical items 1 and 2
    client.create_record(**record(document_id=3, status="Error"))  # a different write for item 3
    client.create_record(**items[4])
    before = len(api_calls(coupa_emulator, "GET"))
    assert client.find_existing_records(items, since) == {0: 1, 1: 2, 4: 4}
    gets = coupa_emulator.requests(method="GET", path_contains=IHR)[before:]
    assert len(gets) == 2  # one query per document type (up to 50 ids each)
    assert client.find_existing_records(items, time.time() + 3600) == {}
    assert arun(coupa_emulator, "find_existing_records", items, since) == {0: 1, 1: 2, 4: 4}


def test_the_lookup_asks_by_document_type_and_fifty_ids_created_since_the_first_try():
    sent = batch.sent_records([record(document_id=i) for i in range(120, 0, -1)])
    walks = batch.lookup_walks(sent, since=1_767_225_600.9)  # 2026-01-01T00:00:00.9Z
    params = [dict(w.next_operation().params) for w in walks]  # type: ignore[union-attr]
    assert [p["document-id[in]"] for p in params] == [
        ",".join(map(str, range(1, 51))),
        ",".join(map(str, range(51, 101))),
        ",".join(map(str, range(101, 121))),
    ]
    assert {p["created-at[gt_or_eq]"] for p in params} == {"2026-01-01T00:00:00+00:00"}
    assert {p["document-type"] for p in params} == {"InvoiceHeader"}


def test_find_existing_records_asks_fifty_document_ids_at_a_time(client: CoupaClient, coupa_emulator: CoupaEmulator):
    items = [record(document_id=i) for i in range(1, 121)]
    assert client.find_existing_records(items, time.time() - 5) == {}
    assert len(api_calls(coupa_emulator, "GET", IHR)) == 3


def client_with(coupa: CoupaEmulator, attempts: int) -> CoupaClient:
    retry = RetryPolicy(max_attempts=attempts, backoff_base=0.01, backoff_cap=0.05, token_settle=0)
    return CoupaClient(config_for(coupa, retry=retry, read_timeout=0.3), token_cache=TokenCache())


def test_a_retry_lookup_goes_on_past_a_chunk_whose_query_fails_and_can_ask_again_for_it(
    coupa_emulator: CoupaEmulator,
):
    """Issue 12 item 8: one chunk of 50 documents failing its lookup leaves the other chunks' answers standing."""
    since = time.time() - 5
    items = [record(document_id=i, status="Success") for i in range(1, 121)]  # chunks: 1-50, 51-100, 101-120
    written = (3, 60, 110)
    with client_with(coupa_emulator, attempts=2) as client:
        for document_id in written:
            client.create_record(**items[document_id - 1])
        # Both attempts of the first chunk's query fail; the other two chunks answer.
        coupa_emulator.faults.add(Fault("status", status=503, count=2, methods=("GET",), path_contains=IHR))
        earlier = client.look_up_earlier_writes(items, since)
        assert (earlier.chunks, earlier.chunks_failed) == (3, 1)
        assert sorted(earlier.not_looked_up) == list(range(50))
        assert all("503" in why for why in earlier.not_looked_up.values())
        assert earlier.found == {59: 2, 109: 3}
        assert earlier.missing == tuple(i for i in range(50, 120) if i not in (59, 109))
        assert [o["status"] for o in earlier.unchecked()] == ["not_looked_up"] * 50
        assert earlier.unchecked()[0]["error"].startswith("lookup failed, not written: ")
        assert earlier.unchecked()[0]["retryable"] is True
        # Asking again for the chunk that failed finds what the whole lookup would have, in one query.
        before = len(api_calls(coupa_emulator, "GET", IHR))
        again = client.look_up_earlier_writes(items, since, among=earlier.not_looked_up.keys())
        assert (again.found, again.not_looked_up, again.chunks) == ({2: 1}, {}, 1)
        assert again.missing == tuple(i for i in range(50) if i != 2)
        assert len(api_calls(coupa_emulator, "GET", IHR)) == before + 1
        # The all-or-nothing lookup still raises on a failed chunk, as it did.
        coupa_emulator.faults.add(Fault("status", status=503, count=2, methods=("GET",), path_contains=IHR))
        with pytest.raises(CoupaError, match="503"):
            client.find_existing_records(items, since)


@pytest.mark.parametrize(
    ("fault", "attempts", "status", "retryable", "landed"),
    [
        # Coupa refused it, or it never reached Coupa: surely not written.
        (Fault("status", status=400, methods=("POST",)), 1, "failed", False, False),
        (Fault("status", status=503, methods=("POST",)), 1, "failed", True, False),
        (Fault("storm", status=429, methods=("POST",)), 1, "failed", True, False),
        # Coupa may have acted before the answer was lost: the outcome is unknown, whether it landed or not.
        (Fault("drop_after", methods=("POST",)), 1, "unknown", True, True),
        (Fault("drop_before", methods=("POST",)), 1, "unknown", True, False),  # the client cannot tell a reset
        (Fault("status", status=500, methods=("POST",)), 1, "unknown", True, False),
        (Fault("status", status=502, methods=("POST",)), 1, "unknown", True, False),
        (Fault("status", status=504, methods=("POST",)), 1, "unknown", True, False),
        (Fault("latency", seconds=0.4, methods=("POST",)), 1, "unknown", True, True),  # landed after the client gave up
        # The answer was lost and the client's own lookup failed too (a GET's error): still unknown.
        (Fault("drop_after", methods=("POST",)), 2, "unknown", True, True),
    ],
)
def test_a_failed_create_in_a_batch_says_whether_it_may_have_landed(
    coupa_emulator: CoupaEmulator, fault: Fault, attempts: int, status: str, retryable: bool, landed: bool
):
    """Issue 12 item 8: "failed" only when the record is surely not in Coupa; "unknown" when it may be."""
    fault.count = 1
    coupa_emulator.faults.add(fault)
    if attempts == 2:  # the lookup after the lost answer fails on both its attempts
        coupa_emulator.faults.add(Fault("status", status=503, count=2, methods=("GET",), path_contains=IHR))
    with client_with(coupa_emulator, attempts=attempts) as client:
        planned = client.plan_records([{"document_id": 7}, {"document_id": 8}], defaults=record())
        first, second = client.create_records(planned, max_workers=1)
    time.sleep(0.2)  # a stalled create lands on the server after the client gave up
    assert (first["status"], first["retryable"], first["id"]) == (status, retryable, None)
    assert second["status"] == "created"  # the fault hit once; the next write went through
    stored = sorted(int(r["document-id"]) for r in coupa_emulator.records())
    assert stored == ([7, 8] if landed else [8])


def test_the_batch_reads_server_errors_as_the_retry_rules_do():
    """A create attempt "may have acted" exactly when the retry rules would look before re-sending it."""
    import random

    from airflow_provider_coupa_ihr.client.flow import HttpRequest, HttpResponse, TransportFailure
    from airflow_provider_coupa_ihr.client.retry import Action, decide_retry

    policy = RetryPolicy(max_attempts=3)
    post = HttpRequest("POST", "https://coupa.example/api/integration_history_records")
    for status in sorted(policy.retry_statuses):
        witness = batch.LandingWitness("https://coupa.example/api")
        witness.saw(post, HttpResponse(status, {}, b""))
        step = decide_retry(policy, attempts=1, elapsed=0, rng=random.Random(1), status=status, idempotent=False)
        assert witness.may_have_landed == (step.action is Action.VERIFY_THEN_RETRY), status
    for sent in (True, None, False):
        witness = batch.LandingWitness("https://coupa.example/api")
        witness.saw(post, TransportFailure("lost", sent))
        step = decide_retry(
            policy, attempts=1, elapsed=0, rng=random.Random(1), transport_error=True, sent=sent, idempotent=False
        )
        assert witness.may_have_landed == (step.action is Action.VERIFY_THEN_RETRY), sent
    # A create answered 2xx whose answer could not be read (a cut or garbled body) did act.
    witness = batch.LandingWitness("https://coupa.example/api")
    witness.saw(post, HttpResponse(201, {}, b"<html>"))
    assert witness.may_have_landed
    # The lookup answering closes the question (the call then adopts what it found, or sends again); a token
    # request does not.
    witness = batch.LandingWitness("https://coupa.example/api")
    witness.saw(post, TransportFailure("lost", True))
    witness.saw(HttpRequest("POST", "https://coupa.example/oauth2/token"), HttpResponse(200, {}, b"{}"))
    assert witness.may_have_landed
    witness.saw(HttpRequest("GET", post.url), HttpResponse(200, {}, b"[]"))
    assert not witness.may_have_landed


def test_a_batch_summary_counts_every_status_and_quotes_examples_of_each_problem():
    outcomes = [
        {"index": 0, "status": "created", "id": 1},
        {"index": 1, "status": "already_present", "id": 2},
        {"index": 2, "status": "failed", "id": None, "error": "Coupa answered 400 Bad Request."},
        {"index": 3, "status": "unknown", "id": None, "error": "No answer from Coupa."},
        {"index": 4, "status": "not_looked_up", "id": None, "error": "lookup failed, not written: 503."},
    ]
    assert batch.count_outcomes(outcomes) == {
        "created": 1,
        "already_present": 1,
        "failed": 1,
        "unknown": 1,
        "not_looked_up": 1,
    }
    text = batch.describe_outcomes(outcomes)
    assert text.startswith("5 items: 1 created, 1 already present, 1 failed (not written: ")
    assert "1 outcome unknown (may have landed" in text
    assert "1 not looked up (" in text
    assert "First failed: item 2: Coupa answered 400" in text
    assert "First unknown: item 3: No answer from Coupa." in text
    assert "First not looked up: item 4: lookup failed" in text
    assert batch.describe_outcomes(outcomes[:2]) == "2 items: 1 created, 1 already present."


# ---------------------------------------------------------------------------------------------- resolution
def test_check_resolution_by_ids_waits_reports_missing_and_ends(client: CoupaClient, coupa_emulator: CoupaEmulator):
    ids = [int(r["id"]) for r in seed(coupa_emulator, 2, status="Error")]
    target = ResolutionTarget.of(record_ids=ids)
    assert client.check_resolution(target) == WaitState(waiting=tuple(ids))
    client.resolve_records(ids)
    state = client.check_resolution(target)
    assert state.done
    assert [r["id"] for r in state.records] == ids
    assert arun(coupa_emulator, "check_resolution", target) == state
    missing = client.check_resolution(ResolutionTarget.of(record_ids=[ids[0], 999]))
    assert missing.missing == (999,)


def test_check_resolution_by_query_returns_what_was_resolved_since_the_wait_began(
    client: CoupaClient, coupa_emulator: CoupaEmulator
):
    ids = [int(r["id"]) for r in seed(coupa_emulator, 3, status="Error")]
    target = ResolutionTarget.of(filters={"status": "Error"})
    began = datetime.now(timezone.utc)
    waiting = client.check_resolution(target, since=began)
    assert waiting.waiting == tuple(ids)
    assert not waiting.more
    client.resolve_matching({"status": "Error"})
    state = client.check_resolution(target, since=began)
    assert state.done
    assert [r["id"] for r in state.records] == ids
    assert arun(coupa_emulator, "check_resolution", target, since=began) == state


# ---------------------------------------------------------------------------------------------- runs
def test_a_run_starts_running_and_a_retried_finish_or_fail_leaves_it_as_it_is(
    client: CoupaClient, coupa_emulator: CoupaEmulator
):
    run = client.start_run(CODE, total_records=3)
    assert run["status"] == "running"
    assert run["total_records"] == 3
    finished = client.finish_run(run["id"], records_processed=3)
    assert finished["status"] == "successful"
    assert finished["records_processed"] == 3
    puts = len(api_calls(coupa_emulator, "PUT"))
    assert client.finish_run(str(run["id"]), records_processed=3)["status"] == "successful"
    assert len(api_calls(coupa_emulator, "PUT")) == puts  # read, found successful, left alone
    assert client.get_run(run["id"])["status"] == "successful"

    other = client.start_run(CODE)
    assert client.fail_run(other["id"])["status"] == "failed"
    assert client.fail_run(other["id"])["status"] == "failed"
    third = client.start_run(CODE)
    assert client.finish_run(third["id"], action="finish")["status"] == "successful"
    with pytest.raises(CoupaValidationError, match="success or finish"):
        client.finish_run(third["id"], action="fail")


def test_async_run_lifecycle(coupa_emulator: CoupaEmulator):
    run = arun(coupa_emulator, "start_run", CODE, total_records=2)
    assert run["status"] == "running"
    assert arun(coupa_emulator, "finish_run", run["id"], records_processed=2)["status"] == "successful"
    assert arun(coupa_emulator, "finish_run", run["id"])["status"] == "successful"
    assert arun(coupa_emulator, "fail_run", arun(coupa_emulator, "start_run", CODE)["id"])["status"] == "failed"


# ---------------------------------------------------------------------------------------------- config
def test_a_config_within_a_bound_cuts_timeouts_and_the_retry_budget():
    config = ClientConfig("https://acme.coupahost.com", "id", "secret", read_timeout=60, connect_timeout=2)
    bounded = config.within(5)
    assert (bounded.read_timeout, bounded.connect_timeout) == (5, 2)
    assert (bounded.retry.max_elapsed, bounded.retry.max_retry_after, bounded.retry.token_settle) == (5, 5, 3)
    assert bounded.retry.max_attempts == config.retry.max_attempts
    assert (bounded.base_url, bounded.client_secret) == (config.base_url, config.client_secret)
    with pytest.raises(CoupaConfigError, match="seconds"):
        config.within(0)

