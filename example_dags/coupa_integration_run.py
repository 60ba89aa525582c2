"""A supplier sync wrapped in a Coupa integration run: one run per DAG run, its records attached to it.

Coupa shows integration runs with their status (``running``, then ``successful`` or ``failed``) and the
records written during them. ``coupa_integration_run()`` makes the block a task group with a setup task that
starts the run and a teardown task that finishes it, also when a task in the block failed; records written inside
the block reference the run without being told.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_coupa_ihr.operators.lifecycle import coupa_integration_run
from airflow_provider_coupa_ihr.operators.records import CoupaCreateAlertOperator, CoupaCreateRecordOperator

SUPPLIERS = [{"supplier_id": 501, "ok": True}, {"supplier_id": 502, "ok": True}, {"supplier_id": 503, "ok": False}]

with DAG(
    dag_id="coupa_integration_run",
    description="Sync suppliers to the ERP inside one Coupa integration run",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"integration": Param("ERP-SUPPLIERS", type="string", description="Coupa integration code")},
    tags=["coupa", "example"],
) as dag:

    @task
    def sync_suppliers() -> list[dict[str, object]]:
        """Push changed suppliers to the ERP (a stand-in here); one outcome per supplier."""
        return SUPPLIERS

    @task
    def synced(outcomes: list[dict[str, object]]) -> list[object]:
        return [o["supplier_id"] for o in outcomes if o["ok"]]

    @task
    def refused(outcomes: list[dict[str, object]]) -> list[object]:
        return [o["supplier_id"] for o in outcomes if not o["ok"]]

    with coupa_integration_run(integration="{{ params.integration }}", total_records=len(SUPPLIERS)):
        outcomes = sync_suppliers()
        CoupaCreateRecordOperator.partial(task_id="log_synced", document_type="Supplier", status="Success").expand(
            document_id=synced(outcomes)
        )
        CoupaCreateAlertOperator.partial(
            task_id="log_refused",
            document_type="Supplier",
            contact_alert_type="Technical",
            responses=[("ERP-400", "Supplier bank account fails validation")],
        ).expand(document_id=refused(outcomes))
