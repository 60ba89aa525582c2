"""coupa_integration_run in real ``dag.test()`` runs: the Coupa run's state follows the DAG's outcome, and the
records written inside (by operators, notifiers and the listener) are attached to it."""

from __future__ import annotations

import pytest
from dag_helpers import load_dag, run_state, task_states, xcom_value

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_a_succeeding_dag_leaves_a_successful_run_with_its_records(coupa_connection, coupa_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "True")  # notify_me opts in through its params
    run = load_dag("test_dags/lifecycle_runs.py", "coupa_lifecycle_ok").test()
    assert run_state(run) == "success", task_states(run)
    assert task_states(run)["publish"] == "success"

    (coupa_run,) = coupa_emulator.integration_runs()
    assert coupa_run["status"] == "successful"
    assert coupa_run["total-records"] == 4
    assert coupa_run["integration"]["code"] == "AIRFLOW-TEST"
    attached = sorted(r["document-id"] for r in coupa_emulator.records(integration_run_id=coupa_run["id"]))
    # 500: plain operator, 501/502: mapped operator, 503: the task's notifier, 504: the listener.
    assert attached == [500, 501, 502, 503, 504]
    assert len(coupa_emulator.records()) == 5
    assert int(xcom_value(run, "publish")) == coupa_run["id"]  # run.run_id renders outside the group too


def test_a_failing_task_leaves_a_failed_run_with_its_alert(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/lifecycle_runs.py", "coupa_lifecycle_fail").test()
    assert run_state(run) == "failed"
    assert task_states(run) == {
        "sync.start": "success",
        "sync.push_supplier": "failed",
        "sync.log_pushed": "upstream_failed",
        "sync.log_other": "success",
        "sync.finish": "success",  # the teardown ran despite the failure, and finished the run
    }
    (coupa_run,) = coupa_emulator.integration_runs()
    assert coupa_run["status"] == "failed"
    records = coupa_emulator.records(integration_run_id=coupa_run["id"])
    assert sorted((r["document-id"], r["status"]) for r in records) == [(601, "Error"), (602, "Success")]
    (alert,) = [r for r in records if r["status"] == "Error"]
    assert alert["responses"][0]["response-code"] == "RuntimeError"
    assert "bank account fails validation" in alert["responses"][0]["response-message"]
    assert [a["document_id"] for a in coupa_emulator.alerts] == [601]
