"""The bulk operator at Coupa's rate limit, and its retry after a failure part-way through."""

from __future__ import annotations

import time

import pytest
from dag_helpers import load_dag, run_state, task_states, try_numbers, xcom_value

from airflow_provider_coupa_ihr.testing.faults import Fault
from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def coupa_emulator_options():
    return {"rate_limit": 25.0, "burst": 20}  # Coupa's published limit


def _run(monkeypatch, coupa_emulator, items, **extras):
    monkeypatch.setenv("COUPA_TEST_BULK_ITEMS", str(items))
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_BULK", connection_json(coupa_emulator, **extras))
    started = time.monotonic()
    run = load_dag("test_dags/operators_bulk.py").test()
    return run, time.monotonic() - started


def test_bulk_writes_every_item_once_with_outcomes(coupa_connection, coupa_emulator, monkeypatch):
    run, _ = _run(monkeypatch, coupa_emulator, 60)
    assert run_state(run) == "success", task_states(run)
    result = xcom_value(run, "log_to_coupa")
    assert (result["total"], result["created"], result["failed"]) == (60, 60, 0)
    assert [o["index"] for o in result["outcomes"]] == list(range(60))
    assert sorted(r["document-id"] for r in coupa_emulator.records()) == list(range(1, 61))
    assert len(coupa_emulator.exported) == 60


def test_two_thousand_records_at_the_rate_limit_and_a_retry_after_a_failure(
    coupa_connection, coupa_emulator, monkeypatch
):
    # Part-way through, Coupa fails 40 writes in a row; with two attempts per write allowed, about twenty items
    # fail, the task fails and Airflow retries it. The retry must write only what is missing.
    items = 2000
    failure = Fault("status", status=503, count=40, methods=("POST",))

    def arm_fault_after_a_while():
        while len(coupa_emulator.state.records.rows) < 800:
            time.sleep(0.2)
        coupa_emulator.faults.add(failure)

    import threading

    threading.Thread(target=arm_fault_after_a_while, daemon=True).start()
    run, seconds = _run(monkeypatch, coupa_emulator, items, max_attempts=2)
    assert run_state(run) == "success", task_states(run)
    assert try_numbers(run)["log_to_coupa"] == 2, "the failure part-way through should have made Airflow retry"
    stored = [r["document-id"] for r in coupa_emulator.records()]
    assert len(stored) == items
    assert sorted(stored) == list(range(1, items + 1))  # each exactly once
    result = xcom_value(run, "log_to_coupa")
    assert result["already_present"] + result["created"] == items
    assert result["already_present"] >= items - 100
    stats = coupa_emulator.stats()["by_status"]
    print(f"bulk: {items} records in {seconds:.1f}s incl. retry; emulator answers {stats}")
