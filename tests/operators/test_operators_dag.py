"""Every record operator through a real ``dag.test()`` run against the emulator."""

from __future__ import annotations

import json

import pytest
from dag_helpers import load_dag, run_state, task_states, try_numbers, xcom_value

from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_record_operators_write_what_their_names_say(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/operators_records.py", "coupa_ops_records").test()
    assert run_state(run) == "success", task_states(run)

    success = coupa_emulator.records(document_id=42, status="Success")[0]
    assert success["external-id"] == "ERP-2026-0042"  # templated from an upstream XCom
    assert success["integration"]["code"] == "AIRFLOW-TEST"
    assert success["document-status"] == "approved"  # then updated by CoupaUpdateRecordOperator
    assert success["resolved"] is True  # resolved by the newer attempt's resolve_previous
    newer = coupa_emulator.records(document_id=42, status="Error")[0]
    assert newer["resolved"] is False

    alert = coupa_emulator.records(document_id=43)[0]
    assert alert["status"] == "Error"  # CoupaCreateAlertOperator's default status
    assert alert["contact-alert-type"] == "Technical"
    assert alert["responses"][0]["response-message"] == "Supplier 88 is blocked"  # templated inside a list
    assert alert["resolved"] is True  # resolved by id, unresolved, then resolved by query

    alerted = {(a["document_type"], a["document_id"]) for a in coupa_emulator.alerts}
    assert alerted == {("InvoiceHeader", 43), ("OrderHeader", 7), ("InvoiceHeader", 42)}
    assert {(e["document_type"], e["document_id"]) for e in coupa_emulator.exported} == {
        ("InvoiceHeader", 44),
        ("OrderHeader", 7),
    }
    assert [a["document_id"] for a in coupa_emulator.acknowledged] == [9]
    mapped = sorted(r["document-id"] for r in coupa_emulator.records(document_type="Supplier", status="Success"))
    assert mapped == [101, 102, 103]


def test_xcom_is_plain_json_with_snake_case_keys(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/operators_records.py", "coupa_ops_records").test()
    pushed = xcom_value(run, "success")
    assert json.loads(json.dumps(pushed)) == pushed
    assert pushed["document_type"] == "InvoiceHeader"
    assert pushed["document_id"] == 42
    assert pushed["resolved"] is False
    assert pushed["status"] == "Success"
    assert pushed["integration"] == "AIRFLOW-TEST"
    assert set(pushed) >= {"id", "status", "document_type", "document_id", "resolved"}
    assert xcom_value(run, "mapped", map_index=2)["document_id"] == 103
    assert sorted(r["document_id"] for r in xcom_value(run, "query")) == [42, 43, 44]
    resolved_ids = xcom_value(run, "resolve_by_query")
    assert resolved_ids == [coupa_emulator.records(document_id=43)[0]["id"]]
    secret = coupa_emulator.credentials.client_secret
    for task_id in ("success", "alert", "query", "update"):
        assert secret not in json.dumps(xcom_value(run, task_id))


def test_link_points_at_the_document_type_page(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/operators_records.py", "coupa_ops_records").test()
    assert xcom_value(run, "alert", key="coupa_link") == f"{coupa_emulator.url}/integration_history_records/invoices"
    assert (
        xcom_value(run, "acknowledge", key="coupa_link")
        == f"{coupa_emulator.url}/integration_history_records/suppliers"
    )


def test_a_retry_after_a_lost_answer_does_not_write_twice(coupa_connection, coupa_emulator, monkeypatch):
    # The first try sends the create, Coupa stores it, the answer arrives after the read timeout; with one
    # attempt allowed the client gives up and the task fails. Airflow retries it: the retry finds the record.
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_FLAKY", connection_json(coupa_emulator, read_timeout=0.5, max_attempts=1))
    coupa_emulator.faults.latency(1.5, count=1, methods=("POST",))
    run = load_dag("test_dags/operators_records.py", "coupa_ops_retry").test()
    assert run_state(run) == "success", task_states(run)
    assert try_numbers(run)["flaky_create"] >= 2
    records = coupa_emulator.records(document_id=77)
    assert len(records) == 1, records
    assert len(coupa_emulator.requests(method="POST", path_contains="create_alert")) == 1
    assert xcom_value(run, "flaky_create")["id"] == records[0]["id"]


def test_bad_input_fails_without_retries_and_sends_nothing(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/operators_records.py", "coupa_ops_bad_input").test()
    assert run_state(run) == "failed"
    assert try_numbers(run)["bad"] == 1  # AirflowFailException: no retries for bad input
    assert [r for r in coupa_emulator.requests() if r.path.startswith("/api")] == []
