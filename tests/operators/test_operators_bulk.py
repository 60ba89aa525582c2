"""The bulk operator at Coupa's rate limit, and its retry after a failure part-way through."""

from __future__ import annotations

import collections
import time
from datetime import datetime, timezone

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from dag_helpers import load_dag, run_state, task_states, try_numbers, xcom_value

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
from airflow_provider_coupa_ihr.testing.faults import Fault
from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def coupa_emulator_options():
    return {"rate_limit": 25.0, "burst": 20}  # Coupa's published limit


def _run(monkeypatch, coupa_emulator, items, **extras):
    monkeypatch.setenv("COUPA_TEST_BULK_ITEMS", str(items))
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_BULK", connection_json(coupa_emulator, **extras))
    started = time.monotonic()
    run = load_dag("test_dags/operators_bulk.py").test()
    return run, time.monotonic() - started


def test_bulk_writes_every_item_once_with_outcomes(coupa_connection, coupa_emulator, monkeypatch):
    run, _ = _run(monkeypatch, coupa_emulator, 60)
    assert run_state(run) == "success", task_states(run)
    result = xcom_value(run, "log_to_coupa")
    assert (result["total"], result["created"], result["failed"]) == (60, 60, 0)
    assert [o["index"] for o in result["outcomes"]] == list(range(60))
    assert sorted(r["document-id"] for r in coupa_emulator.records()) == list(range(1, 61))
    assert len(coupa_emulator.exported) == 60


def test_two_thousand_records_at_the_rate_limit_and_a_retry_after_a_failure(
    coupa_connection, coupa_emulator, monkeypatch
):
    # Part-way through, Coupa fails 40 writes in a row; with two attempts per write allowed, about twenty items
    # fail, the task fails and Airflow retries it. The retry must write only what is missing.
    items = 2000
    failure = Fault("status", status=503, count=40, methods=("POST",))

    def arm_fault_after_a_while():
        while len(coupa_emulator.state.records.rows) < 800:
            time.sleep(0.2)
        coupa_emulator.faults.add(failure)

    import threading

    threading.Thread(target=arm_fault_after_a_while, daemon=True).start()
    run, seconds = _run(monkeypatch, coupa_emulator, items, max_attempts=2)
    assert run_state(run) == "success", task_states(run)
    assert try_numbers(run)["log_to_coupa"] == 2, "the failure part-way through should have made Airflow retry"
    stored = [r["document-id"] for r in coupa_emulator.records()]
    assert len(stored) == items
    assert sorted(stored) == list(range(1, items + 1))  # each exactly once
    result = xcom_value(run, "log_to_coupa")
    assert result["already_present"] + result["created"] == items
    assert result["already_present"] >= items - 100
    stats = coupa_emulator.stats()["by_status"]
    print(f"bulk: {items} records in {seconds:.1f}s incl. retry; emulator answers {stats}")


# ---------------------------------------------------------------------------------------------- retries (item 8)
DEFAULTS = {"document_type": "InvoiceHeader", "contact_alert_type": "Functional", "integration": "AIRFLOW-TEST"}
IHR = "/api/integration_history_records"


class _DagRun:
    def __init__(self, start_date):
        self.start_date = start_date


class _TI:
    """What the operator reads of its task instance: the try number, and where XCom goes."""

    task_id = "bulk"

    def __init__(self, try_number):
        self.try_number = try_number
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _execute(operator, try_number, started):
    ti = _TI(try_number)
    try:
        return ti, operator.execute({"ti": ti, "dag_run": _DagRun(started)}), None
    except Exception as exc:  # the test looks at which exception, and at what the try left in XCom
        return ti, None, exc


def _stored(coupa_emulator):
    return collections.Counter(int(r["document-id"]) for r in coupa_emulator.records())


