"""When to try a request again, and how long to wait first: every retry decision, with no I/O.

Every call (:func:`.flow.call`, which the sync and async clients both drive) keeps one :class:`RetryState`
and asks it after each failed attempt what to do::

    state = RetryState(policy, idempotent=op.idempotent, auth_refreshable=not config.uses_api_key)
    while True:
        outcome = send(request)                 # with a (refreshed) token, after the rate limiter's wait
        if outcome is a 2xx answer:
            return parsed answer
        if outcome is an answer:
            step = state.after_response(status, retry_after=..., token_age=..., in_flight=...)
        else:                                   # no answer: timeout, dropped connection
            step = state.after_transport_error(sent=outcome.sent, in_flight=...)
        if step.stop or (step.action is Action.VERIFY_THEN_RETRY and the call cannot look):
            raise error.with_attempts(state.attempts, step.reason)
        if step.action is Action.REFRESH_AUTH:
            ask for a new token; continue       # at once, no sleep
        sleep(step.delay)                       # time.sleep or asyncio.sleep: the only difference
        if step.action is Action.VERIFY_THEN_RETRY and (found := look_for_what_we_sent()):
            return found

Rules, and why:

- Retry 429 and 500/502/503/504 (:attr:`RetryPolicy.retry_statuses`), timeouts and broken connections: the
  failures that go away by themselves. Everything else is an answer, and asking again gets the same answer.
- Honour ``Retry-After`` (Coupa may or may not send it) and never sleep less than it asks; without it, back
  off exponentially with full jitter so many workers throttled together do not come back together.
- Give up rather than sleep when the wait would break the budget (attempts, total seconds, or a Retry-After
  longer than :attr:`RetryPolicy.max_retry_after`): an Airflow task has its own retries and timeouts, and a
  worker slot asleep for ten minutes helps nobody.
- Never blindly re-send a request that is not idempotent (a create) when it may already have reached Coupa:
  Coupa has no idempotency key, so a blind re-send can make a second record. The state answers
  :attr:`Action.VERIFY_THEN_RETRY` instead and the caller looks for the record first. That applies to a
  timeout or a dropped connection after sending, and to 500/502/504, which a proxy may send after Coupa acted;
  a 429 or 503 means Coupa refused the request, so a create is re-sent as is. A request whose answer was lost
  may still be at work on the server (a read timeout leaves it running), so before looking the client waits at
  least as long again as the lost attempt was in flight: a create that lands within twice the time waited for
  it is found rather than made twice. Beyond that nothing can tell, since Coupa has no idempotency key.
- On 401, fetch a new token once (the cached one may have been revoked or may have expired early), except when
  the token is only seconds old: Coupa advises waiting a few seconds after issue before first use, so a brand
  new token is given that time, once, rather than replaced by another brand new one.

Keeping under Coupa's published 25 requests per second before Coupa has to say 429 at all is not a retry
decision: that is :mod:`.limiter`'s job.
"""

from __future__ import annotations

import enum
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.values import finite_number, quoted, whole_number

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "Action",
    "RetryPolicy",
    "RetryState",
    "Step",
    "backoff_delay",
    "decide_retry",
    "parse_retry_after",
]

