"""Record and run summaries: the plain JSON that leaves the client for XCom and trigger events."""

from __future__ import annotations

import json

from airflow_provider_coupa_ihr.client.summaries import RECORD_SUMMARY_KEYS, record_summary, run_summary


def test_a_record_summary_keeps_its_keys_in_order_as_plain_json():
    record = {
        "id": 7,
        "status": "Error",
        "document_type": "InvoiceHeader",
        "document_id": 42,
        "resolved": "true",
        "integration": {"code": "ERP", "name": "ERP invoices"},
        "responses": [{"response_code": "E1", "response_message": "blocked", "id": 3}, "junk"],
        "created_by": {"login": "someone"},
    }
    summary = record_summary(record)
    assert summary is not None
    assert tuple(summary) == RECORD_SUMMARY_KEYS
    assert summary["integration"] == "ERP"
    assert summary["resolved"] is True
    assert summary["responses"] == [{"response_code": "E1", "response_message": "blocked"}]
    assert summary["external_id"] is None
    assert json.loads(json.dumps(summary)) == summary
    assert record_summary(None) is None


def test_a_summary_can_pick_fewer_keys_and_reads_resolved_strictly():
    assert record_summary({"id": 1, "resolved": None, "integration": "ERP"}, ("id", "resolved", "integration")) == {
        "id": 1,
        "resolved": False,
        "integration": "ERP",
    }
    assert record_summary({"id": 1}, ("id", "responses")) == {"id": 1, "responses": []}


def test_a_run_summary():
    run = {"id": 3, "status": "running", "integration": {"code": "ERP"}, "total_records": 5, "flow": {"x": 1}}
    assert run_summary(run) == {
        "id": 3,
        "status": "running",
        "integration": "ERP",
        "total_records": 5,
        "records_processed": None,
        "start_time": None,
        "end_time": None,
    }
    assert run_summary({"integration": "odd"})["integration"] is None


# ------------------------------------------------------------------------------------------------ odd answers
def test_an_answer_that_is_not_a_record_is_a_coupa_error_not_an_attribute_error() -> None:
    import pytest

    from airflow_provider_coupa_ihr.client.errors import CoupaError

    for answer in ([{"id": 1}], "7", 7):
        with pytest.raises(CoupaError, match="is not a record"):
            record_summary(answer)  # type: ignore[arg-type]
        with pytest.raises(CoupaError, match="is not a record"):
            run_summary(answer)  # type: ignore[arg-type]


def test_odd_shapes_inside_a_record_are_read_without_raising() -> None:
    summary = record_summary({"id": 1, "responses": 5, "integration": "ERP", "resolved": ["x"]})
    assert summary is not None
    assert summary["responses"] == []
    assert summary["integration"] == "ERP"
    assert summary["resolved"] is False
    assert run_summary({"id": 2, "integration": ["x"]})["integration"] is None
