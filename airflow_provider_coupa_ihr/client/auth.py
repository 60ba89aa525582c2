"""Coupa credentials without I/O: the token request, the token's life, and one process-wide token cache.

Why a process-wide cache: an Airflow worker runs many tasks (and a triggerer many triggers) in one process, and
every hook would otherwise fetch its own token. Coupa's tokens live 24 hours; fetching one per task is slow,
adds load to Coupa's token endpoint, and can trip its rate limit. The cache hands the same token to every
client with the same token URL, client id, scopes and secret.

Secrets: a token never appears in a ``repr``, ``str`` or exception here. The moment a token is parsed,
:func:`parse_token_response` calls ``on_secret`` with it; the hook passes Airflow's ``mask_secret`` so the
token is masked in task logs from then on, even if some other library prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaConfigError,
    CoupaNotFoundError,
    error_from_response,
    parse_error_messages,
    redact,
)

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "API_KEY_HEADER",
    "COUPA_TOKEN_LIFETIME",
    "MIN_RENEW_MARGIN",
    "RENEW_FRACTION",
    "TOKEN_CACHE",
    "Token",
    "TokenCache",
    "TokenKey",
    "api_key_headers",
    "normalise_scopes",
    "parse_token_response",
    "token_request_form",
]

#: What Coupa answers in ``expires_in``: 24 hours less a second.
COUPA_TOKEN_LIFETIME = 86399
#: Renew after this share of the lifetime: Coupa advises renewing every 20 hours of the 24.
RENEW_FRACTION = 20 / 24
#: Renew at least this long before expiry (or half the lifetime, for very short-lived tokens), so a request
#: started just before the renewal point cannot reach Coupa after the token died.
MIN_RENEW_MARGIN = 60.0
#: The legacy API key header (closed to new customers since R32, unsupported since R35).
API_KEY_HEADER = "X-COUPA-API-KEY"

#: Keys the secret's digest so the cache key (which may be logged or shown in a debugger) cannot be used to
#: test guesses of the secret offline; per process, because the cache is.
_DIGEST_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Token:
    """A bearer token and its life, on the monotonic clock (``time.monotonic``) the cache uses.

    ``renew_at`` is when to fetch a new one (before expiry: see :data:`RENEW_FRACTION`); ``expires_at`` is when
    Coupa stops accepting it; ``obtained_at`` lets a 401 on a seconds-old token be recognised as Coupa not
    having caught up yet (see ``RetryPolicy.token_settle``). ``repr`` and ``str`` never show the value.
    """

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float
    renew_at: float
    scope: str | None = None

    @classmethod
    def issued(cls, value: str, expires_in: float, now: float, scope: str | None = None) -> Token:
        """A token issued at ``now`` for ``expires_in`` seconds, with its renewal point worked out."""
        if not (isinstance(expires_in, (int, float)) and math.isfinite(expires_in) and expires_in > 0):
            raise ValueError(f"expires_in must be a positive number of seconds, got {expires_in!r}")
        margin = min(MIN_RENEW_MARGIN, expires_in / 2)
        renew_after = min(expires_in * RENEW_FRACTION, expires_in - margin)
        return cls(value, obtained_at=now, expires_at=now + expires_in, renew_at=now + renew_after, scope=scope)

    def __repr__(self) -> str:
        return (
            f"Token(value='***', obtained_at={self.obtained_at!r}, expires_at={self.expires_at!r}, "
            f"renew_at={self.renew_at!r}, scope={self.scope!r})"
        )

    __str__ = __repr__

    def is_fresh(self, now: float) -> bool:
        """Good to hand out: not yet at its renewal point."""
        return now < self.renew_at

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at

    def age(self, now: float) -> float:
        """Seconds since issue: what ``RetryState.after_response(token_age=...)`` wants."""
        return now - self.obtained_at

    def headers(self) -> dict[str, str]:
        """The request header that carries this token."""
        return {"Authorization": f"Bearer {self.value}"}


def normalise_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes as a tuple in the caller's order without repeats; a string is split on whitespace."""
    items = scopes.split() if isinstance(scopes, str) else [str(s).strip() for s in scopes]
    out: list[str] = []
    for scope in items:
        if not scope or any(ch.isspace() for ch in scope):
            raise CoupaConfigError(f"scope names cannot be empty or hold spaces, got {scope!r}")
        if scope not in out:
            out.append(scope)
    if not out:
        raise CoupaConfigError("at least one scope is needed, e.g. core.integration.read")
    return tuple(out)


def token_request_form(client_id: str, client_secret: str, scopes: str | Iterable[str]) -> dict[str, str]:
    """The form body of ``POST /oauth2/token`` for the client credentials grant.

    Credentials go in the body (Coupa's documented way) rather than HTTP Basic. Error messages name what is
    wrong with the secret, never the secret.
    """
    if not isinstance(client_id, str) or not client_id.strip():
        raise CoupaConfigError("the OAuth client id is empty; set it as the connection's login")
    if not isinstance(client_secret, str) or not client_secret:
        raise CoupaConfigError("the OAuth client secret is empty; set it as the connection's password")
    if client_secret != client_secret.strip():
        raise CoupaConfigError("the OAuth client secret starts or ends with whitespace; a copy-paste slip?")
    return {
        "grant_type": "client_credentials",
        "client_id": client_id.strip(),
        "client_secret": client_secret,
        "scope": " ".join(normalise_scopes(scopes)),
    }


