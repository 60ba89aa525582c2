"""A supplier sync wrapped in a Coupa integration run: one run per DAG run, its records attached to it.

Coupa shows integration runs with their status (``running``, then ``successful`` or ``failed``) and the
records written during them. The DAG opens a run first, references it in every record it writes, and closes
it at the end: as successful when every task succeeded, as failed when any did (the two closing tasks use
trigger rules, so exactly one of them runs).
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_coupa_ihr.operators.records import CoupaCreateAlertOperator, CoupaCreateRecordOperator
from airflow_provider_coupa_ihr.operators.runs import (
    CoupaFinishIntegrationRunOperator,
    CoupaStartIntegrationRunOperator,
)

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
    start = CoupaStartIntegrationRunOperator(
        task_id="start_run", integration="{{ params.integration }}", total_records=len(SUPPLIERS)
    )
    run_id = "{{ ti.xcom_pull(task_ids='start_run')['id'] }}"

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

    outcomes = sync_suppliers()
    log_synced = CoupaCreateRecordOperator.partial(
        task_id="log_synced", document_type="Supplier", status="Success", integration_run=run_id
    ).expand(document_id=synced(outcomes))
    log_refused = CoupaCreateAlertOperator.partial(
        task_id="log_refused",
        document_type="Supplier",
        contact_alert_type="Technical",
        integration_run=run_id,
        responses=[("ERP-400", "Supplier bank account fails validation")],
    ).expand(document_id=refused(outcomes))

    succeeded = CoupaFinishIntegrationRunOperator(
        task_id="run_succeeded", run_id=run_id, outcome="success", trigger_rule="all_success"
    )
    failed = CoupaFinishIntegrationRunOperator(
        task_id="run_failed", run_id=run_id, outcome="fail", trigger_rule="one_failed"
    )

    start >> outcomes
    [log_synced, log_refused] >> succeeded
    [log_synced, log_refused] >> failed
