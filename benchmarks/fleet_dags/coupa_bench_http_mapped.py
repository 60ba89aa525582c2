"""The benchmark's way two (benchmarks/fleet_comparison.py): what a team writes without a Coupa provider.

One upstream task fetches an OAuth token with ``HttpHook`` (client id and secret as the ``coupa_bench_oauth``
connection's login and password, sent as HTTP Basic); then ``HttpOperator`` is mapped once per record, each
instance POSTing one record with the token in its headers (pulled from XCom). The API connection
``coupa_bench_api`` has no login: ``HttpHook`` would otherwise replace the bearer header with Basic auth. Task
retries as teams set them (a 429 or a dropped connection fails the try; the scheduler retries it later).

What this costs besides time: the token travels through XCom and every instance's rendered ``headers``, and every
record is a task instance of its own (scheduling, a worker slot, a process start, a log file). The records carry
external ids ``BENCH-mapped-<n>`` and document ids from 3,000,000.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, mask_secret
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.standard.operators.python import PythonOperator

DAG_ID = "coupa_bench_http_mapped"
RECORDS = int(os.environ.get("COUPA_BENCH_MAPPED_RECORDS", "1000"))
SCOPES = "core.integration.read core.integration.write"


def fetch_token() -> str:
    """``POST /oauth2/token`` (client credentials); the token goes to XCom for the mapped instances."""
    answer = HttpHook(method="POST", http_conn_id="coupa_bench_oauth").run(
        "oauth2/token", data={"grant_type": "client_credentials", "scope": SCOPES}
    )
    token = str(answer.json()["access_token"])
    mask_secret(token)
    return token


def record_body(n: int) -> str:
    body: dict[str, Any] = {
        "document-type": "InvoiceHeader",
        "document-id": 3_000_000 + n,
        "external-id": f"BENCH-mapped-{n:05d}",
        "contact-alert-type": "Functional",
        "status": "Success",
        "integration": {"code": "BENCH"},
    }
    return json.dumps(body)


with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=5)},
) as dag:
    token = PythonOperator(task_id="get_token", python_callable=fetch_token)
    records = HttpOperator.partial(
        task_id="log_record",
        http_conn_id="coupa_bench_api",
        method="POST",
        endpoint="api/integration_history_records",
        headers={
            "Authorization": "Bearer {{ ti.xcom_pull(task_ids='get_token') }}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    ).expand(data=[record_body(n) for n in range(RECORDS)])
    token >> records