def api_key_headers(api_key: str) -> dict[str, str]:
    """The legacy ``X-COUPA-API-KEY`` header; refuses keys that would break (or inject) a header."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise CoupaConfigError("the Coupa API key is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in api_key):
        raise CoupaConfigError("the Coupa API key holds spaces or control characters; a copy-paste slip?")
    return {API_KEY_HEADER: api_key}


_OAUTH_HINTS: Mapping[str, str] = {
    "invalid_client": (
        "Coupa does not accept this client id and secret (or the client is inactive): compare the connection's "
        "login and password with the client in Coupa (Setup > OAuth2/OpenID Connect Clients)."
    ),
    "invalid_scope": (
        "The OAuth client is not granted every scope asked for: grant them to the client in Coupa, or list "
        "fewer in the connection's scopes (core.integration.read for reads, core.integration.write for writes)."
    ),
    "unauthorized_client": (
        "The OAuth client is not allowed the client credentials grant: set its grant type to "
        "'Client credentials' in Coupa."
    ),
    "unsupported_grant_type": (
        "Coupa refused the client credentials grant at this endpoint: check the token path "
        "(Coupa's docs use /oauth2/token, its Swagger /oauth2/access_tokens) and the client's grant type."
    ),
    "invalid_request": "Coupa refused the token request as malformed: check the token path and the scopes.",
}
_STATUS_HINTS: Mapping[int, str] = {
    400: _OAUTH_HINTS["invalid_request"],
    401: _OAUTH_HINTS["invalid_client"],
    403: "Coupa refused to issue a token: the OAuth client may be inactive or not allowed the scopes asked for.",
}
_ENDPOINT_HINT = (
    "Coupa's token endpoint did not answer as OAuth 2.0 does: check the instance URL and the token path "
    "(Coupa's docs use /oauth2/token, its Swagger /oauth2/access_tokens)."
)


def parse_token_response(
    status: int,
    body: bytes | str,
    now: float,
    *,
    content_type: str | None = None,
    path: str = "/oauth2/token",
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
    on_secret: Callable[[str], None] | None = None,
) -> Token:
    """The :class:`Token` in a token endpoint's answer, or the :class:`CoupaError` it amounts to.

    ``now`` is the cache's clock read just *before* the request was sent, so the token is taken to expire no
    later than it really does. ``on_secret`` is called with the token value before anything else happens to
    it (pass Airflow's ``mask_secret``). ``secrets`` (the client secret) are redacted from quoted text.

    OAuth refusals (400/401/403, or an ``error`` field) raise :class:`CoupaAuthError` with a hint per OAuth
    error code; 429 and 5xx raise the usual retryable errors so the token fetch retries like any request; a
    404 says the token path is wrong.
    """
    secret_list = [s for s in secrets if s]
    data = _json_object(body)
    ok = 200 <= status < 300
    if ok and data is not None and "error" not in data:
        return _token_from(data, status, now, path, on_secret)
    if ok or status in (400, 401, 403):
        code = str(data.get("error") or "") if data is not None else ""
        messages = [redact(m, secret_list) for m in parse_error_messages(body, content_type)]
        if ok and data is None:
            messages = ["the answer is not a JSON object"]
        hint = _OAUTH_HINTS.get(code) or _STATUS_HINTS.get(status, _ENDPOINT_HINT)
        raise CoupaAuthError(messages, status=status, hint=hint, method="POST", path=path)
    if status == 404:
        raise CoupaNotFoundError(
            [f"no token endpoint at {path}"], status=404, hint=_ENDPOINT_HINT, method="POST", path=path
        )
    raise error_from_response(status, body, content_type, "POST", path, retry_after, secrets=secret_list)


def _json_object(body: bytes | str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _token_from(
    data: Mapping[str, Any], status: int, now: float, path: str, on_secret: Callable[[str], None] | None
) -> Token:
    value = data.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise CoupaAuthError(
            ["the answer carries no access_token"], status=status, hint=_ENDPOINT_HINT, method="POST", path=path
        )
    if on_secret is not None:
        on_secret(value)

    def refuse(message: str) -> CoupaAuthError:
        return CoupaAuthError([message], status=status, hint=_ENDPOINT_HINT, method="POST", path=path)

    token_type = data.get("token_type")
    if token_type is not None and str(token_type).lower() != "bearer":
        raise refuse(f"the token is of type {str(token_type)[:40]!r}; only bearer tokens are supported")
    raw = data.get("expires_in", COUPA_TOKEN_LIFETIME)
    try:
        expires_in = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        expires_in = math.nan
    if not (math.isfinite(expires_in) and expires_in > 0):
        raise refuse(f"expires_in is {str(raw)[:40]!r}, not a positive number of seconds")
    scope = data.get("scope")
    return Token.issued(value, expires_in, now, scope=scope if isinstance(scope, str) else None)


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
    - :meth:`peek` and :meth:`store` are the building blocks, for callers with their own flow.

    Sync and async callers share the entries. They do not share flights: a thread and a coroutine asking in
    the same instant may fetch twice, which is harmless (:meth:`store` keeps the fresher token).
    ``clock`` must be the one the tokens' times come from (``time.monotonic`` by default); :meth:`now` reads it.
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

    def now(self) -> float:
        """The cache's clock: pass it to :func:`parse_token_response` as ``now``."""
        return self._clock()

    def peek(self, key: TokenKey) -> Token | None:
        """The cached token for ``key`` if it is still fresh, else ``None``."""
        with self._lock:
            return self._fresh(key)

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
