"""Everything a client needs to reach one Coupa instance, checked once when it is built.

The hook turns an Airflow connection into a :class:`ClientConfig`; users of the bare client build one directly.
Checks happen here, before any request, so a connection typo fails with a sentence rather than a socket error.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_coupa_ihr.client.auth import api_key_headers
from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.records import RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND, READ_SCOPE, WRITE_SCOPE
from airflow_provider_coupa_ihr.client.retry import RetryPolicy
from airflow_provider_coupa_ihr.client.values import finite_number, is_unicode, quoted, whole_number

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.client.shared_limiter import SharedBudget

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_SCOPES",
    "MIN_MAX_RESPONSE_BYTES",
    "MIN_RATE_LIMIT",
    "ClientConfig",
    "is_loopback_host",
]

#: The two scopes the IHR API needs: reads (index, show) and writes (everything else).
DEFAULT_SCOPES: tuple[str, ...] = (READ_SCOPE, WRITE_SCOPE)
DEFAULT_TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a URL path, not a password)
#: The slowest client-side rate allowed: slower, and the throttle's own wait would outlast any call's time budget.
MIN_RATE_LIMIT = 0.1
#: The most bytes an answer may have once decompressed (see :mod:`.bodies`): Coupa's pages are a few hundred KB
#: at most, and a larger answer is a proxy's page or a compression bomb.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: The smallest ``max_response_bytes`` allowed: one page of 50 records must fit.
MIN_MAX_RESPONSE_BYTES = 64 * 1024


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses: the only hosts allowed plain http (the emulator)."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    number = finite_number(value)
    if number is None or number <= 0:
        raise CoupaConfigError(f"{name} must be a positive number of seconds, got {quoted(value)}")
    return number


@dataclass(frozen=True)
class ClientConfig:
    """How to reach and authenticate with one Coupa instance.

    ``base_url`` is the instance URL (``https://acme.coupahost.com``); the API lives under ``/api`` on it.
    Give either ``client_id`` and ``client_secret`` (OAuth2 client credentials, the supported way) or
    ``api_key`` (the legacy ``X-COUPA-API-KEY``, unsupported by Coupa since R35, for old instances only).
    """

    base_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    token_path: str = DEFAULT_TOKEN_PATH
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    rate_limit: float | None = RATE_LIMIT_PER_SECOND
    burst: int = RATE_LIMIT_BURST
    verify: bool | str = True
    #: Not in the repr: a proxy URL may carry the proxy's user and password.
    proxies: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    extra_document_types: tuple[str, ...] = ()
    #: The most bytes an answer may have once decompressed; a bigger one ends the call with a CoupaError.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: Share ``rate_limit``/``burst`` with every process of a fleet through Redis (None: this process's own bucket).
    shared_budget: SharedBudget | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _normalise_base_url(self.base_url))
        self._check_credentials()
        object.__setattr__(self, "scopes", _names("scopes", self.scopes, f"scope names such as {READ_SCOPE}"))
        if not isinstance(self.token_path, str) or not self.token_path.startswith("/"):
            raise CoupaConfigError(
                f"token_path must start with '/', e.g. {DEFAULT_TOKEN_PATH}, got {quoted(self.token_path)}"
            )
        if any(ch.isspace() or not ch.isprintable() for ch in self.token_path):
            raise CoupaConfigError(f"token_path must be a URL path without spaces, got {quoted(self.token_path)}")
        _positive("connect_timeout", self.connect_timeout)
        _positive("read_timeout", self.read_timeout)
        rate = finite_number(self.rate_limit)
        if self.rate_limit is not None and (rate is None or rate < MIN_RATE_LIMIT):
            raise CoupaConfigError(
                f"rate_limit must be a finite number of requests per second from {MIN_RATE_LIMIT:g} "
                f"(Coupa allows 25), or None for no client-side limit, got {quoted(self.rate_limit)}"
            )
        if whole_number(self.max_response_bytes, minimum=MIN_MAX_RESPONSE_BYTES) is None:
            raise CoupaConfigError(
                f"max_response_bytes must be a whole number of bytes from {MIN_MAX_RESPONSE_BYTES} "
                f"(default {DEFAULT_MAX_RESPONSE_BYTES}), got {quoted(self.max_response_bytes)}"
            )
        if whole_number(self.burst, minimum=1) is None:
            raise CoupaConfigError(
                f"burst must be a whole number of 1 or more (Coupa allows 20), got {quoted(self.burst)}"
            )
        if not isinstance(self.verify, (bool, str)) or self.verify == "":
            raise CoupaConfigError("verify must be true, false, or the path of a CA bundle")
        if isinstance(self.verify, str) and not os.path.exists(self.verify):
            # Else a typo ("ture") is taken for a file name and fails only at the first https request.
            raise CoupaConfigError(
                "verify must be true, false, or the path of a CA bundle; "
                f"there is no CA bundle at {quoted(self.verify)}"
            )
        if not isinstance(self.proxies, Mapping):
            raise CoupaConfigError(
                f"proxies must map 'http'/'https' to proxy URLs such as http://proxy:3128, got {quoted(self.proxies)}"
            )
        for scheme, proxy in self.proxies.items():
            if scheme not in ("http", "https") or not isinstance(proxy, str) or "://" not in proxy:
                raise CoupaConfigError(
                    f"proxies must map 'http'/'https' to proxy URLs such as http://proxy:3128, got {quoted(scheme)}"
                )
        object.__setattr__(self, "proxies", MappingProxyType(dict(self.proxies)))
        if not isinstance(self.retry, RetryPolicy):
            raise CoupaConfigError(f"retry must be a RetryPolicy, got {quoted(self.retry)}")
        types = _names("extra_document_types", self.extra_document_types, "document type names", allow_empty=True)
        object.__setattr__(self, "extra_document_types", types)

    def _check_credentials(self) -> None:
        """OAuth client credentials or an API key, each text; a secret's value is never quoted."""
        if self.client_id is not None and not isinstance(self.client_id, str):
            raise CoupaConfigError(f"client_id must be text, got {quoted(self.client_id)}")
        for name in ("client_secret", "api_key"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise CoupaConfigError(
                    f"{name} must be text, got a {type(value).__name__} (its value is not shown: it is a secret)"
                )
        for name in ("client_id", "client_secret"):
            value = getattr(self, name)
            if isinstance(value, str) and not is_unicode(value):
                raise CoupaConfigError(f"{name} holds a lone surrogate, which is not Unicode and cannot be sent")
        if self.api_key is None and not (self.client_id and self.client_id.strip() and self.client_secret):
            raise CoupaConfigError(
                "Coupa credentials are missing: set the OAuth client id (login) and client secret (password), "
                "or a legacy api_key for instances older than R35"
            )
        if self.api_key is not None:
            if not self.api_key.strip():
                raise CoupaConfigError("api_key is empty; remove it to use OAuth client credentials")
            api_key_headers(self.api_key)  # refuses, unquoted, a key no header can carry

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{self.token_path}"

    @property
    def uses_api_key(self) -> bool:
        return self.api_key is not None

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def within(self, seconds: float) -> ClientConfig:
        """This config with its timeouts and retry budget cut to ``seconds``, so one call cannot outlast them.

        For callers that must not hold Airflow up (a notifier, a listener): retries stay allowed inside the bound
        (a 429 with a short ``Retry-After`` is still honoured); a ``Retry-After`` longer than it ends the call.
        """
        bound = _positive("seconds", seconds)
        assert bound is not None
        retry = replace(
            self.retry,
            max_elapsed=min(self.retry.max_elapsed, bound),
            max_retry_after=min(self.retry.max_retry_after, bound),
            token_settle=min(self.retry.token_settle, bound),
        )
        return replace(
            self,
            connect_timeout=min(self.connect_timeout, bound),
            read_timeout=min(self.read_timeout, bound),
            retry=retry,
        )

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a log line or an exception."""
        proxy_passwords = (urlsplit(proxy).password for proxy in self.proxies.values())
        return tuple(s for s in (self.client_secret, self.api_key, *proxy_passwords) if s)


def _names(setting: str, value: Any, what: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A list setting as a tuple of names: text is split on spaces and commas (``"a b"``, ``"X,Y"``), as people
    mean it, rather than read as a list of its characters."""
    items: Any = _SEPARATORS.split(value.strip()) if isinstance(value, str) else value
    if isinstance(items, str) or not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise CoupaConfigError(f"{setting} must be {what} (a list, or text such as 'a b'), got {quoted(value)}")
    names = tuple(items) if not isinstance(value, str) else tuple(i for i in items if i)
    if (not names and not allow_empty) or not all(
        isinstance(n, str) and n.strip() and not any(ch.isspace() for ch in n) for n in names
    ):
        raise CoupaConfigError(f"{setting} must be non-empty {what}, got {quoted(value)}")
    return names


_SEPARATORS = re.compile(r"[\s,]+")


def _normalise_base_url(raw: Any) -> str:
    """The instance URL as ``scheme://host[:port][/path]``. Errors never quote credentials or a query string
    (either may hold a secret someone pasted), only the parts that identify the host."""
    if not isinstance(raw, str) or not raw.strip():
        raise CoupaConfigError("The Coupa instance URL (connection host) is empty; e.g. https://acme.coupahost.com")
    text = raw.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        hostname, _ = parts.hostname, parts.port  # a bad port or IPv6 literal raises here
    except ValueError:
        parts, hostname = None, None
    if parts is not None and (parts.username or parts.password):
        raise CoupaConfigError("Put credentials in the connection's login and password, not in the instance URL")
    shown = quoted(f"{parts.scheme}://{parts.netloc}{parts.path}" if parts is not None else raw.split("?")[0])
    if parts is None or parts.scheme not in ("http", "https") or not hostname or _unprintable(text):
        raise CoupaConfigError(f"The Coupa instance URL must look like https://acme.coupahost.com, got {shown}")
    if parts.scheme == "http" and not is_loopback_host(hostname):
        raise CoupaConfigError(
            f"Coupa is reached over https only; plain http is allowed for loopback hosts (such as the emulator), "
            f"not for {quoted(hostname)}"
        )
    if parts.query or parts.fragment:
        raise CoupaConfigError(f"The Coupa instance URL must not carry a query or fragment, got {shown}?...")
    path = parts.path.rstrip("/")
    if path in ("/api",):
        path = ""
    return f"{parts.scheme}://{parts.netloc}{path}"


def _unprintable(text: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in text)
