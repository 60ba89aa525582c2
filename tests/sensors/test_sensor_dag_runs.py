"""CoupaRecordsResolvedSensor in real ``dag.test()`` runs against the emulator, in poke, reschedule and deferrable
mode, with the records resolved by a background actor (a Coupa user) while the sensor waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dag_helpers import load_dag, run_state, task_states, try_numbers, xcom_value
from wait_helpers import error_records

from airflow_provider_coupa_ihr.testing import CoupaEmulator
from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

pytestmark = [pytest.mark.dag, pytest.mark.usefixtures("airflow_db", "coupa_connection")]

DAGS = "test_dags/sensor_waits.py"


def checks(coupa: CoupaEmulator) -> int:
    """How many times the wait asked Coupa about the records (index GETs)."""
    return len(coupa.requests(method="GET", path_contains="/api/integration_history_records"))


class CoupaUser(threading.Thread):
    """Resolves records the way a person in Coupa would: after the sensor has looked once and found them open."""

    def __init__(self, coupa: CoupaEmulator, ids: list[int], after: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.coupa, self.ids, self.after = coupa, ids, after
        self.resolved_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while checks(self.coupa) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(self.after)
        for record_id in self.ids:
            self.coupa.resolve(record_id)
        self.resolved_at = time.monotonic()


@pytest.fixture
def coupa_user(coupa_emulator: CoupaEmulator) -> Iterator[Any]:
    users: list[CoupaUser] = []

    def start(ids: list[int], after: float = 1.0) -> CoupaUser:
        user = CoupaUser(coupa_emulator, ids, after)
        user.start()
        users.append(user)
        return user

    yield start
    for user in users:
        user.join(5)


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_poke_and_reschedule_wait_until_a_user_resolves_the_records(mode, coupa_emulator, coupa_user):
    ids = error_records(2)
    user = coupa_user(ids)
    run = load_dag(DAGS, f"coupa_wait_{mode}").test(run_conf={"record_ids": ids})
    assert run_state(run) == "success", task_states(run)
    assert user.resolved_at is not None
    assert checks(coupa_emulator) >= 2  # open at the first check, resolved at a later one
    records = xcom_value(run, "wait")
    assert [r["id"] for r in records] == ids
    assert all(r["resolved"] is True and r["document_type"] == "InvoiceHeader" for r in records)
    assert xcom_value(run, "carry_on") == ids  # the pipeline went on with what the sensor returned
    assert try_numbers(run)["wait"] == 1
    if mode == "reschedule":
        assert reschedules(run) >= 1


def reschedules(run: Any) -> int:
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        query = select(func.count()).select_from(TaskReschedule)
        if hasattr(TaskReschedule, "run_id"):
            query = query.where(TaskReschedule.run_id == run.run_id)
        return int(session.scalar(query) or 0)


def test_deferrable_checks_once_then_the_trigger_waits_and_the_task_finishes(coupa_emulator, coupa_user, monkeypatch):
    events: list[dict[str, Any]] = []
    original_wait = CoupaRecordsResolvedTrigger.wait

    async def watched_wait(self: CoupaRecordsResolvedTrigger) -> dict[str, Any]:
        event = await original_wait(self)
        events.append(event)
        return event

    monkeypatch.setattr(CoupaRecordsResolvedTrigger, "wait", watched_wait)
    ids = error_records(3)
    user = coupa_user(ids)
    run = load_dag(DAGS, "coupa_wait_deferrable").test(run_conf={"record_ids": ids})
    assert run_state(run) == "success", task_states(run)
    assert user.resolved_at is not None
    assert [e["status"] for e in events] == ["resolved"]  # the trigger ran, and ended the wait
    assert [r["id"] for r in events[0]["records"]] == ids
    assert [r["id"] for r in xcom_value(run, "wait")] == ids  # execute_complete returned the trigger's records
    assert xcom_value(run, "carry_on") == ids
    assert try_numbers(run)["wait"] == 1


def test_deferrable_query_waits_until_nothing_matching_is_unresolved(coupa_emulator, coupa_user):
    ids = error_records(2, document_id=555)
    error_records(1, document_id=556)  # another document's error does not hold this pipeline
    coupa_emulator.resolve(ids[0])
    coupa_user(ids[1:])
    run = load_dag(DAGS, "coupa_wait_query_deferrable").test(run_conf={"document_id": 555})
    assert run_state(run) == "success", task_states(run)
    # Both records are returned: resolved during the wait, or shortly before it began (clock-skew margin).
    assert [r["id"] for r in xcom_value(run, "wait")] == ids


def test_an_unknown_record_fails_at_once_without_retries_or_waiting(coupa_emulator):
    ids = [*error_records(1), 987_654]
    started = time.monotonic()
    run = load_dag(DAGS, "coupa_wait_missing").test(run_conf={"record_ids": ids})
    assert time.monotonic() - started < 20  # not the sensor's 60 s timeout
    assert task_states(run)["wait"] == "failed"
    assert try_numbers(run)["wait"] == 1  # retries=2, unused: waiting cannot make the record exist
    assert checks(coupa_emulator) == 1


def test_a_deferred_timeout_with_soft_fail_skips(coupa_emulator):
    ids = error_records(1)
    run = load_dag(DAGS, "coupa_wait_soft_timeout").test(run_conf={"record_ids": ids})
    assert task_states(run)["wait"] == "skipped"
    assert task_states(run)["carry_on"] == "skipped"


def test_a_timeout_fails_the_sensor_without_retries(coupa_emulator):
    ids = error_records(1)
    run = load_dag(DAGS, "coupa_wait_hard_timeout").test(run_conf={"record_ids": ids})
    assert task_states(run)["wait"] == "failed"
    assert try_numbers(run)["wait"] == 1  # a sensor timeout is final, retries=2 notwithstanding


def test_deferrable_wait_with_the_connection_stored_in_the_metadata_database(
    coupa_emulator, coupa_user, coupa_connection, monkeypatch
):
    """As the README's first hour stores it (``airflow connections add``), not as an ``AIRFLOW_CONN_`` variable:
    ``dag.test()`` runs the trigger in-process, where the connection must still be found."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    ids = error_records(2)  # through a hook in this test process, before the variable goes
    coupa_user(ids)
    monkeypatch.delenv("AIRFLOW_CONN_COUPA_DEFAULT")
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "coupa_default").delete()
        session.add(
            Connection(
                conn_id="coupa_default",
                conn_type=coupa_connection.conn_type,
                host=coupa_connection.host,
                login=coupa_connection.login,
                password=coupa_connection.password,
                extra=coupa_connection.extra,
            )
        )
    try:
        run = load_dag(DAGS, "coupa_wait_deferrable").test(run_conf={"record_ids": ids})
        assert run_state(run) == "success", task_states(run)
        assert [r["id"] for r in xcom_value(run, "wait")] == ids
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "coupa_default").delete()
