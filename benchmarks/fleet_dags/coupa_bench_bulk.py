"""The benchmark's way one (benchmarks/fleet_comparison.py): our bulk operator, one task for the whole batch.

The records carry external ids ``BENCH-bulk-<n>`` and document ids from 2,000,000, so the benchmark can tell what
Coupa holds of this run. The connection (``coupa_shared`` of the fleet) keeps its budget in Redis: the same
configuration a fleet of several workers needs. No retries: a 429 that reached the task would show as a failure.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

DAG_ID = "coupa_bench_bulk"
RECORDS = int(os.environ.get("COUPA_BENCH_RECORDS", "1000"))

with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"conn_id": "coupa_shared"},
    default_args={"retries": 0},
) as dag:
    CoupaBulkCreateRecordsOperator(
        task_id="log_to_coupa",
        coupa_conn_id="{{ params.conn_id }}",
        items=[{"document_id": 2_000_000 + n, "external_id": f"BENCH-bulk-{n:05d}"} for n in range(RECORDS)],
        defaults={
            "document_type": "InvoiceHeader",
            "contact_alert_type": "Functional",
            "integration": "BENCH",
            "status": "Success",
        },
        action="create",
        max_workers=8,
        progress_interval=10,
    )
