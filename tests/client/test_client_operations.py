"""Operation builders: what each client call sends, whether it may be re-sent, how a lost create is found again.
No I/O."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client import operations as ops
from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.records import (
    ERRORS_PATH,
    INTEGRATIONS_PATH,
    RECORDS_PATH,
    RUNS_PATH,
    to_python_keys,
)

NOW = datetime(2024, 3, 25, 18, 0, tzinfo=timezone.utc).timestamp()
RECORD: dict[str, Any] = {
    "document_type": "InvoiceHeader",
    "document_id": 42,
    "contact_alert_type": "Functional",
    "status": "Error",
    "integration": "ERP",
    "responses": [("E1", "blocked")],
}


def problems_of(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(CoupaValidationError) as caught:
        call(*args, **kwargs)
    return caught.value.problems


# ------------------------------------------------------------------------------------------------ records
@pytest.mark.parametrize(
    ("action", "path"),
    [
        ("create", "/integration_history_records"),
        ("create_alert", "/integration_history_records/create_alert"),
        ("mark_exported", "/integration_history_records/mark_exported"),
        ("create_alert_and_mark_exported", "/integration_history_records/create_alert_and_mark_exported"),
        ("acknowledge", "/integration_history_records/acknowledge"),
    ],
)
def test_create_record_posts_one_record_to_the_actions_path(action: str, path: str) -> None:
    op = ops.create_record(RECORD, action=action, now=NOW)
    assert (op.method, op.path) == ("POST", path)
    assert op.body["document-type"] == "InvoiceHeader"
    assert op.body["integration"] == {"code": "ERP"}
    assert op.idempotent is False
    assert op.verify is not None


def test_create_record_refuses_an_unknown_action() -> None:
    (problem,) = problems_of(ops.create_record, RECORD, action="delete", now=NOW)
    assert problem.startswith("action must be one of create, acknowledge, mark_exported")
    assert "'delete'" in problem


def test_the_lookup_of_a_lost_create_pins_the_document_and_a_time_window() -> None:
    op = ops.create_record({**RECORD, "integration_run": 9}, now=NOW)
    assert op.verify is not None
    query = op.verify.query()
    params = dict(query.params)
    assert (query.method, query.path) == ("GET", "/integration_history_records")
    assert params["document-type"] == "InvoiceHeader"
    assert params["document-id"] == "42"
    assert params["integration-run-id"] == "9"
    assert params["created-at[gt_or_eq]"] == "2024-03-25T17:50:00+00:00"  # ten minutes back
    assert (params["order_by"], params["dir"], params["limit"]) == ("id", "desc", "50")


def _stored(**changes: Any) -> dict[str, Any]:
    body = to_python_keys(ops.create_record(RECORD, now=NOW).body)
    record = {
        **body,
        "id": 5,
        "integration": {"id": 1, "code": "ERP", "name": "ERP"},
        "responses": [{"id": 1, "response_code": "E1", "response_message": "blocked"}],
        "resolved": False,
        "external_id": None,
    }
    record.update(changes)
    return record


def test_the_lookup_picks_the_same_write_and_only_it() -> None:
    op = ops.create_record(RECORD, now=NOW)
    assert op.verify is not None
    pick = op.verify.pick
    assert pick([]) is None
    assert pick([_stored()])["id"] == 5
    assert pick([_stored(status="Success")]) is None
    assert pick([_stored(contact_alert_type="Both")]) is None
    assert pick([_stored(integration={"code": "OTHER"})]) is None
    assert pick([_stored(responses=[])]) is None
    assert pick([_stored(responses=[{"response_code": "E1", "response_message": "other"}])]) is None
    # Newest first: the first match wins.
    assert pick([_stored(status="Success", id=9), _stored(id=8), _stored(id=7)])["id"] == 8


def test_an_error_create_goes_to_integration_errors() -> None:
    op = ops.create_error({**RECORD, "integration_run": 3}, action="create_alert", now=NOW)
    assert (op.method, op.path) == ("POST", "/integration_errors/create_alert")
    assert op.body["integration-run"] == {"id": 3}
    assert op.verify is not None
    assert dict(op.verify.query().params)["integration-run-id"] == "3"
    assert problems_of(ops.create_error, RECORD, now=NOW) == ["integration_run can't be blank"]
    assert (
        "action must be one of create, create_alert"
        in problems_of(ops.create_error, {**RECORD, "integration_run": 3}, action="acknowledge", now=NOW)[0]
    )


def test_update_record_sends_only_what_changes_and_may_be_resent() -> None:
    op = ops.update_record(5, {"status": "Success", "responses": []})
    assert (op.method, op.path, op.body) == (
        "PUT",
        "/integration_history_records/5",
        {"status": "Success", "responses": []},
    )
    assert op.idempotent is True
    assert op.verify is None
    assert ops.update_record("6", {"status": "x"}, path=ERRORS_PATH).path == "/integration_errors/6"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({}, "an update needs at least one field"),
        ({"status": None}, "an update needs at least one field"),
        ({"resolved": True}, "resolved is read-only"),
        ({"stauts": "x"}, "did you mean status?"),
        ({"document_type": ""}, "document_type can't be blank"),
        ({"external_id": "x" * 256}, "too long"),
    ],
)
def test_update_record_refusals(fields: dict[str, Any], fragment: str) -> None:
    assert fragment in problems_of(ops.update_record, 5, fields)[0]


def test_resolve_and_unresolve() -> None:
    assert ops.set_resolved(5, True).path == "/integration_history_records/5/resolve"
    assert ops.set_resolved(5, False).path == "/integration_history_records/5/unresolve"
    assert ops.set_resolved(5, True, path=ERRORS_PATH).path == "/integration_errors/5/resolve"
    assert ops.set_resolved(5, True).method == "PUT"
    assert ops.set_resolved(5, True).idempotent is True


@pytest.mark.parametrize("bad", [0, -1, "abc", "", None, True, 1.5, [1]])
def test_ids_must_be_coupa_ids(bad: Any) -> None:
    for call in (
        lambda: ops.get_resource(RECORDS_PATH, bad),
        lambda: ops.set_resolved(bad, True),
        lambda: ops.update_record(bad, {"status": "x"}),
        lambda: ops.run_transition(bad, "run"),
    ):
        (problem,) = problems_of(call)
        assert "must be a Coupa id (a whole number from 1)" in problem


def test_get_resource_with_fields() -> None:
    op = ops.get_resource(RECORDS_PATH, "7", fields=["id", "status", {"integration": ["code"]}])
    assert (op.method, op.path) == ("GET", "/integration_history_records/7")
    assert json.loads(dict(op.params)["fields"]) == ["id", "status", {"integration": ["code"]}]
    assert ops.get_resource(RUNS_PATH, 1).params == ()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        (["stauts"], "did you mean status?"),
        ("id", "must be a list of field names"),
        ([], "must name at least one field"),
        ([{"integration": ["cod"]}], "unknown field cod"),
    ],
)
def test_get_resource_refuses_bad_fields(fields: Any, fragment: str) -> None:
    assert fragment in problems_of(ops.get_resource, RECORDS_PATH, 7, fields=fields)[0]


def test_query_resources_is_one_page() -> None:
    op = ops.query_resources(INTEGRATIONS_PATH, {"code": "ERP"}, limit=1)
    assert op.path == "/integrations"
    assert op.params == (("code", "ERP"), ("order_by", "id"), ("dir", "asc"), ("limit", "1"), ("offset", "0"))


# ------------------------------------------------------------------------------------------------ runs
def test_create_run_names_its_integration_and_can_be_found_again() -> None:
    op = ops.create_run("ERP", now=NOW, total_records="12")
    assert (op.method, op.path, op.body) == (
        "POST",
        "/integration_runs",
        {"total-records": 12, "integration": {"code": "ERP"}},
    )
    assert op.idempotent is False
    assert op.verify is not None
    params = dict(op.verify.query().params)
    assert params["integration[code]"] == "ERP"
    assert params["status"] == "pending"
    assert params["created-at[gt_or_eq]"] == "2024-03-25T17:50:00+00:00"
    assert op.verify.pick([{"id": 4}, {"id": 3}]) == {"id": 4}
    assert op.verify.pick([]) is None


@pytest.mark.parametrize("bad", ["", "  ", None, 5])
def test_create_run_needs_an_integration_code(bad: Any) -> None:
    assert "integration must be the integration's code" in problems_of(ops.create_run, bad, now=NOW)[0]


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("run", "running"),
        ("pause", "paused"),
        ("pending", "pending"),
        ("success", "successful"),
        ("finish", "successful"),
        ("fail", "failed"),
    ],
)
def test_run_transition_checks_a_lost_answer_by_the_runs_status(action: str, status: str) -> None:
    op = ops.run_transition(8, action)
    assert (op.method, op.path, op.body) == ("PUT", f"/integration_runs/8/{action}", None)
    assert op.idempotent is False
    assert op.verify is not None
    assert op.verify.query().params == (("id", "8"),)
    assert op.verify.pick([{"id": 8, "status": status}]) == {"id": 8, "status": status}
    other = "failed" if status != "failed" else "running"
    assert op.verify.pick([{"id": 8, "status": other}]) is None


def test_run_transition_fields() -> None:
    started = datetime(2024, 3, 25, 18, 0, tzinfo=timezone.utc)
    op = ops.run_transition(8, "run", total_records=10, records_processed="0", start_time=started)
    assert op.body == {"total-records": 10, "records-processed": 0, "start-time": "2024-03-25T18:00:00+00:00"}
    # A naive datetime is UTC, as Airflow's are; ISO text passes as written.
    assert ops.run_transition(8, "run", end_time=datetime(2024, 3, 25, 18)).body == {
        "end-time": "2024-03-25T18:00:00+00:00"
    }
    assert ops.run_transition(8, "run", end_time="2024-03-25T11:00:00-07:00").body == {
        "end-time": "2024-03-25T11:00:00-07:00"
    }
    json.dumps(op.body)  # the body must be JSON as it is


@pytest.mark.parametrize(
    ("action", "fields", "fragment"),
    [
        ("explode", {}, "action must be one of run, pause, pending, success, finish, fail, got 'explode'"),
        ("run", {"total": 3}, "unknown run field(s) ['total']"),
        ("run", {"total_records": -1}, "total_records must be a whole number"),
        ("run", {"records_processed": "many"}, "records_processed must be a whole number"),
        ("run", {"start_time": "yesterday"}, "start_time takes a datetime or ISO 8601 text"),
        ("run", {"start_time": 1700000000}, "start_time takes a datetime or ISO 8601 text"),
    ],
)
def test_run_transition_refusals(action: str, fields: dict[str, Any], fragment: str) -> None:
    assert fragment in problems_of(ops.run_transition, 8, action, **fields)[0]


def test_builders_are_cheap() -> None:
    started = time.perf_counter()
    for _ in range(200):
        ops.create_record(RECORD, now=NOW)
    assert time.perf_counter() - started < 1.0


# ------------------------------------------------------------------------------------------------ hostile values
def test_the_same_write_check_reads_odd_stored_records_without_raising() -> None:
    sent = {"document_type": "InvoiceHeader", "document_id": 1, "integration": {"code": "ERP"}, "responses": []}
    for stored in (
        {"document_type": "InvoiceHeader", "document_id": 1, "integration": "ERP", "responses": []},
        {"document_type": "InvoiceHeader", "document_id": 1, "integration": {"code": "ERP"}, "responses": "x"},
        {"document_type": "InvoiceHeader", "document_id": 1, "integration": {"code": "ERP"}, "responses": [5]},
    ):
        assert ops.is_same_write(stored, sent) is False


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: ops.run_transition(1, "run", total_records=2**63), "total_records must be a whole number from 0"),
        (lambda: ops.run_transition(1, "fail", records_processed="9" * 5000), "records_processed must be"),
        (lambda: ops.run_transition(2**63, "run"), "run_id must be a Coupa id"),
        (lambda: ops.create_run("I" * 256, now=0.0), "at most 255 characters"),
        (lambda: ops.create_run("I" * 100_000, now=0.0), "100000 characters"),
        (lambda: ops.set_resolved("7" * 100_000, True), "100000 characters"),
        (lambda: ops.create_record({}, action="x" * 100_000, now=0.0), "100000 characters"),
    ],
)
def test_run_counts_and_ids_are_bounded_and_quoted_briefly(call: Any, words: str) -> None:
    with pytest.raises(CoupaValidationError) as refused:
        call()
    assert words in str(refused.value)
    assert len(str(refused.value)) < 800
