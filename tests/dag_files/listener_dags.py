"""DAGs for the Coupa listener (see tests/plugins/test_listener_dag.py). None of them mentions Coupa in a task:
the listener plugin, switched on by the test through ``[coupa] listener_enabled``, does all the logging."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")
DOCUMENT = {"coupa_document_type": "InvoiceHeader", "coupa_document_id": 51, "coupa_integration": "AIRFLOW-TEST"}


def _steps() -> None:
    @task
    def extract() -> int:
        return 1

    @task(retries=1, retry_delay=pendulum.duration(seconds=0))
    def load(_: int) -> None:
        raise RuntimeError("ERP answered 503 twice")

    @task(params={"coupa_log": False})
    def quiet() -> None:
        """Opted out by its own param, in an opted-in DAG."""

    load(extract())
    quiet()


# Opted in by its tag: extract logs a success, load one alert after its retry, quiet nothing.
with DAG(
    "coupa_listener_tagged", schedule=None, start_date=START, catchup=False, tags=["coupa-log"], params=DOCUMENT
) as tagged:
    _steps()

# The same steps without the tag: nothing is logged.
with DAG("coupa_listener_untagged", schedule=None, start_date=START, catchup=False, params=DOCUMENT) as untagged:
    _steps()

# One quick task, for timing the listener against a Coupa that is down or never answers.
with DAG(
    "coupa_listener_timing", schedule=None, start_date=START, catchup=False, tags=["coupa-log"], params=DOCUMENT
) as timing:

    @task
    def work() -> str:
        return "done"

    work()
