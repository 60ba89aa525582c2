"""DAGs logging their steps through CoupaNotifier callbacks (see tests/notifications/test_notifier_dag.py)."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, mask_secret, task

from airflow_provider_coupa_ihr.notifications.coupa import CoupaNotifier

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: A value the failing task registers with Airflow's masker and then quotes in its error.
LEAKED = "s3cr3t-erp-password"
LONG_TAIL = "x" * 6000

# One instance for every task (default_args) and both callbacks: rendering happens on a copy, so each task's
# record carries its own task id.
notify = CoupaNotifier(
    document_type="InvoiceHeader",
    document_id="{{ params.invoice_id }}",
    external_id="{{ ti.task_id }}",
    integration="AIRFLOW-TEST",
)

with DAG(
    "coupa_notify_tasks",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"invoice_id": 42},
    default_args={"on_success_callback": notify, "on_failure_callback": notify},
    on_failure_callback=CoupaNotifier(document_type="Supplier", document_id=7, integration="AIRFLOW-TEST"),
) as tasks_dag:

    @task
    def load() -> dict[str, int]:
        return {"invoice_id": 43}

    @task(
        on_success_callback=CoupaNotifier(
            document_type="InvoiceHeader",
            document_id="{{ ti.xcom_pull(task_ids='load')['invoice_id'] }}",
            external_id="publish",
            success_action="mark_exported",
        ),
        on_failure_callback=None,
    )
    def publish(loaded: dict[str, int]) -> None:
        """Succeeds; its record's document id comes from the upstream XCom."""

    @task
    def post() -> None:
        mask_secret(LEAKED)
        raise ValueError(f"ERP refused invoice 42 (login {LEAKED}): {LONG_TAIL}")

    publish(load())
    post()
