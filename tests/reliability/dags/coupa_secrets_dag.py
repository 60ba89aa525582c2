"""The DAG the secrets test runs with ``airflow dags test`` at DEBUG (tests/reliability/test_reliability_secrets.py).

It exercises most of the provider in one run, through two connections: ``coupa_default`` (OAuth client
credentials) and ``coupa_legacy`` (the legacy ``X-COUPA-API-KEY``): an integration run opened and closed, a
record, an alert, a bulk, a query, an update, resolves, a deferrable wait (the trigger polls with the OAuth
token) and a task that Coupa refuses with a 400, whose failure the notifier logs to Coupa. Afterwards no log,
XCom or rendered field may hold the client secret, the API key or any token Coupa issued.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_coupa_ihr.notifications.coupa import CoupaNotifier
from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
from airflow_provider_coupa_ihr.operators.records import (
    CoupaCreateAlertOperator,
    CoupaCreateRecordOperator,
    CoupaQueryRecordsOperator,
    CoupaResolveRecordsOperator,
    CoupaUpdateRecordOperator,
)
from airflow_provider_coupa_ihr.operators.runs import (
    CoupaFinishIntegrationRunOperator,
    CoupaStartIntegrationRunOperator,
)
from airflow_provider_coupa_ihr.sensors.coupa import CoupaRecordsResolvedSensor

DAG_ID = "coupa_reliability_secrets"
INTEGRATION = "SECRETS-TEST"
RUN_ID = "{{ ti.xcom_pull(task_ids='start_run')['id'] }}"

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    start = CoupaStartIntegrationRunOperator(task_id="start_run", integration=INTEGRATION, total_records=12)
    create = CoupaCreateRecordOperator(
        task_id="create",
        document_type="InvoiceHeader",
        document_id=501,
        external_id="SECRETS-501",
        status="Success",
        integration=INTEGRATION,
        integration_run=RUN_ID,
    )
    legacy_alert = CoupaCreateAlertOperator(
        task_id="legacy_alert",
        coupa_conn_id="coupa_legacy",
        document_type="InvoiceHeader",
        document_id=502,
        external_id="SECRETS-WAIT",
        responses=[("ERP-409", "Supplier 88 is blocked in the ERP")],
        integration=INTEGRATION,
    )
    bulk = CoupaBulkCreateRecordsOperator(
        task_id="bulk",
        items=[{"document_id": 510 + i, "external_id": f"SECRETS-BULK-{i}"} for i in range(8)],
        defaults={"document_type": "InvoiceHeader", "contact_alert_type": "Functional", "integration": INTEGRATION},
        max_workers=3,
    )
    query = CoupaQueryRecordsOperator(task_id="query", filters={"integration[code]": INTEGRATION}, max_records=50)
    wait = CoupaRecordsResolvedSensor(
        task_id="wait",
        record_ids="{{ ti.xcom_pull(task_ids='legacy_alert')['id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=60,
    )
    update = CoupaUpdateRecordOperator(
        task_id="update",
        record_id="{{ ti.xcom_pull(task_ids='create')['id'] }}",
        fields={"document_status": "exported"},
    )
    resolve = CoupaResolveRecordsOperator(
        task_id="resolve", filters={"document_type": "InvoiceHeader", "document_id[in]": [510, 511]}
    )
    finish = CoupaFinishIntegrationRunOperator(task_id="finish_run", run_id=RUN_ID, records_processed=12)
    rejected = CoupaCreateAlertOperator(
        task_id="rejected",
        document_type="InvoiceHeader",
        document_id=599,
        integration="NO-SUCH-INTEGRATION",  # Coupa answers 400: no integration with this code
        on_failure_callback=CoupaNotifier(
            document_type="InvoiceHeader", document_id=599, integration=INTEGRATION, external_id="SECRETS-NOTIFIED"
        ),
    )

    start >> [create, legacy_alert, bulk] >> query >> wait >> [update, resolve] >> finish
    start >> rejected
