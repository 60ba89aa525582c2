"""The Coupa listener: logs the success and failure of opted-in tasks to Coupa, with no change to their DAGs.

Off until an administrator sets ``[coupa] listener_enabled = True``. Then, for every task of a DAG that opts in
(the tag ``[coupa] listener_dag_tag``, default ``coupa-log``; a DAG id listed in ``[coupa] listener_dag_ids``; or
the param ``coupa_log: true``), it writes one record when the task succeeds (``create``, status ``Success``) and
one when it fails for good (``create_alert``, status ``Error``, the error as a response). A failure that Airflow
will retry is not logged: only the final outcome is. A task (or DAG) opts out with the param ``coupa_log: false``.

The document the record is about comes from the task's params (``coupa_document_type``, ``coupa_document_id``,
DAG-level or task-level, a triggering run's conf winning over their defaults) or from
``[coupa] listener_document_type`` and ``listener_document_id``; a task with neither is skipped with a
warning. ``coupa_integration`` (param) or ``[coupa] listener_integration`` names the integration. Tasks inside a
``coupa_integration_run`` group attach their record to that run.

The listener runs inside Airflow (the task's own process on Airflow 3; the task runner on Airflow 2), so it
must never fail or stall a task: each event is bounded by ``[coupa] listener_timeout`` seconds (default 5) in
all (connection, token, request and retries, see :func:`~..notifications.outcome.call_within`), and every error
is logged as a warning, never raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from airflow.providers.common.compat.sdk import hookimpl

from airflow_provider_coupa_ihr.client.records import DEFAULT_CONTACT_ALERT_TYPE
from airflow_provider_coupa_ihr.plugins.config import DEFAULTS, SECTION

__all__ = ["CONFIG_SECTION", "CoupaListener", "ListenerSettings", "coupa_listener"]

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def _hookimpl(fn: _F) -> _F:
    """Airflow's pluggy ``hookimpl`` marker, typed (Airflow is untyped to mypy here)."""
    return cast(_F, hookimpl(fn))


#: The provider's configuration section (``[coupa]`` in airflow.cfg, ``AIRFLOW__COUPA__...`` in the environment).
CONFIG_SECTION = SECTION
DEFAULT_TIMEOUT = float(DEFAULTS["listener_timeout"])
DEFAULT_TAG = DEFAULTS["listener_dag_tag"]


@dataclass(frozen=True)
class ListenerSettings:
    """The ``[coupa] listener_*`` options, read at each event so a changed setting needs no restart."""

    enabled: bool = False
    conn_id: str = "coupa_default"
    dag_tag: str = DEFAULT_TAG
    dag_ids: frozenset[str] = frozenset()
    timeout: float = DEFAULT_TIMEOUT
    document_type: str | None = None
    document_id: str | None = None
    integration: str | None = None
    contact_alert_type: str = DEFAULT_CONTACT_ALERT_TYPE
    log_success: bool = True

    @classmethod
    def read(cls) -> ListenerSettings:
        from airflow.providers.common.compat.sdk import conf

        def text(option: str, default: str = "") -> str:
            return str(conf.get(CONFIG_SECTION, option, fallback=default) or default).strip()

        enabled = conf.getboolean(CONFIG_SECTION, "listener_enabled", fallback=False)
        if not enabled:
            return cls()
        timeout = conf.getfloat(CONFIG_SECTION, "listener_timeout", fallback=DEFAULT_TIMEOUT)
        return cls(
            enabled=True,
            conn_id=text("listener_conn_id", "coupa_default"),
            dag_tag=text("listener_dag_tag", DEFAULT_TAG),
            dag_ids=frozenset(d.strip() for d in text("listener_dag_ids").split(",") if d.strip()),
            timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
            document_type=text("listener_document_type") or None,
            document_id=text("listener_document_id") or None,
            integration=text("listener_integration") or None,
            contact_alert_type=text("listener_contact_alert_type", DEFAULT_CONTACT_ALERT_TYPE),
            log_success=conf.getboolean(CONFIG_SECTION, "listener_log_success", fallback=True),
        )


