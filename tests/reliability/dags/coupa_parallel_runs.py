"""The DAG the deployment test triggers ten times at once (tests/reliability/test_reliability_deployment.py).

Each run writes a small night's batch (a bulk of records ending with an alert, numbered by the run's ``batch``
param), then waits, deferrably, until a Coupa user has resolved every one of them. Every Coupa task runs in the
``coupa`` pool, which, with the connection's per-process ``rate_limit``, keeps the whole deployment under
Coupa's 25 requests per second (see the test's docstring).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor

DAG_ID = "coupa_reliability_parallel"
INTEGRATION = "RELIABILITY"
#: Records each run's bulk task writes (the last one an alert).
BULK_SIZE = 9
POOL = "coupa"


def batch_items(batch: int) -> list[dict[str, Any]]:
    """The records of one run: unique document and external ids, so a lost or doubled record shows. Most are
    plain records or export marks; the last is an alert (an ERP error for Coupa's contacts)."""
    items: list[dict[str, Any]] = [
        {
            "document_id": 700_000 + batch * 100 + i,
            "external_id": f"RUN-{batch}-{i}",
            "action": "mark_exported" if i % 2 else "create",
        }
        for i in range(BULK_SIZE - 1)
    ]
    items.append(
        {
            "document_id": 790_000 + batch,
            "external_id": f"RUN-{batch}-alert",
            "action": "create_alert",
            "status": "Error",
            "contact_alert_type": "Technical",
            "responses": [{"response_code": "ERP-409", "response_message": "Supplier blocked in the ERP"}],
        }
    )
    return items


with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=16,
    params={"batch": 0},
    user_defined_macros={"batch_items": batch_items},
    render_template_as_native_obj=True,
    default_args={"pool": POOL, "retries": 0},
) as dag:
    write = CoupaBulkCreateRecordsOperator(
        task_id="write",
        items="{{ batch_items(params.batch) }}",
        defaults={
            "document_type": "InvoiceHeader",
            "contact_alert_type": "Functional",
            "status": "Success",
            "integration": INTEGRATION,
        },
        max_workers=4,
    )
    wait = CoupaRecordsResolvedSensor(
        task_id="wait",
        record_ids="{{ ti.xcom_pull(task_ids='write')['outcomes'] | map(attribute='id') | list }}",
        deferrable=True,
        poke_interval=3,
        timeout=240,
        # Airflow 3.3's scheduler can fail a deferred task whose trigger fires before it has drained the
        # executor's event for the deferring try (apache/airflow#67287, #72716: "state mismatch"); one retry
        # (which finds the records resolved at its first check) rides that out. The test counts such retries.
        retries=1,
        retry_delay=pendulum.duration(seconds=1),
    )
    write >> wait