#: The statuses worth asking again: throttling and the server errors that are usually transient.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
#: Statuses that say Coupa refused the request before acting on it, so even a create may be re-sent as is.
_NOT_ACTED_ON = frozenset({429, 503})
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. The defaults suit an Airflow task: up to 6 attempts within 2 minutes.

    ``max_attempts`` counts every request sent (1 means no retry). ``max_elapsed`` bounds the seconds from the
    first attempt to the start of the last one. Backoff before retry ``n`` is drawn from
    ``[0, min(backoff_cap, backoff_base * 2 ** (n - 1))]``. A ``Retry-After`` above ``max_retry_after`` ends
    the call at once: Coupa is saying "not soon", and sleeping through it only holds a worker slot.
    ``token_settle`` is how long a new token is given to become valid across Coupa before a 401 is believed.
    """

    max_attempts: int = 6
    max_elapsed: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    max_retry_after: float = 60.0
    token_settle: float = 3.0

    def __post_init__(self) -> None:
        if whole_number(self.max_attempts, minimum=1) is None:
            raise CoupaConfigError(f"max_attempts must be a whole number of 1 or more, got {quoted(self.max_attempts)}")
        for name in ("max_elapsed", "backoff_base", "backoff_cap", "max_retry_after", "token_settle"):
            value = getattr(self, name)
            if finite_number(value) is None:
                raise CoupaConfigError(f"{name} must be a finite number of seconds, got {quoted(value)}")
            if value < 0:
                raise CoupaConfigError(f"{name} must be 0 or more seconds, got {quoted(value)}")
        if self.backoff_cap < self.backoff_base:
            raise CoupaConfigError(
                f"backoff_cap ({self.backoff_cap}) must be at least backoff_base ({self.backoff_base})"
            )
        statuses = self.retry_statuses
        if (
            isinstance(statuses, (str, bytes))
            or not isinstance(statuses, (set, frozenset, list, tuple))
            or not all(isinstance(s, int) and not isinstance(s, bool) and 400 <= s <= 599 for s in statuses)
        ):
            raise CoupaConfigError(f"retry_statuses must be HTTP error statuses (400-599), got {quoted(statuses)}")
        # Accept any collection from callers (a set, a list from JSON config) but keep the frozen promise.
        object.__setattr__(self, "retry_statuses", frozenset(statuses))

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """One attempt, no waiting: for tests and for callers that retry at another level."""
        return cls(max_attempts=1)


class Action(enum.Enum):
    """What the loop does next."""

    #: Sleep ``delay``, then send the same request again.
    RETRY = "retry"
    #: Drop the token, get a new one, then send again after ``delay`` (0).
    REFRESH_AUTH = "refresh_auth"
    #: Sleep ``delay``, look for what the request would have created; re-send only if it is not there.
    #: Callers that cannot look treat this as STOP.
    VERIFY_THEN_RETRY = "verify_then_retry"
    #: Raise the error (annotated with ``attempts`` and ``reason``).
    STOP = "stop"


@dataclass(frozen=True)
class Step:
    """One decision: the action, the seconds to sleep first, and a reason fit for a log line.

    ``exhausted`` tells a final failure (a 400) from a transient one the budget no longer allows retrying, so
    the error message can say "gave up after 6 attempts" only when that is what happened.
    """

    action: Action
    delay: float = 0.0
    reason: str = ""
    exhausted: bool = False

    @property
    def stop(self) -> bool:
        return self.action is Action.STOP


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date; ``None`` if unusable.

    Accepts whole or decimal seconds (RFC 9110 says whole; some servers send decimals) and the three HTTP date
    forms (IMF-fixdate, obsolete RFC 850 and asctime). A date in the past means "now" (0.0). A date without a
    zone is taken as GMT, as HTTP dates always are. Garbage gives ``None``, so the caller falls back to its
    own backoff instead of failing on a header it cannot read.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # Python < 3.10 returned None on some garbage instead of raising.
        return None  # pragma: no cover
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to sleep after failed attempt number ``attempt`` (1-based): exponential backoff, full jitter.

    Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter") draws uniformly from 0 to the
    exponential ceiling. Of the schemes compared there it does the least total work and spreads clients best;
    the chance of a near-zero sleep is harmless here because Coupa refills its bucket every 40 ms. It is also
    stateless (unlike "decorrelated" jitter, which needs the previous sleep), so the delay depends only on
    ``attempt`` and a seedable ``rng``, which keeps tests exact.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    # min() before the power would overflow for absurd attempt numbers; 2**60 dwarfs any cap anyway.
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2.0 ** min(attempt - 1, 60))
    return rng.uniform(0.0, ceiling)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def decide_retry(
    policy: RetryPolicy,
    *,
    attempts: int,
    elapsed: float,
    rng: random.Random,
    status: int | None = None,
    retry_after: float | None = None,
    transport_error: bool = False,
    sent: bool | None = None,
    idempotent: bool = True,
    in_flight: float = 0.0,
) -> Step:
    """The pure core of :class:`RetryState`: what to do after ``attempts`` attempts and ``elapsed`` seconds.

    Give either ``status`` (an error answer) or ``transport_error=True`` (no answer; ``sent`` as in
    :class:`~airflow_provider_coupa_ihr.client.errors.CoupaTransportError`). 401 handling needs memory across
    attempts and lives in :class:`RetryState`; here a 401 is simply not retryable. ``in_flight`` is how long the
    failed attempt took: when its outcome is unknown (a create), the wait before looking is at least that long.
    """
    if transport_error:
        what = "no answer after sending" if sent else "no answer"
        unknown_outcome = not idempotent and sent is not False
    elif status is not None:
        what = f"status {status}"
        if status not in policy.retry_statuses:
            return Step(Action.STOP, reason=f"{what} is not worth retrying")
        unknown_outcome = not idempotent and status not in _NOT_ACTED_ON
    else:
        raise ValueError("decide_retry() needs a status or transport_error=True")

    if attempts >= policy.max_attempts:
        return Step(
            Action.STOP,
            reason=f"{what}; {_plural(policy.max_attempts, 'attempt')} allowed",
            exhausted=True,
        )
    remaining = policy.max_elapsed - elapsed
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return Step(
                Action.STOP,
                reason=f"{what}; Coupa asked to wait {retry_after:g} s, more than max_retry_after "
                f"({policy.max_retry_after:g} s)",
                exhausted=True,
            )
        # Never less than asked; a little jitter on top so clients told the same second spread out.
        delay = retry_after + rng.uniform(0.0, min(1.0, policy.backoff_base))
        why = f"Coupa asked to wait {retry_after:g} s"
    else:
        delay = backoff_delay(attempts, policy, rng)
        why = "backing off"
    if unknown_outcome and in_flight > delay:
        # The lost request may still be at work on the server: look only once it has had as long again.
        delay = in_flight
        why = "letting the lost request land (as long again as it was in flight):"
    if delay > remaining:
        return Step(
            Action.STOP,
            reason=f"{what}; waiting {delay:.1f} s more would pass the {policy.max_elapsed:g} s budget",
            exhausted=True,
        )
    action = Action.VERIFY_THEN_RETRY if unknown_outcome else Action.RETRY
    note = "; it may have reached Coupa, look before re-sending" if unknown_outcome else ""
    return Step(
        action,
        delay=delay,
        reason=f"{what}; {why} {delay:.2f} s before attempt {attempts + 1} of {policy.max_attempts}{note}",
    )


class RetryState:
    """The retry bookkeeping of one logical call (all its attempts), shared by the sync and async loops.

    Call :meth:`after_response` or :meth:`after_transport_error` once per failed attempt; each counts the
    attempt and returns the :class:`Step` to take. ``clock`` must be monotonic (tests pass a fake one), and
    ``rng`` may be seeded for exact delays in tests.

    ``idempotent`` says whether re-sending is harmless (GET, PUT, resolve; not a create). ``auth_refreshable``
    is False for a legacy API key, where a 401 cannot be cured by fetching anything. The one 401 refresh (and
    the one wait for a new token to settle) are allowed on top of ``max_attempts``: they fix our own stale
    credentials, not Coupa's trouble, and should not eat the budget meant for it.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        idempotent: bool = True,
        auth_refreshable: bool = True,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.idempotent = idempotent
        self.auth_refreshable = auth_refreshable
        self._clock = clock
        self._rng = rng or random.Random()
        self._started = clock()
        self._attempts = 0
        self._auth_extra = 0
        self._refreshed = False
        self._settled = False

    @property
    def attempts(self) -> int:
        """Requests sent so far (failed ones reported to this state)."""
        return self._attempts

    @property
    def elapsed(self) -> float:
        """Seconds since this state was made, i.e. since the call began."""
        return self._clock() - self._started

    def after_response(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        token_age: float | None = None,
        in_flight: float = 0.0,
    ) -> Step:
        """Decide after an answer with ``status`` (not 2xx).

        ``retry_after`` is the parsed header (:func:`parse_retry_after`); ``token_age`` is how many seconds
        ago the bearer token used was issued (``None`` for API keys or when unknown); ``in_flight`` is how many
        seconds the attempt took (see :func:`decide_retry`).
        """
        self._attempts += 1
        if status == 401:
            return self._after_unauthorized(token_age)
        return self._decide(status=status, retry_after=retry_after, in_flight=in_flight)

    def after_transport_error(self, *, sent: bool | None, in_flight: float = 0.0) -> Step:
        """Decide after a timeout or broken connection; ``sent`` says whether the request may have arrived,
        ``in_flight`` how many seconds the attempt took before it failed."""
        self._attempts += 1
        return self._decide(transport_error=True, sent=sent, in_flight=in_flight)

    def _decide(self, **failure: Any) -> Step:
        # The one 401 refresh and settle are not counted against max_attempts (see the class docstring).
        return decide_retry(
            self.policy,
            attempts=self._attempts - self._auth_extra,
            elapsed=self.elapsed,
            rng=self._rng,
            idempotent=self.idempotent,
            **failure,
        )

    def _after_unauthorized(self, token_age: float | None) -> Step:
        if not self.auth_refreshable:
            return Step(Action.STOP, reason="status 401 with a fixed credential (API key)")
        # A 401 means Coupa refused the request, so even a create is safe to re-send.
        settle = self.policy.token_settle
        if token_age is not None and token_age < settle and not self._settled:
            self._settled = True
            self._auth_extra += 1
            delay = max(0.0, settle - token_age)
            if delay > self.policy.max_elapsed - self.elapsed:
                return Step(Action.STOP, reason="status 401 on a new token; no time left to let it settle")
            return Step(
                Action.RETRY,
                delay=delay,
                reason=f"status 401 on a token {token_age:.1f} s old; giving it {delay:.1f} s to settle",
            )
        if self._refreshed:
            return Step(Action.STOP, reason="status 401 again with a freshly fetched token")
        self._refreshed = True
        self._auth_extra += 1
        return Step(Action.REFRESH_AUTH, reason="status 401; fetching a new token once")
