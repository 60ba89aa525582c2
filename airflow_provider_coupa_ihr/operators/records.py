"""Operators for the IHR writes: create (and its alert / export / acknowledge variants), update, resolve, query.

Each reads like the Coupa action it performs, renders every business field as a template, validates before any
request, returns plain JSON to XCom and links to the record's page in Coupa. A retried task does not write a
record twice: on a retry the operator first looks for the record an earlier try wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow_provider_coupa_ihr.client.records import DEFAULT_CONTACT_ALERT_TYPE
from airflow_provider_coupa_ihr.operators.base import CoupaBaseOperator, merge_extra_fields

__all__ = [
    "CoupaAcknowledgeOperator",
    "CoupaCreateAlertAndMarkExportedOperator",
    "CoupaCreateAlertOperator",
    "CoupaCreateRecordOperator",
    "CoupaMarkExportedOperator",
    "CoupaQueryRecordsOperator",
    "CoupaResolveRecordsOperator",
    "CoupaUnresolveRecordsOperator",
    "CoupaUpdateRecordOperator",
]

_RECORD_TEMPLATE_FIELDS = (
    "coupa_conn_id",
    "document_type",
    "document_id",
    "contact_alert_type",
    "status",
    "responses",
    "integration",
    "integration_run",
    "external_id",
    "document_status",
    "document_revision",
    "extra_fields",
)


class CoupaCreateRecordOperator(CoupaBaseOperator):
    """Write one integration history record (``POST /api/integration_history_records``).

    :param document_type: the Coupa document type, e.g. ``InvoiceHeader`` (one of Coupa's 31; newer ones via the
        connection's ``extra_document_types``).
    :param document_id: the Coupa id of the document (an int, or a template rendering to one).
    :param contact_alert_type: whose contacts an alert goes to: ``Technical``, ``Functional`` or ``Both``.
    :param status: free text; Coupa's guides use ``Success`` and ``Error``.
    :param responses: the ERP's answers: dicts with ``response_code`` / ``response_message`` or ``(code,
        message)`` pairs.
    :param integration: the integration's code in Coupa.
    :param integration_run: the id of the integration run the record belongs to.
    :param extra_fields: any other IHR field (``creation_method``...).
    :param resolve_previous: first resolve the unresolved records of the same document (what Coupa's
        integration guides do before writing a newer attempt).

    Returns (XCom) the record as plain JSON: id, status, document type and id, resolved, responses...
    """

    template_fields: ClassVar[tuple[str, ...]] = _RECORD_TEMPLATE_FIELDS
    template_fields_renderers: ClassVar[dict[str, str]] = {"responses": "json", "extra_fields": "json"}
    #: The IHR endpoint: ``create``; subclasses pick ``create_alert``, ``mark_exported``...
    action: ClassVar[str] = "create"
    default_status: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        document_type: str,
        document_id: int | str,
        contact_alert_type: str = DEFAULT_CONTACT_ALERT_TYPE,
        status: str | None = None,
        responses: Any = None,
        integration: str | None = None,
        integration_run: int | str | None = None,
        external_id: str | None = None,
        document_status: str | None = None,
        document_revision: int | str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        resolve_previous: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.document_type = document_type
        self.document_id = document_id
        self.contact_alert_type = contact_alert_type
        self.status = status if status is not None else self.default_status
        self.responses = responses
        self.integration = integration
        self.integration_run = integration_run
        self.external_id = external_id
        self.document_status = document_status
        self.document_revision = document_revision
        self.extra_fields = dict(extra_fields or {})
        self.resolve_previous = resolve_previous

    def record_fields(self) -> dict[str, Any]:
        fields = {
            "document_type": self.document_type,
            "document_id": self.document_id,
            "contact_alert_type": self.contact_alert_type,
            "status": self.status,
            "responses": self.responses or None,
            "integration": self.integration or None,
            "integration_run": self.integration_run or None,
            "external_id": self.external_id,
            "document_status": self.document_status,
            "document_revision": self.document_revision,
        }
        return merge_extra_fields(fields, self.extra_fields)

    def execute(self, context: Any) -> dict[str, Any] | None:
        with self.calling_coupa() as hook:
            fields = self.record_fields()
            # Everything this task will send is checked before its first request: resolving earlier records
            # and then refusing the record itself would leave Coupa changed by a task that failed on its input.
            hook.validate_record(action=self.action, **fields)
            self.push_link(context, self.document_type)
            existing = None
            since = self.first_try_started(context)
            if since is not None:
                existing = hook.find_existing_record(since, **fields)
                if existing is not None:
                    self.log.info("Record %s was written by an earlier try; not writing it again", _id(existing))
            if self.resolve_previous:
                earlier = {"document_type": self.document_type, "document_id": self.document_id}
                resolved = hook.resolve_matching(earlier, exclude=[_id(existing)] if existing else [])
                self.log.info("Resolved %d earlier unresolved record(s) of this document", len(resolved))
            record = existing or hook.create_record(action=self.action, **fields)
            summary = _summary(record)
            self.log.info(
                "Coupa %s: record %s for %s %s (status %s)",
                self.action,
                summary.get("id"),
                summary.get("document_type"),
                summary.get("document_id"),
                summary.get("status"),
            )
            return summary


class CoupaCreateAlertOperator(CoupaCreateRecordOperator):
    """Write a record and alert the integration's contacts of ``contact_alert_type`` (``create_alert``)."""

    action = "create_alert"
    default_status = "Error"


class CoupaMarkExportedOperator(CoupaCreateRecordOperator):
    """Write a record and mark the document exported in Coupa (``mark_exported``)."""

    action = "mark_exported"
    default_status = "Success"


