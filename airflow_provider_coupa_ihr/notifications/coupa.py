"""``CoupaNotifier``: log a task's (or a DAG run's) outcome to Coupa from ``on_success_callback`` /
``on_failure_callback``, without adding a task to the DAG.

A success writes a record with ``create`` and status ``Success``; a failure writes one with ``create_alert``
and status ``Error``, carrying the error as a response, so the integration's contacts are alerted the way
Coupa's own integration guides do it. The notifier never raises: a callback that fails would only bury the
task's real error under a Coupa one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import BaseNotifier

from airflow_provider_coupa_ihr.client.records import DEFAULT_CONTACT_ALERT_TYPE
from airflow_provider_coupa_ihr.notifications.outcome import (
    MAX_RESPONSE_CODE_CHARS,
    MAX_RESPONSE_MESSAGE_CHARS,
    Outcome,
    clean_text,
    outcome_from_context,
)
from airflow_provider_coupa_ihr.operators.base import merge_extra_fields

__all__ = ["DEFAULT_TIMEOUT", "CoupaNotifier", "create_record_or_time_out", "outcome_request"]

#: Seconds a notification may take, Coupa's retries included (``timeout=None`` leaves only the connection's
#: own retry budget, up to 2 minutes by default).
DEFAULT_TIMEOUT = 60.0


class CoupaNotifier(BaseNotifier):
    """Write an integration history record when a task or DAG run succeeds or fails.

    Use it as a task's or a DAG's callback; one instance may serve both::

        notify = CoupaNotifier(
            document_type="InvoiceHeader",
            document_id="{{ ti.xcom_pull(task_ids='export')['invoice_id'] }}",   # or "{{ params.invoice_id }}"
            integration="ERP-INVOICES",
        )
        PythonOperator(..., on_success_callback=notify, on_failure_callback=notify)

    On success: ``success_action`` (``create``) with status ``success_status`` (``Success``). On failure:
    ``failure_action`` (``create_alert``) with status ``failure_status`` (``Error``). Each record carries one
    response: by default the step and its outcome, and on failure the exception's type as ``response-code``
    and its message as ``response-message`` (masked by Airflow's secrets masker, cut to 255 and 4,000
    characters). ``response_code`` / ``response_message`` replace them (templated: ``{{ exception }}`` works).

    Every field is templated (rendered on a copy, so one instance can serve many tasks). ``integration_run``
    left empty means "the run of the enclosing :func:`~airflow_provider_coupa_ihr.operators.lifecycle.
    coupa_integration_run` group, if any". ``outcome`` is ``auto`` (read from the callback's context),
    ``success`` or ``failure`` (e.g. in a deadline alert, whose context names no task).

    Errors from Coupa, the connection or a template are logged as warnings and never raised; a call takes at
    most ``timeout`` seconds (default 60).
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "coupa_conn_id",
        "document_type",
        "document_id",
        "contact_alert_type",
        "success_status",
        "failure_status",
        "integration",
        "integration_run",
        "external_id",
        "document_status",
        "document_revision",
        "response_code",
        "response_message",
        "extra_fields",
    )

    def __init__(
        self,
        *,
        document_type: str,
        document_id: int | str,
        coupa_conn_id: str = "coupa_default",
        contact_alert_type: str = DEFAULT_CONTACT_ALERT_TYPE,
        success_status: str = "Success",
        failure_status: str = "Error",
        success_action: str = "create",
        failure_action: str = "create_alert",
        integration: str | None = None,
        integration_run: int | str | None = None,
        external_id: str | None = None,
        document_status: str | None = None,
        document_revision: int | str | None = None,
        response_code: str | None = None,
        response_message: str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        outcome: str = "auto",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__()
        from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
        from airflow_provider_coupa_ihr.client.values import finite_number, quoted

        if outcome not in ("auto", "success", "failure"):
            raise CoupaValidationError([f"outcome must be auto, success or failure, got {quoted(outcome)}"])
        if timeout is not None and not (finite_number(timeout) or 0) > 0:
            raise CoupaValidationError([f"timeout must be a positive number of seconds or None, got {quoted(timeout)}"])
        self.coupa_conn_id = coupa_conn_id
        self.document_type = document_type
        self.document_id = document_id
        self.contact_alert_type = contact_alert_type
        self.success_status = success_status
        self.failure_status = failure_status
        self.success_action = success_action
        self.failure_action = failure_action
        self.integration = integration
        self.integration_run = integration_run
        self.external_id = external_id
        self.document_status = document_status
        self.document_revision = document_revision
        self.response_code = response_code
        self.response_message = response_message
        self.extra_fields = dict(extra_fields or {})
        self.outcome = outcome
        self.timeout = timeout

    def __call__(self, *args: Any) -> None:
        """Render and notify on a copy: rendering replaces templates in place, and one notifier often serves
        several tasks (``default_args``) or both callbacks. Nothing escapes, not even a template error."""
        try:
            clone = copy.copy(self)
            clone.extra_fields = dict(self.extra_fields)
            super(CoupaNotifier, clone).__call__(*args)
        except Exception as exc:
            self.log.warning("Coupa notification not sent: %s", exc)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render with the DAG's Jinja environment, or a plain sandboxed one when the context's DAG has none:
        Airflow 3's ``dag.test()`` hands DAG callbacks its serialized DAG, which cannot make an environment."""
        dag = context.get("dag")
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            jinja_env = self.get_template_env(dag=None)
        super().render_template_fields(context, jinja_env)

    # ------------------------------------------------------------------------------------------ what to write
    def record_request(self, context: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(action, fields)`` of the record for this callback (after rendering). Pure: sends nothing."""
        outcome = outcome_from_context(context, self.outcome)
        run = _blank_to_none(self.integration_run)
        if run is None and not outcome.dag_level:
            run = _enclosing_run(context)
        return outcome_request(
            outcome,
            document_type=self.document_type,
            document_id=self.document_id,
            contact_alert_type=self.contact_alert_type,
            status=self.failure_status if outcome.failed else self.success_status,
            action=self.failure_action if outcome.failed else self.success_action,
            integration=self.integration,
            integration_run=run,
            external_id=self.external_id,
            document_status=self.document_status,
            document_revision=self.document_revision,
            response_code=self.response_code,
            response_message=self.response_message,
            extra_fields=self.extra_fields,
        )

    # ------------------------------------------------------------------------------------------ sending
    def notify(self, context: Any) -> None:
        """Write the record (sync: task callbacks, DAG callbacks). Logs a warning instead of raising."""
        try:
            action, fields = self.record_request(context)
            record = create_record_or_time_out(self.coupa_conn_id, action, fields, timeout=self.timeout)
        except Exception as exc:
            self.log.warning("Coupa notification not sent: %s", exc)
            return
        self.log.info(
            "Coupa %s: record %s (status %s) for %s %s",
            action,
            record.get("id"),
            record.get("status"),
            record.get("document_type"),
            record.get("document_id"),
        )

    async def async_notify(self, context: Any) -> None:
        """Write the record from an event loop (Airflow 3's triggerer, e.g. deadline alerts). Never raises."""
        import asyncio

        from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

        try:
            action, fields = self.record_request(context)
            call = CoupaHook(coupa_conn_id=self.coupa_conn_id).acreate_record_within(
                self.timeout, action=action, **fields
            )
            record = await (asyncio.wait_for(call, self.timeout) if self.timeout else call)
        except Exception as exc:
            self.log.warning("Coupa notification not sent: %s", exc)
            return
        self.log.info("Coupa %s: record %s (status %s)", action, record.get("id"), record.get("status"))


def outcome_request(
    outcome: Outcome,
    *,
    document_type: Any,
    document_id: Any,
    contact_alert_type: Any,
    status: Any,
    action: str,
    integration: Any = None,
    integration_run: Any = None,
    external_id: Any = None,
    document_status: Any = None,
    document_revision: Any = None,
    response_code: Any = None,
    response_message: Any = None,
    extra_fields: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(action, fields)`` for a record logging ``outcome``; blank values (a template that rendered to ``""``
    or ``"None"``) count as not given. The one response is cleaned and cut to Coupa's limits."""
    default_code, default_message = outcome.response()
    code = _blank_to_none(response_code) or default_code
    message = _blank_to_none(response_message) or default_message
    fields: dict[str, Any] = {
        "document_type": _blank_to_none(document_type),
        "document_id": _blank_to_none(document_id),
        "contact_alert_type": _blank_to_none(contact_alert_type),
        "status": _blank_to_none(status),
        "integration": _blank_to_none(integration),
        "integration_run": _blank_to_none(integration_run),
        "external_id": _blank_to_none(external_id),
        "document_status": _blank_to_none(document_status),
        "document_revision": _blank_to_none(document_revision),
        "responses": [
            {
                "response_code": clean_text(code, MAX_RESPONSE_CODE_CHARS),
                "response_message": clean_text(message, MAX_RESPONSE_MESSAGE_CHARS),
            }
        ],
    }
    merged = merge_extra_fields(fields, extra_fields)
    return action, {k: v for k, v in merged.items() if v is not None}


def create_record_or_time_out(
    coupa_conn_id: str, action: str, fields: Mapping[str, Any], *, timeout: float | None
) -> dict[str, Any]:
    """Create one record through ``coupa_conn_id``, or raise ``TimeoutError`` after ``timeout`` seconds.

    The call runs in a thread the caller stops waiting for (:func:`.outcome.call_within`), on a client whose own
    timeouts and retry budget are cut to the same bound, so the abandoned thread ends soon after too. Raises
    what the client raises (its messages carry no secrets); callers turn both into warnings.
    """
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook
    from airflow_provider_coupa_ihr.notifications.outcome import call_within

    def create() -> dict[str, Any]:
        return CoupaHook(coupa_conn_id=coupa_conn_id).create_record_within(timeout, action=action, **fields)

    if timeout is None:
        return create()
    return call_within(timeout, create, name=f"coupa-notify-{coupa_conn_id}")


def _blank_to_none(value: Any) -> Any:
    """Templates render a missing value as ``""`` or ``"None"``; both mean "not given" here."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() in ("", "None"):
        return None
    return value


def _enclosing_run(context: Mapping[str, Any]) -> int | None:
    """The id of the Coupa integration run wrapping this task (a ``coupa_integration_run`` group), if any.

    Best effort: a record without its run is better than no record, so a failed XCom read means "no run".
    """
    ti = context.get("ti") or context.get("task_instance")
    return enclosing_run_of(ti) if ti is not None else None


def enclosing_run_of(ti: Any) -> int | None:
    """:func:`~airflow_provider_coupa_ihr.operators.lifecycle.enclosing_run_id`, or None when it cannot tell."""
    import logging

    from airflow_provider_coupa_ihr.operators.lifecycle import enclosing_run_id

    try:
        return enclosing_run_id(ti)
    except Exception as exc:
        logging.getLogger(__name__).warning("Coupa record written without its integration run: %s", exc)
        return None
