from __future__ import annotations

import pytest
from dag_helpers import load_dag, run_state


@pytest.mark.usefixtures("airflow_db")
def test_dag_test_runs_a_dag_against_the_emulator(coupa_connection, coupa_emulator):
    run = load_dag("test_dags/smoke.py").test()
    assert run_state(run) == "success"
    assert len(coupa_emulator.records()) == 1