class CoupaCreateAlertAndMarkExportedOperator(CoupaCreateRecordOperator):
    """Write a record, alert the contacts and mark the document exported (``create_alert_and_mark_exported``)."""

    action = "create_alert_and_mark_exported"
    default_status = "Error"


class CoupaAcknowledgeOperator(CoupaCreateRecordOperator):
    """Write a record acknowledging receipt of the document (``acknowledge``)."""

    action = "acknowledge"


class CoupaUpdateRecordOperator(CoupaBaseOperator):
    """Change fields of one record (``PUT /api/integration_history_records/{id}``); ``resolved`` excepted."""

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "record_id", "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}

    def __init__(self, *, record_id: int | str, fields: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record_id = record_id
        self.fields = dict(fields)

    def execute(self, context: Any) -> dict[str, Any] | None:
        with self.calling_coupa() as hook:
            record = _summary(hook.update_record(self.record_id, **self.fields))
            self.push_link(context, record.get("document_type"))
            return record


class CoupaResolveRecordsOperator(CoupaBaseOperator):
    """Resolve records given by id, or every unresolved record matching ``filters``.

    ``filters`` use Coupa's syntax, e.g. ``{"document_type": "InvoiceHeader", "document_id": 42}`` resolves
    the older attempts for invoice 42 (``resolved: false`` is added for you). Safe to retry: resolving twice
    changes nothing. Returns the ids it resolved.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "record_ids", "filters", "exclude_ids")
    template_fields_renderers: ClassVar[dict[str, str]] = {"filters": "json"}
    resolved: ClassVar[bool] = True

    def __init__(
        self,
        *,
        record_ids: Sequence[int | str] | int | str | None = None,
        filters: Mapping[str, Any] | None = None,
        exclude_ids: Sequence[int | str] | None = None,
        max_records: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (record_ids is None) == (filters is None):
            from airflow_provider_coupa_ihr.client.errors import CoupaValidationError

            raise CoupaValidationError([f"{type(self).__name__} needs record_ids or filters (exactly one of them)"])
        self.record_ids = record_ids
        self.filters = filters
        self.exclude_ids = exclude_ids
        self.max_records = max_records

    def execute(self, context: Any) -> list[int]:
        with self.calling_coupa() as hook:
            self.push_link(context, _document_type_in(self.filters))
            exclude = self.exclude_ids or ()
            if self.record_ids is not None:
                by_ids = hook.resolve_records if self.resolved else hook.unresolve_records
                changed = by_ids(self.record_ids, exclude=exclude)
            else:
                matching = hook.resolve_matching if self.resolved else hook.unresolve_matching
                changed = matching(self.filters, exclude=exclude, max_records=self.max_records)
            done = [_id(r) for r in changed]
            self.log.info("%s %d record(s): %s", "Resolved" if self.resolved else "Unresolved", len(done), done[:50])
            return done


class CoupaUnresolveRecordsOperator(CoupaResolveRecordsOperator):
    """Mark records unresolved again (by id, or every resolved record matching ``filters``)."""

    resolved = False


class CoupaQueryRecordsOperator(CoupaBaseOperator):
    """Read records into XCom, for branching on Coupa's state (e.g. "are there unresolved errors?").

    :param filters: Coupa's query syntax, e.g. ``{"status": "Error", "resolved": False, "created_at[gt]": ...}``.
    :param fields: trim each record to these fields (Coupa's ``fields=``); ``id`` is always included.
    :param max_records: a cap, so a broad query cannot flood XCom (default 1,000).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("coupa_conn_id", "filters", "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"filters": "json"}

    def __init__(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        fields: Sequence[Any] | None = None,
        max_records: int = 1000,
        order_by: str = "id",
        direction: str = "asc",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.fields = fields
        self.max_records = max_records
        self.order_by = order_by
        self.direction = direction

    def execute(self, context: Any) -> list[dict[str, Any]]:
        with self.calling_coupa() as hook:
            self.push_link(context, _document_type_in(self.filters))
            records = list(
                hook.query_records(
                    self.filters,
                    fields=self.fields,
                    order_by=self.order_by,
                    direction=self.direction,
                    max_records=self.max_records,
                )
            )
            summaries = records if self.fields else [_summary(r) for r in records]
        self.log.info("Coupa returned %d record(s) (cap %d)", len(records), self.max_records)
        return summaries


def _summary(record: Any) -> dict[str, Any]:
    """The record's plain-JSON XCom (:func:`~airflow_provider_coupa_ihr.client.summaries.record_summary`); an
    answer that is not a record with an id raises :class:`~airflow_provider_coupa_ihr.client.errors.CoupaError`."""
    from airflow_provider_coupa_ihr.client.answers import not_a_record, record_id
    from airflow_provider_coupa_ihr.client.summaries import record_summary

    summary = record_summary(record)
    if summary is None:
        raise not_a_record(record)
    record_id(record)
    return summary


def _id(record: Any) -> int:
    """The id of a record Coupa answered (:func:`~airflow_provider_coupa_ihr.client.answers.record_id`)."""
    from airflow_provider_coupa_ihr.client.answers import record_id

    return record_id(record)


def _document_type_in(filters: Any) -> str | None:
    """The document type a filter names, for the task's link; None when it names none (or is not a mapping yet:
    a template rendered to text is refused by the hook, with a message, right after)."""
    value = filters.get("document_type", filters.get("document-type")) if isinstance(filters, Mapping) else None
    return value if isinstance(value, str) else None
