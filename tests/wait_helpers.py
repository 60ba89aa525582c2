"""Helpers for the sensor and trigger tests: unresolved error records, written as an integration writes them."""

from __future__ import annotations

from airflow_provider_coupa_ihr.testing.pytest_plugin import DEFAULT_INTEGRATION_CODE

__all__ = ["error_record", "error_records"]


def error_records(count: int, document_id: int = 7) -> list[int]:
    """``count`` unresolved error records of one invoice, created through ``coupa_default`` (``create_alert``)."""
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    hook = CoupaHook()
    try:
        return [
            int(
                hook.create_record(
                    action="create_alert",
                    document_type="InvoiceHeader",
                    document_id=document_id,
                    contact_alert_type="Both",
                    status="Error",
                    integration=DEFAULT_INTEGRATION_CODE,
                )["id"]
            )
            for _ in range(count)
        ]
    finally:
        hook.client.close()


def error_record(document_id: int = 7) -> int:
    return error_records(1, document_id)[0]
