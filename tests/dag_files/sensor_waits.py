"""DAGs that wait on Coupa records in each sensor mode (see tests/sensors/test_sensor_dag_runs.py).

The records to wait on arrive as run conf (``dag.test(run_conf={"record_ids": [...]})``) through templates, as an
upstream task's XCom would in a real pipeline. Each DAG hands the sensor's XCom to a downstream task.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: Small numbers keep the whole file's runs to seconds; the background actor resolves after about a second.
FAST: dict[str, Any] = {"poke_interval": 0.5, "timeout": 30}


def wait_dag(dag_id: str, **sensor: Any) -> DAG:
    with DAG(
        dag_id, schedule=None, start_date=START, catchup=False, params={"record_ids": [], "document_id": 0}
    ) as dag:
        waited = CoupaRecordsResolvedSensor(task_id="wait", **{**FAST, **sensor})

        @task
        def carry_on(records: list[dict[str, Any]]) -> list[int]:
            """What the pipeline does next: here, just the ids it was handed."""
            return [int(r["id"]) for r in records]

        carry_on(waited.output)
    return dag


by_ids = "{{ params.record_ids }}"

poke_dag = wait_dag("coupa_wait_poke", record_ids=by_ids, mode="poke")
reschedule_dag = wait_dag("coupa_wait_reschedule", record_ids=by_ids, mode="reschedule")
deferrable_dag = wait_dag("coupa_wait_deferrable", record_ids=by_ids, deferrable=True)
query_dag = wait_dag(
    "coupa_wait_query_deferrable",
    filters={"document_id": "{{ params.document_id }}", "integration[code]": "AIRFLOW-TEST"},
    deferrable=True,
)
missing_dag = wait_dag("coupa_wait_missing", record_ids=by_ids, retries=2, timeout=60)
soft_timeout_dag = wait_dag("coupa_wait_soft_timeout", record_ids=by_ids, deferrable=True, timeout=1, soft_fail=True)
hard_timeout_dag = wait_dag("coupa_wait_hard_timeout", record_ids=by_ids, mode="poke", timeout=1, retries=2)
