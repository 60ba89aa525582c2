"""CoupaNotifier as task and DAG callbacks in a real ``dag.test()`` run against the emulator."""

from __future__ import annotations

import pytest
from dag_helpers import load_dag, run_state, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")

#: What the failing task registers with Airflow's masker and quotes in its error (tests/dag_files/notify_callbacks.py).
LEAKED = "s3cr3t-erp-password"


def test_each_task_outcome_lands_in_coupa_once(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/notify_callbacks.py", "coupa_notify_tasks").test()
    assert run_state(run) == "failed"
    assert task_states(run) == {"load": "success", "publish": "success", "post": "failed"}
    by_step = {}
    for record in coupa_emulator.records():
        by_step.setdefault(record.get("external-id") or "dag", []).append(record)

    # A succeeding task: exactly one success record, written with plain create (no alert).
    (loaded,) = by_step["load"]
    assert (loaded["status"], loaded["document-id"], loaded["integration"]["code"]) == ("Success", 42, "AIRFLOW-TEST")
    assert loaded["responses"][0]["response-code"] == "AIRFLOW-SUCCESS"

    # A failing task: exactly one alert carrying its error, masked and cut to Coupa's limits.
    (posted,) = by_step["post"]
    assert posted["status"] == "Error"
    (response,) = posted["responses"]
    assert response["response-code"] == "ValueError"
    message = response["response-message"]
    assert message.startswith("Airflow task coupa_notify_tasks.post failed in run ")
    assert "ValueError: ERP refused invoice 42 (login ***)" in message
    assert LEAKED not in message
    assert len(message) == 4000
    assert message.endswith("…[cut]")

    # The document id templated from an upstream XCom; the success action overridden.
    (published,) = by_step["publish"]
    assert (published["document-id"], published["status"]) == (43, "Success")
    assert [e["document_id"] for e in coupa_emulator.exported] == [43]

    # The DAG's own failure callback: one alert about the run.
    (dag_alert,) = by_step["dag"]
    assert (dag_alert["document-type"], dag_alert["document-id"]) == ("Supplier", 7)
    assert dag_alert["responses"][0]["response-code"] == "AIRFLOW-DAG-RUN-FAILED"
    assert "last failed task: post" in dag_alert["responses"][0]["response-message"]

    alerted = sorted((a["document_type"], a["document_id"]) for a in coupa_emulator.alerts)
    assert alerted == [("InvoiceHeader", 42), ("Supplier", 7)]
    assert len(coupa_emulator.records()) == 4
