"""DAGs wrapped in a Coupa integration run (see tests/operators/test_run_lifecycle_dag.py)."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.notifications.coupa import CoupaNotifier
from airflow_provider_coupa_ihr.operators.lifecycle import coupa_integration_run
from airflow_provider_coupa_ihr.operators.records import CoupaCreateRecordOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


with DAG("coupa_lifecycle_ok", schedule=None, start_date=START, catchup=False) as ok_dag:
    with coupa_integration_run(integration="AIRFLOW-TEST", total_records=4) as run:

        @task
        def changed_suppliers() -> list[int]:
            return [501, 502]

        # Mapped and plain record operators name no run: the group attaches theirs.
        CoupaCreateRecordOperator.partial(task_id="log_synced", document_type="Supplier", status="Success").expand(
            document_id=changed_suppliers()
        )
        CoupaCreateRecordOperator(task_id="log_summary", document_type="Supplier", document_id=500, status="Success")

        # A notifier and the listener (opted in by this task's params) find the run too.
        @task(
            on_success_callback=CoupaNotifier(document_type="Supplier", document_id=503),
            params={"coupa_log": True, "coupa_document_type": "Supplier", "coupa_document_id": 504},
        )
        def notify_me() -> None:
            """Succeeds; logged by its notifier, and by the listener when a test switches it on."""

        notify_me()

    @task
    def publish(coupa_run: str) -> str:
        """Outside the group, after its work: gets the run id like any task would."""
        return coupa_run

    run >> publish(run.run_id)


with (
    DAG("coupa_lifecycle_fail", schedule=None, start_date=START, catchup=False) as fail_dag,
    coupa_integration_run(integration="AIRFLOW-TEST", group_id="sync"),
):

    @task(on_failure_callback=CoupaNotifier(document_type="Supplier", document_id=601))
    def push_supplier() -> None:
        raise RuntimeError("ERP rejected supplier 601: bank account fails validation")

    logged = CoupaCreateRecordOperator(
        task_id="log_pushed", document_type="Supplier", document_id=601, status="Success"
    )
    push_supplier() >> logged
    CoupaCreateRecordOperator(task_id="log_other", document_type="Supplier", document_id=602, status="Success")
