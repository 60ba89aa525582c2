"""The wait's logic, without sockets: what a check asks Coupa, and what the answers mean (client.resolution),
and the clients' check_resolution, which performs the asks and hands the pages to it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import pytest

from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import Operation
from airflow_provider_coupa_ihr.client.resolution import (
    RECORD_KEYS,
    ResolutionTarget,
    WaitState,
    ids_wait_state,
    next_delay,
    resolved_state,
    state_from_pages,
)
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.values import parse_ids

CONFIG = ClientConfig("https://acme.coupahost.com", "id", "secret")


def record(record_id: int, resolved: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "status": "Error",
        "document_type": "InvoiceHeader",
        "document_id": 7,
        "external_id": None,
        "resolved": resolved,
        "updated_at": "2026-01-01T00:00:00+00:00",
        "integration": {"code": "ERP"},
        **extra,
    }


class FakeCoupa:
    """Answers index operations from a list of records, applying the filters the wait uses."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.operations: list[Operation] = []

    def perform(self, operation: Operation) -> list[dict[str, Any]]:
        self.operations.append(operation)
        params = dict(operation.params)
        rows = self.records
        if "id[in]" in params:
            wanted = {int(i) for i in params["id[in]"].split(",")}
            rows = [r for r in rows if r["id"] in wanted]
        if "resolved" in params:
            rows = [r for r in rows if r["resolved"] == (params["resolved"] == "true")]
        if "id[gt]" in params:
            rows = [r for r in rows if r["id"] > int(params["id[gt]"])]
        return rows[: int(params.get("limit", 50))]


def check(target: ResolutionTarget, perform: Any, since: datetime | None = None) -> WaitState:
    """``CoupaClient.check_resolution`` with ``perform`` answering instead of Coupa."""
    with CoupaClient(CONFIG) as client:
        client.perform = perform  # type: ignore[method-assign]
        return client.check_resolution(target, since=since)


async def acheck(target: ResolutionTarget, perform: Any, since: datetime | None = None) -> WaitState:
    """``AsyncCoupaClient.check_resolution`` with an async ``perform`` answering instead of Coupa."""
    async with AsyncCoupaClient(CONFIG) as client:
        client.perform = perform  # type: ignore[method-assign]
        return await client.check_resolution(target, since=since)


# ---------------------------------------------------------------------------------------------- record ids
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (7, (7,)),
        ("7", (7,)),
        ("7, 8,9", (7, 8, 9)),
        ("[7, 8]", (7, 8)),  # a list pulled from XCom and rendered as text by Jinja
        ([8, "7", 8], (8, 7)),  # order kept, repeats dropped
        ({9, 3}, (3, 9)),
        ([], ()),
        ("[]", ()),
    ],
)
def test_record_ids_are_read_from_what_dag_authors_and_templates_hand_over(given: Any, expected: tuple[int, ...]):
    assert parse_ids(given) == expected


def test_every_bad_record_id_is_named_at_once():
    with pytest.raises(CoupaValidationError) as refused:
        parse_ids([1, "x", 0, -3])
    assert [p.split(": ", 1)[1] for p in refused.value.problems] == [
        "'x' is not a Coupa record id (a whole number from 1)",
        "0 is not a Coupa record id (a whole number from 1)",
        "-3 is not a Coupa record id (a whole number from 1)",
    ]
    with pytest.raises(CoupaValidationError):
        parse_ids(True)
    with pytest.raises(CoupaValidationError):
        parse_ids(3.5)


# ---------------------------------------------------------------------------------------------- the target
def test_a_target_is_ids_or_filters_never_both_nor_neither():
    with pytest.raises(CoupaValidationError, match="either record_ids"):
        ResolutionTarget.of()
    with pytest.raises(CoupaValidationError, match="either record_ids"):
        ResolutionTarget.of(record_ids=[1], filters={"document_id": 1})


