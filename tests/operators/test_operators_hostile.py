"""Operators against odd answers and odd rendered input: every failure is one of Airflow's, raised from a
CoupaError with a message, never a KeyError, TypeError or ValueError from inside the operator; nothing is sent
before bad input is refused."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook
from airflow_provider_coupa_ihr.operators.records import (
    CoupaCreateRecordOperator,
    CoupaQueryRecordsOperator,
    CoupaResolveRecordsOperator,
    CoupaUpdateRecordOperator,
)
from airflow_provider_coupa_ihr.operators.runs import (
    CoupaFinishIntegrationRunOperator,
    CoupaStartIntegrationRunOperator,
)
from airflow_provider_coupa_ihr.testing import CoupaEmulator

RECORD = {"document_type": "InvoiceHeader", "document_id": 42, "contact_alert_type": "Functional"}


class _TI:
    task_id = "t"
    try_number = 1

    def __init__(self) -> None:
        self.start_date = datetime.now(timezone.utc)

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _context() -> dict[str, Any]:
    return {"ti": _TI()}


# ------------------------------------------------------------------------------------------------ rendered input
@pytest.mark.parametrize("rendered", ["", "  ", ",", "[,]", "None,"])
def test_record_ids_rendered_to_blank_text_fail_the_task_and_send_nothing(
    rendered: str, coupa_connection: Any, coupa_emulator: CoupaEmulator
) -> None:
    operator = CoupaResolveRecordsOperator(task_id="t", record_ids=rendered)
    with pytest.raises(AirflowFailException) as caught:
        operator.execute(_context())
    assert "holds no id" in str(caught.value) or "is not a Coupa record id" in str(caught.value)
    assert coupa_emulator.requests() == []


def test_an_explicit_empty_list_of_ids_is_done_at_once(coupa_connection: Any, coupa_emulator: CoupaEmulator) -> None:
    assert CoupaResolveRecordsOperator(task_id="t", record_ids=[]).execute(_context()) == []
    assert CoupaResolveRecordsOperator(task_id="t", record_ids="[]").execute(_context()) == []
    assert coupa_emulator.requests() == []


def test_ids_rendered_as_a_list_of_quoted_strings_are_read(
    coupa_connection: Any, coupa_emulator: CoupaEmulator
) -> None:
    last = coupa_emulator.seed_records(2, **RECORD)
    rendered = str([str(last - 1), str(last)])  # "['1', '2']": XCom strings rendered as text
    assert CoupaResolveRecordsOperator(task_id="t", record_ids=rendered).execute(_context()) == [last - 1, last]


TEXT_FILTERS = ['{"document_type": "InvoiceHeader"}', "status=Error", 42]


@pytest.mark.parametrize("filters", TEXT_FILTERS)
def test_filters_rendered_to_text_fail_the_resolve_task_with_a_message(
    filters: Any, coupa_connection: Any, coupa_emulator: CoupaEmulator
) -> None:
    with pytest.raises(AirflowFailException, match="must be a mapping"):
        CoupaResolveRecordsOperator(task_id="t", filters=filters).execute(_context())
    assert coupa_emulator.requests() == []


@pytest.mark.parametrize("filters", TEXT_FILTERS)
def test_filters_rendered_to_text_fail_the_query_task_with_a_message(
    filters: Any, coupa_connection: Any, coupa_emulator: CoupaEmulator
) -> None:
    with pytest.raises(AirflowFailException, match="must be a mapping"):
        CoupaQueryRecordsOperator(task_id="t", filters=filters).execute(_context())
    assert coupa_emulator.requests() == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"document_id": 0}, "document_id must be a whole number from 1"),
        ({"document_id": str(2**63)}, "document_id must be a whole number from 1 to 9223372036854775807"),
        ({"document_id": "²"}, "document_id is not a number"),
        ({"document_revision": -1}, "document_revision must be a whole number from 0"),
        ({"integration_run": "0"}, "integration_run takes the run's id from 1"),
    ],
)
def test_ids_out_of_bounds_fail_the_task_before_any_request(
    change: dict[str, Any], words: str, coupa_connection: Any, coupa_emulator: CoupaEmulator
) -> None:
    operator = CoupaCreateRecordOperator(task_id="t", resolve_previous=True, **{**RECORD, **change})
    with pytest.raises(AirflowFailException, match=words):
        operator.execute(_context())
    assert coupa_emulator.requests() == []


# ------------------------------------------------------------------------------------------------ odd answers
ODD_ANSWERS = [
    pytest.param([{"id": 1}], id="a-list-where-a-record-belongs"),
    pytest.param({"status": "running"}, id="a-record-without-an-id"),
    pytest.param({"id": "²", "status": "running"}, id="an-id-isdigit-reads"),
    pytest.param("<html>login</html>", id="text"),
]


@pytest.mark.parametrize("answer", ODD_ANSWERS)
def test_an_odd_answer_fails_each_operator_with_a_coupa_message(
    answer: Any, coupa_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def odd(*args: Any, **kwargs: Any) -> Any:
        return answer

    for verb in ("start_run", "finish_run", "fail_run", "create_record", "update_record", "resolve_records"):
        monkeypatch.setattr(CoupaHook, verb, odd)
    monkeypatch.setattr(CoupaHook, "resolve_records", lambda self, *a, **k: [answer])
    operators = [
        CoupaStartIntegrationRunOperator(task_id="t", integration="ERP"),
        CoupaFinishIntegrationRunOperator(task_id="t", run_id=5),
        CoupaFinishIntegrationRunOperator(task_id="t", run_id=5, outcome="fail"),
        CoupaCreateRecordOperator(task_id="t", **RECORD),
        CoupaUpdateRecordOperator(task_id="t", record_id=5, fields={"status": "x"}),
        CoupaResolveRecordsOperator(task_id="t", record_ids=[5]),
    ]
    for operator in operators:
        with pytest.raises(AirflowFailException) as caught:
            operator.execute(_context())
        assert "Coupa's answer" in str(caught.value), (type(operator).__name__, str(caught.value))
