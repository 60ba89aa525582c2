"""The deferred waits the fleet test runs beside the bulks (tests/fleet/test_fleet_deployment.py).

One run waits, deferrably, on each of the records in its ``ids`` param (one mapped sensor per record, so each wait
is a trigger of its own in the triggerer), polling Coupa through the connection ``conn_id``: the triggerer's
polls draw from the same budget as the bulk writes on the workers.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor

DAG_ID = "coupa_fleet_waits"
#: Seconds between one wait's polls: 40 waits poll about 8 times a second together.
POKE_INTERVAL = 5

with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"ids": [], "conn_id": "coupa_shared"},
    default_args={"retries": 0},
) as dag:

    @task
    def records_to_wait_on(**context: Any) -> list[int]:
        return [int(i) for i in context["params"]["ids"]]

    CoupaRecordsResolvedSensor.partial(
        task_id="wait",
        coupa_conn_id="{{ params.conn_id }}",
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=600,
    ).expand(record_ids=records_to_wait_on())
