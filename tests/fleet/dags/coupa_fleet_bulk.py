"""The DAG the fleet test triggers several times at once (tests/fleet/test_fleet_deployment.py).

Each run logs one night's batch to Coupa in one bulk task: ``count`` records whose external ids carry the run's
``batch`` param, so a lost or doubled record shows in what Coupa holds. ``conn_id`` picks the Coupa connection
(and with it the rate-limit configuration: a static per-process share, or the budget shared through Redis). The
bulk task runs in the ``coupa`` pool, whose size the test sets per scenario. No retries: a 429 that reached a
task must show as a failed run, not be hidden by a second try.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

DAG_ID = "coupa_fleet_bulk"
INTEGRATION = "FLEET"
POOL = "coupa"
#: Threads of one bulk task; the rate limit, not this, sets the pace.
MAX_WORKERS = 8


def batch_items(batch: str, count: int) -> list[dict[str, Any]]:
    """The records of one run: unique document and external ids (``FLEET-<batch>-<n>``)."""
    return [{"document_id": 1_000_000 + i, "external_id": f"FLEET-{batch}-{i:05d}"} for i in range(int(count))]


with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=16,
    params={"batch": "0", "count": 600, "conn_id": "coupa_static"},
    user_defined_macros={"batch_items": batch_items},
    render_template_as_native_obj=True,
    default_args={"retries": 0},
) as dag:
    CoupaBulkCreateRecordsOperator(
        task_id="log_to_coupa",
        coupa_conn_id="{{ params.conn_id }}",
        items="{{ batch_items(params.batch, params.count) }}",
        defaults={
            "document_type": "InvoiceHeader",
            "contact_alert_type": "Functional",
            "integration": INTEGRATION,
            "status": "Success",
        },
        action="create",
        max_workers=MAX_WORKERS,
        progress_interval=10,
        pool=POOL,
    )