def test_filters_are_validated_once_and_kept_rendered_as_plain_json():
    target = ResolutionTarget.of(
        filters={"document_id": 7, "integration[code]": "ERP", "created_at[gt]": datetime(2026, 1, 1)}
    )
    assert target.filters == {
        "document-id": "7",
        "integration[code]": "ERP",
        "created-at[gt]": "2026-01-01T00:00:00+00:00",
    }
    assert json.loads(json.dumps(target.filters)) == target.filters
    # Rendered filters validate again to the same thing (a trigger rebuilds the target from them).
    assert ResolutionTarget.of(filters=target.filters) == target


def test_filters_coupa_would_refuse_or_that_fight_the_wait_are_refused():
    with pytest.raises(CoupaValidationError, match="unknown field"):
        ResolutionTarget.of(filters={"documnet_id": 7})
    with pytest.raises(CoupaValidationError, match="set by the wait itself"):
        ResolutionTarget.of(filters={"document_id": 7, "resolved": False})
    with pytest.raises(CoupaValidationError, match="must be a mapping"):
        ResolutionTarget.of(filters=["document_id"])  # type: ignore[arg-type]


def test_ids_are_asked_fifty_at_a_time_with_fields_trimmed():
    target = ResolutionTarget.of(record_ids=list(range(1, 121)))
    operations = target.poll_operations
    assert len(operations) == 3
    first = dict(operations[0].params)
    assert first["id[in]"] == ",".join(str(i) for i in range(1, 51))
    assert dict(operations[2].params)["id[in]"] == ",".join(str(i) for i in range(101, 121))
    assert first["limit"] == "50"
    assert json.loads(first["fields"]) == [
        "id",
        "status",
        "document-type",
        "document-id",
        "external-id",
        "resolved",
        "updated-at",
        {"integration": ["code"]},
    ]
    assert all(op.method == "GET" and op.path == "/integration_history_records" for op in operations)
    assert target.poll_operations is operations  # built once for the whole wait


def test_a_query_asks_one_page_of_unresolved_ids():
    (operation,) = ResolutionTarget.of(filters={"integration[code]": "ERP"}).poll_operations
    params = dict(operation.params)
    assert params["integration[code]"] == "ERP"
    assert params["resolved"] == "false"
    assert json.loads(params["fields"]) == ["id"]
    assert params["limit"] == "50"


# ---------------------------------------------------------------------------------------------- deciding
def test_all_ids_resolved_at_the_same_check_is_done_with_the_records_in_the_order_given():
    state = ids_wait_state([3, 1], {1: record(1, True), 3: record(3, True)})
    assert state.done
    assert [r["id"] for r in state.records] == [3, 1]
    assert tuple(state.records[0]) == RECORD_KEYS
    assert state.records[0]["integration"] == "ERP"


def test_the_current_state_counts_so_a_reopened_record_keeps_the_wait_going():
    # Record 1 was resolved at an earlier check, then reopened in Coupa: now it is unresolved, so we wait.
    state = ids_wait_state([1, 2], {1: record(1, False), 2: record(2, True)})
    assert not state.done
    assert state.waiting == (1,)


def test_unknown_ids_end_the_wait_at_once_even_if_others_are_unresolved():
    state = ids_wait_state([1, 2, 3], {1: record(1, False)})
    assert not state.done
    assert state.missing == (2, 3)
    message = state.describe(ResolutionTarget.of(record_ids=[1, 2, 3]))
    assert "no integration history records with ids 2, 3" in message
    assert "can never be resolved" in message


def test_resolved_as_text_counts_and_anything_else_does_not():
    assert ids_wait_state([1], {1: record(1, "true")}).done  # type: ignore[arg-type]
    assert not ids_wait_state([1], {1: record(1, None)}).done  # type: ignore[arg-type]
    assert not ids_wait_state([1], {1: {"id": 1}}).done


def test_no_ids_is_done_at_once():
    target = ResolutionTarget.of(record_ids=[])
    state = check(target, FakeCoupa([]).perform)
    assert state.done
    assert state.records == ()


