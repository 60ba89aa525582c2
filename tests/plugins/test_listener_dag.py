"""The Coupa listener in real ``dag.test()`` runs. Nothing here registers it by hand: Airflow's listener manager
loads it through the plugin's ``airflow.plugins`` entry point (tests/plugins/test_listener_plugin.py proves it)."""

from __future__ import annotations

import time

import pytest
from dag_helpers import load_dag, run_state, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")

#: The bound the timing tests configure, and the slack allowed for a busy machine's scheduling noise.
BOUND = 1.0
SLACK = 1.0


def _on(monkeypatch: pytest.MonkeyPatch, **options: str) -> None:
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "True")
    for name, value in options.items():
        monkeypatch.setenv(f"AIRFLOW__COUPA__LISTENER_{name.upper()}", value)


def test_an_opted_in_dag_logs_each_final_outcome_once(coupa_connection, coupa_emulator, monkeypatch):
    _on(monkeypatch)
    run = load_dag("test_dags/listener_dags.py", "coupa_listener_tagged").test()
    assert run_state(run) == "failed"
    assert task_states(run) == {"extract": "success", "load": "failed", "quiet": "success"}

    records = coupa_emulator.records()
    assert len(records) == 2, records  # quiet opted out; load's first try was retried, so not logged
    success, alert = sorted(records, key=lambda r: r["status"], reverse=True)
    assert (success["status"], success["document-type"], success["document-id"]) == ("Success", "InvoiceHeader", 51)
    assert success["integration"]["code"] == "AIRFLOW-TEST"
    assert "coupa_listener_tagged.extract succeeded" in success["responses"][0]["response-message"]
    assert alert["status"] == "Error"
    assert alert["contact-alert-type"] == "Functional"  # the one default
    (response,) = alert["responses"]
    assert response["response-code"] == "RuntimeError"
    assert "coupa_listener_tagged.load failed" in response["response-message"]
    assert "(try 2): RuntimeError: ERP answered 503 twice" in response["response-message"]
    assert [a["document_id"] for a in coupa_emulator.alerts] == [51]


def test_only_opted_in_dags_are_logged_and_only_when_switched_on(coupa_connection, coupa_emulator, monkeypatch):
    # Off by default: an opted-in DAG logs nothing.
    monkeypatch.delenv("AIRFLOW__COUPA__LISTENER_ENABLED", raising=False)
    load_dag("test_dags/listener_dags.py", "coupa_listener_tagged").test()
    assert coupa_emulator.records() == []
    # On: a DAG that does not opt in logs nothing either.
    _on(monkeypatch)
    load_dag("test_dags/listener_dags.py", "coupa_listener_untagged").test()
    assert coupa_emulator.records() == []
    # ... until the configuration names it.
    _on(monkeypatch, dag_ids="some_other_dag, coupa_listener_untagged", log_success="False")
    load_dag("test_dags/listener_dags.py", "coupa_listener_untagged").test()
    assert [r["status"] for r in coupa_emulator.records()] == ["Error"]  # successes switched off


def _timed(dag_id: str) -> tuple[float, object]:
    started = time.monotonic()
    run = load_dag("test_dags/listener_dags.py", dag_id).test()
    return time.monotonic() - started, run


def _baseline(monkeypatch: pytest.MonkeyPatch) -> float:
    """How long the timing DAG takes with the listener off (best of two: the first run warms caches)."""
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "False")
    return min(_timed("coupa_listener_timing")[0] for _ in range(2))


def test_a_dead_coupa_costs_a_task_at_most_the_bound_and_never_fails_it(coupa_connection, coupa_emulator, monkeypatch):
    baseline = _baseline(monkeypatch)
    coupa_emulator.stop()  # connections refused: the client's retries must fit in the bound too
    _on(monkeypatch, timeout=str(BOUND))
    took, run = _timed("coupa_listener_timing")
    assert run_state(run) == "success"
    assert task_states(run) == {"work": "success"}
    assert took <= baseline + BOUND + SLACK, (took, baseline)


def test_a_coupa_that_never_answers_costs_a_task_at_most_the_bound(coupa_connection, coupa_emulator, monkeypatch):
    baseline = _baseline(monkeypatch)
    coupa_emulator.faults.latency(3 * BOUND)  # every request hangs well past the bound
    _on(monkeypatch, timeout=str(BOUND))
    took, run = _timed("coupa_listener_timing")
    assert run_state(run) == "success"
    assert took <= baseline + BOUND + SLACK, (took, baseline)
    assert took >= baseline + BOUND * 0.5  # it did wait for Coupa, up to the bound


def test_a_triggering_runs_conf_names_the_document(coupa_connection, coupa_emulator, monkeypatch):
    _on(monkeypatch)
    run = load_dag("test_dags/listener_dags.py", "coupa_listener_tagged").test(run_conf={"coupa_document_id": 4242})
    assert run_state(run) == "failed"
    ids = {record["document-id"] for record in coupa_emulator.records()}
    assert ids == {4242}, ids  # the conf, not the params' default, on the success and on the alert
