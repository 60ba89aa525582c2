"""The sensor warns when its DAG could only resolve the awaited records in its own next run (max_active_runs=1)."""

from __future__ import annotations

import pendulum

from airflow_provider_coupa_ihr.operators.records import CoupaMarkExportedOperator
from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor, self_resolving_wait_warning

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _dag(max_active_runs: int, resolve_previous: bool) -> object:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(f"wait_{max_active_runs}_{resolve_previous}", schedule=None, start_date=START,
             max_active_runs=max_active_runs) as dag:
        CoupaMarkExportedOperator(task_id="export", document_type="InvoiceHeader", document_id=1,
                                  resolve_previous=resolve_previous)
        CoupaRecordsResolvedSensor(task_id="wait", filters={"document_type": "InvoiceHeader"})
    return dag


def test_a_dag_that_waits_and_resolves_its_own_records_one_run_at_a_time_is_warned() -> None:
    warning = self_resolving_wait_warning(_dag(1, resolve_previous=True))
    assert warning is not None
    assert "max_active_runs=1" in warning
    assert "export" in warning


def test_no_warning_when_runs_can_overlap_or_nothing_resolves_earlier_records() -> None:
    assert self_resolving_wait_warning(_dag(2, resolve_previous=True)) is None
    assert self_resolving_wait_warning(_dag(1, resolve_previous=False)) is None
    assert self_resolving_wait_warning(None) is None
