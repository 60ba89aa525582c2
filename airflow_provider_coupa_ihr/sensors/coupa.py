"""``CoupaRecordsResolvedSensor``: hold a pipeline until Coupa users resolve its integration errors.

A person fixes the document in Coupa and resolves the record; then the pipeline goes on. The wait is on
records by id (one or many) or on every record matching a query (all unresolved records of an integration, of a
document...). What "resolved" means, for ids and for queries, is decided in
:mod:`~airflow_provider_coupa_ihr.client.resolution`, which the sensor's poke and the deferred trigger share.

Kept light to import (DAG files import sensors on every parse): the client, its HTTP library and the trigger load
only when the task runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget, WaitState
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

__all__ = ["CoupaRecordsResolvedSensor"]

#: Airflow's own deferral timeout is set this much later than the trigger's deadline: it is only a backstop
#: (for a trigger that never runs), and the trigger, ending first, says what it was still waiting for.
DEFERRAL_GRACE_SECONDS = 60.0


class CoupaRecordsResolvedSensor(BaseSensorOperator):
    """Wait until integration history records are resolved in Coupa; return them (XCom) when they are.

    Give exactly one of:

    :param record_ids: an id or a list of ids (templated; text such as ``"[7, 8]"`` from a rendered XCom works).
        Done when **all** of them are resolved at the same check. The current state counts: a record resolved
        and unresolved again before a check is unresolved (someone reopened it), and one resolved at a check and
        reopened by the next puts the wait back on hold. An id Coupa does not know fails the task at once
        (``AirflowFailException``, naming the ids) instead of waiting until the timeout. An empty list is done
        at once. One request per check for up to 50 ids (``id[in]=``), one per 50 beyond.
    :param filters: Coupa filters in Coupa's syntax (templated), e.g. ``{"integration[code]": "SAP-INVOICES"}``
        or ``{"document_type": "InvoiceHeader", "document_id": 42}``. Done when **no** matching record is
        unresolved (the filters plus ``resolved=false`` find nothing); records that start to match while
        waiting extend the wait. One request per check. Do not filter on ``resolved`` yourself.

    :param coupa_conn_id: the Coupa connection (default ``coupa_default``).
    :param deferrable: free the worker slot while waiting: check once, then hand the wait to a trigger in the
        triggerer (default: ``[operators] default_deferrable``). The trigger polls every ``poke_interval``
        (doubling with ``exponential_backoff``, capped by ``max_wait``) until ``timeout``.

    Everything else is the standard sensor's: ``mode`` (``poke`` or ``reschedule``; ignored when deferrable),
    ``poke_interval``, ``timeout``, ``exponential_backoff``, ``max_wait``, ``soft_fail`` (skip instead of fail,
    on timeout and on errors alike).

    Errors: what waiting cannot fix (an unknown id, a 400/401/403/404 answer, bad filters or connection
    settings) fails the task without retries. Transient trouble (429, 5xx, timeouts, dropped connections, each
    already retried by the client) is logged and the wait goes on until ``timeout``.

    Returns (XCom) the resolved records as plain JSON: a list of dicts with ``id``, ``status``,
    ``document_type``, ``document_id``, ``external_id``, ``resolved``, ``updated_at`` and ``integration`` (its
    code). For ids, in the order given. For filters, the matching records resolved and changed since the wait
    began (less a minute, for clock skew between Airflow and Coupa), oldest id first.
    """

    template_fields: Sequence[str] = ("coupa_conn_id", "record_ids", "filters")
    template_fields_renderers = {"filters": "json", "record_ids": "json"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        record_ids: int | str | Sequence[int | str] | None = None,
        filters: Mapping[str, Any] | None = None,
        coupa_conn_id: str = "coupa_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (record_ids is None) == (filters is None):
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: give either record_ids (wait on these records) or "
                "filters (wait on every record matching them), not both and not neither"
            )
        self.record_ids = record_ids
        self.filters = filters
        self.coupa_conn_id = coupa_conn_id
        self.deferrable = (
            conf.getboolean("operators", "default_deferrable", fallback=False) if deferrable is None else deferrable
        )
        self._target: ResolutionTarget | None = None
        self._wait_started: datetime | None = None

    @cached_property
    def hook(self) -> CoupaHook:
        from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

        return CoupaHook(coupa_conn_id=self.coupa_conn_id)

    # ---------------------------------------------------------------------------------------------- running
    def execute(self, context: Any) -> Any:
        self._wait_started = self._first_check_time(context)
        if (warning := self_resolving_wait_warning(self.dag if self.has_dag() else None)) is not None:
            self.log.warning("%s", warning)
        try:
            if self.deferrable:
                return self._execute_deferrable(context)
            return super().execute(context)
        finally:
            self.hook.close()

    def poke(self, context: Any) -> bool | PokeReturnValue:
        """One check; transient errors count as "not yet" (the base sensor then waits until ``timeout``)."""
        state = self._check()
        if state is None or not state.done:
            return False
        return PokeReturnValue(is_done=True, xcom_value=[dict(r) for r in state.records])

    def _execute_deferrable(self, context: Any) -> Any:
        from airflow_provider_coupa_ihr.client.deadlines import time_limit

        deadline = time.time() + float(self.timeout)
        with time_limit(float(self.timeout)):  # the first check cannot outlast the wait it starts
            state = self._check()
        if state is not None and state.done:
            return [dict(r) for r in state.records]
        remaining = deadline - time.time()
        if remaining <= 0:
            self._timed_out(f"Sensor timed out after {self.timeout} s, at its first check.")
        from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

        target = self.target
        started = self._wait_started or datetime.now(timezone.utc)
        self.defer(
            trigger=CoupaRecordsResolvedTrigger(
                coupa_conn_id=self.coupa_conn_id,
                record_ids=None if target.record_ids is None else list(target.record_ids),
                filters=None if target.filters is None else dict(target.filters),
                deadline=deadline,
                since=started.isoformat(),
                poke_interval=float(self.poke_interval),
                exponential_backoff=bool(self.exponential_backoff),
                max_wait=_seconds(getattr(self, "max_wait", None)),
                polls=1,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining + DEFERRAL_GRACE_SECONDS),
        )

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Back from the trigger: the resolved records, or the failure the trigger reported, said plainly."""
        event = event or {}
        status = event.get("status")
        message = str(event.get("message") or f"The Coupa trigger sent an event this sensor does not know: {event!r}")
        if status == "resolved":
            self.log.info("%s", message)
            return [dict(r) for r in event.get("records") or []]
        if status == "timeout":
            self._timed_out(message)
        if status == "failed" and not event.get("retry"):
            self._fail(message)
        raise AirflowException(message)

    # ---------------------------------------------------------------------------------------------- the check
    @property
    def target(self) -> ResolutionTarget:
        """What to wait on, from the rendered ``record_ids`` / ``filters``, validated once per try."""
        if self._target is None:
            from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
            from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget

            try:
                self._target = ResolutionTarget.of(record_ids=self.record_ids, filters=self.filters)
            except CoupaValidationError as refused:
                self._fail(f"{type(self).__name__} cannot wait on this: {refused}")
        return self._target

    def _check(self) -> WaitState | None:
        """One check against Coupa: the state, or None when Coupa could not be asked this time (transient)."""
        from airflow_provider_coupa_ihr.client.errors import CoupaError

        target = self.target
        try:
            state = self.hook.check_resolution(target, since=self._wait_started)
        except CoupaError as error:
            if not error.retryable:
                self._fail(f"Coupa refused the wait on {target.describe()}: {error}")
            self.log.warning("Could not ask Coupa this time (will ask again): %s", error)
            return None
        if state.missing:
            self._fail(state.describe(target))
        self.log.info("%s", state.describe(target))
        return state

    # ---------------------------------------------------------------------------------------------- helpers
    def _first_check_time(self, context: Any) -> datetime:
        """When this wait began: now, or in reschedule mode the first poke's start (the wait spans many runs)."""
        ti = context.get("ti") if isinstance(context, Mapping) else None
        first: Any = None
        if ti is not None and self.reschedule and not self.deferrable:
            getter = getattr(ti, "get_first_reschedule_date", None)
            # Airflow 3 asks the API server; Airflow 2 already set start_date to the first reschedule's start.
            first = getter(context) if callable(getter) else getattr(ti, "start_date", None)
        if not isinstance(first, datetime):
            return datetime.now(timezone.utc)
        return first if first.tzinfo else first.replace(tzinfo=timezone.utc)

    def _fail(self, message: str) -> NoReturn:
        """Fail without retries (they would fail the same way), or skip under ``soft_fail``."""
        if self.soft_fail or getattr(self, "never_fail", False):
            raise AirflowSkipException(message)
        raise AirflowFailException(message)

    def _timed_out(self, message: str) -> NoReturn:
        if self.soft_fail or getattr(self, "never_fail", False):
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)


def _seconds(value: timedelta | float | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def self_resolving_wait_warning(dag: Any) -> str | None:
    """Why this wait may never end, when its DAG can only resolve the records in its own next run, or None.

    Coupa's integration guides resolve a document's earlier errors when the next run exports it successfully
    (``resolve_previous=True``). A DAG that both waits for resolution and resolves earlier records itself, with
    ``max_active_runs=1``, holds its next run back until the wait ends, which only that next run would end.
    """
    if dag is None or getattr(dag, "max_active_runs", None) != 1:
        return None
    resolvers = sorted(t.task_id for t in getattr(dag, "tasks", ()) if getattr(t, "resolve_previous", False) is True)
    if not resolvers:
        return None
    return (
        f"DAG {dag.dag_id!r} has max_active_runs=1 and resolves earlier records itself ({', '.join(resolvers)}: "
        "resolve_previous=True): if the records this sensor waits for are only resolved by the DAG's next run, "
        "that run cannot start while this one waits, and the wait lasts until its timeout. Let a Coupa user "
        "resolve them, or let the next run resolve them without waiting (see the docs: waiting)."
    )
