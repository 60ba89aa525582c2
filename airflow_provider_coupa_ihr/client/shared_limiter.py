"""Coupa's rate budget shared by every process of a fleet, kept in Redis; a local share when Redis is away.

Coupa allows 25 requests per second, bursts of 20, *per instance*: one budget for every worker, triggerer and
host. A :class:`~airflow_provider_coupa_ihr.client.limiter.TokenBucket` is per process, so a fleet either divides
the budget statically (safe, but a lone job gets a fraction of it) or overruns it. :class:`SharedThrottle` keeps
the bucket in Redis instead:

- **One decision, in Redis, on Redis's clock.** Each request runs one small Lua script (GCRA, the token bucket
  kept as a single "theoretical arrival time"): it reads Redis's ``TIME``, books the next slot and answers how
  long to wait before using it. One round trip per request; atomic because Redis runs scripts one at a time; no
  clock of any client host is read, so skew between hosts cannot widen the budget. Like
  :meth:`TokenBucket.reserve <airflow_provider_coupa_ihr.client.limiter.TokenBucket.reserve>` it *books* rather
  than refuses, so waiting processes queue in booking order instead of polling in lock-step.
- **Same semantics as Coupa's bucket.** ``rate`` per second, ``burst`` at once: from idle, ``burst`` requests go
  at once and then one every ``1/rate`` seconds, for all processes together. A budget Redis does not hold (new,
  long idle, or lost in a restart) starts with one token rather than a full burst (see :data:`GCRA_SCRIPT`).
- **Safe when Redis is not.** Every Redis call is bounded by socket timeouts and is never retried by the driver
  (an idle connection Redis closed is replaced once). When Redis fails (down, slow, restarted mid-call,
  refusing), the process falls back to a local :class:`TokenBucket` at ``fallback_rate`` (the static-division
  share, starting empty, not with a burst), logs one warning per process and budget, and asks Redis again at
  most every ``probe_interval`` seconds; the first answer returns it to the shared budget. A failure of the
  limiter never fails a request.

Why our own script rather than a library: ``limits`` and ``pyrate-limiter`` both read the *client's* clock (hosts
disagree), ``limits`` has windows rather than a bucket with a burst, and both answer "refused" rather than "wait
this long", so a waiting caller polls Redis again and again. ``benchmarks/limiter_cost.py --libraries`` measures
them beside this script.

``redis`` is the optional extra ``[redis]`` and is imported only when a :class:`SharedThrottle` first talks to
Redis; without it, nothing here is imported by the rest of the package.

Why one module of this size: the Redis script, the connection handling, and the handovers to and from the local
share are one limiter whose correctness depends on their order; nothing else in the package imports Redis.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.limiter import TokenBucket
from airflow_provider_coupa_ihr.client.records import RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND
from airflow_provider_coupa_ihr.client.values import finite_number, whole_number

__all__ = [
    "DEFAULT_FALLBACK_SHARE",
    "GCRA_SCRIPT",
    "KEY_PREFIX",
    "RedisSettings",
    "SharedBudget",
    "SharedThrottle",
    "budget_key",
    "budget_throttle",
    "shared_throttle",
]

log = logging.getLogger(__name__)

#: Every key this module writes starts with this, so an operator can find (and delete) them.
KEY_PREFIX = "coupa-ihr:budget:"

#: GCRA in Redis. KEYS[1] the budget; ARGV[1] microseconds per request (1/rate), ARGV[2] the burst, ARGV[3] how
#: long an idle budget is kept (ms), ARGV[4] how many requests to book (1; more to charge a process's unused
#: local bookings when it comes back from its local share). The stored value is the theoretical arrival time
#: (TAT): when the bucket would be full again. A request books ``interval`` after max(TAT, now) and may go once
#: its slot is within ``burst`` intervals of now. Returns the wait in whole microseconds. Integers in a Lua
#: double stay exact below 2**53 (epoch microseconds are ~1.8e15); ``%.0f`` keeps Lua from writing 1.8e+15.
#: A budget Redis does not hold (new, idle for longer than it is kept, or lost in a restart while processes ran
#: on their local shares and drained Coupa's bucket) starts with one token, not a full burst: Coupa's own bucket
#: may be empty, and a burst on top of it would be answered 429. It costs at most ``burst / rate`` seconds, once.
GCRA_SCRIPT = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local stored = redis.call('GET', KEYS[1])
local tat = now + (burst - 1) * interval
if stored then tat = tonumber(stored) or tat end
if tat < now then tat = now end
local booked = tat + interval * tonumber(ARGV[4])
local wait = booked - burst * interval - now
if wait < 0 then wait = 0 end
local keep = math.floor((booked - now) / 1000) + tonumber(ARGV[3])
redis.call('SET', KEYS[1], string.format('%.0f', booked), 'PX', keep)
return wait
"""