# ---------------------------------------------------------------------------------------------- checking
def test_a_check_on_120_ids_costs_three_requests():
    coupa = FakeCoupa([record(i, resolved=i != 77) for i in range(1, 121)])
    target = ResolutionTarget.of(record_ids=list(range(1, 121)))
    state = check(target, coupa.perform)
    assert state.waiting == (77,)
    assert len(coupa.operations) == 3
    assert state.describe(target) == "Waiting for 1 of 120 records to be resolved: 77"


def test_a_query_waits_while_anything_matching_is_unresolved():
    coupa = FakeCoupa([record(i, resolved=i % 2 == 0) for i in range(1, 121)])
    target = ResolutionTarget.of(filters={"integration[code]": "ERP"})
    state = check(target, coupa.perform)
    assert not state.done
    assert state.waiting == tuple(range(1, 100, 2))
    assert state.more
    assert len(coupa.operations) == 1
    assert state.describe(target).startswith("Waiting for at least 50 unresolved records matching integration[code]")


def test_a_finished_query_returns_what_was_resolved_since_the_wait_began_paging_past_fifty():
    coupa = FakeCoupa([record(i, resolved=True) for i in range(1, 121)])
    target = ResolutionTarget.of(filters={"integration[code]": "ERP"})
    began = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    state = check(target, coupa.perform, since=began)
    assert state.done
    assert [r["id"] for r in state.records] == list(range(1, 121))
    assert len(coupa.operations) == 1 + 3  # the unresolved page, then a walk of three pages
    walk = dict(coupa.operations[1].params)
    assert walk["resolved"] == "true"
    assert walk["updated-at[gt_or_eq]"] == "2026-03-01T11:59:00+00:00"  # a minute early, for clock skew
    assert "id[gt]" in dict(coupa.operations[2].params)  # keyset paging


