"""Coupa's rate budget (25 requests per second, bursts of 20 per instance) as one token bucket, and its sharing.

One class serves both sides of the wire: the client *books* a slot and sleeps until it (:meth:`TokenBucket.reserve`),
the emulator *takes or refuses* (:meth:`TokenBucket.try_acquire`) and answers 429 for a refused request. Keeping
the arithmetic in one place means the client's pace and the emulator's limit cannot disagree about what Coupa's
budget is. :func:`shared_bucket` hands every client of one instance in a process the same bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from airflow_provider_coupa_ihr.client.records import RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND
from airflow_provider_coupa_ihr.client.values import finite_number, whole_number

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.config import ClientConfig

__all__ = ["Limiter", "TokenBucket", "shared_bucket"]


class Limiter(Protocol):
    """What a client needs of a rate limiter: book a slot, and say how long to sleep before using it.

    :class:`TokenBucket` (this process) and
    :class:`~airflow_provider_coupa_ihr.client.shared_limiter.SharedThrottle` (a budget every process shares
    through Redis) are both one.
    """

    rate: float
    burst: int

    def reserve(self) -> float: ...

    async def areserve(self) -> float: ...


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``: one token per request. Thread-safe.

    :meth:`reserve` books the next slot and returns how long to sleep before using it; booking (rather than
    "wait until free, then take") lets sync threads and async tasks share one bucket without a condition
    variable: each sleeps its own delay, and the order of booking is the order of sending.
    :meth:`try_acquire` takes a token only if one is there now, which is what a server that refuses needs: a
    refused request must not be charged, or a client retrying in a tight loop would never get through.
    """

    def __init__(
        self,
        rate: float = RATE_LIMIT_PER_SECOND,
        burst: int = RATE_LIMIT_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if finite_number(rate) is None or rate <= 0:
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        if whole_number(burst, minimum=1) is None:
            raise ValueError(f"burst must be a whole number of 1 or more, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}, burst={self.burst})"

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def reserve(self) -> float:
        """Book one request; returns the seconds to sleep before sending it (0.0 when within the burst)."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def areserve(self) -> float:
        """:meth:`reserve` for asyncio callers (no I/O here, so nothing to await)."""
        return self.reserve()

    def try_acquire(self) -> float | None:
        """Take one token if the bucket holds one (None); else take nothing and return the seconds until one."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / self.rate


_BUCKETS: dict[tuple[str, str], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def shared_bucket(config: ClientConfig) -> Limiter | None:
    """One bucket per Coupa instance and client in this process, so every hook, thread and task shares the limit;
    with ``config.shared_budget``, the budget every process of the fleet shares through Redis."""
    if config.rate_limit is None:
        return None
    if config.shared_budget is not None:
        from airflow_provider_coupa_ihr.client.shared_limiter import budget_throttle

        return budget_throttle(config.shared_budget, config.base_url, config.rate_limit, config.burst)
    key = (config.base_url, config.client_id or "api-key")
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None or bucket.rate != config.rate_limit or bucket.burst != config.burst:
            bucket = _BUCKETS[key] = TokenBucket(config.rate_limit, config.burst)
        return bucket
