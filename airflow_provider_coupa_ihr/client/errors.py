"""One exception family for everything that can go wrong between a caller and Coupa.

Every error carries the same facts (HTTP status, Coupa's own messages, a hint, the method and the path) so a
DAG author can act on it without reading a stack trace, and so Airflow code can decide by type (``except
CoupaRateLimitError``) or by property (``err.retryable``) without parsing text.

Two rules hold for every message built here:

- Nothing secret goes in. Hints are fixed text; the path is cut to its path (no host credentials, no query
  string); response bodies are redacted with :func:`.responses.redact` when the caller passes the secrets it knows.
- Nothing huge goes in. Coupa's messages come from :mod:`.responses`, which cuts bodies before parsing and
  quoted text after, so a 50 MB proxy error page cannot become a 50 MB log line.

Retries: the client re-raises the *last* error once its retry budget is spent, annotated with
:meth:`CoupaError.with_attempts`, rather than wrapping it in a "retries exhausted" error. Callers then keep
catching the type that describes the failure (a 429 stays a :class:`CoupaRateLimitError`), and the message
still says how many attempts were made and why the client stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_coupa_ihr.client.records import (
    DOCUMENT_TYPES,
    RATE_LIMIT_BURST,
    RATE_LIMIT_PER_SECOND,
    READ_SCOPE,
    WRITE_SCOPE,
)
from airflow_provider_coupa_ihr.client.responses import parse_error_messages

__all__ = [
    "CoupaAuthError",
    "CoupaBadRequestError",
    "CoupaConfigError",
    "CoupaError",
    "CoupaForbiddenError",
    "CoupaNotFoundError",
    "CoupaRateLimitError",
    "CoupaServerError",
    "CoupaTransportError",
    "CoupaValidationError",
    "error_from_response",
    "scope_for_method",
]

#: Coupa answers at most this many messages usefully; the rest are summarised as "(and N more)".
MAX_MESSAGES = 20

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_E = TypeVar("_E", bound="CoupaError")


def scope_for_method(method: str | None) -> str:
    """The OAuth scope Coupa checks for ``method``: reads need ``core.integration.read``, the rest write."""
    return READ_SCOPE if (method or "GET").upper() in _SAFE_METHODS else WRITE_SCOPE


def _path_only(path: str | None) -> str | None:
    """Keep the path of a URL: hosts may carry credentials and query strings may carry anything."""
    if not path:
        return None
    parts = urlsplit(path)
    return parts.path or "/"


def _rebuild(cls: type[CoupaError], state: dict[str, Any]) -> CoupaError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, *error.messages)
    return error


class CoupaError(Exception):
    """Base of every error the client raises; catch this to catch them all.

    ``messages`` are Coupa's own words (already redacted); ``hint`` is ours, saying what usually fixes it.
    ``attempts`` counts the requests made before giving up, and ``gave_up`` says why retrying stopped, so a
    message reads "... (gave up after 6 attempts: ...)" rather than leaving the reader to guess whether the
    client retried at all.
    """

    #: What ``str()`` says when there is no status; subclasses without a response replace it.
    _lead = "Coupa request failed"

    def __init__(
        self,
        messages: Iterable[str] | str = (),
        *,
        status: int | None = None,
        hint: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.messages: list[str] = [messages] if isinstance(messages, str) else [str(m) for m in messages]
        self.status = status
        self.hint = hint
        self.method = method.upper() if method else None
        self.path = _path_only(path)
        self.attempts = 1
        self.gave_up: str | None = None
        super().__init__(*self.messages)

    @property
    def retryable(self) -> bool:
        """Whether the failure is transient by nature, so the same request may succeed later.

        Safety of re-sending is a separate question (a create whose outcome is unknown must be looked up
        first); :mod:`~airflow_provider_coupa_ihr.client.retry` answers that one.
        """
        return False

    @property
    def reason(self) -> str:
        """The status' standard phrase (``Bad Request``), or ``""`` for unknown codes and for no status."""
        if self.status is None:
            return ""
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    def with_attempts(self: _E, attempts: int, gave_up: str | None = None) -> _E:
        """Record how many attempts were made and why the client stopped; returns ``self`` to ``raise``."""
        self.attempts = attempts
        self.gave_up = gave_up
        return self

    def _target(self) -> str:
        return " ".join(p for p in (self.method, self.path) if p)

    def _headline(self) -> str:
        target = self._target()
        if self.status is not None:
            answer = f"Coupa answered {self.status} {self.reason}".rstrip()
            return f"{answer} to {target}" if target else answer
        return f"{self._lead}: {target}" if target else self._lead

    def __str__(self) -> str:
        text = self._headline()
        if self.messages:
            shown = self.messages[:MAX_MESSAGES]
            more = len(self.messages) - len(shown)
            detail = "; ".join(shown) + (f" (and {more} more)" if more else "")
            text = f"{text}: {detail}"
        text = text if text.endswith((".", "!", "?")) else text + "."
        if self.attempts > 1 or self.gave_up:
            why = f": {self.gave_up}" if self.gave_up else ""
            plural = "s" if self.attempts != 1 else ""
            text = f"{text} (gave up after {self.attempts} attempt{plural}{why})"
        if self.hint:
            text = f"{text} Hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, method={self.method!r}, path={self.path!r}, "
            f"messages={self.messages!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling; Airflow pickles exceptions across
        # processes (executors, triggerer), so rebuild from the instance state instead.
        return (_rebuild, (type(self), dict(self.__dict__)))


