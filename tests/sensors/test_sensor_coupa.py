"""CoupaRecordsResolvedSensor, one check at a time against the emulator: semantics, errors, deferral, XCom."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)
from wait_helpers import error_records

from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.sensors.coupa import DEFERRAL_GRACE_SECONDS, CoupaRecordsResolvedSensor
from airflow_provider_coupa_ihr.testing import CoupaEmulator
from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json
from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger


def sensor(**kwargs: Any) -> CoupaRecordsResolvedSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 10)
    return CoupaRecordsResolvedSensor(**kwargs)


def poked(s: CoupaRecordsResolvedSensor) -> Any:
    try:
        return s.poke({})
    finally:
        s.hook.close()


# ---------------------------------------------------------------------------------------------- building
def test_exactly_one_of_ids_or_filters_at_dag_parse_time():
    with pytest.raises(ValueError, match="either record_ids"):
        CoupaRecordsResolvedSensor(task_id="neither")
    with pytest.raises(ValueError, match="either record_ids"):
        CoupaRecordsResolvedSensor(task_id="both", record_ids=[1], filters={"document_id": 1})


def test_ids_and_filters_are_templated():
    assert set(CoupaRecordsResolvedSensor.template_fields) >= {"record_ids", "filters"}


def test_deferrable_defaults_to_operators_default_deferrable(monkeypatch):
    assert sensor(record_ids=[1]).deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert sensor(record_ids=[1]).deferrable is True
    assert sensor(record_ids=[1], deferrable=False).deferrable is False


def test_importing_the_sensor_loads_no_client_trigger_or_http_library():
    code = (
        "import sys\n"
        "from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_coupa_ihr.sensors.coupa\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
        .replace("'", '"')
    )
    assert set(loaded) <= {
        "airflow_provider_coupa_ihr",
        "airflow_provider_coupa_ihr.sensors",
        "airflow_provider_coupa_ihr.sensors.coupa",
    }


# ---------------------------------------------------------------------------------------------- poking
@pytest.mark.usefixtures("coupa_connection")
def test_done_only_when_all_are_resolved_at_the_same_check_and_a_reopened_one_counts_as_open(coupa_emulator):
    first, second = error_records(2)
    wait = sensor(record_ids=[first, second])
    assert poked(wait) is False
    coupa_emulator.resolve(first)
    assert poked(wait) is False
    coupa_emulator.resolve(first, resolved=False)  # reopened in Coupa before the next check
    coupa_emulator.resolve(second)
    assert poked(wait) is False  # resolved once is not enough: the current state counts
    coupa_emulator.resolve(first)
    done = poked(wait)
    assert isinstance(done, PokeReturnValue)
    assert done.is_done
    assert [r["id"] for r in done.xcom_value] == [first, second]
    assert json.loads(json.dumps(done.xcom_value)) == done.xcom_value
    assert set(done.xcom_value[0]) >= {"id", "status", "document_type", "document_id", "resolved"}


@pytest.mark.usefixtures("coupa_connection")
def test_many_ids_cost_one_request_per_fifty_per_check(coupa_emulator):
    state = coupa_emulator.state  # seeded directly: 60 creates over HTTP would spend 2 s in the rate limit
    payload = {"document-type": "InvoiceHeader", "document-id": 7, "contact-alert-type": "Both", "status": "Error"}
    ids = [state.create(state.records, payload, user=None)["id"] for _ in range(60)]
    before = len(coupa_emulator.requests(method="GET"))
    assert poked(sensor(record_ids=ids)) is False
    assert len(coupa_emulator.requests(method="GET")) - before == 2


@pytest.mark.usefixtures("coupa_connection")
def test_an_unknown_id_fails_at_once_naming_it(coupa_emulator):
    (known,) = error_records(1)
    with pytest.raises(AirflowFailException, match=r"no integration history record with id 31337\b"):
        poked(sensor(record_ids=[known, 31337]))
    with pytest.raises(AirflowSkipException, match="31337"):
        poked(sensor(record_ids=[31337], soft_fail=True))


@pytest.mark.usefixtures("coupa_connection")
def test_transient_errors_are_not_yet_and_refusals_fail_without_retries(coupa_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_COUPA_DEFAULT", connection_json(coupa_emulator, max_attempts=1))
    (record_id,) = error_records(1)
    coupa_emulator.resolve(record_id)
    coupa_emulator.faults.error_rate(503, 1.0, path_contains="integration_history_records")
    wait = sensor(record_ids=[record_id])
    assert poked(wait) is False  # logged, and the wait goes on
    coupa_emulator.faults.clear()
    assert poked(wait).is_done
    coupa_emulator.faults.error_rate(403, 1.0)
    with pytest.raises(AirflowFailException, match="403"):
        poked(sensor(record_ids=[record_id]))


@pytest.mark.usefixtures("coupa_connection")
def test_bad_filters_fail_before_any_request(coupa_emulator):
    with pytest.raises(AirflowFailException, match="unknown field documnet-id"):
        poked(sensor(filters={"documnet_id": 7}))
    with pytest.raises(AirflowFailException, match="set by the wait itself"):
        poked(sensor(filters={"document_id": 7, "resolved": "false"}))
    assert coupa_emulator.requests(method="GET") == []


# ---------------------------------------------------------------------------------------------- deferring
@pytest.mark.usefixtures("coupa_connection")
def test_deferrable_returns_at_once_when_already_resolved(coupa_emulator):
    (record_id,) = error_records(1)
    coupa_emulator.resolve(record_id)
    records = sensor(record_ids=[record_id], deferrable=True).execute({})
    assert [r["id"] for r in records] == [record_id]


@pytest.mark.usefixtures("coupa_connection")
def test_deferrable_checks_once_then_defers_with_its_own_deadline(coupa_emulator):
    (record_id,) = error_records(1)
    wait = sensor(record_ids=[record_id], deferrable=True, timeout=600, poke_interval=30, exponential_backoff=True)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, CoupaRecordsResolvedTrigger)
    assert deferred.value.method_name == "execute_complete"
    kwargs = trigger.serialize()[1]
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600
    assert kwargs["record_ids"] == [record_id]
    assert kwargs["poke_interval"] == 30
    assert kwargs["exponential_backoff"] is True
    assert kwargs["since"] is not None
    # Airflow's own deferral timeout is only a backstop, later than the trigger's deadline.
    assert deferred.value.timeout > timedelta(seconds=600)
    assert deferred.value.timeout <= timedelta(seconds=600 + DEFERRAL_GRACE_SECONDS)
    assert len(coupa_emulator.requests(method="GET")) == 1


@pytest.mark.usefixtures("coupa_connection")
def test_deferrable_with_no_time_left_times_out_instead_of_deferring(coupa_emulator):
    (record_id,) = error_records(1)
    with pytest.raises(AirflowSensorTimeout):
        sensor(record_ids=[record_id], deferrable=True, timeout=0).execute({})


def test_execute_complete_returns_the_records_or_reports_the_trigger_plainly():
    wait = sensor(record_ids=[1], deferrable=True)
    records = [{"id": 1, "resolved": True}]
    assert wait.execute_complete({}, {"status": "resolved", "message": "ok", "records": records}) == records
    with pytest.raises(AirflowSensorTimeout, match="Timed out at"):
        wait.execute_complete({}, {"status": "timeout", "message": "Timed out at 2026-..."})
    with pytest.raises(AirflowFailException, match="no integration history record"):
        wait.execute_complete({}, {"status": "failed", "message": "no integration history record", "retry": False})
    with pytest.raises(AirflowException, match="unexpectedly") as retryable:
        wait.execute_complete({}, {"status": "failed", "message": "failed unexpectedly", "retry": True})
    assert not isinstance(retryable.value, AirflowFailException)  # task retries may help here
    with pytest.raises(AirflowException, match="does not know"):
        wait.execute_complete({}, {"status": "???"})


def test_soft_fail_skips_on_a_deferred_timeout_or_failure():
    wait = sensor(record_ids=[1], deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException, match="Timed out"):
        wait.execute_complete({}, {"status": "timeout", "message": "Timed out"})
    with pytest.raises(AirflowSkipException, match="gone"):
        wait.execute_complete({}, {"status": "failed", "message": "gone", "retry": False})


@pytest.mark.usefixtures("coupa_connection")
def test_the_blocking_client_is_closed_when_the_task_ends(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
):
    (record_id,) = error_records(1)
    coupa_emulator.resolve(record_id)
    made: list[CoupaClient] = []
    closed: list[CoupaClient] = []
    original_init, original_close = CoupaClient.__init__, CoupaClient.close

    def counting_init(self: CoupaClient, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original_init(self, *args, **kwargs)

    def counting_close(self: CoupaClient) -> None:
        closed.append(self)
        original_close(self)

    monkeypatch.setattr(CoupaClient, "__init__", counting_init)
    monkeypatch.setattr(CoupaClient, "close", counting_close)
    wait = sensor(record_ids=[record_id])
    wait.execute({})
    assert made
    assert set(map(id, made)) <= set(map(id, closed))
