"""What to write to Coupa when an Airflow task or DAG run ends, and how to write it without holding Airflow up.

Shared by :class:`~airflow_provider_coupa_ihr.notifications.coupa.CoupaNotifier` (a callback a DAG author adds)
and :mod:`airflow_provider_coupa_ihr.plugins.listener` (a listener an administrator switches on), so a failed
task reads the same in Coupa whichever of the two logged it.

Two promises hold for everything here, because it runs while Airflow is finishing a task:

- **Nothing is raised into Airflow.** Callers catch every error and log it as a warning; a Coupa outage must not
  turn a succeeded task into a failed one, nor hide the real error of a failed one.
- **Time is bounded.** :func:`call_within` runs the Coupa call in a daemon thread and waits for it a set number
  of seconds; every Coupa call the thread makes ends before then (:func:`.client.deadlines.time_limit`), on a
  client whose timeouts and retry budget are cut to the same bound (``CoupaHook.create_record_within``), so the
  thread and its connections are gone by the time the caller stops waiting, however slowly Coupa answers.

Text sent to Coupa is cut to Coupa's limits (``response-code`` is a string(255); ``response-message`` is a
``text`` column with no documented limit, which we cap at :data:`MAX_RESPONSE_MESSAGE_CHARS`) and passed through
Airflow's secrets masker first: an exception message can quote a connection URI or a token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "MAX_RESPONSE_CODE_CHARS",
    "MAX_RESPONSE_MESSAGE_CHARS",
    "Outcome",
    "call_within",
    "clean_text",
    "outcome_from_context",
    "outcome_from_task_instance",
]

#: Coupa's ``response-code`` is a string(255).
MAX_RESPONSE_CODE_CHARS = 255
#: Coupa's ``response-message`` is ``text`` without a documented limit. 4,000 characters hold a long error
#: message with its hint, and stay readable in Coupa's record page and in alert e-mails.
MAX_RESPONSE_MESSAGE_CHARS = 4000

#: Task instance states that mean "failed" for logging purposes (text, as both Airflow lines store them).
FAILED_STATES = frozenset({"failed", "upstream_failed"})
_CUT_MARK = " …[cut]"

T = TypeVar("T")


def state_text(state: Any) -> str:
    """A task or run state as plain text (``"failed"``) whether Airflow passes an enum, a string or None."""
    return str(getattr(state, "value", state) or "")


def clean_text(text: object, limit: int, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets masked (Airflow's masker, plus ``secrets``) and cut to ``limit`` characters.

    Masking comes before cutting, so a secret cut in half cannot escape the masker.
    """
    from airflow.providers.common.compat.sdk import redact

    from airflow_provider_coupa_ihr.client.responses import redact as redact_known

    value = str(text)
    try:
        masked = redact(value)
        value = masked if isinstance(masked, str) else value
    except Exception:  # noqa: S110 - a masker without patterns, or not set up in this process
        pass
    value = redact_known(value, secrets)
    if len(value) <= limit:
        return value
    if limit <= len(_CUT_MARK):
        return value[:limit]
    return value[: limit - len(_CUT_MARK)] + _CUT_MARK


@dataclass(frozen=True)
class Outcome:
    """How one Airflow task (or DAG run) ended, in the words a Coupa record needs."""

    failed: bool
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    try_number: int | None = None
    map_index: int = -1
    #: True for a DAG-level callback (``on_failure_callback`` of the DAG): the outcome is the run's.
    dag_level: bool = False
    #: Why a DAG run ended (``success``, ``task_failure``, ``timed_out``...), from Airflow.
    reason: str | None = None
    error: BaseException | str | None = None

    @property
    def where(self) -> str:
        task = f"{self.dag_id}.{self.task_id}" if self.task_id else str(self.dag_id)
        return f"{task}[{self.map_index}]" if self.map_index is not None and self.map_index >= 0 else task

    def response(self) -> tuple[str, str]:
        """The default ``(response-code, response-message)`` for this outcome (not yet cleaned or cut)."""
        run = f" in run {self.run_id}" if self.run_id else ""
        if self.dag_level:
            dag_run = f"Airflow DAG {self.dag_id}, run {self.run_id}," if self.run_id else f"Airflow DAG {self.dag_id}"
            if not self.failed:
                return "AIRFLOW-DAG-RUN-SUCCESS", f"{dag_run} succeeded."
            last = f"; last failed task: {self.task_id}" if self.task_id else ""
            detail = f": {_error_text(self.error)}" if self.error is not None else ""
            return "AIRFLOW-DAG-RUN-FAILED", f"{dag_run} failed ({self.reason}){last}{detail}"
        attempt = f" (try {self.try_number})" if self.try_number else ""
        if not self.failed:
            return "AIRFLOW-SUCCESS", f"Airflow task {self.where} succeeded{run}{attempt}."
        code = type(self.error).__name__ if isinstance(self.error, BaseException) else "AIRFLOW-TASK-FAILED"
        detail = f": {_error_text(self.error)}" if self.error not in (None, "") else "."
        return code, f"Airflow task {self.where} failed{run}{attempt}{detail}"