#: What EVALSHA names the script by.
_SCRIPT_SHA = hashlib.sha1(GCRA_SCRIPT.encode(), usedforsecurity=False).hexdigest()
#: Seconds between asks while on the local share. Short: until every process is back, the ones back on the
#: shared budget and the ones still on their local shares together exceed it (measured in the fleet test: with
#: 2 s, 6 requests of 1,800 were answered 429 after a Redis restart). A refused connection costs microseconds;
#: an unreachable host costs one caller the connect timeout per probe.
_PROBE_INTERVAL = 0.5
#: An idle budget is kept this long after its bucket is full again (then it starts from one token; see above).
_KEEP_IDLE_MS = 3_600_000
#: Without a configured fallback, a process takes this fraction of the budget while Redis is away: the README's
#: static division for a three-slot pool plus one triggerer (6.25/s and a burst of 5 of Coupa's 25/s and 20).
DEFAULT_FALLBACK_SHARE = 4
_TIMEOUT = 0.5
#: (pid, budget key) pairs that have warned about falling back: one warning per process and budget.
_WARNED: set[tuple[int, str]] = set()
_WARNED_LOCK = threading.Lock()


def _redis_module() -> ModuleType:
    """``redis`` (the ``[redis]`` extra), or a sentence saying how to get it."""
    try:
        import redis
    except ImportError as exc:
        raise CoupaConfigError(
            "the shared rate limit (rate_limit_redis_conn_id) needs the redis package: "
            "pip install 'airflow-provider-coupa-ihr[redis]'"
        ) from exc
    return redis


@dataclass(frozen=True)
class RedisSettings:
    """Where the budget lives: what a Redis connection holds (host, port, db, credentials, TLS).

    ``timeout`` bounds connecting and each answer (seconds); the driver never retries, the caller falls back.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    timeout: float = _TIMEOUT

    def __post_init__(self) -> None:
        if not self.host:
            raise CoupaConfigError("the Redis connection for the shared rate limit has no host")
        if whole_number(self.port, minimum=1, maximum=65535) is None:
            raise CoupaConfigError(f"Redis port must be a whole number from 1 to 65535, got {self.port!r}")
        if whole_number(self.db, minimum=0) is None:
            raise CoupaConfigError(f"Redis db must be a whole number of 0 or more, got {self.db!r}")
        if (finite_number(self.timeout) or 0) <= 0:
            raise CoupaConfigError(f"Redis timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.ssl_cert_reqs not in ("required", "optional", "none"):
            raise CoupaConfigError(f"ssl_cert_reqs must be required, optional or none, got {self.ssl_cert_reqs!r}")

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a ``redis`` (or ``redis.asyncio``) ``Connection``/``SSLConnection``, no ``retry``."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry_on_timeout": False,
            "health_check_interval": 0,
        }
        if self.ssl:
            kwargs.update(
                ssl_ca_certs=self.ssl_ca_certs,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_cert_reqs=self.ssl_cert_reqs,
            )
        return kwargs


def budget_key(base_url: str, name: str | None = None) -> str:
    """The Redis key of a budget: the Coupa instance's (scheme, host, port), or a named budget shared on purpose.

    Two connections to one instance (say, two OAuth clients) share its budget, because Coupa counts per
    instance; two instances never do. A ``name`` lets integrations outside Airflow join the same budget.
    """
    if name is not None:
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or not name.isprintable():
            raise CoupaConfigError(f"a rate-limit budget name must be printable text of 1-200 characters, got {name!r}")
        return f"{KEY_PREFIX}named:{name.strip()}"
    parts = urlsplit(base_url.strip())
    if not parts.scheme or not parts.hostname:
        raise CoupaConfigError(f"cannot tell the Coupa instance of {base_url!r} (expected https://host)")
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{KEY_PREFIX}instance:{parts.scheme.lower()}://{parts.hostname.lower()}{port}"


@dataclass(frozen=True)
class SharedBudget:
    """A connection's choice to share its rate budget: the Redis holding it, a budget ``name`` (None: the Coupa
    instance's own), and this process's ``fallback_rate`` while Redis is away (None: a
    :data:`DEFAULT_FALLBACK_SHARE` of the budget). The fallback burst is the same share of the burst."""

    redis: RedisSettings
    name: str | None = None
    fallback_rate: float | None = None
    probe_interval: float = _PROBE_INTERVAL

    def __post_init__(self) -> None:
        if self.name is not None:
            budget_key("https://check.invalid", self.name)  # the name's own check
        if self.fallback_rate is not None and (finite_number(self.fallback_rate) or 0) <= 0:
            raise CoupaConfigError(
                f"rate_limit_fallback must be a positive number of requests per second, got {self.fallback_rate!r}"
            )
        if (finite_number(self.probe_interval) or 0) <= 0:
            raise CoupaConfigError(f"probe_interval must be a positive number of seconds, got {self.probe_interval!r}")

    def fallback(self, rate: float, burst: int) -> tuple[float, int]:
        """This process's (rate, burst) while Redis is away, for a budget of ``rate``/s and ``burst``."""
        share = self.fallback_rate if self.fallback_rate is not None else rate / DEFAULT_FALLBACK_SHARE
        return share, max(1, math.floor(burst * min(1.0, share / rate)))


