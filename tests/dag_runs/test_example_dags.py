"""The example DAGs import cleanly and run end to end against the emulator."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from dag_helpers import REPO, load_dag, run_state, task_states, xcom_value

EXAMPLES = sorted(p.name for p in (REPO / "example_dags").glob("*.py"))


def test_every_example_dag_imports_without_errors_or_warnings(airflow_db):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bag = DagBag(dag_folder=str(REPO / "example_dags"))
    assert bag.import_errors == {}
    assert {Path(d.fileloc).name for d in bag.dags.values()} == set(EXAMPLES)
    for dag in bag.dags.values():
        assert "coupa" in dag.tags
        assert dag.description


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("coupa_integration_code", ["ERP-INVOICES"])
def test_invoice_export_logs_each_outcome(coupa_connection, coupa_emulator):
    run = load_dag("example_dags/coupa_invoice_export.py").test()
    assert run_state(run) == "success", task_states(run)
    records = coupa_emulator.records()
    assert len(records) == 12
    errors = {r["document-id"] for r in records if r["status"] == "Error"}
    assert errors == {1004, 1008, 1012}
    assert {a["document_id"] for a in coupa_emulator.alerts} == errors
    assert {e["document_id"] for e in coupa_emulator.exported} == {r["document-id"] for r in records} - errors
    assert xcom_value(run, "summary") == "3 invoice(s) wait for a fix in Coupa: [1004, 1008, 1012]"


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("coupa_integration_code", ["ERP-INVOICES"])
def test_a_second_night_resolves_the_earlier_attempts(coupa_connection, coupa_emulator):
    dag = load_dag("example_dags/coupa_invoice_export.py")
    assert run_state(dag.test()) == "success"
    assert run_state(dag.test()) == "success"
    records = coupa_emulator.records()
    assert len(records) == 24
    unresolved = [r for r in records if not r["resolved"]]
    assert len(unresolved) == 12  # only the newest attempt per invoice is open
    assert {r["id"] for r in unresolved} == {r["id"] for r in records[12:]}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("coupa_integration_code", ["ERP-INVOICES"])
def test_bulk_invoice_export(coupa_connection, coupa_emulator):
    run = load_dag("example_dags/coupa_bulk_invoice_export.py").test(run_conf={"invoices": 40})
    assert run_state(run) == "success", task_states(run)
    assert len(coupa_emulator.records()) == 40
    assert len(coupa_emulator.alerts) == 10
    assert len(coupa_emulator.exported) == 30


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("coupa_integration_code", ["ERP-SUPPLIERS"])
def test_integration_run_example(coupa_connection, coupa_emulator):
    run = load_dag("example_dags/coupa_integration_run.py").test()
    assert run_state(run) == "success", task_states(run)
    (coupa_run,) = coupa_emulator.integration_runs()
    assert coupa_run["status"] == "successful"
    assert coupa_run["total-records"] == 3
    attached = coupa_emulator.records(integration_run_id=coupa_run["id"])
    assert sorted(r["document-id"] for r in attached) == [501, 502, 503]
