"""What every Coupa operator shares: the hook, the error policy, plain-JSON XCom and the link to Coupa.

Kept light to import (DAG files import operators on every parse): the client and its HTTP library load only
when a task runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    BaseOperatorLink,
    XCom,
)

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

__all__ = ["LINK_XCOM_KEY", "CoupaBaseOperator", "CoupaRecordLink", "coupa_errors", "merge_extra_fields"]

#: The XCom key under which an operator leaves the Coupa page its link opens.
LINK_XCOM_KEY = "coupa_link"

#: Coupa's UI lists integration history records per document type at ``/integration_history_records/<page>``.
#: Coupa documents ``invoices``; the other page names follow Coupa's URL style and are the project's reading.
DOCUMENT_PAGES: Mapping[str, str] = {
    "InvoiceHeader": "invoices",
    "Invoice": "invoices",
    "OrderHeader": "order_headers",
    "ExternalOrderHeader": "external_order_headers",
    "RequisitionHeader": "requisitions",
    "Requisition": "requisitions",
    "ExpenseReport": "expense_reports",
    "Supplier": "suppliers",
    "User": "users",
    "Account": "accounts",
    "Contract": "contracts",
    "Payment": "payments",
    "Item": "items",
    "Asn::Header": "asn_headers",
}


@contextmanager
def coupa_errors() -> Iterator[None]:
    """Turn client errors into Airflow's vocabulary: what a retry cannot fix fails the task at once.

    Bad input, bad settings, 400, 401 after a token refresh, 403 and 404 raise ``AirflowFailException`` (no
    task retries: the next try would fail the same way). Throttling, 5xx and network trouble, which the client
    already retried within its budget, raise ``AirflowException`` so Airflow's own retries take over.
    """
    from airflow_provider_coupa_ihr.client.errors import CoupaError

    try:
        yield
    except CoupaError as exc:
        if exc.retryable:
            raise AirflowException(str(exc)) from exc
        raise AirflowFailException(str(exc)) from exc


def merge_extra_fields(fields: Mapping[str, Any], extra_fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """``fields`` with ``extra_fields`` added; an extra field that repeats a field given (not None) is refused.

    Shared by the record operators and the notifier (and so the listener): a DAG author passing ``status`` both
    ways would otherwise see one of them silently win.
    """
    extra = dict(extra_fields or {})
    clash = sorted(set(extra) & {k for k, v in fields.items() if v is not None})
    if clash:
        from airflow_provider_coupa_ihr.client.errors import CoupaValidationError

        raise CoupaValidationError([f"extra_fields repeats {clash}, already given as arguments"])
    return {**fields, **extra}


def record_page_url(base_url: str, document_type: str | None) -> str:
    """The Coupa page listing integration history records of ``document_type`` (or all of them)."""
    page = DOCUMENT_PAGES.get(document_type or "")
    return f"{base_url}/integration_history_records" + (f"/{page}" if page else "")


class CoupaRecordLink(BaseOperatorLink):
    """ "Coupa records": opens the Coupa page of the document type the task wrote, from the XCom it pushed."""

    name = "Coupa records"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(ti_key=ti_key, key=LINK_XCOM_KEY)
        return value if isinstance(value, str) else ""


class CoupaBaseOperator(BaseOperator):
    """Base of the Coupa operators: a ``coupa_conn_id``, the hook, error mapping and the link to Coupa."""

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id",)
    operator_extra_links = (CoupaRecordLink(),)
    ui_color = "#f4f0ff"

    def __init__(self, *, coupa_conn_id: str = "coupa_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coupa_conn_id = coupa_conn_id

    @cached_property
    def hook(self) -> CoupaHook:
        from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

        return CoupaHook(coupa_conn_id=self.coupa_conn_id)

    @contextmanager
    def calling_coupa(self) -> Iterator[CoupaHook]:
        """The hook for one ``execute``: client errors in Airflow's vocabulary (see :func:`coupa_errors`), and
        the hook's client closed when the task is done with it, whatever happened."""
        try:
            with coupa_errors():
                yield self.hook
        finally:
            self.hook.close()

    def push_link(self, context: Mapping[str, Any], document_type: str | None) -> None:
        """Leave the Coupa page for this task's link (pushed before returning, so it shows even on failure)."""
        context["ti"].xcom_push(key=LINK_XCOM_KEY, value=record_page_url(self.hook.config.base_url, document_type))

    @staticmethod
    def first_try_started(context: Mapping[str, Any]) -> float | None:
        """When this DAG run started (epoch seconds) if this is a retry, else None.

        On a retry, operators look for what an earlier try may have written since then before writing again.
        """
        from airflow_provider_coupa_ihr.client.values import CLOCK_SKEW_SECONDS

        ti = context["ti"]
        if int(getattr(ti, "try_number", 1) or 1) <= 1:
            return None
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or getattr(ti, "start_date", None)
        return started.timestamp() - CLOCK_SKEW_SECONDS if isinstance(started, datetime) else None
