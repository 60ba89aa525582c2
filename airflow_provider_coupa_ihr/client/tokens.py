"""One token per process for the same instance, client, scopes and secret: the process-wide token cache.

Why: an Airflow worker runs many tasks (and a triggerer many triggers) in one process, and every hook would
otherwise fetch its own token. Coupa's tokens live 24 hours; fetching one per task is slow, adds load to Coupa's
token endpoint, and can trip its rate limit. The cache hands the same token to every client with the same token
URL, client id, scopes and secret, and fetches once however many threads or tasks ask at the same moment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from airflow_provider_coupa_ihr.client.auth import Token, normalise_scopes

if TYPE_CHECKING:
    import asyncio

    from airflow_provider_coupa_ihr.client.config import ClientConfig

__all__ = ["TOKEN_CACHE", "TokenCache", "TokenKey"]

#: Keys the secret's digest so the cache key (which may be logged or shown in a debugger) cannot be used to
#: test guesses of the secret offline; per process, because the cache is.
_DIGEST_KEY = secrets.token_bytes(32)


class TokenKey(NamedTuple):
    """What makes two clients share a token: same endpoint, client, scopes and secret.

    The secret enters only as a keyed SHA-256 digest (HMAC with a per-process random key): a rotated secret
    gets a new entry, and nothing in the key reveals the secret or lets it be guessed offline.
    """

    token_url: str
    client_id: str
    scope: str
    secret_digest: str

    @classmethod
    def for_config(cls, config: ClientConfig) -> TokenKey:
        """The key for a config's OAuth credentials (a config with an API key has no token to key)."""
        if config.client_id is None or config.client_secret is None:
            raise ValueError("only OAuth client credentials have a token key")
        return cls.for_client(config.token_url, config.client_id, config.client_secret, config.scopes)

    @classmethod
    def for_client(cls, token_url: str, client_id: str, client_secret: str, scopes: str | Iterable[str]) -> TokenKey:
        """The key for these credentials; scopes in any order or repetition give the same key."""
        digest = hmac.new(_DIGEST_KEY, client_secret.encode(), hashlib.sha256).hexdigest()
        return cls(token_url, client_id, " ".join(sorted(normalise_scopes(scopes))), digest)


class _Flight:
    """One fetch in progress; threads that ask meanwhile wait for its outcome instead of fetching too."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: BaseException | None = None


class _LeaderCancelled(Exception):
    """The async task fetching for others was cancelled: the waiters try again themselves."""


class TokenCache:
    """Fresh tokens by :class:`TokenKey`, fetched once however many threads or tasks ask at the same moment.

    - :meth:`get_or_fetch` (threads) and :meth:`aget_or_fetch` (asyncio) return a fresh cached token or run
      ``fetch`` once per key: callers arriving during a fetch wait for it and share its token, or its error
      (so twenty tasks facing a broken secret make one failed request, not twenty rounds of retries).
    - :meth:`invalidate` after a 401 drops the token only if it is still the one that failed, so a thread
      holding a stale token cannot throw away the fresh one another thread just fetched.
    - :meth:`store` keeps the fresher of two tokens, for callers with their own flow.

    Sync and async callers share the entries. They do not share flights: a thread and a coroutine asking in
    the same instant may fetch twice, which is harmless (:meth:`store` keeps the fresher token).
    ``clock`` must be the one the tokens' times come from (``time.monotonic`` by default).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, Token] = {}
        self._flights: dict[TokenKey, _Flight] = {}
        self._async_flights: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[TokenKey, asyncio.Future[Token]]
        ] = weakref.WeakKeyDictionary()
        #: How many times ``fetch`` was called: for tests and for a debug log line.
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._tokens)}, fetches={self.fetches})"

    def __len__(self) -> int:
        return len(self._tokens)

    def _fresh(self, key: TokenKey) -> Token | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        now = self._clock()
        if token.is_fresh(now):
            return token
        if token.is_expired(now):
            del self._tokens[key]
        return None

    def store(self, key: TokenKey, token: Token) -> Token:
        """Cache ``token`` unless a fresher one is there already; returns the one kept."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and current.renew_at > token.renew_at:
                return current
            self._tokens[key] = token
            return token

    def invalidate(self, key: TokenKey, token: Token) -> bool:
        """Forget ``token`` (Coupa refused it) if it is still the cached one; True when it was dropped."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and current.value == token.value:
                del self._tokens[key]
                return True
            return False

    def clear(self) -> None:
        """Forget every token (tests; or after rotating credentials everywhere at once)."""
        with self._lock:
            self._tokens.clear()

    def get_or_fetch(self, key: TokenKey, fetch: Callable[[], Token]) -> Token:
        """A fresh token for ``key``; runs ``fetch`` (which does the HTTP call) only if none is cached."""
        with self._lock:
            token = self._fresh(key)
            if token is not None:
                return token
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.fetches += 1
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.token is not None
            return flight.token
        try:
            flight.token = self.store(key, fetch())
            return flight.token
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    async def aget_or_fetch(self, key: TokenKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        """:meth:`get_or_fetch` for coroutines: one ``await fetch()`` per key and event loop at a time.

        Flights are per event loop because asyncio futures belong to one loop; a waiter cancelled while
        waiting does not cancel the fetch, and if the fetching task itself is cancelled a waiter takes over.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                token = self._fresh(key)
                if token is not None:
                    return token
                flights = self._async_flights.setdefault(loop, {})
                future = flights.get(key)
                leader = future is None
                if future is None:
                    future = flights[key] = loop.create_future()
                    self.fetches += 1
            if not leader:
                try:
                    return await asyncio.shield(future)
                except _LeaderCancelled:
                    continue
            try:
                token = self.store(key, await fetch())
            except asyncio.CancelledError:
                _fail(future, _LeaderCancelled())
                raise
            except BaseException as exc:
                _fail(future, exc)
                raise
            else:
                future.set_result(token)
                return token
            finally:
                with self._lock:
                    if flights.get(key) is future:
                        del flights[key]


def _fail(future: asyncio.Future[Token], error: BaseException) -> None:
    future.set_exception(error)
    future.exception()  # mark it retrieved: with no waiter, asyncio would log "never retrieved" at collection


#: The process-wide cache every client uses unless given another.
TOKEN_CACHE = TokenCache()
