"""Tokens: the request form, parsing Coupa's answers, renewal timing, and the single-flight process-wide cache."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client import auth
from airflow_provider_coupa_ihr.client.auth import (
    API_KEY_HEADER,
    COUPA_TOKEN_LIFETIME,
    TOKEN_CACHE,
    Token,
    TokenCache,
    TokenKey,
    api_key_headers,
    normalise_scopes,
    parse_token_response,
    token_request_form,
)
from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaConfigError,
    CoupaError,
    CoupaNotFoundError,
    CoupaRateLimitError,
    CoupaServerError,
)

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


def _answer(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _key(secret: str = SECRET, scopes: str = SCOPES) -> TokenKey:
    return TokenKey.for_client(URL, "client-1", secret, scopes)


def _token(value: str = TOKEN, now: float = 500.0, expires_in: float = COUPA_TOKEN_LIFETIME) -> Token:
    return Token.issued(value, expires_in, now)


# ------------------------------------------------------------------------------------------------------ Token
def test_coupa_token_is_renewed_after_20_of_its_24_hours() -> None:
    token = Token.issued(TOKEN, 86399, now=1000.0, scope="core.integration.read")
    assert token.obtained_at == 1000.0
    assert token.expires_at == 1000.0 + 86399
    assert token.renew_at == pytest.approx(1000.0 + 86399 * 20 / 24)
    assert token.is_fresh(1000.0 + 71998)
    assert not token.is_fresh(1000.0 + 72000)
    assert not token.is_expired(1000.0 + 86398)
    assert token.is_expired(1000.0 + 86399)
    assert token.age(1010.0) == 10.0
    assert token.headers() == {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(("lifetime", "renew_after"), [(3600, 3000.0), (120, 60.0), (10, 5.0), (0.5, 0.25)])
def test_short_lived_tokens_keep_a_margin_before_expiry(lifetime: float, renew_after: float) -> None:
    token = Token.issued(TOKEN, lifetime, now=0.0)
    assert token.renew_at == pytest.approx(renew_after)
    assert 0.0 < token.renew_at < token.expires_at


@pytest.mark.parametrize("expires_in", [0, -5, float("inf"), float("nan"), "3600"])
def test_token_lifetime_must_be_positive(expires_in: Any) -> None:
    with pytest.raises(ValueError, match="expires_in must be a positive number"):
        Token.issued(TOKEN, expires_in, now=0.0)


def test_token_repr_and_str_hide_the_value() -> None:
    token = Token.issued(TOKEN, 100, now=0.0, scope="core.integration.read")
    for text in (repr(token), str(token), f"{token}", repr([token]), repr({"t": token})):
        assert TOKEN not in text
        assert "value='***'" in text
    assert "scope='core.integration.read'" in repr(token)


def test_tokens_are_frozen_values() -> None:
    token = _token()
    with pytest.raises(AttributeError):
        token.value = "x"  # type: ignore[misc]
    assert token == _token()


# ------------------------------------------------------------------------------------------ request and scopes
def test_token_request_form_is_the_client_credentials_grant() -> None:
    form = token_request_form(" client-1 ", SECRET, ["core.integration.read", "core.integration.write"])
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": SECRET,
        "scope": "core.integration.read core.integration.write",
    }


def test_scopes_from_a_string_or_a_list_lose_repeats_and_keep_order() -> None:
    assert normalise_scopes(" b  a b ") == ("b", "a")
    assert normalise_scopes(("a", " b ", "a")) == ("a", "b")


@pytest.mark.parametrize(
    ("scopes", "message"),
    [("", "at least one scope"), ([], "at least one scope"), (["a b"], "hold spaces"), ([""], "cannot be empty")],
)
def test_scopes_must_be_names(scopes: Any, message: str) -> None:
    with pytest.raises(CoupaConfigError, match=message):
        normalise_scopes(scopes)


@pytest.mark.parametrize(
    ("client_id", "secret", "message"),
    [
        ("", SECRET, "client id is empty"),
        ("  ", SECRET, "client id is empty"),
        (None, SECRET, "client id is empty"),
        ("c", "", "client secret is empty"),
        ("c", None, "client secret is empty"),
        ("c", SECRET + "\n", "starts or ends with whitespace"),
    ],
)
def test_token_request_form_refuses_missing_credentials_without_echoing_them(
    client_id: Any, secret: Any, message: str
) -> None:
    with pytest.raises(CoupaConfigError, match=message) as info:
        token_request_form(client_id, secret, SCOPES)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_api_key_header() -> None:
    key = "a" * 40
    assert api_key_headers(key) == {API_KEY_HEADER: key}
    assert API_KEY_HEADER == "X-COUPA-API-KEY"


@pytest.mark.parametrize("key", ["", "   ", "abc\r\nX-Evil: 1", "abc def", None])
def test_api_key_refuses_what_would_break_a_header(key: Any) -> None:
    with pytest.raises(CoupaConfigError) as info:
        api_key_headers(key)
    if key:
        assert key not in str(info.value)


# ------------------------------------------------------------------------------------------ parse_token_response
def test_parse_a_coupa_token_answer_and_mask_it_at_once() -> None:
    masked: list[str] = []
    body = _answer(access_token=TOKEN, token_type="bearer", expires_in=86399, scope=SCOPES)
    token = parse_token_response(200, body, now=10.0, on_secret=masked.append)
    assert masked == [TOKEN]
    assert token.value == TOKEN
    assert token.expires_at == 10.0 + 86399
    assert token.scope == SCOPES


def test_parse_accepts_text_bodies_numeric_strings_and_no_token_type() -> None:
    token = parse_token_response(200, json.dumps({"access_token": TOKEN, "expires_in": "3600"}), now=0.0)
    assert token.expires_at == 3600.0
    assert token.scope is None


def test_parse_assumes_coupas_lifetime_when_expires_in_is_missing() -> None:
    token = parse_token_response(201, _answer(access_token=TOKEN, token_type="Bearer", scope=5), now=0.0)
    assert token.expires_at == COUPA_TOKEN_LIFETIME
    assert token.scope is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_answer(token_type="bearer"), "the answer carries no access_token"),
        (_answer(access_token="  "), "the answer carries no access_token"),
        (_answer(access_token=5), "the answer carries no access_token"),
        (_answer(access_token=TOKEN, token_type="mac"), "only bearer tokens are supported"),
        (_answer(access_token=TOKEN, expires_in=0), "expires_in is '0', not a positive number"),
        (_answer(access_token=TOKEN, expires_in="soon"), "expires_in is 'soon'"),
        (_answer(access_token=TOKEN, expires_in=None), "expires_in is 'None'"),
        (_answer(access_token=TOKEN, expires_in=True), "expires_in is 'True'"),
        (_answer(access_token=TOKEN, expires_in=[1]), "expires_in is '[1]'"),
        (b"<html><title>Coupa login</title></html>", "the answer is not a JSON object"),
        (b"[1, 2]", "the answer is not a JSON object"),
    ],
)
def test_parse_refuses_answers_that_are_not_usable_tokens(body: bytes, fragment: str) -> None:
    with pytest.raises(CoupaAuthError) as info:
        parse_token_response(200, body, now=0.0)
    err = info.value
    assert fragment in str(err)
    assert err.status == 200
    assert err.method == "POST"
    assert err.path == "/oauth2/token"
    assert err.hint is not None
    assert "/oauth2/access_tokens" in err.hint
    assert TOKEN not in str(err)
    assert TOKEN not in repr(err)


@pytest.mark.parametrize(
    ("status", "error", "hint_fragment"),
    [
        (401, "invalid_client", "compare the connection's login and password"),
        (400, "invalid_scope", "not granted every scope"),
        (400, "unauthorized_client", "'Client credentials'"),
        (400, "unsupported_grant_type", "check the token path"),
        (400, "invalid_request", "malformed"),
        (400, "something_new", "malformed"),
        (401, "", "compare the connection's login and password"),
        (403, "access_denied", "inactive or not allowed"),
        (200, "invalid_client", "compare the connection's login and password"),
    ],
)
def test_oauth_refusals_become_auth_errors_with_a_hint_per_code(status: int, error: str, hint_fragment: str) -> None:
    body = _answer(error=error, error_description="Client authentication failed") if error else b""
    with pytest.raises(CoupaAuthError) as info:
        parse_token_response(status, body, now=0.0, path="/oauth2/token", secrets=[SECRET])
    err = info.value
    assert err.status == status
    assert err.hint is not None
    assert hint_fragment in err.hint
    assert not err.retryable
    if error:
        assert err.messages == [f"{error}: Client authentication failed"]


def test_oauth_refusal_redacts_an_echoed_secret() -> None:
    body = _answer(error="invalid_client", error_description=f"bad secret {SECRET}")
    with pytest.raises(CoupaAuthError) as info:
        parse_token_response(401, body, now=0.0, secrets=[SECRET, ""])
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert info.value.messages == ["invalid_client: bad secret ***"]


def test_wrong_token_path_says_so() -> None:
    with pytest.raises(CoupaNotFoundError) as info:
        parse_token_response(404, b"Not Found", now=0.0, path="/oauth2/tokens")
    assert "no token endpoint at /oauth2/tokens" in str(info.value)
    assert info.value.hint is not None
    assert "/oauth2/access_tokens" in info.value.hint


def test_throttled_or_failing_token_endpoint_gives_retryable_errors() -> None:
    with pytest.raises(CoupaRateLimitError) as limited:
        parse_token_response(429, b"", now=0.0, retry_after=2.0)
    assert limited.value.retry_after == 2.0
    assert limited.value.retryable
    with pytest.raises(CoupaServerError) as failed:
        parse_token_response(503, f"down {SECRET}".encode(), now=0.0, content_type="text/plain", secrets=[SECRET])
    assert failed.value.retryable
    assert failed.value.messages == ["down ***"]


def test_no_secret_in_any_error_from_the_token_endpoint() -> None:
    for status in (200, 400, 401, 403, 404, 418, 429, 500):
        body = _answer(error="invalid_client", error_description=SECRET, access_token=TOKEN)
        with pytest.raises(CoupaError) as info:
            parse_token_response(status, body, now=0.0, secrets=[SECRET])
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)
        assert TOKEN not in str(info.value)


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
    assert cache.now() == clock()
    assert repr(cache) == "TokenCache(entries=1, fetches=1)"


def test_cache_renews_after_the_renewal_point_and_drops_expired_tokens() -> None:
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    old = cache.get_or_fetch(_key(), lambda: _token("old", now=clock()))
    clock.advance(72000)  # past 20 h: stale but not expired
    assert cache.peek(_key()) is None
    assert len(cache) == 1
    new = cache.get_or_fetch(_key(), lambda: _token("new", now=clock()))
    assert new.value == "new"
    assert new is not old
    clock.advance(COUPA_TOKEN_LIFETIME)
    assert cache.peek(_key()) is None
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
    assert cache.peek(_key()) is newer
    newest = _token("newest", now=700.0)
    assert cache.store(_key(), newest) is newest


def test_invalidate_drops_only_the_token_that_failed() -> None:
    cache = TokenCache(clock=FakeClock())
    stale = cache.get_or_fetch(_key(), lambda: _token("stale"))
    assert cache.invalidate(_key(), stale)
    fresh = cache.get_or_fetch(_key(), lambda: _token("fresh"))
    # A slower thread whose request with the stale token just got a 401 must not drop the fresh one.
    assert not cache.invalidate(_key(), stale)
    assert cache.peek(_key()) is fresh
    assert not cache.invalidate(_key(secret="other"), fresh)
    cache.clear()
    assert cache.peek(_key()) is None


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
    assert cache.peek(_key()) is None
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
    assert cache.peek(_key()) is not None


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
    assert cache.peek(_key()) is None


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


def test_module_level_cache_exists() -> None:
    assert isinstance(TOKEN_CACHE, TokenCache)
    assert auth.TOKEN_CACHE is TOKEN_CACHE
