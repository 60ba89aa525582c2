"""One default contact type for every way of writing a record (issue: operators said Functional, the notifier
Technical, the hook nothing)."""

from __future__ import annotations


def test_one_default_contact_alert_type_everywhere() -> None:
    """Client, hook, operators, bulk, notifier and listener all default to the same contact type."""
    import inspect

    from airflow_provider_coupa_ihr.client.batch import plan_records
    from airflow_provider_coupa_ihr.client.operations import create_record
    from airflow_provider_coupa_ihr.client.records import DEFAULT_CONTACT_ALERT_TYPE
    from airflow_provider_coupa_ihr.notifications.coupa import CoupaNotifier
    from airflow_provider_coupa_ihr.operators.records import CoupaCreateRecordOperator
    from airflow_provider_coupa_ihr.plugins.config import DEFAULTS
    from airflow_provider_coupa_ihr.plugins.listener import ListenerSettings

    fields = {"document_type": "Supplier", "document_id": 7, "status": "Success"}
    assert create_record(fields, now=0.0).body["contact-alert-type"] == DEFAULT_CONTACT_ALERT_TYPE
    ((_, planned),) = plan_records([fields])
    assert planned["contact_alert_type"] == DEFAULT_CONTACT_ALERT_TYPE
    for callable_ in (CoupaCreateRecordOperator.__init__, CoupaNotifier.__init__):
        default = inspect.signature(callable_).parameters["contact_alert_type"].default
        assert default == DEFAULT_CONTACT_ALERT_TYPE
    assert ListenerSettings.contact_alert_type == DEFAULT_CONTACT_ALERT_TYPE
    assert DEFAULTS["listener_contact_alert_type"] == DEFAULT_CONTACT_ALERT_TYPE
