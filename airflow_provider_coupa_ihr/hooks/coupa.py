"""``CoupaHook``: an Airflow connection of type ``coupa`` turned into a ready :class:`CoupaClient`.

Thin on purpose: the hook reads the connection, masks its secrets, builds the client and answers Airflow's
questions (form fields, ``test_connection``). Every Coupa call and decision lives in :mod:`..client`.

Why one module of this size: it is one class, and most of its length is one short, documented delegation per
verb a DAG author needs (the dbt Cloud provider's shape); the connection reading it adds lives in connection_fields.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_coupa_ihr.client.responses import redact, secret_spellings
from airflow_provider_coupa_ihr.hooks.connection_fields import (
    CONN_FIELDS,
    CONN_TYPE,
    UI_BEHAVIOUR,
    config_from_connection,
    parse_extra,
    read_extra,
    redis_settings,
)

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
    from airflow_provider_coupa_ihr.client.batch import EarlierWrites
    from airflow_provider_coupa_ihr.client.config import ClientConfig
    from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget, WaitState
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

__all__ = ["CoupaHook", "mask_every_spelling", "without_secrets"]


def mask_every_spelling(secret: str, *, user: str | None = None) -> None:
    """Give Airflow's masker every spelling of ``secret`` (:func:`~..client.responses.secret_spellings`: raw,
    URL-encoded, JSON- and ``repr``-escaped, base64, and with ``user`` the HTTP Basic ``user:secret``), so a task
    log line quoting it in any of them is masked. The client calls this with each token it receives."""
    if isinstance(secret, str) and secret:
        mask_secret(secret)
        # The other spellings in one call (one message to the supervisor on Airflow 3, not dozens).
        mask_secret(sorted(secret_spellings(secret, user=user) - {secret}))


def without_secrets(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (a record's fields) with every spelling of ``secrets`` replaced by ``***`` in every text in it.

    For records whose text comes from Airflow rather than from a DAG author (an exception's message, written by
    the notifier and the listener): it may quote the connection's own secret, in an encoding Airflow's masker
    does not know, and Coupa would e-mail it to the integration's contacts.
    """
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {key: without_secrets(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(without_secrets(item, secrets) for item in value)
    return value


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
        self._async_client: AsyncCoupaClient | None = None

    # ---------------------------------------------------------------------------------------- connection
    @cached_property
    def config(self) -> ClientConfig:
        """The connection, read once and checked (a bad setting fails here, before any request)."""
        conn = self.get_connection(self.coupa_conn_id)
        extra = parse_extra(self.coupa_conn_id, getattr(conn, "extra", None))
        redis_id = _redis_conn_id(extra)
        return self._config_from(conn, extra, self.get_connection(redis_id) if redis_id else None)

    def _config_from(self, conn: Any, extra: Mapping[str, Any], redis_conn: Any = None) -> ClientConfig:
        login = conn.login if isinstance(conn.login, str) else None
        for value in (conn.password, extra.get("api_key"), extra.get(f"extra__{CONN_TYPE}__api_key")):
            if value:
                mask_every_spelling(str(value), user=login)
        redis = None
        if redis_conn is not None:
            if redis_conn.password:
                mask_every_spelling(str(redis_conn.password), user=redis_conn.login)
            redis = redis_settings(
                conn_id=redis_conn.conn_id,
                host=redis_conn.host,
                port=redis_conn.port,
                login=redis_conn.login,
                password=redis_conn.password,
                extra=getattr(redis_conn, "extra", None),
            )
        config = config_from_connection(
            redis=redis,
            conn_id=self.coupa_conn_id,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=extra,
            port=conn.port,
            schema=conn.schema,
        )
        for secret in config.secrets():  # the proxy's password too
            mask_every_spelling(secret, user=login)
        return config

    @cached_property
    def client(self) -> CoupaClient:
        """The sync client for this connection (one pooled ``requests.Session``)."""
        from airflow_provider_coupa_ihr.client.sync import CoupaClient

        return CoupaClient(self.config, mask_secret=mask_every_spelling)

    def get_conn(self) -> CoupaClient:
        return self.client

    def close(self) -> None:
        """Close the sync client if one was made (its pooled connections); safe to call again.

        Operators and the sensor call this when their task ends; a later call on the hook makes a new client.
        """
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()

    def __enter__(self) -> CoupaHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _aconnection(self, conn_id: str) -> Any:
        """A connection read without blocking the event loop (the triggerer's), as Airflow recommends.

        Under ``dag.test()`` Airflow 3 runs a deferred trigger in the test's own process, outside any task, where
        the Task SDK sees only environment variables and secrets backends, not the connections that
        ``airflow connections add`` stored in the metadata database; there the core's Connection model still
        can, so a connection the SDK cannot find is looked up there before giving up.
        """
        from airflow.providers.common.compat.connection import get_async_connection

        try:
            return await get_async_connection(conn_id, self)
        except Exception as exc:
            if type(exc).__name__ != "AirflowNotFoundException":
                raise
            import asyncio

            found = await asyncio.to_thread(_connection_from_metadata_db, conn_id)
            if found is None:
                raise
            return found

    async def aget_client(self, *, within: float | None = None) -> AsyncCoupaClient:
        """A new async client (the caller closes it), reading the connection without blocking the event loop;
        ``within`` cuts its timeouts and retry budget to that many seconds."""
        from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient

        conn = await self._aconnection(self.coupa_conn_id)
        extra = parse_extra(self.coupa_conn_id, getattr(conn, "extra", None))
        redis_id = _redis_conn_id(extra)
        redis_conn = await self._aconnection(redis_id) if redis_id else None
        config = self._config_from(conn, extra, redis_conn)
        return AsyncCoupaClient(config if within is None else config.within(within), mask_secret=mask_every_spelling)

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and make one cheap read (one record, id only). Read-only, so safe on any worker.

        The message goes to the UI and the API: it is redacted of the connection's secrets in every spelling
        (the client's errors are already; this also covers anything else that fails).
        """
        from airflow_provider_coupa_ihr.client.errors import CoupaError

        try:
            client = self.client
            if self.config.api_key is None:
                client.token()
            list(client.query_records(fields=["id"], max_records=1))
        except CoupaError as exc:
            return False, self._without_secrets(str(exc))
        except Exception as exc:
            return False, self._without_secrets(f"{type(exc).__name__}: {exc}")
        return True, f"Connected to Coupa at {self.config.base_url} and read integration history records."

    def _without_secrets(self, text: str) -> str:
        config = self.__dict__.get("config")
        return redact(text, config.secrets()) if config is not None else text

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

    # ---------------------------------------------------------------------------------------- records
    # Each verb is the client's, so DAG code (and every operator) reads ``hook.create_record(...)``; what the
    # verbs send and how they read Coupa's answers lives in the client.
    def create_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """Write one record; ``action`` picks the IHR endpoint (``create``, ``create_alert``, ...)."""
        return self.client.create_record(action=action, **fields)

    def create_alert(self, **fields: Any) -> dict[str, Any]:
        """Write one record and alert the integration's contacts of its ``contact_alert_type``."""
        return self.client.create_alert(**fields)

    def mark_exported(self, **fields: Any) -> dict[str, Any]:
        """Write one record and mark its document exported in Coupa."""
        return self.client.mark_exported(**fields)

    def create_alert_and_mark_exported(self, **fields: Any) -> dict[str, Any]:
        """Write one record, alert the contacts and mark the document exported."""
        return self.client.create_alert_and_mark_exported(**fields)

    def acknowledge(self, **fields: Any) -> dict[str, Any]:
        """Write one record acknowledging receipt of the document."""
        return self.client.acknowledge(**fields)

    def create_record_within(self, seconds: float | None, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """Write one record on a client of its own whose timeouts and retry budget are cut to ``seconds``.

        For callers that must not hold Airflow up (the notifier, the listener), which run this in a thread they
        stop waiting for: the bound makes the abandoned call end soon after too. ``None``: the connection's own.
        Their text comes from Airflow (an exception's message), so every spelling of the connection's secrets is
        replaced by ``***`` in it before it is sent (:func:`without_secrets`).
        """
        from airflow_provider_coupa_ihr.client.sync import CoupaClient

        config = self.config if seconds is None else self.config.within(seconds)
        with CoupaClient(config, mask_secret=mask_every_spelling) as client:
            return client.create_record(action=action, **without_secrets(fields, config.secrets()))

    async def acreate_record_within(
        self, seconds: float | None, *, action: str = "create", **fields: Any
    ) -> dict[str, Any]:
        """:meth:`create_record_within` from an event loop (the connection read without blocking it)."""
        client = await self.aget_client(within=seconds)
        async with client:
            return await client.create_record(action=action, **without_secrets(fields, client.config.secrets()))

    def validate_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """What :meth:`create_record` would send, sending nothing; raises what it would raise (bad input)."""
        return self.client.validate_record(action=action, **fields)

    def find_existing_record(self, since: float, **fields: Any) -> dict[str, Any] | None:
        """The record ``fields`` describe if one was written since ``since`` (epoch s): for a retried task."""
        return self.client.find_existing_record(since, **fields)

    def get_record(self, record_id: int, *, fields: Sequence[Any] | None = None) -> dict[str, Any]:
        """One record by id (trimmed to ``fields`` when given)."""
        return self.client.get_record(record_id, fields=fields)

    def update_record(self, record_id: Any, **fields: Any) -> dict[str, Any]:
        """Change fields of one record (``resolved`` excepted: see :meth:`resolve`)."""
        return self.client.update_record(record_id, **fields)

    def query_records(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        fields: Sequence[Any] | None = None,
        order_by: str = "id",
        direction: str = "asc",
        max_records: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record matching ``filters`` (Coupa's syntax), page by page in constant memory."""
        return self.client.query_records(
            filters, fields=fields, order_by=order_by, direction=direction, max_records=max_records
        )

    # ---------------------------------------------------------------------------------------- resolving
    def resolve(self, record_id: Any) -> dict[str, Any]:
        """Mark one record resolved."""
        return self.client.resolve(record_id)

    def unresolve(self, record_id: Any) -> dict[str, Any]:
        """Mark one record unresolved again."""
        return self.client.unresolve(record_id)

    def resolve_records(self, record_ids: Any, *, exclude: Any = ()) -> list[dict[str, Any]]:
        """Resolve records by id (a list, one id, or text such as ``"7, 8"``), every id checked first."""
        return self.client.resolve_records(record_ids, exclude=exclude)

    def unresolve_records(self, record_ids: Any, *, exclude: Any = ()) -> list[dict[str, Any]]:
        """Mark records unresolved again by id, every id checked first."""
        return self.client.unresolve_records(record_ids, exclude=exclude)

    def resolve_matching(
        self, filters: Mapping[str, Any] | None, *, exclude: Any = (), max_records: int | None = None
    ) -> list[dict[str, Any]]:
        """Resolve every unresolved record matching ``filters`` but those in ``exclude``."""
        return self.client.resolve_matching(filters, exclude=exclude, max_records=max_records)

    def unresolve_matching(
        self, filters: Mapping[str, Any] | None, *, exclude: Any = (), max_records: int | None = None
    ) -> list[dict[str, Any]]:
        """Mark every resolved record matching ``filters`` unresolved again, but those in ``exclude``."""
        return self.client.unresolve_matching(filters, exclude=exclude, max_records=max_records)

    # ---------------------------------------------------------------------------------------- batches
    def plan_records(
        self, items: Any, *, defaults: Mapping[str, Any] | None = None, action: str = "create"
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(action, fields)`` per item, every item checked before anything is sent (all problems at once)."""
        return self.client.plan_records(items, defaults=defaults, action=action)

    def find_existing_records(self, items: Sequence[Mapping[str, Any]], since: float) -> dict[int, int]:
        """Item index -> id of the record an earlier try wrote for it since ``since`` (epoch s)."""
        return self.client.find_existing_records(items, since)

    def look_up_earlier_writes(
        self, items: Sequence[Mapping[str, Any]], since: float, *, among: Collection[int] | None = None
    ) -> EarlierWrites:
        """What an earlier try wrote for each item since ``since`` (epoch s); chunks whose lookup failed are listed
        in ``not_looked_up`` instead of failing the whole lookup (``among``: only these item indexes)."""
        return self.client.look_up_earlier_writes(items, since, among=among)

    def create_records(
        self,
        planned: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        max_workers: int = 8,
        skip: Collection[int] = (),
        on_outcome: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Write planned records on ``max_workers`` threads under the connection's rate limit; one outcome each."""
        return self.client.create_records(planned, max_workers=max_workers, skip=skip, on_outcome=on_outcome)

    # ---------------------------------------------------------------------------------------- waiting
    def check_resolution(self, target: ResolutionTarget, *, since: datetime | None = None) -> WaitState:
        """One check of a wait for records to be resolved (the sensor's poke)."""
        return self.client.check_resolution(target, since=since)

    async def acheck_resolution(self, target: ResolutionTarget, *, since: datetime | None = None) -> WaitState:
        """One check from an event loop (the trigger's poll), on an async client kept until :meth:`aclose`."""
        if self._async_client is None:
            self._async_client = await self.aget_client()
        return await self._async_client.check_resolution(target, since=since)

    async def aclose(self) -> None:
        """Let go of the async client :meth:`acheck_resolution` made, if any; safe to call again."""
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.aclose()

    # ---------------------------------------------------------------------------------------- integration runs
    def start_run(self, integration: str, *, total_records: Any = None) -> dict[str, Any]:
        """Create a run of ``integration`` (its code) and mark it running."""
        return self.client.start_run(integration, total_records=total_records)

    def finish_run(self, run_id: Any, *, records_processed: Any = None, action: str = "success") -> dict[str, Any]:
        """End a run as successful (``action`` ``success`` or ``finish``); one already so is left as it is."""
        return self.client.finish_run(run_id, records_processed=records_processed, action=action)

    def fail_run(self, run_id: Any, *, records_processed: Any = None) -> dict[str, Any]:
        """End a run as failed; one already failed is left as it is."""
        return self.client.fail_run(run_id, records_processed=records_processed)

    def get_run(self, run_id: Any) -> dict[str, Any]:
        """One integration run by id."""
        return self.client.get_run(run_id)

    def create_run(self, integration: str, **fields: Any) -> dict[str, Any]:
        """Create a run of ``integration`` (its code); it starts ``pending``."""
        return self.client.create_run(integration, **fields)

    def run_transition(self, run_id: Any, action: str, **fields: Any) -> dict[str, Any]:
        """Move a run (``run``, ``pause``, ``pending``, ``success``, ``finish``, ``fail``)."""
        return self.client.run_transition(run_id, action, **fields)


def _redis_conn_id(extra: Mapping[str, Any]) -> str | None:
    """The Redis connection holding the fleet's shared rate budget, if the connection names one."""
    value = read_extra(extra, "rate_limit_redis_conn_id")
    return value.strip() or None if isinstance(value, str) else None


def _connection_from_metadata_db(conn_id: str) -> Any:
    """The connection as Airflow's core reads it (secrets backends, then the metadata database), or None."""
    try:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id)
    except Exception:  # not found there either, or no database in this process: the SDK's error stands
        return None