def test_a_users_own_updated_at_bound_is_kept():
    target = ResolutionTarget.of(filters={"updated_at[gt_or_eq]": "2026-01-01T00:00:00+00:00"})
    walk = target.resolved_walk(datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert ("updated-at[gt_or_eq]", "2026-01-01T00:00:00+00:00") in walk.next_operation().params  # type: ignore[union-attr]


def test_the_async_driver_decides_exactly_as_the_blocking_one():
    records = [record(i, resolved=i != 3) for i in range(1, 6)]
    target = ResolutionTarget.of(record_ids=[1, 2, 3, 4, 5])
    blocking = check(target, FakeCoupa(records).perform)

    async def perform(operation: Operation) -> Any:
        await asyncio.sleep(0)
        return FakeCoupa(records).perform(operation)

    assert asyncio.run(acheck(target, perform)) == blocking == WaitState(waiting=(3,))


def test_errors_from_coupa_pass_through_the_driver_untouched():
    def perform(operation: Operation) -> Any:
        raise CoupaValidationError(["boom"])

    with pytest.raises(CoupaValidationError, match="boom"):
        check(ResolutionTarget.of(record_ids=[1]), perform)


def test_the_query_string_coupa_gets_is_what_its_docs_show():
    (operation,) = ResolutionTarget.of(record_ids=[5, 6]).poll_operations
    query = dict(parse_qsl("&".join(f"{k}={v}" for k, v in operation.params)))
    assert query["id[in]"] == "5,6"
    assert query["order_by"] == "id"


def test_the_pages_of_one_check_decide_the_wait_without_any_client():
    target = ResolutionTarget.of(record_ids=[1, 2])
    assert state_from_pages(target, [[record(1, True)], None]) == WaitState(missing=(2,))
    query = ResolutionTarget.of(filters={"integration[code]": "ERP"})
    assert state_from_pages(query, [[{"id": 4}]]) == WaitState(waiting=(4,))
    assert state_from_pages(query, [[]]) is None  # nothing unresolved: the resolved walk comes next
    assert [r["id"] for r in resolved_state([record(5, True)]).records] == [5]


# ---------------------------------------------------------------------------------------------- pacing
def test_polls_keep_the_poke_interval_or_double_it_with_backoff_up_to_max_wait():
    assert [next_delay(5, n) for n in (1, 2, 3)] == [5, 5, 5]
    assert [next_delay(5, n, exponential_backoff=True) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert [next_delay(5, n, exponential_backoff=True, max_wait=12) for n in (1, 2, 3)] == [5, 10, 12]
    assert next_delay(5, 10_000, exponential_backoff=True) < float("inf")


def test_a_naive_wait_start_is_taken_as_utc():
    target = ResolutionTarget.of(filters={"integration[code]": "ERP"})
    naive = target.resolved_walk(datetime(2026, 3, 1, 12, 0)).next_operation()
    aware = target.resolved_walk(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)).next_operation()
    assert naive == aware
    assert ("updated-at[gt_or_eq]", "2026-03-01T11:59:00+00:00") in naive.params  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------ malformed pages
MALFORMED_PAGES = [
    pytest.param({"id": 1, "resolved": True}, "is not a page of records", id="an-object-where-a-page-belongs"),
    pytest.param(["1"], "holds a JSON str", id="an-item-that-is-not-a-record"),
    pytest.param([{"resolved": True}], "with no id", id="a-record-without-an-id"),
    pytest.param([{"id": "²", "resolved": True}], "the id '²'", id="an-id-isdigit-reads"),
    pytest.param([{"id": "9" * 5000, "resolved": True}], "5000 characters", id="an-id-past-int-s-limit"),
    pytest.param([{"id": 0, "resolved": True}], "the id 0", id="id-zero"),
    pytest.param("<html>login</html>", "it is a JSON str", id="text"),
]


@pytest.mark.parametrize(("page", "words"), MALFORMED_PAGES)
@pytest.mark.parametrize(
    "target", [ResolutionTarget.of(record_ids=[1]), ResolutionTarget.of(filters={"status": "Error"})]
)
def test_a_malformed_page_is_a_coupa_error_sync_and_async(page: Any, words: str, target: ResolutionTarget) -> None:
    from airflow_provider_coupa_ihr.client.errors import CoupaError

    def perform(operation: Operation) -> Any:
        return page

    async def aperform(operation: Operation) -> Any:
        return page

    with pytest.raises(CoupaError) as blocking:
        check(target, perform)
    with pytest.raises(CoupaError) as awaiting:
        asyncio.run(acheck(target, aperform))
    for error in (blocking.value, awaiting.value):
        assert not isinstance(error, CoupaValidationError)  # Coupa's answer is at fault, not the caller
        assert words in str(error)
        assert len(str(error)) < 800


def test_records_returned_at_the_end_of_a_query_wait_must_be_records() -> None:
    from airflow_provider_coupa_ihr.client.errors import CoupaError
    from airflow_provider_coupa_ihr.client.resolution import resolved_state

    with pytest.raises(CoupaError, match="with no id"):
        resolved_state([{"resolved": True}])


def test_jittered_delays_spread_a_thousand_waits_started_together() -> None:
    import random

    from airflow_provider_coupa_ihr.client.resolution import POLL_JITTER

    rng = random.Random(3)
    delays = [next_delay(60, 1, jitter=POLL_JITTER, rng=rng) for _ in range(1000)]
    assert all(60 * (1 - POLL_JITTER) <= d <= 60 * (1 + POLL_JITTER) for d in delays)
    # Spread over the whole window, not bunched: no one-second slice holds more than a fifth of the waits.
    per_second = {}
    for d in delays:
        per_second[int(d)] = per_second.get(int(d), 0) + 1
    assert len(per_second) >= 11
    assert max(per_second.values()) < 200
    assert next_delay(60, 1, max_wait=30, jitter=0.5, rng=rng) <= 30

