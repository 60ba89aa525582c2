"""How one Coupa call unfolds — token, throttle, send, retry, refresh, verify — written once, with no I/O.

A call is a generator that *yields effects* (:class:`Send` this request, :class:`Sleep` this long, give me a
:class:`Token`) and receives their results. The sync client runs it with ``requests`` and ``time.sleep``, the
async client with ``httpx`` and ``asyncio.sleep``; every decision lives here, so the two can never drift apart
(the "sans-IO" design of h11 and httpx). Tests drive the generator by hand, without sockets.

Why one module of this size: the effects, the call and the token fetch are one protocol that both drivers run;
splitting them would put the halves of one state machine in two files.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from airflow_provider_coupa_ihr import __version__
from airflow_provider_coupa_ihr.client.answers import not_a_record
from airflow_provider_coupa_ihr.client.auth import Token, api_key_headers, parse_token_response, token_request_form
from airflow_provider_coupa_ihr.client.bodies import ACCEPT_ENCODING
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.deadlines import CallDeadline
from airflow_provider_coupa_ihr.client.errors import (
    CoupaError,
    CoupaRateLimitError,
    CoupaTransportError,
    error_from_response,
)
from airflow_provider_coupa_ihr.client.limiter import Limiter, shared_bucket
from airflow_provider_coupa_ihr.client.records import snake_object
from airflow_provider_coupa_ihr.client.responses import body_preview, redact
from airflow_provider_coupa_ihr.client.retry import Action, RetryState, parse_retry_after

__all__ = [
    "USER_AGENT",
    "CallContext",
    "Effect",
    "GetToken",
    "HttpRequest",
    "HttpResponse",
    "Operation",
    "Send",
    "Sleep",
    "TransportFailure",
    "Verification",
    "answer_object",
    "call",
    "fetch_token",
]

log = logging.getLogger("airflow_provider_coupa_ihr.client")

USER_AGENT = f"airflow-provider-coupa-ihr/{__version__}"

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ the wire
@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request, fully decided: the drivers only put it on the wire."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    json_body: Any = None
    form: Mapping[str, str] | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class HttpResponse:
    """What came back. ``headers`` keys are lower case; ``body`` is inflated (see :mod:`.bodies`).

    ``unreadable``: why the driver would not read the body (bigger than ``max_response_bytes`` once inflated,
    an encoding it cannot read); the call then fails with that error, whatever the status.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    unreadable: CoupaError | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class TransportFailure:
    """No answer. ``sent``: False surely not received, True sent and the answer lost, None cannot tell."""

    message: str
    sent: bool | None


