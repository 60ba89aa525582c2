"""The emulator's side of Coupa authentication: OAuth2 client credentials, scopes, expiry and legacy API keys."""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from airflow_provider_coupa_ihr.client.records import READ_SCOPE, WRITE_SCOPE

__all__ = ["DEFAULT_CLIENT", "READ_SCOPE", "WRITE_SCOPE", "AuthFailure", "Authority", "Grant", "OAuthClient"]


@dataclass(frozen=True)
class OAuthClient:
    """An OAuth client registered in the emulated instance (Coupa: Setup > OAuth2/OpenID Connect Clients)."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = (READ_SCOPE, WRITE_SCOPE)


#: The OAuth client every emulator knows unless told otherwise. Test credentials, never real ones.
DEFAULT_CLIENT = OAuthClient("coupa-emulator-client", "coupa-emulator-secret")


@dataclass(frozen=True)
class Grant:
    """Who a valid credential belongs to and what it may do."""

    client_id: str
    scopes: frozenset[str]


class AuthFailure(Exception):
    """A request the emulator refuses: ``status`` 400/401/403 and an OAuth-style ``error`` code."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class _Issued:
    grant: Grant
    expires_at: float


class Authority:
    """Issues and checks bearer tokens; thread-safe because tests expire tokens while the server runs."""

    def __init__(
        self,
        clients: Iterable[OAuthClient],
        *,
        api_keys: Iterable[str] = (),
        token_lifetime: int = 86399,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.api_keys = set(api_keys)
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._tokens: dict[str, _Issued] = {}
        self._every_token: list[str] = []
        self._lock = threading.Lock()
        self.tokens_issued = 0

    def issue(self, form: Mapping[str, str], authorization: str | None) -> dict[str, object]:
        """Answer ``POST /oauth2/token``: client id and secret from the form body or from HTTP Basic."""
        if form.get("grant_type") != "client_credentials":
            raise AuthFailure(400, "unsupported_grant_type", "Only grant_type=client_credentials is supported")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            client_id, secret = _basic_credentials(authorization)
        client = self.clients.get(client_id or "")
        if client is None or secret is None or not secrets.compare_digest(client.client_secret, secret):
            raise AuthFailure(401, "invalid_client", "Client authentication failed")
        requested = (form.get("scope") or " ".join(client.scopes)).split()
        refused = [s for s in requested if s not in client.scopes]
        if refused:
            raise AuthFailure(400, "invalid_scope", f"Scope not allowed for this client: {' '.join(refused)}")
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = _Issued(
                Grant(client.client_id, frozenset(requested)), self._clock() + self.token_lifetime
            )
            self._every_token.append(token)
            self.tokens_issued += 1
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": " ".join(requested),
        }

    def check(self, authorization: str | None, api_key: str | None, needed_scope: str) -> Grant:
        """The grant behind a request's credentials, or :class:`AuthFailure` (401 unknown/expired, 403 scope)."""
        if api_key is not None and self.api_keys:
            if api_key in self.api_keys:
                return Grant("api-key", frozenset({READ_SCOPE, WRITE_SCOPE}))
            raise AuthFailure(401, "invalid_api_key", "The X-COUPA-API-KEY is not valid")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthFailure(401, "invalid_request", "Missing bearer token")
        token = authorization[7:].strip()
        with self._lock:
            issued = self._tokens.get(token)
            if issued is not None and issued.expires_at <= self._clock():
                del self._tokens[token]
                issued = None
        if issued is None:
            raise AuthFailure(401, "invalid_token", "The access token is invalid or has expired")
        if needed_scope not in issued.grant.scopes:
            raise AuthFailure(403, "insufficient_scope", f"This action needs the {needed_scope} scope")
        return issued.grant

    def expire_all(self) -> int:
        """Make every token issued so far expire now (a token that dies before its advertised lifetime)."""
        with self._lock:
            count = len(self._tokens)
            for issued in self._tokens.values():
                issued.expires_at = 0.0
            return count

    def every_token(self) -> list[str]:
        """Every token ever issued, expired or not: the strings a secrets test must never find in logs."""
        with self._lock:
            return list(self._every_token)


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)