class CoupaListener:
    """Airflow listener (``on_task_instance_success`` / ``on_task_instance_failed``) writing Coupa records.

    The hook signatures are the intersection of Airflow 2.11's (which adds ``session``) and 3.x's (where
    ``task_instance`` is a ``RuntimeTaskInstance`` in the task's process): pluggy passes only the arguments an
    implementation names, so one class serves both lines.
    """

    @_hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self.handle(task_instance, failed=False, error=None)

    @_hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.handle(task_instance, failed=True, error=error)

    def handle(self, ti: Any, *, failed: bool, error: BaseException | str | None) -> None:
        """Log one task outcome to Coupa if the task opted in. Never raises; waits at most the timeout."""
        started = time.monotonic()
        try:
            settings = ListenerSettings.read()
            if not settings.enabled:
                return
            request = self.record_request(ti, settings, failed=failed, error=error)
            if request is None:
                return
            action, fields = request
            record = _write(ti, settings, action, fields, started=started)
        except Exception as exc:
            log.warning(
                "Coupa listener: %s of %s.%s not logged after %.1f s: %s",
                "failure" if failed else "success",
                getattr(ti, "dag_id", "?"),
                getattr(ti, "task_id", "?"),
                time.monotonic() - started,
                exc,
            )
            return
        log.info("Coupa listener: %s record %s for %s.%s", action, record.get("id"), ti.dag_id, ti.task_id)

    def record_request(
        self, ti: Any, settings: ListenerSettings, *, failed: bool, error: BaseException | str | None
    ) -> tuple[str, dict[str, Any]] | None:
        """``(action, fields)`` for this event, or None when the task is not logged. Sends nothing."""
        from airflow_provider_coupa_ihr.notifications.coupa import outcome_request
        from airflow_provider_coupa_ihr.notifications.outcome import outcome_from_task_instance, state_text

        if failed and state_text(getattr(ti, "state", None)) == "up_for_retry":
            log.debug("Coupa listener: %s.%s will be retried; only its final outcome is logged", ti.dag_id, ti.task_id)
            return None
        if not failed and not settings.log_success:
            return None
        task = getattr(ti, "task", None)
        params = {**_params(task), **_run_conf(ti)}
        if not opted_in(ti, task, params, settings):
            return None
        document_type = params.get("coupa_document_type") or settings.document_type
        document_id = params.get("coupa_document_id") or settings.document_id
        if not document_type or document_id in (None, ""):
            log.warning(
                "Coupa listener: %s.%s opted in but names no document: set the params coupa_document_type and "
                "coupa_document_id (or [coupa] listener_document_type / listener_document_id)",
                ti.dag_id,
                ti.task_id,
            )
            return None
        outcome = outcome_from_task_instance(ti, failed=failed, error=error)
        return outcome_request(
            outcome,
            document_type=document_type,
            document_id=document_id,
            contact_alert_type=params.get("coupa_contact_alert_type") or settings.contact_alert_type,
            status="Error" if failed else "Success",
            action="create_alert" if failed else "create",
            integration=params.get("coupa_integration") or settings.integration,
        )


def opted_in(ti: Any, task: Any, params: Mapping[str, Any], settings: ListenerSettings) -> bool:
    """A ``coupa_log`` param decides when set (task over DAG); else the DAG's tag or its id in the config list."""
    explicit = params.get("coupa_log")
    if explicit is not None:
        return explicit is True or str(explicit).strip().lower() in ("true", "1", "yes", "on")
    if ti.dag_id in settings.dag_ids:
        return True
    dag = getattr(task, "dag", None)
    tags = getattr(dag, "tags", None) or ()
    return settings.dag_tag in tags


#: The params (and run conf keys) the listener reads.
_LISTENER_KEYS = (
    "coupa_log",
    "coupa_document_type",
    "coupa_document_id",
    "coupa_integration",
    "coupa_contact_alert_type",
)


def _params(task: Any) -> dict[str, Any]:
    """The task's params (DAG params merged with the task's own) as plain values; {} when unknown."""
    raw = getattr(task, "params", None)
    if not raw:
        return {}
    out: dict[str, Any] = {}
    for key in _LISTENER_KEYS:
        try:
            value = raw.get(key)
        except Exception:  # a Param without a value fails to resolve: treat as unset
            value = None
        value = getattr(value, "value", value)
        if value is not None and value != "":
            out[key] = value
    return out


def _write(
    ti: Any, settings: ListenerSettings, action: str, fields: dict[str, Any], *, started: float
) -> dict[str, Any]:
    """Attach the enclosing run (an XCom read, so inside the bound too) and create the record, all within the
    event's bound counted from ``started`` (``time.monotonic()`` when the event came), deciding included."""
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook
    from airflow_provider_coupa_ihr.notifications.coupa import enclosing_run_of
    from airflow_provider_coupa_ihr.notifications.outcome import call_within

    deadline = started + settings.timeout

    def write() -> dict[str, Any]:
        run = enclosing_run_of(ti)
        body = {**fields, "integration_run": run} if run is not None else fields
        remaining = max(0.1, deadline - time.monotonic())
        return CoupaHook(coupa_conn_id=settings.conn_id).create_record_within(remaining, action=action, **body)

    return call_within(max(0.0, deadline - time.monotonic()), write, name="coupa-listener")


#: The instance the plugin registers.
coupa_listener = CoupaListener()


def _run_conf(ti: Any) -> dict[str, Any]:
    """The listener's keys from the triggering run's conf (``airflow dags trigger --conf``, the UI's trigger form):
    they win over the params' defaults, as Airflow's ``dag_run_conf_overrides_params`` makes them win for tasks.

    Best effort: a run whose conf cannot be read is logged from the params alone.
    """
    try:
        dag_run = getattr(ti, "dag_run", None)  # Airflow 2's TaskInstance
        if dag_run is None and callable(getattr(ti, "get_template_context", None)):
            dag_run = ti.get_template_context().get("dag_run")  # Airflow 3's RuntimeTaskInstance
        conf = getattr(dag_run, "conf", None)
    except Exception as exc:
        log.debug("Coupa listener: the run's conf could not be read (%s); using the params", type(exc).__name__)
        return {}
    if not isinstance(conf, Mapping):
        return {}
    return {key: conf[key] for key in _LISTENER_KEYS if conf.get(key) not in (None, "")}