def test_a_retry_writes_every_chunk_it_could_look_up_and_leaves_the_rest_to_the_next_try(coupa_emulator, monkeypatch):
    from airflow.providers.common.compat.sdk import AirflowException

    from airflow_provider_coupa_ihr.operators.bulk import BULK_OUTCOMES_XCOM_KEY, LOOKUP_ROUNDS

    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa_emulator, max_attempts=2))
    started = datetime.now(timezone.utc)
    items = [{"document_id": i, "external_id": f"ERP-{i:05d}", "status": "Success"} for i in range(1, 121)]
    operator = CoupaBulkCreateRecordsOperator(task_id="bulk", items=items, defaults=DEFAULTS, action="mark_exported")
    # An earlier try wrote three records (one in each chunk of 50 documents) and died.
    login = coupa_emulator.credentials
    config = ClientConfig(coupa_emulator.url, login.client_id, login.client_secret, rate_limit=None)
    with CoupaClient(config, token_cache=TokenCache()) as client:
        for document_id in (3, 60, 110):
            client.create_record(action="mark_exported", **DEFAULTS, **items[document_id - 1])
    # On this retry the first chunk's lookup fails every time it is asked: both attempts of the first query of
    # each lookup (chunks are asked in order) meet a 503.
    look_up = CoupaClient.look_up_earlier_writes
    lookups = []

    def first_chunk_fails(self, *args, **kwargs):
        coupa_emulator.faults.add(Fault("status", status=503, count=2, methods=("GET",), path_contains=IHR))
        lookups.append(look_up(self, *args, **kwargs))
        return lookups[-1]

    monkeypatch.setattr(CoupaClient, "look_up_earlier_writes", first_chunk_fails)

    ti, _, error = _execute(operator, 2, started)
    assert isinstance(error, AirflowException)
    assert not isinstance(error, AirflowFailException)  # Airflow retries it
    assert "50 not looked up (the lookup of an earlier try's writes failed; not written)" in str(error)
    left = ti.pushed[BULK_OUTCOMES_XCOM_KEY]
    assert (left["already_present"], left["created"], left["not_looked_up"], left["failed"]) == (2, 68, 50, 0)
    assert [o["status"] for o in left["outcomes"][:50]] == ["not_looked_up"] * 50
    assert left["outcomes"][0]["error"].startswith("lookup failed, not written: Coupa answered 503")
    # The chunks it could look up are written, each document once; the other chunk is untouched.
    assert _stored(coupa_emulator) == collections.Counter([3, *range(51, 121)])
    assert [(e.chunks, e.chunks_failed) for e in lookups] == [(3, 1)] + [(1, 1)] * (LOOKUP_ROUNDS - 1)
    monkeypatch.setattr(CoupaClient, "look_up_earlier_writes", look_up)

    # The next try looks the chunk up again and writes what is missing: every record once.
    _, result, error = _execute(operator, 3, started)
    assert error is None
    assert (result["already_present"], result["created"], result["not_looked_up"]) == (71, 49, 0)
    assert _stored(coupa_emulator) == collections.Counter(range(1, 121))
    assert len(coupa_emulator.exported) == 120


def test_failed_and_unknown_are_told_apart_and_only_a_retry_settles_the_unknown(coupa_emulator, monkeypatch):
    from airflow.providers.common.compat.sdk import AirflowException

    from airflow_provider_coupa_ihr.operators.bulk import BULK_OUTCOMES_XCOM_KEY

    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa_emulator, max_attempts=1))
    started = datetime.now(timezone.utc)
    items = [{"document_id": i, "external_id": f"ERP-{i:05d}", "status": "Success"} for i in range(1, 6)]

    def arm():  # one write at a time, so each fault meets the write it is meant for
        for fault in (
            Fault("status", status=400, count=1, methods=("POST",)),  # item 0: refused
            Fault("drop_after", count=1, methods=("POST",)),  # item 1: stored, answer lost
            Fault("status", status=503, count=1, methods=("POST",)),  # item 2: refused before acting
        ):
            coupa_emulator.faults.add(fault)

    for policy in ("fail", "warn"):
        coupa_emulator.faults.clear()
        arm()
        operator = CoupaBulkCreateRecordsOperator(
            task_id="bulk", items=items, defaults=DEFAULTS, max_workers=1, on_partial_failure=policy
        )
        ti, _, error = _execute(operator, 1, started)
        # Whatever the policy for refused items, an unknown outcome fails the try retryably.
        assert isinstance(error, AirflowException), policy
        assert not isinstance(error, AirflowFailException), policy
        message = str(error)
        assert "5 items: 2 created, 0 already present, 2 failed (not written: " in message
        assert "1 outcome unknown (may have landed" in message
        assert "First unknown: item 1: No answer from Coupa" in message
        left = ti.pushed[BULK_OUTCOMES_XCOM_KEY]
        assert [o["status"] for o in left["outcomes"]] == ["failed", "unknown", "failed", "created", "created"]
        assert (left["failed"], left["unknown"]) == (2, 1)
        assert "retryable" not in left["outcomes"][0]
        # The retry finds the unknown one landed, and writes the two that failed: each document once.
        _, result, error = _execute(operator, 2, started)
        assert error is None
        statuses = [o["status"] for o in result["outcomes"]]
        assert statuses == ["created", "already_present", "created", "already_present", "already_present"]
        assert _stored(coupa_emulator) == collections.Counter(range(1, 6))
        coupa_emulator.state.records.rows.clear()


def test_refused_items_alone_follow_on_partial_failure(coupa_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa_emulator, max_attempts=1))
    items = [{"document_id": i, "status": "Success"} for i in range(1, 4)]
    for policy in ("fail", "warn"):
        coupa_emulator.faults.add(Fault("status", status=400, count=1, methods=("POST",)))
        operator = CoupaBulkCreateRecordsOperator(
            task_id="bulk", items=items, defaults=DEFAULTS, max_workers=1, on_partial_failure=policy
        )
        _, result, error = _execute(operator, 1, datetime.now(timezone.utc))
        if policy == "fail":
            assert isinstance(error, AirflowFailException)  # a retry would be refused the same way
            assert "1 failed (not written: Coupa refused them or never got them)" in str(error)
        else:
            assert error is None
            assert (result["created"], result["failed"], result["unknown"]) == (2, 1, 0)
            assert result["outcomes"][0]["status"] == "failed"
        coupa_emulator.state.records.rows.clear()
