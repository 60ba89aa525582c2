"""A minimal DAG proving the harness: one task writes a record through the hook."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

with DAG("coupa_smoke", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:

    @task
    def write_one() -> int:
        from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

        record = CoupaHook().create_record(document_type="Supplier", document_id=1, contact_alert_type="Both")
        return int(record["id"])

    write_one()
