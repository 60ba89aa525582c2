"""``CoupaRecordsResolvedTrigger``: the deferred half of the wait, polling Coupa from the triggerer at no worker cost.

A deferred wait is one small coroutine in the triggerer: it sleeps, asks Coupa once, and sleeps again. Hundreds
of them in one triggerer share one HTTP connection pool (see :mod:`~airflow_provider_coupa_ihr.client.aio`), one
OAuth token and one rate limiter (Coupa's 25 requests per second is per instance, so the process stays under it
however many waits it holds). When to stop is decided by :mod:`~airflow_provider_coupa_ihr.client.resolution`, the
same code the sensor's poke runs.

The trigger carries its own absolute ``deadline`` (epoch seconds, from the sensor's ``timeout``), so a trigger
re-created after a triggerer restart still ends when the task should, and reports a timeout the task can
explain, rather than leaving Airflow's deferral timeout to cut it off silently. The deadline holds while a check
is in flight too: each check gets the time left before it (a slow or misbehaving Coupa cannot hold the wait past
it), and a trigger whose deadline had passed before it started gets one last check of at most
:data:`LATE_CHECK_SECONDS`.

Exactly one event, always a dict with ``status`` and ``message``:

- ``{"status": "resolved", "records": [...]}``: the wait is over; ``records`` are what the sensor returns.
- ``{"status": "timeout", "waiting": [ids]}``: the deadline passed with records still unresolved.
- ``{"status": "failed", "retry": bool, "missing": [ids]}``: an error waiting cannot fix. ``retry`` False (an
  unknown id, a refused request, bad settings): fail without task retries; True (something unexpected): let
  the task's retries have a go.

Transient trouble (429, 5xx, dropped connections; the client has already retried each call) is logged and the
next poll goes ahead as planned: a blip in Coupa must not fail a wait that may last days.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.resolution import WaitState

__all__ = ["LATE_CHECK_SECONDS", "CoupaRecordsResolvedTrigger"]

#: A trigger started after its deadline (a triggerer restart) still checks once, for at most this long.
LATE_CHECK_SECONDS = 10.0


class CoupaRecordsResolvedTrigger(BaseTrigger):
    """Poll Coupa until the target records are resolved, the deadline passes, or an error ends the wait.

    :param coupa_conn_id: the Coupa connection, read asynchronously in the triggerer.
    :param record_ids: wait until all of these records are resolved (exclusive with ``filters``).
    :param filters: wait until no record matching these Coupa filters is unresolved (rendered, as the sensor
        passes them: plain strings).
    :param deadline: when to give up, in seconds since the epoch (UTC); absolute, so it survives restarts.
    :param since: ISO 8601 time the wait began; for ``filters``, records resolved since then are returned.
    :param poke_interval: seconds between polls; with ``exponential_backoff``, the first interval, doubling
        after each poll up to ``max_wait`` seconds.
    :param polls: polls made before this trigger started (the sensor's own first check), so backoff continues.
    """

    def __init__(
        self,
        *,
        deadline: float,
        coupa_conn_id: str = "coupa_default",
        record_ids: list[int] | None = None,
        filters: Mapping[str, str] | None = None,
        since: str | None = None,
        poke_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        polls: int = 1,
    ) -> None:
        super().__init__()
        self.coupa_conn_id = coupa_conn_id
        self.record_ids = None if record_ids is None else [int(i) for i in record_ids]
        self.filters = None if filters is None else {str(k): str(v) for k, v in filters.items()}
        self.deadline = float(deadline)
        self.since = since
        self.poke_interval = float(poke_interval)
        self.exponential_backoff = bool(exponential_backoff)
        self.max_wait = None if max_wait is None else float(max_wait)
        self.polls = int(polls)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-only kwargs (ints, floats, strings, lists, dicts of strings, None)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "coupa_conn_id": self.coupa_conn_id,
                "record_ids": None if self.record_ids is None else list(self.record_ids),
                "filters": None if self.filters is None else dict(self.filters),
                "deadline": self.deadline,
                "since": self.since,
                "poke_interval": self.poke_interval,
                "exponential_backoff": self.exponential_backoff,
                "max_wait": self.max_wait,
                "polls": self.polls,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # One yield, by construction: every outcome (errors included) becomes the one payload.
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """Poll until the wait ends; the event payload. Never raises (but lets cancellation through)."""
        from airflow_provider_coupa_ihr.client.errors import CoupaError
        from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget
        from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

        hook = CoupaHook(self.coupa_conn_id)
        try:
            target = ResolutionTarget.of(record_ids=self.record_ids, filters=self.filters)
            since = _parse_time(self.since)
            polls = self.polls
            state: WaitState | None = None
            said = ""
            last_error: CoupaError | None = None
            while True:
                await asyncio.sleep(max(0.0, min(self._delay(polls), self.deadline - time.time())))
                polls += 1
                bound = self.deadline - time.time()
                try:
                    check = hook.acheck_resolution(target, since=since)
                    state = await asyncio.wait_for(check, bound if bound > 0 else LATE_CHECK_SECONDS)
                except asyncio.TimeoutError:
                    cut = TimeoutError("the check in flight at the deadline was cut short; Coupa had not answered it")
                    return self._timed_out(target.describe(), state, cut)
                except CoupaError as error:
                    if not error.retryable:
                        return _failed(f"Coupa refused the wait on {target.describe()}: {error}", retry=False)
                    last_error = error
                    self.log.warning("Could not ask Coupa this time (will ask again): %s", error)
                else:
                    last_error = None
                    if state.missing:
                        return _failed(state.describe(target), retry=False, missing=list(state.missing))
                    if state.done:
                        message = state.describe(target)
                        self.log.info("%s", message)
                        return {"status": "resolved", "message": message, "records": [dict(r) for r in state.records]}
                    # At INFO once per change, not once per poll: a triggerer holds hundreds of waits, and a line
                    # from each of them every poll would bury the lines that matter.
                    said = self._say(state.describe(target), said)
                if time.time() >= self.deadline:
                    return self._timed_out(target.describe(), state, last_error)
        except CoupaError as error:  # settings the client refuses, filters Coupa would refuse: nothing to retry
            return _failed(f"Cannot wait on Coupa records: {error}", retry=False)
        except Exception as error:
            self.log.exception("Coupa wait failed unexpectedly")
            return _failed(f"Coupa wait failed unexpectedly: {type(error).__name__}: {error}", retry=True)
        finally:
            await hook.aclose()

    def _say(self, message: str, said: str) -> str:
        self.log.log(logging.INFO if message != said else logging.DEBUG, "%s", message)
        return message

    def _delay(self, polls: int) -> float:
        from airflow_provider_coupa_ihr.client.resolution import POLL_JITTER, next_delay

        return next_delay(
            self.poke_interval,
            polls,
            exponential_backoff=self.exponential_backoff,
            max_wait=self.max_wait,
            jitter=POLL_JITTER,
        )

    def _timed_out(self, what: str, state: WaitState | None, last_error: BaseException | None) -> dict[str, Any]:
        deadline = datetime.fromtimestamp(self.deadline, tz=timezone.utc).isoformat(timespec="seconds")
        message = f"Timed out at {deadline} waiting for {what} to be resolved in Coupa."
        waiting: list[int] = []
        if state is not None and state.waiting:
            waiting = list(state.waiting)
            message += f" Still unresolved at the last check: {', '.join(map(str, waiting[:20]))}"
            message += " (and more)." if len(waiting) > 20 or state.more else "."
        if last_error is not None:
            message += f" The last check failed: {last_error}"
        return {"status": "timeout", "message": message, "waiting": waiting}


def _failed(message: str, *, retry: bool, missing: list[int] | None = None) -> dict[str, Any]:
    return {"status": "failed", "message": message, "retry": retry, "missing": missing or []}


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