class CoupaValidationError(CoupaError, ValueError):
    """The client refused to send a request Coupa would reject; nothing reached Coupa.

    Also a ``ValueError`` because that is what it is to Python code: a bad argument. ``what`` names the thing
    refused ("integration history record") so the message says what the problems belong to.
    """

    _lead = "Not sent to Coupa, it would refuse"

    def __init__(
        self,
        problems: Iterable[object] | str,
        *,
        hint: str | None = None,
        method: str | None = None,
        path: str | None = None,
        what: str | None = None,
    ) -> None:
        items = [problems] if isinstance(problems, str) else [str(p) for p in problems]
        self.problems: list[str] = items
        self.what = what
        if what:
            self._lead = f"Not sent to Coupa, it would refuse this {what}"
        if hint is None and any("document type" in p.lower() for p in items):
            hint = _document_type_hint()
        super().__init__(items, hint=hint, method=method, path=path)


class CoupaConfigError(CoupaError, ValueError):
    """The connection settings cannot work (no host, plain HTTP, an empty secret...); nothing was sent."""

    _lead = "Bad Coupa connection settings"


class CoupaBadRequestError(CoupaError):
    """400 (or 422): Coupa refused the payload or query; its messages say which field."""


class CoupaAuthError(CoupaError):
    """401, or an OAuth error from the token endpoint: the credentials or the token are not accepted."""


class CoupaForbiddenError(CoupaError):
    """403: authenticated, but the OAuth client lacks the scope (or the API key the permission)."""


class CoupaNotFoundError(CoupaError):
    """404: no record with that id, or the URL is not Coupa's API at all."""


class CoupaRateLimitError(CoupaError):
    """429: Coupa throttled the request. ``retry_after`` is the wait Coupa asked for (seconds), if it did."""

    def __init__(
        self,
        messages: Iterable[str] | str = (),
        *,
        status: int | None = 429,
        hint: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(messages, status=status, hint=hint, method=method, path=path)

    @property
    def retryable(self) -> bool:
        return True


class CoupaServerError(CoupaError):
    """5xx: Coupa (or a proxy before it) failed. 500, 502, 503 and 504 are usually transient."""

    @property
    def retryable(self) -> bool:
        return self.status in (500, 502, 503, 504)


class CoupaTransportError(CoupaError):
    """No HTTP answer at all: timeout, refused or reset connection, TLS failure.

    ``sent`` says whether the request may have reached Coupa: ``False`` when it surely did not (the connection
    was never made), ``True`` when it was sent and the answer was lost, ``None`` when the transport cannot
    tell. For a create, ``True`` and ``None`` mean Coupa may hold the record already.
    """

    _lead = "No answer from Coupa"

    def __init__(
        self,
        messages: Iterable[str] | str = (),
        *,
        sent: bool | None = None,
        hint: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.sent = sent
        if hint is None and sent is not False and method and method.upper() not in _SAFE_METHODS:
            hint = (
                "The request may have reached Coupa before the connection failed; look for the record "
                "(e.g. by document-type and document-id) before sending it again."
            )
        super().__init__(messages, hint=hint, method=method, path=path)

    @property
    def retryable(self) -> bool:
        return True


_BY_STATUS: Mapping[int, type[CoupaError]] = {
    400: CoupaBadRequestError,
    401: CoupaAuthError,
    403: CoupaForbiddenError,
    404: CoupaNotFoundError,
    422: CoupaBadRequestError,
    429: CoupaRateLimitError,
}


def error_from_response(
    status: int,
    body: bytes | str | None,
    content_type: str | None,
    method: str,
    path: str,
    retry_after: float | None = None,
    *,
    secrets: Iterable[str] = (),
) -> CoupaError:
    """Turn an error answer into the matching :class:`CoupaError`, with Coupa's messages and a hint.

    ``secrets`` (the token, the client secret, the API key) are redacted, in every spelling, from any text quoted
    from the body: Coupa does not echo them, but a proxy's error page might, and messages end up in logs.
    """
    messages = parse_error_messages(body, content_type, secrets)
    cls = _BY_STATUS.get(status) or (CoupaServerError if status >= 500 else CoupaError)
    hint = _hint(status, method, _path_only(path) or "", messages)
    if cls is CoupaRateLimitError:
        return CoupaRateLimitError(
            messages, status=status, hint=hint, method=method, path=path, retry_after=retry_after
        )
    return cls(messages, status=status, hint=hint, method=method, path=path)


def _document_type_hint() -> str:
    return (
        f"Coupa R39 accepts these document types: {', '.join(DOCUMENT_TYPES)}. A type added by a newer "
        "Coupa release can be allowed on purpose with extra_document_types=[...]."
    )


def _hint(status: int, method: str, path: str, messages: list[str]) -> str | None:
    """What usually fixes ``status``. Fixed text only: nothing from the request's headers or credentials."""
    if status == 401:
        return (
            "The access token is invalid or expired, or the client id / secret are wrong. Check the OAuth "
            "client in Coupa (Setup > OAuth2/OpenID Connect Clients) and the connection's login and password."
        )
    if status == 403:
        scope = scope_for_method(method)
        return (
            f"The OAuth client lacks the scope {scope} that {method.upper()} needs: grant it to the client "
            "in Coupa and list it in the connection's scopes (a legacy API key needs that permission)."
        )
    if status == 404:
        if not path.startswith("/api/"):
            return f"Coupa's API lives under /api; {path or 'this path'} is outside it: check the base path."
        return (
            "No resource with that id, or the host is not the Coupa instance you meant "
            "(https://{org}.coupahost.com, API under /api)."
        )
    if status in (400, 422) and any("document type" in m.lower() for m in messages):
        return _document_type_hint()
    if status == 429:
        return (
            f"Coupa allows {RATE_LIMIT_PER_SECOND} requests per second with bursts of {RATE_LIMIT_BURST}; "
            "slow down or run fewer tasks against this instance at once."
        )
    if status in (500, 502, 503, 504):
        return "Usually transient on Coupa's side; retrying later normally works."
    return None
