"""The plain-JSON shape of a record or a run: what goes to XCom and what a wait returns. One home for both.

Small on purpose: what leaves the client for Airflow (XCom, trigger events) is enough to act on (which document,
which integration, what status), nothing large and nothing secret, and reads the same wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_coupa_ihr.client.answers import not_a_record

__all__ = ["RECORD_SUMMARY_KEYS", "is_resolved", "record_summary", "run_summary"]

#: The keys of a record summary, in this order (the operators' XCom).
RECORD_SUMMARY_KEYS: tuple[str, ...] = (
    "id",
    "status",
    "document_type",
    "document_id",
    "external_id",
    "contact_alert_type",
    "resolved",
    "integration",
    "integration_run_id",
    "created_at",
    "responses",
)


def record_summary(
    record: Mapping[str, Any] | None, keys: Sequence[str] = RECORD_SUMMARY_KEYS
) -> dict[str, Any] | None:
    """``keys`` of ``record`` (snake_case) in order, as plain JSON; None for None.

    ``integration`` becomes its code, ``resolved`` a real boolean (Coupa may send ``"true"``), ``responses`` a
    list of ``{"response_code", "response_message"}``.
    """
    if record is None:
        return None
    if not isinstance(record, Mapping):
        raise not_a_record(record)
    summary = {key: record.get(key) for key in keys}
    if "integration" in summary:
        integration = summary["integration"]
        summary["integration"] = integration.get("code") if isinstance(integration, Mapping) else integration
    if "resolved" in summary:
        summary["resolved"] = is_resolved(record)
    if "responses" in summary:
        responses = summary["responses"]
        summary["responses"] = [
            {"response_code": r.get("response_code"), "response_message": r.get("response_message")}
            for r in (responses if isinstance(responses, list) else [])
            if isinstance(r, Mapping)
        ]
    return summary


def is_resolved(record: Mapping[str, Any]) -> bool:
    """Whether Coupa shows ``record`` resolved (``true``, or the text ``"true"``); anything else is not."""
    value = record.get("resolved")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """The plain-JSON summary of an integration run."""
    if not isinstance(run, Mapping):
        raise not_a_record(run)
    integration = run.get("integration") or {}
    return {
        "id": run.get("id"),
        "status": run.get("status"),
        "integration": integration.get("code") if isinstance(integration, Mapping) else None,
        "total_records": run.get("total_records"),
        "records_processed": run.get("records_processed"),
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
    }