class _Standing:
    """Whether to ask Redis or the local bucket, shared by the sync and async paths (no I/O).

    Shared until a Redis call fails; then local, with one caller at a time let through to Redis (a probe) every
    ``probe_interval`` seconds; the first Redis answer makes it shared again.

    The handovers keep the two budgets from overlapping in this process: the local share starts after the last
    slot this process booked in the shared budget (those requests are still to be sent), and on the way back the
    slots it booked locally and has not used yet are charged to the shared budget.
    """

    def __init__(self, key: str, probe_interval: float, clock: Callable[[], float]) -> None:
        self.key = key
        self.probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self.local_since: float | None = None
        self._next_probe = 0.0
        self._shared_until = 0.0
        self._local_until = 0.0
        #: Counts for reports and tests: slots booked in Redis, on the local bucket, and Redis failures.
        self.shared_grants = 0
        self.local_grants = 0
        self.failures = 0
        self.fallbacks = 0

    @property
    def shared(self) -> bool:
        return self.local_since is None

    def ask_redis(self) -> bool:
        with self._lock:
            if self.local_since is None:
                return True
            now = self._clock()
            if now < self._next_probe:
                return False
            self._next_probe = now + self.probe_interval  # this caller probes; the others stay local meanwhile
            return True

    def answered(self, wait: float, fallback_rate: float) -> int:
        """Count a slot booked in Redis ``wait`` seconds ahead; when this ends the local share, return how many
        local slots are still ahead (to charge to the shared budget)."""
        with self._lock:
            self.shared_grants += 1
            now = self._clock()
            self._shared_until = max(self._shared_until, now + wait)
            if self.local_since is None:
                return 0
            away = now - self.local_since
            self.local_since = None
            carry = math.ceil(max(0.0, self._local_until - now) * fallback_rate)
        log.info("Redis answers again: back to the shared Coupa rate budget %s after %.1f s on the local share",
                 self.key, away)  # fmt: skip
        return carry

    def failed(self, exc: BaseException, fallback_rate: float, start_local: Callable[[float], None]) -> None:
        """Count a failed Redis call. When it moves this process to its local share, ``start_local`` gets the
        seconds until the last slot booked in the shared budget; it runs under the lock, so no caller can reach
        the local share before it is set up (callers failing together at an outage would otherwise)."""
        with self._lock:
            self.failures += 1
            if self.local_since is not None:
                return
            self.local_since = now = self._clock()
            self._next_probe = now + self.probe_interval
            self.fallbacks += 1
            start_local(max(0.0, self._shared_until - now))
        first = (os.getpid(), self.key)
        with _WARNED_LOCK:
            warn = first not in _WARNED
            _WARNED.add(first)
        message = (
            "The shared Coupa rate budget %s is unavailable (%s: %s); this process uses its local share of "
            "%g requests/s and asks Redis again every %g s"
        )
        args = (self.key, type(exc).__name__, exc, fallback_rate, self.probe_interval)
        (log.warning if warn else log.info)(message, *args)

    def local(self, wait: float) -> None:
        with self._lock:
            self.local_grants += 1
            self._local_until = max(self._local_until, self._clock() + wait)


