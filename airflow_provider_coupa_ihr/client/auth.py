"""Coupa credentials without I/O: the token request, the answer, the token's life, and the legacy API key.

The cache that shares tokens across a process is :mod:`.tokens`.

Secrets: a token never appears in a ``repr``, ``str`` or exception here. The moment a token is parsed,
:func:`parse_token_response` calls ``on_secret`` with it; the hook passes Airflow's ``mask_secret`` so the
token is masked in task logs from then on, even if some other library prints it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaConfigError,
    CoupaNotFoundError,
    error_from_response,
)
from airflow_provider_coupa_ihr.client.responses import parse_error_messages
from airflow_provider_coupa_ihr.client.values import quoted

__all__ = [
    "API_KEY_HEADER",
    "COUPA_TOKEN_LIFETIME",
    "MIN_RENEW_MARGIN",
    "RENEW_FRACTION",
    "Token",
    "api_key_headers",
    "is_header_safe",
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


def normalise_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes as a tuple in the caller's order without repeats; a string is split on whitespace."""
    if not isinstance(scopes, (str, Iterable)):
        raise CoupaConfigError(f"scopes must be scope names (a list, or text such as 'a b'), got {quoted(scopes)}")
    items = scopes.split() if isinstance(scopes, str) else [str(s).strip() for s in scopes]
    out: list[str] = []
    for scope in items:
        if not scope or any(ch.isspace() for ch in scope):
            raise CoupaConfigError(f"scope names cannot be empty or hold spaces, got {quoted(scope)}")
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


def is_header_safe(value: str) -> bool:
    """Whether ``value`` can go into an HTTP header as it is: visible ASCII only, no spaces.

    A CR or LF would split the header (header injection); a non-ASCII character cannot be sent at all by httpx
    (and is sent as Latin-1 by requests), so the two clients would disagree. Coupa's API keys and tokens
    (40 characters; a JWT) are visible ASCII.
    """
    return bool(value) and all("!" <= ch <= "~" for ch in value)


def api_key_headers(api_key: str) -> dict[str, str]:
    """The legacy ``X-COUPA-API-KEY`` header; refuses keys that would break (or inject) a header, unquoted."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise CoupaConfigError("the Coupa API key is empty or not text (its value is not shown: it is a secret)")
    if not is_header_safe(api_key):
        raise CoupaConfigError(
            "the Coupa API key holds spaces, control characters or non-ASCII characters, which an HTTP header "
            "cannot carry; a copy-paste slip? (its value is not shown: it is a secret)"
        )
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
        messages = parse_error_messages(body, content_type, secret_list)
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

    if not is_header_safe(value):
        # Never quoted: it is a secret, and a CR/LF in it would split the Authorization header it goes into.
        raise refuse(
            "the access_token holds spaces, control characters (such as CR or LF) or non-ASCII characters, which "
            "an Authorization header cannot carry; it was not used"
        )

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
