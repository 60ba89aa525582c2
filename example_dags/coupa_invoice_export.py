"""Nightly invoice export to the ERP, with every document's outcome logged to Coupa.

What Coupa's invoice integration guide asks of an integration, as an Airflow DAG:

1. read the approved invoices to export;
2. post each to the ERP;
3. for each invoice, resolve the older unresolved records of that invoice (an earlier failed attempt), then
   - on success, write a ``Success`` record and mark the invoice exported (``mark_exported``);
   - on failure, write an ``Error`` record with the ERP's messages and alert the integration's contacts
     (``create_alert``), so a Coupa user can fix the invoice;
4. branch on what Coupa now shows: if errors are unresolved, say so in the run summary.

Dynamic task mapping gives one Coupa task per invoice, each retried on its own; a retry never writes a
record twice.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_coupa_ihr.operators.records import (
    CoupaCreateAlertOperator,
    CoupaMarkExportedOperator,
    CoupaQueryRecordsOperator,
)

with DAG(
    dag_id="coupa_invoice_export",
    description="Export approved invoices to the ERP and log each outcome to Coupa",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"integration": Param("ERP-INVOICES", type="string", description="Coupa integration code")},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=30), "coupa_conn_id": "coupa_default"},
    tags=["coupa", "example"],
) as dag:

    @task
    def read_approved_invoices() -> list[dict[str, Any]]:
        from airflow_provider_coupa_ihr.testing.sample_erp import approved_invoices

        return approved_invoices()

    @task
    def post_to_erp(invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from airflow_provider_coupa_ihr.testing.sample_erp import post_to_erp

        return [post_to_erp(invoice) for invoice in invoices]

    @task
    def successes(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"document_id": o["invoice_id"], "external_id": o["erp_document"]} for o in outcomes if o["ok"]]

    @task
    def failures(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "document_id": o["invoice_id"],
                "responses": [{"response_code": o["code"], "response_message": o["message"]}],
            }
            for o in outcomes
            if not o["ok"]
        ]

    outcomes = post_to_erp(read_approved_invoices())

    exported = CoupaMarkExportedOperator.partial(
        task_id="log_success",
        document_type="InvoiceHeader",
        contact_alert_type="Functional",
        integration="{{ params.integration }}",
        resolve_previous=True,
    ).expand_kwargs(successes(outcomes))

    alerted = CoupaCreateAlertOperator.partial(
        task_id="log_error",
        document_type="InvoiceHeader",
        contact_alert_type="Functional",
        integration="{{ params.integration }}",
        resolve_previous=True,
    ).expand_kwargs(failures(outcomes))

    unresolved = CoupaQueryRecordsOperator(
        task_id="unresolved_errors",
        filters={"integration[code]": "{{ params.integration }}", "status": "Error", "resolved": False},
        fields=["id", "document_id", "status"],
        trigger_rule="all_done",
    )

    @task
    def summary(unresolved_records: list[dict[str, Any]]) -> str:
        ids = sorted(r["document_id"] for r in unresolved_records)
        return f"{len(ids)} invoice(s) wait for a fix in Coupa: {ids}" if ids else "All invoices exported."

    [exported, alerted] >> unresolved
    summary(unresolved.output)
