"""CoupaNotifier without a DAG run: what it writes for each kind of callback, and that it never raises."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.notifications.coupa import CoupaNotifier, outcome_request
from airflow_provider_coupa_ihr.notifications.outcome import (
    MAX_RESPONSE_CODE_CHARS,
    MAX_RESPONSE_MESSAGE_CHARS,
    Outcome,
    call_within,
    clean_text,
    outcome_from_context,
)


def _ti(state: str = "success", task_id: str = "export", try_number: int = 1, map_index: int = -1) -> Any:
    return SimpleNamespace(
        dag_id="invoices",
        task_id=task_id,
        run_id="manual__1",
        try_number=try_number,
        map_index=map_index,
        state=state,
        task=None,
    )


def _dag() -> Any:
    from airflow.providers.common.compat.sdk import DAG

    return DAG("invoices", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


def _notifier(**kwargs: Any) -> CoupaNotifier:
    return CoupaNotifier(**{"document_type": "InvoiceHeader", "document_id": 42, **kwargs})


# ------------------------------------------------------------------------------------------------ outcomes
@pytest.mark.parametrize(
    ("context", "failed", "dag_level"),
    [
        ({"ti": _ti(), "exception": None}, False, False),  # Airflow 3 success: exception=None
        ({"ti": _ti()}, False, False),  # Airflow 2 success: no exception key
        ({"ti": _ti("failed"), "exception": ValueError("x")}, True, False),
        ({"ti": _ti("failed")}, True, False),  # failed without an exception object
        ({"ti": _ti(), "reason": "success"}, False, True),  # DAG callbacks carry a reason
        ({"ti": _ti("failed"), "reason": "task_failure"}, True, True),
        ({"dag": SimpleNamespace(dag_id="d"), "run_id": "r", "reason": "timed_out"}, True, True),
    ],
)
def test_the_outcome_is_read_from_the_callback_context(context: dict, failed: bool, dag_level: bool) -> None:
    outcome = outcome_from_context(context)
    assert (outcome.failed, outcome.dag_level) == (failed, dag_level)
    assert outcome.run_id in ("manual__1", "r")


def test_an_explicit_outcome_wins_over_the_context() -> None:
    assert outcome_from_context({"ti": _ti()}, "failure").failed is True
    assert outcome_from_context({"ti": _ti("failed"), "exception": ValueError()}, "success").failed is False
    with pytest.raises(ValueError, match="outcome must be"):
        outcome_from_context({}, "maybe")
    with pytest.raises(ValueError, match="outcome must be"):
        _notifier(outcome="maybe")


def test_default_responses_name_the_step_and_the_error() -> None:
    ok = Outcome(failed=False, dag_id="d", task_id="t", run_id="r", try_number=2, map_index=3)
    assert ok.response() == ("AIRFLOW-SUCCESS", "Airflow task d.t[3] succeeded in run r (try 2).")
    bad = Outcome(failed=True, dag_id="d", task_id="t", run_id="r", try_number=1, error=KeyError("invoice_id"))
    assert bad.response() == ("KeyError", "Airflow task d.t failed in run r (try 1): KeyError: 'invoice_id'")
    assert Outcome(failed=True, dag_id="d", task_id="t", error="killed").response()[0] == "AIRFLOW-TASK-FAILED"
    dag_failed = Outcome(failed=True, dag_id="d", run_id="r", task_id="t", dag_level=True, reason="task_failure")
    assert dag_failed.response() == (
        "AIRFLOW-DAG-RUN-FAILED",
        "Airflow DAG d, run r, failed (task_failure); last failed task: t",
    )


# ------------------------------------------------------------------------------------------------ the request
def test_a_success_is_a_create_with_status_success() -> None:
    action, fields = _notifier(integration="ERP").record_request({"ti": _ti(), "exception": None})
    assert action == "create"
    assert fields["status"] == "Success"
    assert fields["contact_alert_type"] == "Functional"  # the one default (client.records.DEFAULT_CONTACT_ALERT_TYPE)
    assert fields["integration"] == "ERP"
    assert fields["responses"][0]["response_code"] == "AIRFLOW-SUCCESS"


def test_a_failure_is_an_alert_with_the_error_cut_to_coupas_limits() -> None:
    error = type("E" * 300, (Exception,), {})("boom " + "y" * 9000)
    action, fields = _notifier().record_request({"ti": _ti("failed"), "exception": error})
    assert action == "create_alert"
    assert fields["status"] == "Error"
    (response,) = fields["responses"]
    assert len(response["response_code"]) == MAX_RESPONSE_CODE_CHARS
    assert len(response["response_message"]) == MAX_RESPONSE_MESSAGE_CHARS
    assert response["response_message"].endswith("…[cut]")
    assert "boom" in response["response_message"]


def test_given_responses_statuses_and_actions_replace_the_defaults() -> None:
    notifier = _notifier(
        response_code="ERP-409",
        response_message="Duplicate invoice",
        failure_status="Failed",
        failure_action="create_alert_and_mark_exported",
    )
    action, fields = notifier.record_request({"ti": _ti("failed"), "exception": ValueError()})
    assert action == "create_alert_and_mark_exported"
    assert fields["status"] == "Failed"
    assert fields["responses"] == [{"response_code": "ERP-409", "response_message": "Duplicate invoice"}]


def test_blank_rendered_values_count_as_not_given_and_extra_fields_may_not_clash() -> None:
    _, fields = outcome_request(
        Outcome(failed=False),
        document_type="Supplier",
        document_id="7",
        contact_alert_type="Both",
        status="Success",
        action="create",
        integration="",
        integration_run="None",
        extra_fields={"document_status": "approved"},
    )
    assert "integration" not in fields
    assert "integration_run" not in fields
    assert fields["document_status"] == "approved"
    with pytest.raises(CoupaValidationError, match=r"extra_fields repeats \['status'\], already given as arguments"):
        outcome_request(
            Outcome(failed=False),
            document_type="Supplier",
            document_id=7,
            contact_alert_type="Both",
            status="Success",
            action="create",
            extra_fields={"status": "x"},
        )


def test_known_secrets_are_masked_before_the_text_is_cut() -> None:
    assert clean_text("login hunter2 failed", 100, secrets=["hunter2"]) == "login *** failed"
    # The secret straddles the cut: masking first means no half of it survives.
    cut = clean_text("x" * 95 + "hunter2", 100, secrets=["hunter2"])
    assert "hunt" not in cut
    assert len(clean_text("z" * 10, 3)) == 3


# ------------------------------------------------------------------------------------------------ sending
def test_calling_renders_on_a_copy_so_one_notifier_serves_many_tasks(coupa_connection, coupa_emulator) -> None:
    notifier = _notifier(external_id="{{ ti.task_id }}", document_id="{{ params.invoice }}")
    dag = _dag()
    for task_id, invoice in (("first", 1), ("second", 2)):
        notifier({"ti": _ti(task_id=task_id), "dag": dag, "params": {"invoice": invoice}, "exception": None})
    records = coupa_emulator.records()
    assert [(r["external-id"], r["document-id"]) for r in records] == [("first", 1), ("second", 2)]
    assert notifier.external_id == "{{ ti.task_id }}"


def test_nothing_is_raised_when_coupa_is_down_and_the_wait_is_bounded(coupa_connection, coupa_emulator) -> None:
    coupa_emulator.stop()
    started = time.monotonic()
    _notifier(timeout=1.0)({"ti": _ti("failed"), "dag": _dag(), "exception": ValueError("x")})
    assert time.monotonic() - started < 1.8


def test_nothing_is_raised_for_a_missing_connection_or_a_broken_template(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_COUPA_DEFAULT", raising=False)
    _notifier(coupa_conn_id="no_such_connection").notify({"ti": _ti(), "exception": None})
    _notifier(document_id="{{ broken(")({"ti": _ti(), "dag": _dag(), "exception": None})


def test_async_notify_writes_the_record(coupa_connection, coupa_emulator) -> None:
    notifier = _notifier(integration="AIRFLOW-TEST")
    asyncio.run(notifier.async_notify({"ti": _ti("failed"), "exception": RuntimeError("ERP down")}))
    (record,) = coupa_emulator.records()
    assert record["status"] == "Error"
    assert record["responses"][0]["response-code"] == "RuntimeError"
    assert [a["document_id"] for a in coupa_emulator.alerts] == [42]


def test_async_notify_never_raises(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_COUPA_DEFAULT", raising=False)
    asyncio.run(_notifier(coupa_conn_id="no_such_connection").async_notify({"ti": _ti(), "exception": None}))


def test_the_bound_on_the_client_and_on_the_wait() -> None:
    from airflow_provider_coupa_ihr.client.config import ClientConfig

    config = ClientConfig("https://acme.coupahost.com", client_id="a", client_secret="b").within(2.0)
    assert (config.connect_timeout, config.read_timeout, config.retry.max_elapsed) == (2.0, 2.0, 2.0)
    assert config.retry.max_attempts == 6  # retries stay allowed inside the bound
    assert call_within(1.0, lambda: 5) == 5
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
        call_within(0.2, lambda: time.sleep(5))
    assert time.monotonic() - started < 1.0
    with pytest.raises(KeyError):
        call_within(1.0, lambda: {}["missing"])


def test_the_provider_info_names_the_notifier() -> None:
    from airflow_provider_coupa_ihr.get_provider_info import get_provider_info

    (path,) = get_provider_info()["notifications"]
    module, _, name = path.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is CoupaNotifier


def test_a_failed_run_lookup_still_writes_the_record(coupa_connection, coupa_emulator) -> None:
    from airflow_provider_coupa_ihr.operators.lifecycle import coupa_integration_run
    from airflow_provider_coupa_ihr.operators.records import CoupaCreateRecordOperator

    with _dag(), coupa_integration_run(integration="AIRFLOW-TEST"):
        inside = CoupaCreateRecordOperator(task_id="inside", document_type="Supplier", document_id=1)

    def xcom_pull(**_: Any) -> Any:
        raise RuntimeError("XCom backend down")

    ti = SimpleNamespace(**{**vars(_ti()), "task": inside, "xcom_pull": xcom_pull})
    _notifier().notify({"ti": ti, "exception": None})
    (record,) = coupa_emulator.records()
    assert record.get("integration-run-id") is None


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"contact_alert_type": "Everyone"}, id="contact-alert-type"),
        pytest.param({"document_id": "INV-42"}, id="document-id-text"),
        pytest.param({"external_id": "E" * 300}, id="external-id-too-long"),
        pytest.param({"extra_fields": {"documnet_status": "approved"}}, id="extra-field-typo"),
        pytest.param({"failure_action": "explode"}, id="unknown-action"),
    ],
)
def test_bad_input_is_warned_about_and_nothing_reaches_coupa(
    changes: dict[str, Any], coupa_connection: Any, coupa_emulator: Any
) -> None:
    context = {"ti": _ti("failed"), "dag": _dag(), "exception": ValueError("x")}
    _notifier(**changes)(context)
    asyncio.run(_notifier(**changes).async_notify(context))
    assert coupa_emulator.requests() == []


# ------------------------------------------------------------------------------------------------ secrets
def test_an_alert_quoting_the_connections_secret_reaches_coupa_without_it(
    coupa_connection: Any, coupa_emulator: Any
) -> None:
    """A failed task's error may quote the connection's secret (an HTTP library's message, a proxy's echo), in an
    encoding Airflow's masker does not know; Coupa would e-mail it to the integration's contacts."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    secret = coupa_emulator.credentials.client_secret
    error = RuntimeError(
        f"token: client_secret={quote_plus(secret)} / {quote(secret, safe='')} / {json.dumps(secret)} / "
        f"Basic {base64.b64encode(f'{coupa_emulator.credentials.client_id}:{secret}'.encode()).decode()}"
    )
    _notifier().notify({"ti": _ti("failed"), "exception": error})
    (stored,) = coupa_emulator.records()
    message = stored["responses"][0]["response-message"]
    assert message.startswith("Airflow task invoices.export failed")
    assert "=***" in message  # (what else Airflow's masker hides depends on what earlier tests taught it)
    for spelt in (secret, quote_plus(secret), quote(secret, safe="")):
        assert spelt not in message
