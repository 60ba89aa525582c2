"""The benchmark's way three (benchmarks/fleet_comparison.py): one ``PythonOperator`` looping over ``HttpHook.run``.

What a team writes when one task per record is too slow: fetch an OAuth token (``coupa_bench_oauth``: client id
and secret as login and password, HTTP Basic), then POST the records one after another through ``HttpHook``'s
documented retry (``run_with_advanced_retry``, tenacity: exponential backoff on 429, 5xx and connection errors).
Nothing paces the loop, so Coupa's 429s are the throttle. The records carry external ids ``BENCH-loop-<n>`` and
document ids from 4,000,000.
"""

from __future__ import annotations

import json
import os

import pendulum
import requests
import tenacity
from airflow.providers.common.compat.sdk import DAG, mask_secret
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.standard.operators.python import PythonOperator

DAG_ID = "coupa_bench_http_loop"
RECORDS = int(os.environ.get("COUPA_BENCH_RECORDS", "1000"))
SCOPES = "core.integration.read core.integration.write"


def worth_retrying(exc: BaseException) -> bool:
    """429 and 5xx (HttpHook raises ``"<status>:<reason>"``), dropped connections and timeouts."""
    return isinstance(exc, requests.ConnectionError | requests.Timeout) or str(exc).startswith(("429", "5"))


RETRY = {
    "wait": tenacity.wait_exponential(multiplier=0.2, max=5),
    "stop": tenacity.stop_after_attempt(10),
    "retry": tenacity.retry_if_exception(worth_retrying),
    "reraise": True,
}


def log_records() -> int:
    answer = HttpHook(method="POST", http_conn_id="coupa_bench_oauth").run(
        "oauth2/token", data={"grant_type": "client_credentials", "scope": SCOPES}
    )
    token = str(answer.json()["access_token"])
    mask_secret(token)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"}
    hook = HttpHook(method="POST", http_conn_id="coupa_bench_api")
    for n in range(RECORDS):
        body = {
            "document-type": "InvoiceHeader",
            "document-id": 4_000_000 + n,
            "external-id": f"BENCH-loop-{n:05d}",
            "contact-alert-type": "Functional",
            "status": "Success",
            "integration": {"code": "BENCH"},
        }
        hook.run_with_advanced_retry(RETRY, "api/integration_history_records", json.dumps(body), headers)
    return RECORDS


with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
) as dag:
    PythonOperator(task_id="log_records", python_callable=log_records)
