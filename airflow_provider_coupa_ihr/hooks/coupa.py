"""``CoupaHook``: an Airflow connection of type ``coupa`` turned into a ready :class:`CoupaClient`.

Thin on purpose: the hook reads the connection, masks its secrets, builds the client and answers Airflow's
questions (form fields, ``test_connection``). Every Coupa call and decision lives in :mod:`..client`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_coupa_ihr.hooks.connection_fields import (
    CONN_FIELDS,
    CONN_TYPE,
    UI_BEHAVIOUR,
    config_from_connection,
)

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
    from airflow_provider_coupa_ihr.client.config import ClientConfig
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

__all__ = ["CoupaHook"]


class CoupaHook(BaseHook):
    """Talk to Coupa's Integration History Record API through an Airflow connection.

    The connection: host = the instance URL (``https://acme.coupahost.com``), login = OAuth client id, password =
    OAuth client secret; extras for scopes, token path, legacy API key, timeouts, rate limit, TLS and proxy
    (see the connection form). ``hook.client`` is a :class:`~airflow_provider_coupa_ihr.client.sync.CoupaClient`
    with one pooled session; the record methods are also available on the hook itself::

        hook = CoupaHook()                       # coupa_default
        record = hook.create_record(document_type="InvoiceHeader", document_id=42,
                                    contact_alert_type="Functional", status="Success", integration="ERP")
        for r in hook.query_records({"status": "Error", "resolved": False}, fields=["id", "document_id"]):
            ...
    """

    conn_name_attr = "coupa_conn_id"
    default_conn_name = "coupa_default"
    conn_type = CONN_TYPE
    hook_name = "Coupa"

    def __init__(self, coupa_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coupa_conn_id = coupa_conn_id

    # ---------------------------------------------------------------------------------------- connection
    @cached_property
    def config(self) -> ClientConfig:
        """The connection, read once and checked (a bad setting fails here, before any request)."""
        conn = self.get_connection(self.coupa_conn_id)
        return self._config_from(conn, _extra_of(conn))

    def _config_from(self, conn: Any, extra: Mapping[str, Any]) -> ClientConfig:
        for value in (conn.password, extra.get("api_key"), extra.get(f"extra__{CONN_TYPE}__api_key")):
            if value:
                mask_secret(value)
        return config_from_connection(
            conn_id=self.coupa_conn_id,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=extra,
            port=conn.port,
            schema=conn.schema,
        )

    @cached_property
    def client(self) -> CoupaClient:
        """The sync client for this connection (one pooled ``requests.Session``)."""
        from airflow_provider_coupa_ihr.client.sync import CoupaClient

        return CoupaClient(self.config, mask_secret=mask_secret)

    def get_conn(self) -> CoupaClient:
        return self.client

    async def aget_client(self) -> AsyncCoupaClient:
        """An async client, reading the connection without blocking the event loop (for triggers)."""
        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient

        conn = await get_async_connection(self.coupa_conn_id, self)
        return AsyncCoupaClient(self._config_from(conn, _extra_of(conn)), mask_secret=mask_secret)

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and make one cheap read (one record, id only). Read-only, so safe on any worker."""
        from airflow_provider_coupa_ihr.client.errors import CoupaError

        try:
            client = self.client
            if self.config.api_key is None:
                client.token()
            list(client.query_records(fields=["id"], max_records=1))
        except CoupaError as exc:
            return False, str(exc)
        return True, f"Connected to Coupa at {self.config.base_url} and read integration history records."

    # ---------------------------------------------------------------------------------------- the form
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields for Airflow 2.11 to 3.1 (3.2+ reads ``conn-fields`` from the provider info)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        widgets: dict[str, Any] = {}
        for field in CONN_FIELDS:
            if field.secret:
                widgets[field.name] = PasswordField(
                    lazy_gettext(field.label), widget=BS3PasswordFieldWidget(), description=field.description
                )
            else:
                widgets[field.name] = StringField(
                    lazy_gettext(field.label),
                    widget=BS3TextFieldWidget(),
                    description=field.description,
                    default=None if field.default is None else str(field.default),
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": UI_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_BEHAVIOUR["relabeling"],
            "placeholders": UI_BEHAVIOUR["placeholders"],
        }

    # ---------------------------------------------------------------------------------------- the calls
    # The hook offers the client's calls directly, so DAG code reads ``hook.create_record(...)``.
    def create_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        return self.client.create_record(action=action, **fields)

    def get_record(self, record_id: int, *, fields: Sequence[Any] | None = None) -> dict[str, Any]:
        return self.client.get_record(record_id, fields=fields)

    def update_record(self, record_id: int, **fields: Any) -> dict[str, Any]:
        return self.client.update_record(record_id, **fields)

    def resolve(self, record_id: int) -> dict[str, Any]:
        return self.client.resolve(record_id)

    def unresolve(self, record_id: int) -> dict[str, Any]:
        return self.client.unresolve(record_id)

    def query_records(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        fields: Sequence[Any] | None = None,
        order_by: str = "id",
        direction: str = "asc",
        max_records: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        return self.client.query_records(
            filters, fields=fields, order_by=order_by, direction=direction, max_records=max_records
        )

    def create_run(self, integration: str, **fields: Any) -> dict[str, Any]:
        return self.client.create_run(integration, **fields)

    def run_transition(self, run_id: int, action: str, **fields: Any) -> dict[str, Any]:
        return self.client.run_transition(run_id, action, **fields)


def _extra_of(conn: Any) -> Mapping[str, Any]:
    """The extra as a dict, parsed from the raw string (``extra_dejson`` masks synchronously, which can deadlock
    inside a triggerer's event loop). A malformed extra is left to ``config_from_connection`` to report."""
    raw = getattr(conn, "extra", None)
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        from airflow_provider_coupa_ihr.client.errors import CoupaConfigError

        raise CoupaConfigError(f"Coupa connection {conn.conn_id!r}: extra is not valid JSON") from None
    if not isinstance(value, Mapping):
        from airflow_provider_coupa_ihr.client.errors import CoupaConfigError

        raise CoupaConfigError(f"Coupa connection {conn.conn_id!r}: extra must be a JSON object")
    return value