# ------------------------------------------------------------------------------------------------ effects
@dataclass(frozen=True)
class Send:
    """Put ``request`` on the wire; resume with :class:`HttpResponse` or :class:`TransportFailure`.

    ``timeout``: the seconds the attempt may take to its answer's last byte (None: no bound but the transport's
    timeouts). The driver ends the attempt then, with a :class:`TransportFailure`, however the server trickles.
    """

    request: HttpRequest
    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (``time.sleep`` or ``asyncio.sleep``); resume with None."""

    seconds: float


@dataclass(frozen=True)
class GetToken:
    """Give me a valid bearer token; with ``refresh``, not ``stale`` (it was refused). Resume with a Token.

    ``timeout``: the seconds the calling flow has left; a token fetch made for it ends within them
    (:func:`fetch_token`'s ``within``).
    """

    refresh: bool = False
    stale: Token | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Reserve:
    """Book the next slot of the rate budget; resume with the seconds to sleep before sending.

    An effect rather than a direct call because the budget may be shared through Redis: the sync client answers
    with ``throttle.reserve()``, the async one with ``await throttle.areserve()``, so an event loop never blocks
    on a Redis round trip.
    """


Effect = Send | Sleep | GetToken | Reserve
Flow = Generator[Effect, Any, T]


# ------------------------------------------------------------------------------------------------ operations
@dataclass(frozen=True)
class Verification:
    """How to find out whether a create whose answer was lost landed: a query, and how to pick our record.

    ``query`` is built only when needed (almost never), so a create pays nothing for the safety net.
    """

    query: Callable[[], Operation]
    pick: Callable[[list[dict[str, Any]]], dict[str, Any] | None]


@dataclass(frozen=True)
class Operation:
    """One logical API call, relative to ``/api``: what to send and whether re-sending it is harmless."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None
    idempotent: bool = True
    #: For creates: how to look for the record before re-sending after a lost answer.
    verify: Verification | None = None
    #: Return the response as Coupa sent it (dash-case keys) instead of snake_case.
    raw: bool = False


@dataclass
class CallContext:
    """What every call of one client shares: its settings, its throttle, and where secrets get masked."""

    config: ClientConfig
    throttle: Limiter | None = None
    clock: Callable[[], float] = time.monotonic
    mask_secret: Callable[[str], None] | None = None
    rng: Any = None

    @classmethod
    def for_client(
        cls,
        config: ClientConfig,
        *,
        throttle: Limiter | None = None,
        mask_secret: Callable[[str], None] | None = None,
    ) -> CallContext:
        """What a client's calls share: its ``throttle``, or else the bucket every client of the instance shares."""
        return cls(config=config, throttle=throttle or shared_bucket(config), mask_secret=mask_secret)

    def secrets(self, token: Token | None = None) -> tuple[str, ...]:
        extra = (token.value,) if token is not None else ()
        return (*self.config.secrets(), *extra)

    def base_headers(self) -> dict[str, str]:
        # Only what bodies.BodyReader inflates under its cap: the libraries would add br or zstd when installed.
        return {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING, "User-Agent": USER_AGENT}


# ------------------------------------------------------------------------------------------------ flows
def fetch_token(ctx: CallContext, *, within: float | None = None) -> Flow[Token]:
    """``POST /oauth2/token`` with client credentials, retrying what is transient; masks the token at once.

    Bounded in time like any call (:class:`.deadlines.CallDeadline`), and by ``within`` seconds when fetched
    for a call that has only that long left.
    """
    config = ctx.config
    assert config.client_id is not None
    assert config.client_secret is not None
    deadline = CallDeadline.start(config, ctx.clock, within=within)
    state = RetryState(config.retry, idempotent=True, auth_refreshable=False, clock=ctx.clock, rng=ctx.rng)
    request = HttpRequest(
        "POST",
        config.token_url,
        form=token_request_form(config.client_id, config.client_secret, config.scopes),
        headers=ctx.base_headers(),
    )
    while True:
        timeout = deadline.attempt_timeout()
        if timeout <= 0:
            raise _out_of_time(deadline, "POST", config.token_path).with_attempts(state.attempts)
        sent_at = ctx.clock()
        outcome = yield Send(request, timeout)
        if isinstance(outcome, HttpResponse):
            if outcome.unreadable is not None:
                raise _unreadable(outcome, "POST", config.token_path).with_attempts(state.attempts + 1)
            retry_after = parse_retry_after(outcome.header("retry-after"))
            try:
                return parse_token_response(
                    outcome.status,
                    outcome.body,
                    sent_at,
                    content_type=outcome.header("content-type"),
                    path=config.token_path,
                    retry_after=retry_after,
                    secrets=ctx.secrets(),
                    on_secret=ctx.mask_secret,
                )
            except CoupaError as refused:
                if outcome.status not in config.retry.retry_statuses:
                    if 300 <= outcome.status < 400:
                        refused.hint = _redirect_hint(outcome.header("location"))
                    raise refused.with_attempts(state.attempts + 1) from None
                error: CoupaError = refused
            step = state.after_response(outcome.status, retry_after=retry_after)
        else:
            step = state.after_transport_error(sent=outcome.sent)
            error = CoupaTransportError(
                redact(outcome.message, ctx.secrets()), sent=outcome.sent, method="POST", path=config.token_path
            )
        if step.stop:
            raise error.with_attempts(state.attempts, step.reason)
        if not deadline.may_retry_after(step.delay):
            raise error.with_attempts(state.attempts, _no_time_for_retry(deadline, step.delay))
        log.warning("Coupa token request: %s", step.reason)
        yield Sleep(step.delay)


def call(ctx: CallContext, op: Operation, *, within: float | None = None) -> Flow[Any]:
    """Perform ``op``: the parsed JSON answer (snake_case keys unless ``op.raw``), or a :class:`CoupaError`.

    The whole call (token, throttle, attempts, retries) ends within ``max_elapsed + read_timeout`` of its start
    (:class:`.deadlines.CallDeadline`), or within ``within`` seconds (the look-up a create makes before
    re-sending shares what is left of the create's bound).
    """
    config = ctx.config
    deadline = CallDeadline.start(config, ctx.clock, within=within)
    path = f"/api{op.path}"
    state = RetryState(
        config.retry, idempotent=op.idempotent, auth_refreshable=not config.uses_api_key, clock=ctx.clock, rng=ctx.rng
    )
    refresh, token = False, None
    url = f"{config.api_url}{op.path}"
    while True:
        headers = ctx.base_headers()
        if op.body is not None:
            headers["Content-Type"] = "application/json"
        if config.api_key is not None:
            headers.update(api_key_headers(config.api_key))
        else:
            token = yield GetToken(refresh=refresh, stale=token if refresh else None, timeout=deadline.left())
            headers["Authorization"] = f"Bearer {token.value}"
            refresh = False
        if ctx.throttle is not None:
            wait = yield Reserve()
            if wait > 0:
                if not deadline.may_throttle(wait):
                    raise _throttled_past(deadline, wait, config, op.method, path).with_attempts(state.attempts)
                yield Sleep(wait)
        timeout = deadline.attempt_timeout()
        if timeout <= 0:
            raise _out_of_time(deadline, op.method, path).with_attempts(state.attempts)
        sent_at = ctx.clock()
        outcome = yield Send(HttpRequest(op.method, url, op.params, op.body, headers=headers), timeout)
        in_flight = max(0.0, ctx.clock() - sent_at)
        if isinstance(outcome, HttpResponse):
            if outcome.unreadable is not None:
                raise _unreadable(outcome, op.method, path).with_attempts(state.attempts + 1)
            if 200 <= outcome.status < 300:
                return _parse_success(outcome, op, ctx, token)
            step = state.after_response(
                outcome.status,
                retry_after=parse_retry_after(outcome.header("retry-after")),
                token_age=None if token is None else token.age(ctx.clock()),
                in_flight=in_flight,
            )
            error: CoupaError = error_from_response(
                outcome.status,
                outcome.body,
                outcome.header("content-type"),
                op.method,
                f"/api{op.path}",
                parse_retry_after(outcome.header("retry-after")),
                secrets=ctx.secrets(token),
            )
            if 300 <= outcome.status < 400:
                error.hint = _redirect_hint(outcome.header("location"))
        else:
            step = state.after_transport_error(sent=outcome.sent, in_flight=in_flight)
            error = CoupaTransportError(
                redact(outcome.message, ctx.secrets(token)), sent=outcome.sent, method=op.method, path=f"/api{op.path}"
            )
        if step.stop or (step.action is Action.VERIFY_THEN_RETRY and op.verify is None):
            # "Gave up" only when retries were made or the budget ran out, not for a final first answer (a 400).
            raise error.with_attempts(state.attempts, step.reason if step.exhausted or state.attempts > 1 else None)
        if step.action is Action.REFRESH_AUTH:
            log.info("Coupa answered 401 to %s /api%s; fetching a new token once", op.method, op.path)
            refresh = True
            continue
        if not deadline.may_retry_after(step.delay):
            raise error.with_attempts(state.attempts, _no_time_for_retry(deadline, step.delay))
        log.warning("Coupa %s /api%s: %s", op.method, op.path, step.reason)
        if step.delay > 0:
            yield Sleep(step.delay)
        if step.action is Action.VERIFY_THEN_RETRY and op.verify is not None:
            found = op.verify.pick((yield from call(ctx, op.verify.query(), within=deadline.left())) or [])
            if found is not None:
                log.info(
                    "Coupa %s /api%s had landed before its answer was lost: adopting id %s",
                    op.method,
                    op.path,
                    found.get("id"),
                )
                return found
            log.info("Coupa %s /api%s had not landed; sending it again", op.method, op.path)


def _parse_success(response: HttpResponse, op: Operation, ctx: CallContext, token: Token | None) -> Any:
    if not response.body.strip():
        return None
    try:
        # Keys are turned snake_case while parsing: one pass over the page instead of two.
        value = json.loads(response.body) if op.raw else json.loads(response.body, object_pairs_hook=snake_object)
    except ValueError:
        content_type = response.header("content-type") or "unknown"
        preview = body_preview(response.body, ctx.secrets(token))
        raise CoupaError(
            [f"expected JSON, got {content_type}: {preview!r}"],
            status=response.status,
            method=op.method,
            path=f"/api{op.path}",
            hint="Coupa answers XML when the client does not ask for JSON, and HTML from a login page or proxy: "
            "check that the connection's host is the Coupa instance URL",
        ) from None
    return value


def _unreadable(response: HttpResponse, method: str, path: str) -> CoupaError:
    """The call's error for an answer the driver would not read (see :mod:`.bodies`): final, not retried."""
    refused = response.unreadable
    assert refused is not None
    return CoupaError(refused.messages, status=response.status, hint=refused.hint, method=method, path=path)


def _out_of_time(deadline: CallDeadline, method: str, path: str) -> CoupaTransportError:
    return CoupaTransportError(
        [f"no time left for another attempt within the call's bound of {deadline.seconds:g} s"],
        sent=False,
        method=method,
        path=path,
        hint="A call ends within retry.max_elapsed plus one read_timeout (less inside a time limit such as a "
        "notifier's timeout); Coupa or the network was too slow for that this time.",
    )


def _no_time_for_retry(deadline: CallDeadline, delay: float) -> str:
    return f"waiting {delay:.1f} s more would pass the call's bound of {deadline.seconds:g} s"


def _throttled_past(
    deadline: CallDeadline, wait: float, config: ClientConfig, method: str, path: str
) -> CoupaRateLimitError:
    return CoupaRateLimitError(
        [
            f"the client's own rate limit ({config.rate_limit:g} requests per second, shared by every client of "
            f"this Coupa instance in the process) would hold this request {wait:.1f} s, past the call's bound of "
            f"{deadline.seconds:g} s"
        ],
        status=None,
        method=method,
        path=path,
        hint="Too many calls share the rate limit at once: run fewer tasks against this instance at a time, or "
        "give calls a longer retry.max_elapsed.",
    )


def _redirect_hint(location: str | None) -> str:
    return (
        f"Coupa redirected the request to {location or 'another address'}; redirects are not followed, so that "
        "credentials never travel to another host. Set the connection's host to the final instance URL "
        "(https://<instance>.coupahost.com)."
    )


def answer_object(answer: Any) -> dict[str, Any]:
    """Coupa's answer to a show, a create or a change: one JSON object. The one place the clients' answers,
    parsed from JSON, are given that type, and checked to be one (a proxy's ``[]`` or an empty body is a
    :class:`CoupaError`, not a ``TypeError`` in the verb that reads it)."""
    if not isinstance(answer, dict):
        raise not_a_record(answer)
    return answer


def run_sync(flow: Generator[Any, Any, T], handle: Callable[[Any], Any]) -> T:
    """Drive a generator flow to its end, answering each thing it yields with ``handle``.

    The one blocking driver: calls (:func:`call`, :func:`fetch_token`) and the sensor's resolution checks all
    run through it, and :func:`run_async` is its only twin.
    """
    result: Any = None
    while True:
        try:
            effect = flow.send(result)
        except StopIteration as stop:
            return cast(T, stop.value)
        try:
            result = handle(effect)
        except BaseException:  # let the flow clean up (there is nothing to catch there today)
            flow.close()
            raise


async def run_async(flow: Generator[Any, Any, T], handle: Callable[[Any], Awaitable[Any]]) -> T:
    """:func:`run_sync` for an async ``handle``: the one awaiting driver."""
    result: Any = None
    while True:
        try:
            effect = flow.send(result)
        except StopIteration as stop:
            return cast(T, stop.value)
        try:
            result = await handle(effect)
        except BaseException:
            flow.close()
            raise