class SharedThrottle:
    """Books each request in a budget every process shares through Redis; a local share while Redis is away.

    The same interface as :class:`~airflow_provider_coupa_ihr.client.limiter.TokenBucket`, so a client can hold
    either: :meth:`reserve` (blocking, for sync clients and their threads) and :meth:`areserve` (asyncio, for the
    triggerer) return the seconds to sleep before sending. ``fallback_rate``/``fallback_burst`` are this process's
    share while Redis cannot be reached: the static division of the budget (see the README). Thread-safe;
    one instance per process and budget (:func:`shared_throttle`), so a process has one local share, not one per
    client.
    """

    def __init__(
        self,
        redis: RedisSettings,
        key: str,
        *,
        rate: float = RATE_LIMIT_PER_SECOND,
        burst: int = RATE_LIMIT_BURST,
        fallback_rate: float | None = None,
        fallback_burst: int | None = None,
        probe_interval: float = _PROBE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (finite_number(rate) or 0) <= 0:
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        if whole_number(burst, minimum=1) is None:
            raise ValueError(f"burst must be a whole number of 1 or more, got {burst!r}")
        if (finite_number(probe_interval) or 0) <= 0:
            raise ValueError(f"probe_interval must be a positive number of seconds, got {probe_interval!r}")
        self.settings = redis
        self.key = key
        self.rate = float(rate)
        self.burst = burst
        #: Whole microseconds per request, rounded up: a rate that does not divide evenly errs on the slow side.
        self._interval_us = math.ceil(1_000_000 / self.rate)
        self._clock = clock
        self.fallback = TokenBucket(
            fallback_rate if fallback_rate is not None else rate,
            fallback_burst if fallback_burst is not None else burst,
            clock=clock,
        )
        self._standing = _Standing(key, probe_interval, clock)
        self._pid = os.getpid()
        self._free: collections.deque[Any] = collections.deque()
        self._packed: Any = None
        self._local_delay = 0.0
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, collections.deque[Any]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return (
            f"SharedThrottle(key={self.key!r}, rate={self.rate:g}, burst={self.burst}, "
            f"fallback_rate={self.fallback.rate:g}, redis={self.settings.host}:{self.settings.port})"
        )

    # ------------------------------------------------------------------------------------------ state
    @property
    def shared(self) -> bool:
        """True while this process books in Redis; False while it uses its local share."""
        return self._standing.shared

    @property
    def stats(self) -> dict[str, int]:
        """Slots booked in Redis (``shared``) and locally (``local``), Redis failures, and times it fell back."""
        s = self._standing
        return {"shared": s.shared_grants, "local": s.local_grants, "failures": s.failures, "fallbacks": s.fallbacks}

    @property
    def _args(self) -> tuple[int, int, int]:
        return self._interval_us, self.burst, _KEEP_IDLE_MS

    def _command(self, connection: Any, cost: int) -> Any:
        """The packed EVALSHA for ``cost`` requests (packed once for the usual single request)."""
        if cost != 1:
            return connection.pack_command("EVALSHA", _SCRIPT_SHA, 1, self.key, *self._args, cost)
        if self._packed is None:
            self._packed = connection.pack_command("EVALSHA", _SCRIPT_SHA, 1, self.key, *self._args, 1)
        return self._packed

    # ------------------------------------------------------------------------------------------ the two budgets
    def _local(self) -> float:
        wait = self.fallback.reserve() + self._local_delay
        self._standing.local(wait)
        return wait

    def _fell_back(self, exc: Exception) -> float:
        """A Redis call failed: the local share, which starts empty after the slots this process booked in Redis.

        Empty, because the shared budget was in use, so Coupa's bucket is likely empty too: a local burst on top
        would be answered 429. Its first slot, one local interval after this process's last shared one, also
        leaves room for the other processes' last shared slots, which may lie a little later.
        """

        def start_local(ahead: float) -> None:
            bucket = TokenBucket(self.fallback.rate, self.fallback.burst, clock=self._clock)
            for _ in range(bucket.burst):
                bucket.reserve()
            self.fallback, self._local_delay = bucket, ahead

        self._standing.failed(exc, self.fallback.rate, start_local)
        return self._local()

    def _answered(self, wait_us: int) -> tuple[float, int]:
        """Redis booked a slot: its wait, and how many local slots to charge to the shared budget (on return)."""
        wait = wait_us / 1_000_000
        return wait, self._standing.answered(wait, self.fallback.rate)

    # ------------------------------------------------------------------------------------------ sync
    def _connection_class(self, asynchronous: bool) -> Any:
        redis = _redis_module()
        module = redis.asyncio if asynchronous else redis
        return module.SSLConnection if self.settings.ssl else module.Connection

    def _new_sync(self) -> Any:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return self._connection_class(False)(retry=Retry(NoBackoff(), 0), **self.settings.connection_kwargs())

    def _evalsha_sync(self, connection: Any, cost: int) -> int:
        command = self._command(connection, cost)
        connection.send_packed_command(command, check_health=False)
        try:
            return int(connection.read_response())
        except Exception as exc:
            if not _is_noscript(exc):
                raise
        # A new or restarted Redis has not seen the script yet: load it once, then ask again.
        connection.send_command("SCRIPT", "LOAD", GCRA_SCRIPT)
        connection.read_response()
        connection.send_packed_command(command, check_health=False)
        return int(connection.read_response())

    def _ask_sync(self, cost: int = 1) -> int:
        """One round trip on an idle connection of this process (or a new one).

        Each call holds a connection for its round trip and gives it back, so threads never share a socket and a
        process opens only as many as it has threads asking at once; the command is packed once. This costs the
        client about a third of the CPU of ``redis.Redis`` and its pool (``benchmarks/limiter_cost.py``). An idle
        connection that Redis closed meanwhile (a restart) is replaced once, so a restart alone is no outage.
        """
        if self._pid != os.getpid():  # a forked child must not write on its parent's sockets
            self._pid, self._free = os.getpid(), collections.deque()
        try:
            connection, reused = self._free.pop(), True
        except IndexError:
            connection, reused = self._new_sync(), False
        try:
            reply = self._evalsha_sync(connection, cost)
        except Exception as exc:
            connection.disconnect()
            if not (reused and _is_stale(exc)):
                raise
            connection = self._new_sync()
            try:
                reply = self._evalsha_sync(connection, cost)
            except BaseException:
                connection.disconnect()
                raise
        except BaseException:
            connection.disconnect()
            raise
        self._free.append(connection)
        return reply

    def reserve(self) -> float:
        """Book one request; the seconds to sleep before sending it. Blocks for one Redis round trip at most
        (bounded by the settings' timeout); never raises for Redis's sake."""
        if not self._standing.ask_redis():
            return self._local()
        try:
            wait, carry = self._answered(self._ask_sync())
        except CoupaConfigError:
            raise  # the extra is missing: a configuration error, not an outage
        except Exception as exc:  # any Redis trouble: the budget must never fail a request
            return self._fell_back(exc)
        if carry:
            with contextlib.suppress(Exception):  # a charge that fails only costs precision
                self._ask_sync(carry)
        return wait

    def close(self) -> None:
        """Close this process's idle sync connections (the async ones close with :meth:`aclose` in their loop)."""
        while True:
            try:
                self._free.pop().disconnect()
            except IndexError:
                return

    # ------------------------------------------------------------------------------------------ asyncio
    def _new_async(self) -> Any:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return self._connection_class(True)(retry=Retry(NoBackoff(), 0), **self.settings.connection_kwargs())

    async def _evalsha_async(self, connection: Any, cost: int) -> int:
        command = self._command(connection, cost)
        await connection.send_packed_command(command, check_health=False)
        try:
            return int(await connection.read_response())
        except Exception as exc:
            if not _is_noscript(exc):
                raise
        await connection.send_command("SCRIPT", "LOAD", GCRA_SCRIPT)
        await connection.read_response()
        await connection.send_packed_command(command, check_health=False)
        return int(await connection.read_response())

    async def _ask_async(self, cost: int = 1) -> int:
        """:meth:`_ask_sync` on ``redis.asyncio``, whose connections belong to the event loop that opened them."""
        loop = asyncio.get_running_loop()
        free = self._async.get(loop)
        if free is None:
            free = self._async[loop] = collections.deque()
        try:
            connection, reused = free.pop(), True
        except IndexError:
            connection, reused = self._new_async(), False
        try:
            reply = await self._evalsha_async(connection, cost)
        except Exception as exc:
            await connection.disconnect()
            if not (reused and _is_stale(exc)):
                raise
            connection = self._new_async()
            try:
                reply = await self._evalsha_async(connection, cost)
            except BaseException:
                await connection.disconnect()
                raise
        except BaseException:  # cancelled mid-call: the answer may still arrive, so the socket is not reusable
            await asyncio.shield(connection.disconnect())
            raise
        free.append(connection)
        return reply

    async def areserve(self) -> float:
        """:meth:`reserve` for asyncio: the Redis round trip does not block the event loop."""
        if not self._standing.ask_redis():
            return self._local()
        try:
            wait, carry = self._answered(await self._ask_async())
        except CoupaConfigError:
            raise
        except Exception as exc:
            return self._fell_back(exc)
        if carry:
            with contextlib.suppress(Exception):
                await self._ask_async(carry)
        return wait

    async def aclose(self) -> None:
        """Close the running loop's idle async connections."""
        free = self._async.pop(asyncio.get_running_loop(), None)
        while free:
            await free.pop().disconnect()


def _is_noscript(exc: Exception) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(exc, NoScriptError)


def _is_stale(exc: Exception) -> bool:
    """A connection error that a fresh connection may not have (not a timeout: that would double the bound)."""
    from redis.exceptions import ConnectionError, TimeoutError

    return isinstance(exc, (ConnectionError, ConnectionResetError, BrokenPipeError)) and not isinstance(
        exc, TimeoutError
    )


_THROTTLES: dict[tuple[RedisSettings, str, float, int, float, int, float], SharedThrottle] = {}
_THROTTLES_LOCK = threading.Lock()


def shared_throttle(
    redis: RedisSettings,
    key: str,
    *,
    rate: float = RATE_LIMIT_PER_SECOND,
    burst: int = RATE_LIMIT_BURST,
    fallback_rate: float,
    fallback_burst: int,
    probe_interval: float = _PROBE_INTERVAL,
) -> SharedThrottle:
    """The process's one :class:`SharedThrottle` for a budget and its settings, so every client and thread of a
    process shares one connection pool and, while Redis is away, one local share (not one share per client)."""
    index = (redis, key, float(rate), burst, float(fallback_rate), fallback_burst, float(probe_interval))
    with _THROTTLES_LOCK:
        throttle = _THROTTLES.get(index)
        if throttle is None:
            throttle = _THROTTLES[index] = SharedThrottle(
                redis,
                key,
                rate=rate,
                burst=burst,
                fallback_rate=fallback_rate,
                fallback_burst=fallback_burst,
                probe_interval=probe_interval,
            )
        return throttle


def budget_throttle(budget: SharedBudget, base_url: str, rate: float, burst: int) -> SharedThrottle:
    """The process's :class:`SharedThrottle` for a client of ``base_url`` whose connection shares its budget."""
    fallback_rate, fallback_burst = budget.fallback(rate, burst)
    return shared_throttle(
        budget.redis,
        budget_key(base_url, budget.name),
        rate=rate,
        burst=burst,
        fallback_rate=fallback_rate,
        fallback_burst=fallback_burst,
        probe_interval=budget.probe_interval,
    )