def _error_text(error: BaseException | str | None) -> str:
    if isinstance(error, BaseException):
        text = str(error).strip()
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return str(error)


def _ti_facts(ti: Any) -> dict[str, Any]:
    try_number = getattr(ti, "try_number", None)
    map_index = getattr(ti, "map_index", -1)
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None),
        "try_number": try_number if isinstance(try_number, int) else None,
        "map_index": map_index if isinstance(map_index, int) else -1,
    }


def outcome_from_task_instance(ti: Any, *, failed: bool, error: BaseException | str | None = None) -> Outcome:
    """The outcome of a task, from a task instance of either Airflow line (for listeners)."""
    return Outcome(failed=failed, error=error, **_ti_facts(ti))


def outcome_from_context(context: Mapping[str, Any], outcome: str = "auto") -> Outcome:
    """How the task or DAG run a callback was called for ended.

    ``outcome="success"`` or ``"failure"`` says it outright (a notifier used only as ``on_failure_callback``,
    or in a deadline alert whose context carries no task). ``"auto"`` reads the context: an ``exception`` means
    failure (task callbacks; Airflow 3 puts ``exception=None`` into a success context); a ``reason`` marks a
    DAG-level callback, failed unless the reason is ``success``; otherwise the task instance's state decides.
    """
    if outcome not in ("auto", "success", "failure"):
        raise ValueError(f"outcome must be auto, success or failure, got {outcome!r}")
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    facts = _ti_facts(ti) if ti is not None else {}
    facts["dag_id"] = facts.get("dag_id") or getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None)
    facts["run_id"] = facts.get("run_id") or context.get("run_id") or getattr(dag_run, "run_id", None)
    error = context.get("exception")
    reason = context.get("reason")
    dag_level = reason is not None
    if outcome != "auto":
        failed = outcome == "failure"
    elif error is not None:
        failed = True
    elif dag_level:
        failed = str(reason) != "success"
    else:
        failed = state_text(getattr(ti, "state", None)) in (*FAILED_STATES, "up_for_retry")
    return Outcome(
        failed=failed,
        dag_level=dag_level,
        reason=str(reason) if reason is not None else None,
        error=error,
        **facts,
    )


def call_within(seconds: float, fn: Callable[[], T], *, name: str = "coupa-log") -> T:
    """``fn()``, waited for at most ``seconds``; raises :class:`TimeoutError` when it takes longer.

    ``fn`` runs in a daemon thread under a :func:`~..client.deadlines.time_limit` a little shorter than
    ``seconds`` (:func:`_inner_limit`), so every Coupa call it makes has ended, with its client closed, by the
    time the caller stops waiting: a Coupa that never answers, or trickles, costs the caller ``seconds`` and
    leaves no thread or socket behind. Only a wait outside the client (an Airflow API call of ``fn``'s own)
    could outlast the bound; that thread is then left behind, a daemon that does not keep the process alive.
    Exceptions from ``fn`` are re-raised in the caller.
    """
    from airflow_provider_coupa_ihr.client.deadlines import time_limit

    box: dict[str, Any] = {}
    limit = _inner_limit(seconds)

    def target() -> None:
        try:
            with time_limit(limit):
                box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"Coupa did not answer within {seconds:g} s; not waiting any longer")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _inner_limit(seconds: float) -> float:
    """The time limit of the calls inside :func:`call_within`: a tenth less (at most half a second), which is
    the time the thread has to close its client and end before the caller stops waiting."""
    return max(0.0, seconds - min(0.5, seconds / 10))
