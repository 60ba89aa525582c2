"""The process-wide token cache: keys that never hold a secret, renewal, and one fetch however many ask at once."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.auth import COUPA_TOKEN_LIFETIME, Token
from airflow_provider_coupa_ihr.client.errors import CoupaAuthError
from airflow_provider_coupa_ihr.client.tokens import TOKEN_CACHE, TokenCache, TokenKey

SECRET = "s3cr3t-client-secret"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.payload.signature"
URL = "https://acme.coupahost.com/oauth2/token"
SCOPES = "core.integration.read core.integration.write"


class FakeClock:
    def __init__(self, start: float = 500.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _token(value: str = TOKEN, now: float = 500.0, expires_in: float = COUPA_TOKEN_LIFETIME) -> Token:
    return Token.issued(value, expires_in, now)


def _key(secret: str = SECRET, scopes: str = SCOPES) -> TokenKey:
    return TokenKey.for_client(URL, "client-1", secret, scopes)


def _cached(cache: TokenCache, key: TokenKey) -> Token | None:
    """The fresh token the cache holds for ``key``, if any, read without fetching."""
    with cache._lock:
        return cache._fresh(key)


# --------------------------------------------------------------------------------------------------- TokenKey
def test_token_key_never_holds_the_secret_and_follows_rotation() -> None:
    key = _key()
    assert SECRET not in repr(key)
    assert SECRET not in "".join(key)
    assert key.token_url == URL
    assert key.client_id == "client-1"
    assert key.scope == "core.integration.read core.integration.write"
    assert len(key.secret_digest) == 64
    assert _key(secret="rotated") != key
    assert _key(scopes="core.integration.write core.integration.read core.integration.read") == key
    assert key == TokenKey.for_client(URL, "client-1", SECRET, ["core.integration.write", "core.integration.read"])


# ------------------------------------------------------------------------------------------------- TokenCache
def test_cache_serves_a_fresh_token_without_fetching_again() -> None:
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    calls: list[int] = []

    def fetch() -> Token:
        calls.append(1)
        return _token(now=clock())

    first = cache.get_or_fetch(_key(), fetch)
    clock.advance(3600)
    assert cache.get_or_fetch(_key(), fetch) is first
    assert calls == [1]
    assert cache.fetches == 1
    assert len(cache) == 1
    assert repr(cache) == "TokenCache(entries=1, fetches=1)"


def test_cache_renews_after_the_renewal_point_and_drops_expired_tokens() -> None:
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    old = cache.get_or_fetch(_key(), lambda: _token("old", now=clock()))
    clock.advance(72000)  # past 20 h: stale but not expired
    assert _cached(cache, _key()) is None
    assert len(cache) == 1
    new = cache.get_or_fetch(_key(), lambda: _token("new", now=clock()))
    assert new.value == "new"
    assert new is not old
    clock.advance(COUPA_TOKEN_LIFETIME)
    assert _cached(cache, _key()) is None
    assert len(cache) == 0


def test_cache_keys_apart_rotated_secrets_and_other_scopes() -> None:
    cache = TokenCache(clock=FakeClock())
    a = cache.get_or_fetch(_key(), lambda: _token("a"))
    b = cache.get_or_fetch(_key(secret="rotated"), lambda: _token("b"))
    c = cache.get_or_fetch(_key(scopes="core.integration.read"), lambda: _token("c"))
    assert {a.value, b.value, c.value} == {"a", "b", "c"}
    assert len(cache) == 3


def test_store_keeps_the_fresher_token() -> None:
    cache = TokenCache(clock=FakeClock())
    newer = _token("newer", now=600.0)
    older = _token("older", now=500.0)
    assert cache.store(_key(), newer) is newer
    assert cache.store(_key(), older) is newer
    assert _cached(cache, _key()) is newer
    newest = _token("newest", now=700.0)
    assert cache.store(_key(), newest) is newest


def test_invalidate_drops_only_the_token_that_failed() -> None:
    cache = TokenCache(clock=FakeClock())
    stale = cache.get_or_fetch(_key(), lambda: _token("stale"))
    assert cache.invalidate(_key(), stale)
    fresh = cache.get_or_fetch(_key(), lambda: _token("fresh"))
    # A slower thread whose request with the stale token just got a 401 must not drop the fresh one.
    assert not cache.invalidate(_key(), stale)
    assert _cached(cache, _key()) is fresh
    assert not cache.invalidate(_key(secret="other"), fresh)
    cache.clear()
    assert _cached(cache, _key()) is None


def test_twenty_threads_asking_at_once_cause_one_fetch() -> None:
    cache = TokenCache()
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def fetch() -> Token:
        calls.append(1)
        started.set()
        release.wait(5)
        return _token(now=time.monotonic())

    results: list[Token] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def ask() -> None:
        barrier.wait(5)
        token = cache.get_or_fetch(_key(), fetch)
        with lock:
            results.append(token)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.05)  # let the other nineteen pile up behind the fetch
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [1]
    assert len(results) == 20
    assert all(r is results[0] for r in results)
    assert cache.fetches == 1


def test_a_failed_fetch_fails_every_waiter_once_then_the_next_caller_retries() -> None:
    cache = TokenCache()
    release = threading.Event()
    calls: list[int] = []

    def failing() -> Token:
        calls.append(1)
        release.wait(5)
        raise CoupaAuthError(["invalid_client"], status=401)

    errors: list[BaseException] = []
    lock = threading.Lock()

    def ask() -> None:
        try:
            cache.get_or_fetch(_key(), failing)
        except CoupaAuthError as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    release.set()
    for t in threads:
        t.join(5)
    assert calls == [1]
    assert len(errors) == 10
    assert _cached(cache, _key()) is None
    # Nothing is remembered about the failure: the next caller fetches again.
    assert cache.get_or_fetch(_key(), lambda: _token("ok")).value == "ok"


def test_invalidation_race_two_threads_refresh_once() -> None:
    """Both threads got a 401 with the same token; only one new token is fetched and both use it."""
    cache = TokenCache()
    stale = cache.get_or_fetch(_key(), lambda: _token("stale", now=time.monotonic()))
    calls: list[str] = []

    def fetch() -> Token:
        calls.append("fetch")
        time.sleep(0.02)
        return _token(f"fresh-{len(calls)}", now=time.monotonic())

    barrier = threading.Barrier(2)
    got: list[Token] = []

    def on_401() -> None:
        barrier.wait(5)
        cache.invalidate(_key(), stale)
        got.append(cache.get_or_fetch(_key(), fetch))

    threads = [threading.Thread(target=on_401) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(got) == 2
    assert got[0].value == got[1].value != "stale"
    # Whoever comes second either waits on the first one's fetch or finds its token (and its invalidate of
    # the stale token leaves the fresh one alone): never a second fetch.
    assert calls == ["fetch"]
    assert _cached(cache, _key()) is not None


# ------------------------------------------------------------------------------------------------- async cache
def test_async_callers_share_one_fetch() -> None:
    cache = TokenCache()
    calls: list[int] = []

    async def fetch() -> Token:
        calls.append(1)
        await asyncio.sleep(0.01)
        return _token(now=time.monotonic())

    async def main() -> list[Token]:
        return await asyncio.gather(*(cache.aget_or_fetch(_key(), fetch) for _ in range(20)))

    tokens = asyncio.run(main())
    assert calls == [1]
    assert all(t is tokens[0] for t in tokens)
    # Sync callers see the same entry.
    assert cache.get_or_fetch(_key(), lambda: pytest.fail("fetched again")) is tokens[0]
    assert asyncio.run(cache.aget_or_fetch(_key(), fetch)) is tokens[0]


def test_async_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache = TokenCache()
    calls: list[int] = []

    async def fetch() -> Token:
        calls.append(1)
        await asyncio.sleep(0.01)
        raise CoupaAuthError(["invalid_client"], status=401)

    async def main() -> list[Any]:
        return await asyncio.gather(*(cache.aget_or_fetch(_key(), fetch) for _ in range(5)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert calls == [1]
    assert all(isinstance(o, CoupaAuthError) for o in outcomes)
    assert _cached(cache, _key()) is None


def test_async_lone_failure_logs_no_unretrieved_future(caplog: pytest.LogCaptureFixture) -> None:
    cache = TokenCache()

    async def fetch() -> Token:
        raise CoupaAuthError(["nope"], status=401)

    async def main() -> None:
        with pytest.raises(CoupaAuthError):
            await cache.aget_or_fetch(_key(), fetch)

    asyncio.run(main())
    import gc

    gc.collect()
    assert "never retrieved" not in caplog.text


def test_async_waiter_takes_over_when_the_fetching_task_is_cancelled() -> None:
    cache = TokenCache()
    calls: list[str] = []

    async def slow() -> Token:
        calls.append("slow")
        await asyncio.sleep(10)
        raise AssertionError("unreachable")  # pragma: no cover

    async def quick() -> Token:
        calls.append("quick")
        return _token("quick", now=time.monotonic())

    async def main() -> Token:
        leader = asyncio.create_task(cache.aget_or_fetch(_key(), slow))
        await asyncio.sleep(0)  # the leader starts its fetch
        waiter = asyncio.create_task(cache.aget_or_fetch(_key(), quick))
        await asyncio.sleep(0)  # the waiter waits on the leader's flight
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await waiter

    token = asyncio.run(main())
    assert token.value == "quick"
    assert calls == ["slow", "quick"]


def test_async_waiter_cancelled_does_not_cancel_the_fetch() -> None:
    cache = TokenCache()

    async def fetch() -> Token:
        await asyncio.sleep(0.02)
        return _token("shared", now=time.monotonic())

    async def main() -> Token:
        leader = asyncio.create_task(cache.aget_or_fetch(_key(), fetch))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(cache.aget_or_fetch(_key(), fetch))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return await leader

    assert asyncio.run(main()).value == "shared"


def test_module_level_cache_exists_and_every_client_uses_it_by_default() -> None:
    from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

    assert isinstance(TOKEN_CACHE, TokenCache)
    assert CoupaClient.__init__.__kwdefaults__["token_cache"] is TOKEN_CACHE
    assert AsyncCoupaClient.__init__.__kwdefaults__["token_cache"] is TOKEN_CACHE
