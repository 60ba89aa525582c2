"""DAGs exercising every record operator against the emulator (see tests/operators/test_operators_dag.py)."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.operators.records import (
    CoupaAcknowledgeOperator,
    CoupaCreateAlertAndMarkExportedOperator,
    CoupaCreateAlertOperator,
    CoupaCreateRecordOperator,
    CoupaMarkExportedOperator,
    CoupaQueryRecordsOperator,
    CoupaResolveRecordsOperator,
    CoupaUnresolveRecordsOperator,
    CoupaUpdateRecordOperator,
)

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("coupa_ops_records", schedule=None, start_date=START, catchup=False) as records_dag:

    @task
    def export() -> dict:
        return {"invoice_id": 42, "erp_number": "ERP-2026-0042", "error": "Supplier 88 is blocked"}

    exported = export()
    success = CoupaCreateRecordOperator(
        task_id="success",
        document_type="InvoiceHeader",
        document_id="{{ ti.xcom_pull(task_ids='export')['invoice_id'] }}",
        external_id="{{ ti.xcom_pull(task_ids='export')['erp_number'] }}",
        status="Success",
        integration="AIRFLOW-TEST",
    )
    alert = CoupaCreateAlertOperator(
        task_id="alert",
        document_type="InvoiceHeader",
        document_id=43,
        contact_alert_type="Technical",
        responses=[{"response_code": "ERP-409", "response_message": "{{ ti.xcom_pull(task_ids='export')['error'] }}"}],
        integration="AIRFLOW-TEST",
    )
    exported_mark = CoupaMarkExportedOperator(task_id="mark_exported", document_type="InvoiceHeader", document_id=44)
    both = CoupaCreateAlertAndMarkExportedOperator(
        task_id="alert_and_export", document_type="OrderHeader", document_id=7
    )
    ack = CoupaAcknowledgeOperator(task_id="acknowledge", document_type="Supplier", document_id=9, status="Received")
    update = CoupaUpdateRecordOperator(
        task_id="update",
        record_id="{{ ti.xcom_pull(task_ids='success')['id'] }}",
        fields={"document_status": "approved"},
    )
    resolve_ids = CoupaResolveRecordsOperator(
        task_id="resolve_alert", record_ids="{{ ti.xcom_pull(task_ids='alert')['id'] }}"
    )
    unresolve = CoupaUnresolveRecordsOperator(
        task_id="unresolve_alert", record_ids=["{{ ti.xcom_pull(task_ids='alert')['id'] }}"]
    )
    resolve_query = CoupaResolveRecordsOperator(
        task_id="resolve_by_query", filters={"document_type": "InvoiceHeader", "document_id": 43}
    )
    query = CoupaQueryRecordsOperator(task_id="query", filters={"document_type": "InvoiceHeader"}, max_records=10)
    again = CoupaCreateAlertOperator(
        task_id="newer_attempt", document_type="InvoiceHeader", document_id=42, resolve_previous=True, status="Error"
    )
    mapped = CoupaCreateRecordOperator.partial(
        task_id="mapped", document_type="Supplier", contact_alert_type="Both", status="Success"
    ).expand(document_id=[101, 102, 103])

    exported >> [success, alert] >> update >> resolve_ids >> unresolve >> resolve_query >> query >> again
    # exported_mark, both, ack and mapped run on their own.


with DAG("coupa_ops_retry", schedule=None, start_date=START, catchup=False) as retry_dag:
    CoupaCreateAlertOperator(
        task_id="flaky_create",
        coupa_conn_id="coupa_flaky",
        document_type="InvoiceHeader",
        document_id=77,
        responses=[("E1", "Timeout in ERP")],
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    )


with DAG("coupa_ops_bad_input", schedule=None, start_date=START, catchup=False) as bad_dag:
    CoupaCreateRecordOperator(
        task_id="bad",
        document_type="InvoiceHeadr",
        document_id="abc",
        retries=3,
        retry_delay=pendulum.duration(seconds=0),
    )
