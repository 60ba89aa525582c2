"""Retry decisions: policy checks, Retry-After parsing, jittered backoff, budgets, 401s."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.retry import (
    DEFAULT_RETRY_STATUSES,
    Action,
    RetryPolicy,
    RetryState,
    Step,
    backoff_delay,
    decide_retry,
    parse_retry_after,
)

NOW = datetime(2024, 3, 25, 18, 38, 0, tzinfo=timezone.utc)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------------------------------------------ RetryPolicy
def test_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 6
    assert policy.max_elapsed == 120.0
    assert policy.backoff_base == 0.5
    assert policy.backoff_cap == 30.0
    assert policy.retry_statuses == frozenset({429, 500, 502, 503, 504}) == DEFAULT_RETRY_STATUSES
    assert policy.max_retry_after == 60.0
    assert RetryPolicy.no_retries().max_attempts == 1


def test_policy_accepts_any_collection_of_statuses_and_freezes_it() -> None:
    policy = RetryPolicy(retry_statuses=[429, 503])  # type: ignore[arg-type]
    assert policy.retry_statuses == frozenset({429, 503})
    assert isinstance(policy.retry_statuses, frozenset)
    assert hash(policy) == hash(RetryPolicy(retry_statuses=frozenset({503, 429})))


def test_policy_is_frozen() -> None:
    with pytest.raises(AttributeError):
        RetryPolicy().max_attempts = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be a whole number of 1 or more, got 0"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"max_attempts": True}, "max_attempts must be a whole number"),
        ({"max_elapsed": -1}, "max_elapsed must be 0 or more seconds, got -1"),
        ({"max_elapsed": float("inf")}, "max_elapsed must be a finite number of seconds"),
        ({"backoff_base": "1"}, "backoff_base must be a finite number of seconds"),
        ({"backoff_cap": float("nan")}, "backoff_cap must be a finite number"),
        ({"max_retry_after": -0.5}, "max_retry_after must be 0 or more"),
        ({"token_settle": False}, "token_settle must be a finite number"),
        ({"backoff_base": 5.0, "backoff_cap": 1.0}, r"backoff_cap \(1.0\) must be at least backoff_base \(5.0\)"),
        ({"retry_statuses": frozenset({200})}, r"retry_statuses must be HTTP error statuses \(400-599\)"),
        ({"retry_statuses": frozenset({"429"})}, "retry_statuses must be HTTP error statuses"),
        ({"retry_statuses": frozenset({True})}, "retry_statuses must be HTTP error statuses"),
        ({"retry_statuses": "429"}, "retry_statuses must be HTTP error statuses"),
    ],
)
def test_policy_refuses_nonsense_with_clear_messages(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


def test_policy_allows_zero_waits() -> None:
    policy = RetryPolicy(backoff_base=0, backoff_cap=0, max_elapsed=0, max_retry_after=0, token_settle=0)
    assert policy.backoff_cap == 0


# ------------------------------------------------------------------------------------------ parse_retry_after
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (None, None),
        ("", None),
        ("   ", None),
        ("-1", None),
        ("1e3", None),
        ("+5", None),
        ("1.", None),
        ("soon", None),
        ("Mon, 99 Foo 2024 99:99:99 GMT", None),
        ("9" * 400, None),
    ],
)
def test_retry_after_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 25 Mar 2024 18:38:30 GMT",  # IMF-fixdate
        "Monday, 25-Mar-24 18:38:30 GMT",  # obsolete RFC 850
        "Mon Mar 25 18:38:30 2024",  # asctime, no zone: GMT by definition
        "Mon, 25 Mar 2024 20:38:30 +0200",  # numeric offset
    ],
)
def test_retry_after_http_dates(value: str) -> None:
    assert parse_retry_after(value, NOW) == 30.0


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Mon, 25 Mar 2024 18:00:00 GMT", NOW) == 0.0


def test_retry_after_with_naive_now_treats_it_as_utc() -> None:
    assert parse_retry_after("Mon, 25 Mar 2024 18:38:10 GMT", NOW.replace(tzinfo=None)) == 10.0


def test_retry_after_defaults_now_to_the_current_time() -> None:
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    seconds = parse_retry_after(format_datetime(future, usegmt=True))
    assert seconds is not None
    assert 3500 < seconds <= 3600
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


# ---------------------------------------------------------------------------------------------- backoff_delay
def test_backoff_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=30.0)
    rng = random.Random(42)
    for attempt in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        draws = [backoff_delay(attempt, policy, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Full jitter: spread over the whole range, not bunched at the top or bottom.
        assert min(draws) < ceiling * 0.1
        assert max(draws) > ceiling * 0.9


def test_backoff_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    first = [backoff_delay(n, policy, random.Random(7)) for n in range(1, 6)]
    second = [backoff_delay(n, policy, random.Random(7)) for n in range(1, 6)]
    assert first == second


def test_backoff_survives_absurd_attempt_numbers() -> None:
    assert 0.0 <= backoff_delay(10**6, RetryPolicy(), random.Random(1)) <= 30.0


def test_backoff_with_zero_base_never_sleeps() -> None:
    assert backoff_delay(3, RetryPolicy(backoff_base=0.0), random.Random(1)) == 0.0


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="attempt counts from 1, got 0"):
        backoff_delay(0, RetryPolicy(), random.Random(1))


# ----------------------------------------------------------------------------------------------- decide_retry
def _decide(**kwargs: Any) -> Step:
    base: dict[str, Any] = {"attempts": 1, "elapsed": 0.0, "rng": random.Random(3)}
    base.update(kwargs)
    policy = base.pop("policy", RetryPolicy())
    return decide_retry(policy, **base)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_answers_that_will_not_change_stop_at_once(status: int) -> None:
    step = _decide(status=status)
    assert step.action is Action.STOP
    assert step.stop
    assert not step.exhausted
    assert step.reason == f"status {status} is not worth retrying"


@pytest.mark.parametrize("status", sorted(DEFAULT_RETRY_STATUSES))
def test_transient_statuses_retry_after_a_backoff(status: int) -> None:
    step = _decide(status=status)
    assert step.action is Action.RETRY
    assert not step.stop
    assert 0.0 <= step.delay <= 0.5
    assert step.reason.startswith(f"status {status}; backing off")
    assert "before attempt 2 of 6" in step.reason


def test_custom_retry_statuses_are_honoured() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({408}))
    assert _decide(policy=policy, status=408).action is Action.RETRY
    assert _decide(policy=policy, status=503).action is Action.STOP


def test_retry_after_is_a_floor_with_a_little_jitter_on_top() -> None:
    for seed in range(50):
        step = _decide(status=429, retry_after=2.0, rng=random.Random(seed))
        assert step.action is Action.RETRY
        assert 2.0 <= step.delay <= 2.5
    assert "Coupa asked to wait 2 s" in step.reason


def test_retry_after_jitter_is_at_most_a_second() -> None:
    policy = RetryPolicy(backoff_base=10.0)
    step = _decide(policy=policy, status=503, retry_after=5.0, rng=random.Random(0))
    assert 5.0 <= step.delay <= 6.0


def test_retry_after_zero_means_retry_now_give_or_take_jitter() -> None:
    step = _decide(status=429, retry_after=0.0, policy=RetryPolicy(backoff_base=0.0))
    assert step.action is Action.RETRY
    assert step.delay == 0.0


def test_retry_after_longer_than_max_retry_after_gives_up_now() -> None:
    step = _decide(status=429, retry_after=61.0)
    assert step.action is Action.STOP
    assert step.exhausted
    assert "Coupa asked to wait 61 s, more than max_retry_after (60 s)" in step.reason


def test_retry_after_longer_than_the_remaining_budget_gives_up_now() -> None:
    step = _decide(status=429, retry_after=30.0, elapsed=100.0)
    assert step.action is Action.STOP
    assert step.exhausted
    assert "would pass the 120 s budget" in step.reason


def test_backoff_longer_than_the_remaining_budget_gives_up() -> None:
    policy = RetryPolicy(backoff_base=10.0, backoff_cap=10.0, max_elapsed=5.0, max_attempts=50)
    step = _decide(policy=policy, status=503, elapsed=5.0)
    assert step.action is Action.STOP
    assert step.exhausted


def test_attempt_budget() -> None:
    assert _decide(status=503, attempts=5).action is Action.RETRY
    step = _decide(status=503, attempts=6)
    assert step.action is Action.STOP
    assert step.exhausted
    assert step.reason == "status 503; 6 attempts allowed"
    single = _decide(status=503, policy=RetryPolicy.no_retries())
    assert single.reason == "status 503; 1 attempt allowed"


def test_transport_errors_retry_idempotent_requests() -> None:
    for sent in (True, False, None):
        step = _decide(transport_error=True, sent=sent, idempotent=True)
        assert step.action is Action.RETRY
    assert _decide(transport_error=True, sent=True).reason.startswith("no answer after sending;")
    assert _decide(transport_error=True, sent=False).reason.startswith("no answer;")


@pytest.mark.parametrize("sent", [True, None])
def test_unknown_outcome_of_a_create_asks_to_verify_first(sent: bool | None) -> None:
    step = _decide(transport_error=True, sent=sent, idempotent=False)
    assert step.action is Action.VERIFY_THEN_RETRY
    assert step.delay > 0.0
    assert "look before re-sending" in step.reason


def test_create_that_never_left_is_simply_resent() -> None:
    assert _decide(transport_error=True, sent=False, idempotent=False).action is Action.RETRY


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (429, Action.RETRY),
        (503, Action.RETRY),
        (500, Action.VERIFY_THEN_RETRY),
        (502, Action.VERIFY_THEN_RETRY),
        (504, Action.VERIFY_THEN_RETRY),
    ],
)
def test_create_answered_by_a_server_error_may_have_landed(status: int, action: Action) -> None:
    assert _decide(status=status, idempotent=False).action is action


def test_unknown_outcome_still_respects_the_budget() -> None:
    step = _decide(transport_error=True, sent=True, idempotent=False, attempts=6)
    assert step.action is Action.STOP
    assert step.exhausted


def test_decide_retry_needs_something_to_decide_on() -> None:
    with pytest.raises(ValueError, match="needs a status or transport_error=True"):
        _decide()


# ------------------------------------------------------------------------------------------------- RetryState
def test_state_counts_attempts_and_time_with_an_injected_clock() -> None:
    clock = FakeClock()
    state = RetryState(clock=clock, rng=random.Random(0))
    assert state.attempts == 0
    assert state.elapsed == 0.0
    clock.advance(2.5)
    step = state.after_response(503)
    assert step.action is Action.RETRY
    assert state.attempts == 1
    assert state.elapsed == 2.5
    assert state.idempotent
    assert state.policy == RetryPolicy()


def test_state_gives_up_after_max_attempts() -> None:
    clock = FakeClock()
    state = RetryState(RetryPolicy(max_attempts=3), clock=clock, rng=random.Random(0))
    actions = []
    for _ in range(3):
        step = state.after_response(429)
        actions.append(step.action)
        clock.advance(step.delay)
    assert actions == [Action.RETRY, Action.RETRY, Action.STOP]
    assert state.attempts == 3


def test_state_elapsed_budget_stops_a_slow_storm() -> None:
    clock = FakeClock()
    state = RetryState(RetryPolicy(max_attempts=100, max_elapsed=10.0), clock=clock, rng=random.Random(0))
    slept = 0.0
    while True:
        clock.advance(1.0)  # each attempt takes a second to fail
        step = state.after_response(503, retry_after=2.0)
        if step.stop:
            break
        slept += step.delay
        clock.advance(step.delay)
    assert step.exhausted
    assert "budget" in step.reason
    # It stopped because the next wait (2 s plus at most 0.5 s of jitter) would not fit, and not earlier.
    assert 10.0 - 2.5 < state.elapsed <= 10.0 + 1.0
    assert slept >= 2.0 * (state.attempts - 1)


def test_state_verifies_before_resending_a_create_that_timed_out() -> None:
    state = RetryState(idempotent=False, clock=FakeClock(), rng=random.Random(0))
    assert state.after_transport_error(sent=True).action is Action.VERIFY_THEN_RETRY
    assert state.after_transport_error(sent=False).action is Action.RETRY
    assert state.after_response(504).action is Action.VERIFY_THEN_RETRY
    assert state.after_response(429, retry_after=1.0).action is Action.RETRY
    assert state.attempts == 4


def test_state_refreshes_the_token_once_on_401() -> None:
    state = RetryState(clock=FakeClock(), rng=random.Random(0))
    step = state.after_response(401, token_age=5000.0)
    assert step.action is Action.REFRESH_AUTH
    assert step.delay == 0.0
    again = state.after_response(401, token_age=0.0 + 10.0)
    assert again.action is Action.STOP
    assert not again.exhausted
    assert "again" in again.reason


def test_state_with_an_api_key_stops_on_401() -> None:
    state = RetryState(auth_refreshable=False, clock=FakeClock())
    step = state.after_response(401)
    assert step.action is Action.STOP
    assert "API key" in step.reason


def test_state_gives_a_brand_new_token_time_to_settle_then_refreshes_then_stops() -> None:
    clock = FakeClock()
    state = RetryState(clock=clock, rng=random.Random(0))
    settle = state.after_response(401, token_age=0.5)
    assert settle.action is Action.RETRY
    assert settle.delay == pytest.approx(2.5)
    clock.advance(settle.delay)
    # Second 401 on the same (now settled) token: fetch another, once.
    assert state.after_response(401, token_age=3.0).action is Action.REFRESH_AUTH
    # A new token that fails young again is not waited for a second time.
    assert state.after_response(401, token_age=0.1).action is Action.STOP


def test_state_does_not_wait_for_settling_past_the_budget() -> None:
    clock = FakeClock()
    state = RetryState(RetryPolicy(max_elapsed=1.0), clock=clock)
    clock.advance(0.5)
    step = state.after_response(401, token_age=0.0)
    assert step.action is Action.STOP
    assert "no time left" in step.reason


def test_auth_recovery_does_not_eat_the_retry_budget() -> None:
    state = RetryState(RetryPolicy(max_attempts=2), clock=FakeClock(), rng=random.Random(0))
    assert state.after_response(401, token_age=1.0).action is Action.RETRY  # settle
    assert state.after_response(401, token_age=10.0).action is Action.REFRESH_AUTH
    assert state.after_response(503).action is Action.RETRY  # first real failure: 1 of 2 attempts used
    assert state.after_response(503).action is Action.STOP
    assert state.attempts == 4


def test_no_retries_policy_still_refreshes_a_stale_token_once() -> None:
    state = RetryState(RetryPolicy.no_retries(), clock=FakeClock())
    assert state.after_response(401).action is Action.REFRESH_AUTH
    assert state.after_response(500).action is Action.STOP


def test_state_defaults_to_a_real_clock_and_rng() -> None:
    state = RetryState()
    assert 0.0 <= state.elapsed < 5.0
    assert state.after_transport_error(sent=None).action is Action.RETRY


@pytest.mark.parametrize(
    "settings",
    [
        {"max_attempts": None},
        {"max_elapsed": None},
        {"backoff_base": "fast"},
        {"retry_statuses": None},
        {"retry_statuses": 503},
        {"retry_statuses": "503"},
    ],
)
def test_bad_retry_settings_are_config_errors_not_bare_exceptions(settings: dict[str, object]) -> None:
    from airflow_provider_coupa_ihr.client.errors import CoupaConfigError

    with pytest.raises(CoupaConfigError):
        RetryPolicy(**settings)  # type: ignore[arg-type]
