"""How long a call, and each attempt of it, may take: the time bound every call keeps, sync and async. No I/O.

A call (its token fetch, its throttle waits, every attempt, retry and sleep) ends within ``retry.max_elapsed``
plus one ``read_timeout`` of its start, whatever the server does: a server that trickles one byte a second never
trips a read timeout (each read gets its byte), so the read timeout alone bounds nothing. :class:`CallDeadline`
is that bound, kept by :mod:`.flow`: no attempt starts after ``max_elapsed`` (as :mod:`.retry` already decides)
and no attempt, sleep or wait ends after the call's end. Each attempt may take ``connect_timeout +
read_timeout`` to its last byte, never past the call's end; the drivers enforce it (:attr:`.flow.Send.timeout`).

:func:`time_limit` narrows every call made inside it, in this thread or task: the notifier and the listener use
it so that the thread running their call is over by the time they stop waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.config import ClientConfig

__all__ = ["CallDeadline", "time_limit", "time_limit_left"]

#: When the innermost :func:`time_limit` ends, on ``time.monotonic``'s clock.
_LIMIT: ContextVar[float | None] = ContextVar("coupa_time_limit", default=None)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Every Coupa call started inside the block (this thread or task) ends within ``seconds`` of entering it.

    Nested limits keep the nearest end. A call that cannot finish in what is left fails with a
    :class:`~.errors.CoupaTransportError` (retryable) instead of outliving the block.
    """
    end = time.monotonic() + max(0.0, float(seconds))
    current = _LIMIT.get()
    token = _LIMIT.set(end if current is None else min(current, end))
    try:
        yield
    finally:
        _LIMIT.reset(token)


def time_limit_left() -> float | None:
    """Seconds left in the innermost :func:`time_limit`, or None outside any."""
    end = _LIMIT.get()
    return None if end is None else end - time.monotonic()


@dataclass
class CallDeadline:
    """The time bound of one call, on the call's clock (:attr:`.flow.CallContext.clock`)."""

    clock: Callable[[], float]
    #: Nothing of the call (attempt, sleep, wait) goes past this.
    ends_at: float
    #: No attempt starts after this: the retry budget's ``max_elapsed``, or less inside a tighter bound.
    last_start: float
    #: The longest one attempt may take, to its last byte: ``connect_timeout + read_timeout``.
    attempt_limit: float
    #: The call's whole bound in seconds, for messages.
    seconds: float

    @classmethod
    def start(cls, config: ClientConfig, clock: Callable[[], float], *, within: float | None = None) -> CallDeadline:
        """The bound of a call starting now: ``max_elapsed + read_timeout``, or ``within`` seconds (a call made
        on behalf of another, such as a token fetch, shares what is left of it), or what the enclosing
        :func:`time_limit` leaves, whichever is least."""
        now = clock()
        budget = config.retry.max_elapsed + config.read_timeout
        for bound in (within, time_limit_left()):
            if bound is not None:
                budget = min(budget, max(0.0, bound))
        return cls(
            clock=clock,
            ends_at=now + budget,
            last_start=now + min(config.retry.max_elapsed, budget),
            attempt_limit=config.connect_timeout + config.read_timeout,
            seconds=budget,
        )

    def left(self) -> float:
        """Seconds until the call must be over."""
        return self.ends_at - self.clock()

    def attempt_timeout(self) -> float:
        """Seconds the next attempt may take (0 or less: no time for one)."""
        return min(self.attempt_limit, self.left())

    def may_retry_after(self, seconds: float) -> bool:
        """Whether a retry may sleep ``seconds`` first: the retry would still start within the bound."""
        return self.clock() + seconds <= self.last_start

    def may_throttle(self, seconds: float) -> bool:
        """Whether the rate limiter may hold the next attempt ``seconds``: time is left for it afterwards."""
        return self.clock() + seconds < self.ends_at
