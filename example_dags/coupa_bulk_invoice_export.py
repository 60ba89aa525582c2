"""The invoice export for big nights: thousands of outcomes logged to Coupa by one task, at Coupa's rate limit.

Mapping one Coupa task per invoice (``coupa_invoice_export``) is clearest in the UI; past a few hundred
documents a night, one bulk task is cheaper for the scheduler. The bulk operator writes one record per item,
choosing the action per item (``mark_exported`` for successes, ``create_alert`` for failures), paces itself
under the connection's rate limit, logs progress, and on a retry writes only what an earlier try did not.

To keep several such DAGs together under Coupa's limit of 25 requests/s, give them one Airflow pool with a
single slot (``pool="coupa"``), or lower ``rate_limit`` in each connection.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

with DAG(
    dag_id="coupa_bulk_invoice_export",
    description="Export many invoices to the ERP and log every outcome to Coupa in one task",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "integration": Param("ERP-INVOICES", type="string", description="Coupa integration code"),
        "invoices": Param(200, type="integer", minimum=1, description="How many invoices the stand-in ERP exports"),
    },
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["coupa", "example"],
) as dag:

    @task
    def export_invoices(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Post every approved invoice to the ERP; one item of Coupa record fields per invoice."""
        from airflow_provider_coupa_ihr.testing.sample_erp import approved_invoices, post_to_erp

        count = int((params or {}).get("invoices", 200))
        items = []
        for outcome in map(post_to_erp, approved_invoices(count)):
            if outcome["ok"]:
                items.append(
                    {
                        "action": "mark_exported",
                        "document_id": outcome["invoice_id"],
                        "status": "Success",
                        "external_id": outcome["erp_document"],
                    }
                )
            else:
                items.append(
                    {
                        "action": "create_alert",
                        "document_id": outcome["invoice_id"],
                        "status": "Error",
                        "responses": [{"response_code": outcome["code"], "response_message": outcome["message"]}],
                    }
                )
        return items

    CoupaBulkCreateRecordsOperator(
        task_id="log_outcomes_to_coupa",
        items=export_invoices(),
        defaults={
            "document_type": "InvoiceHeader",
            "contact_alert_type": "Functional",
            "integration": "{{ params.integration }}",
        },
        on_partial_failure="fail",
    )
