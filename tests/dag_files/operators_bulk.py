"""Bulk writes at Coupa's rate limit (see tests/operators/test_operators_bulk.py)."""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("coupa_ops_bulk", schedule=None, start_date=START, catchup=False) as bulk_dag:

    @task
    def exported_invoices() -> list[dict]:
        count = int(os.environ.get("COUPA_TEST_BULK_ITEMS", "50"))
        return [{"document_id": i, "external_id": f"ERP-{i:05d}", "status": "Success"} for i in range(1, count + 1)]

    CoupaBulkCreateRecordsOperator(
        task_id="log_to_coupa",
        coupa_conn_id="coupa_bulk",
        items=exported_invoices(),
        defaults={"document_type": "InvoiceHeader", "contact_alert_type": "Functional", "integration": "AIRFLOW-TEST"},
        action="mark_exported",
        progress_interval=5,
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )
