"""Coupa tasks whose templates render to something Coupa would refuse (tests/reliability/test_reliability_bad_input.py).

One DAG, independent tasks, each failing on its own bad template. Each has retries, which must go unused: bad
input fails the task at once (``AirflowFailException``) and nothing reaches Coupa. A failure callback appends
each task's error (type and message) as a JSON line to the file named by ``COUPA_TEST_FAILURE_LOG``, so the test
reads the message a user would see on both Airflow lines.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
from airflow_provider_coupa_ihr.operators.lifecycle import coupa_integration_run
from airflow_provider_coupa_ihr.operators.records import (
    CoupaCreateRecordOperator,
    CoupaMarkExportedOperator,
    CoupaQueryRecordsOperator,
    CoupaResolveRecordsOperator,
)
from airflow_provider_coupa_ihr.operators.runs import CoupaStartIntegrationRunOperator
from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor


def record_failure(context: Any) -> None:
    path = os.environ.get("COUPA_TEST_FAILURE_LOG")
    if not path:
        return
    error = context.get("exception")
    line = {"task_id": context["ti"].task_id, "type": type(error).__name__, "message": str(error)}
    with open(path, "a", encoding="utf-8") as sink:
        sink.write(json.dumps(line) + "\n")


with DAG(
    "coupa_reliability_bad_templates",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "document_id": "INV-0042",
        "document_type": "Invoice Header",
        "record_ids": [17, "x"],
        "items": [{"document_id": 1}],
        "status": "Error",
        "wait_ids": "tomorrow",
        "contact_alert_type": "Everyone",
        "total_records": "many",
    },
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=0), "on_failure_callback": record_failure},
) as dag:
    CoupaCreateRecordOperator(
        task_id="document_id_from_erp_number",
        document_type="InvoiceHeader",
        document_id="{{ params.document_id }}",
    )
    CoupaCreateRecordOperator(
        task_id="document_type_with_a_space",
        document_type="{{ params.document_type }}",
        document_id=42,
    )
    CoupaResolveRecordsOperator(task_id="record_ids_with_a_word", record_ids="{{ params.record_ids }}")
    # Without render_template_as_native_obj a template renders to text, not to the list of dicts items needs.
    CoupaBulkCreateRecordsOperator(
        task_id="items_rendered_as_text", items="{{ params.items }}", defaults={"document_type": "InvoiceHeader"}
    )
    CoupaQueryRecordsOperator(task_id="filter_operator_typo", filters={"status[like]": "{{ params.status }}"})
    CoupaRecordsResolvedSensor(task_id="wait_on_a_word", record_ids="{{ params.wait_ids }}", timeout=30)
    # Checked before the first request: resolving the document's earlier records, or creating a run, and then
    # refusing the rest would leave Coupa changed by a task that failed on its input.
    CoupaMarkExportedOperator(
        task_id="resolve_previous_then_a_bad_alert_type",
        document_type="InvoiceHeader",
        document_id=42,
        resolve_previous=True,
        contact_alert_type="{{ params.contact_alert_type }}",
    )
    CoupaStartIntegrationRunOperator(
        task_id="start_run_counting_many", integration="AIRFLOW-TEST", total_records="{{ params.total_records }}"
    )
    with coupa_integration_run(
        "AIRFLOW-TEST", group_id="run_counting_many", total_records="{{ params.total_records }}"
    ):
        CoupaCreateRecordOperator(task_id="inside_the_run", document_type="InvoiceHeader", document_id=42)
