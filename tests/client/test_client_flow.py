"""The sans-IO call flow driven by hand: each test plays the server, answering the flow's effects with fake
responses, so every decision (token, throttle, retry, Retry-After, 401 refresh, verify-before-resend, redirects,
parsing) is checked without a socket."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Generator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.auth import Token
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaBadRequestError,
    CoupaError,
    CoupaRateLimitError,
    CoupaServerError,
    CoupaTransportError,
)
from airflow_provider_coupa_ihr.client.flow import (
    USER_AGENT,
    CallContext,
    GetToken,
    HttpRequest,
    HttpResponse,
    Operation,
    Reserve,
    Send,
    Sleep,
    TransportFailure,
    Verification,
    call,
    fetch_token,
    run_sync,
)
from airflow_provider_coupa_ihr.client.limiter import TokenBucket
from airflow_provider_coupa_ihr.client.retry import RetryPolicy

BASE = "https://acme.coupahost.com"
SECRET = "flow-client-secret-value"
FAST = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, token_settle=0)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_ctx(*, retry: RetryPolicy = FAST, api_key: str | None = None, **kw: Any) -> CallContext:
    if api_key is None:
        config = ClientConfig(BASE, "cid", SECRET, rate_limit=None, retry=retry)
    else:
        config = ClientConfig(BASE, api_key=api_key, rate_limit=None, retry=retry)
    kw.setdefault("clock", FakeClock())
    kw.setdefault("rng", random.Random(7))
    return CallContext(config=config, **kw)


def token(value: str = "tok-1", obtained_at: float = 0.0) -> Token:
    return Token.issued(value, 86399, obtained_at)


def response(status: int, body: Any = b"", **headers: str) -> HttpResponse:
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers.setdefault("content_type", "application/json")
    return HttpResponse(status, {k.replace("_", "-").lower(): v for k, v in headers.items()}, body)


class Script:
    """Drives a flow, recording every effect and answering Sends from a queue of outcomes."""

    def __init__(
        self,
        flow: Generator[Any, Any, Any],
        tokens: list[Token] | None = None,
        reserve: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.flow = flow
        self.reserve = reserve
        self.effects: list[Any] = []
        self.tokens = list(tokens or [token("tok-1"), token("tok-2")])
        self.current: Token | None = None

    @property
    def sent(self) -> list[HttpRequest]:
        return [e.request for e in self.effects if isinstance(e, Send)]

    @property
    def sleeps(self) -> list[float]:
        return [e.seconds for e in self.effects if isinstance(e, Sleep)]

    def run(self, *outcomes: HttpResponse | TransportFailure | Callable[[HttpRequest], Any]) -> Any:
        queue = list(outcomes)

        def handle(effect: Any) -> Any:
            self.effects.append(effect)
            if isinstance(effect, GetToken):
                # As the token cache does: the same token until the flow says it was refused.
                if self.current is None or effect.refresh:
                    self.current = self.tokens.pop(0)
                return self.current
            if isinstance(effect, Sleep):
                return None
            if isinstance(effect, Reserve):
                return self.reserve()  # what a client does with its throttle
            assert queue, f"the flow sent more than the script answers: {effect.request}"
            outcome = queue.pop(0)
            return outcome(effect.request) if callable(outcome) else outcome

        try:
            return run_sync(self.flow, handle)
        finally:
            self.left = queue


RECORD = {"id": 7, "document-type": "InvoiceHeader", "document-id": 1, "status": "Success"}


# ------------------------------------------------------------------------------------------------ the happy path
def test_a_get_asks_for_a_token_then_sends_once_and_returns_snake_case_keys() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integration_history_records/7")))
    result = script.run(response(200, RECORD))
    assert result == {"id": 7, "document_type": "InvoiceHeader", "document_id": 1, "status": "Success"}
    assert isinstance(script.effects[0], GetToken)
    assert not script.effects[0].refresh
    (request,) = script.sent
    assert request.method == "GET"
    assert request.url == f"{BASE}/api/integration_history_records/7"
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert "Content-Type" not in request.headers


def test_a_body_gets_a_json_content_type_and_raw_keeps_dash_case() -> None:
    op = Operation("POST", "/integration_history_records", body={"document-id": 1}, raw=True)
    script = Script(call(make_ctx(), op))
    assert script.run(response(201, RECORD)) == RECORD
    assert script.sent[0].headers["Content-Type"] == "application/json"
    assert script.sent[0].json_body == {"document-id": 1}


def test_an_empty_success_body_is_none() -> None:
    assert Script(call(make_ctx(), Operation("PUT", "/x/1/resolve"))).run(response(200, b"  ")) is None


def test_a_non_json_success_is_an_error_with_a_hint_and_no_secret() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integration_history_records")))
    with pytest.raises(CoupaError) as caught:
        script.run(response(200, f"<html>login tok-1 {SECRET}</html>".encode(), content_type="text/html"))
    text = str(caught.value)
    assert "expected JSON, got text/html" in text
    assert "Coupa answers XML" in text
    assert "tok-1" not in text
    assert SECRET not in text


def test_the_api_key_mode_sends_the_key_and_never_asks_for_a_token() -> None:
    key = "k" * 40
    script = Script(call(make_ctx(api_key=key), Operation("GET", "/integrations")))
    assert script.run(response(200, [])) == []
    assert not any(isinstance(e, GetToken) for e in script.effects)
    assert script.sent[0].headers["X-COUPA-API-KEY"] == key
    assert "Authorization" not in script.sent[0].headers


def test_a_throttle_wait_is_a_sleep_before_the_send() -> None:
    clock = FakeClock()
    throttle = TokenBucket(1.0, 1, clock=clock)
    ctx = make_ctx(throttle=throttle)
    first = Script(call(ctx, Operation("GET", "/integrations")), reserve=throttle.reserve)
    first.run(response(200, []))
    assert first.sleeps == []
    second = Script(call(ctx, Operation("GET", "/integrations")), reserve=throttle.reserve)
    second.run(response(200, []))
    assert second.sleeps == [pytest.approx(1.0)]
    assert isinstance(second.effects[-2], Sleep)
    assert isinstance(second.effects[-1], Send)


# ------------------------------------------------------------------------------------------------ retries
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_on_a_get(status: int) -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    assert script.run(response(status, {"errors": {"base": ["busy"]}}), response(200, [])) == []
    assert len(script.sent) == 2
    assert len(script.sleeps) == 1
    assert 0 <= script.sleeps[0] <= 0.01


def test_retry_after_in_seconds_is_never_shortened() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    script.run(response(429, b"", retry_after="3"), response(200, []))
    assert 3.0 <= script.sleeps[0] <= 3.01


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    script.run(response(429, b"", retry_after=format_datetime(when, usegmt=True)), response(200, []))
    # HTTP dates have whole seconds, so the wait is 29 to 30 s (plus at most backoff_base of jitter).
    assert 28.5 <= script.sleeps[0] <= 30.02


def test_retry_after_as_a_past_http_date_means_now() -> None:
    when = datetime.now(timezone.utc) - timedelta(minutes=5)
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    script.run(response(503, b"", retry_after=format_datetime(when, usegmt=True)), response(200, []))
    assert 0 <= script.sleeps[0] <= 0.01


def test_a_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    with pytest.raises(CoupaRateLimitError) as caught:
        script.run(response(429, {"errors": {"base": ["slow down"]}}, retry_after="120"), response(200, []))
    assert caught.value.retry_after == 120
    assert caught.value.attempts == 1
    assert "max_retry_after" in str(caught.value)
    assert script.sleeps == []


def test_a_permanent_503_gives_up_after_max_attempts_and_says_so() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05, token_settle=0)
    script = Script(call(make_ctx(retry=policy), Operation("GET", "/integrations")))
    with pytest.raises(CoupaServerError) as caught:
        script.run(*[response(503, {"errors": {"base": ["down"]}})] * 4)
    assert len(script.sent) == 4
    assert len(script.sleeps) == 3
    assert caught.value.attempts == 4
    assert "gave up after 4 attempts" in str(caught.value)
    assert script.left == []


def test_the_time_budget_bounds_the_retries() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=50, max_elapsed=5, backoff_base=0.01, backoff_cap=0.05, token_settle=0)
    script = Script(call(make_ctx(retry=policy, clock=clock), Operation("GET", "/integrations")))

    def slow(request: HttpRequest) -> HttpResponse:
        clock.now += 2
        return response(503)

    with pytest.raises(CoupaServerError) as caught:
        script.run(*[slow] * 10)
    assert len(script.sent) == 3
    assert "budget" in str(caught.value)


def test_a_400_is_not_retried() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    with pytest.raises(CoupaBadRequestError) as caught:
        script.run(response(400, {"errors": {"integration": ["Code can't be blank"]}}), response(200, []))
    assert len(script.sent) == 1
    assert caught.value.messages == ["Code can't be blank"]
    # A final answer is not a retry budget running out: no "gave up after 1 attempt" in the message.
    assert "gave up" not in str(caught.value)


@pytest.mark.parametrize("sent", [True, None, False])
def test_transport_failures_are_retried_on_a_get(sent: bool | None) -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    assert script.run(TransportFailure("reset", sent), response(200, [])) == []
    assert len(script.sent) == 2


def test_a_transport_failure_that_persists_ends_in_a_transport_error_without_secrets() -> None:
    policy = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.05, token_settle=0)
    script = Script(call(make_ctx(retry=policy), Operation("GET", "/integrations")))
    with pytest.raises(CoupaTransportError) as caught:
        script.run(*[TransportFailure(f"reset while sending tok-1 and {SECRET}", None)] * 2)
    assert caught.value.attempts == 2
    assert "tok-1" not in str(caught.value)
    assert SECRET not in str(caught.value)


# ------------------------------------------------------------------------------------------------ 401
def test_a_401_refreshes_the_token_once_and_succeeds() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    assert script.run(response(401, {"error": "invalid_token"}), response(200, [])) == []
    token_asks = [e for e in script.effects if isinstance(e, GetToken)]
    assert len(token_asks) == 2
    assert token_asks[1].refresh
    assert token_asks[1].stale is not None
    assert token_asks[1].stale.value == "tok-1"
    assert [r.headers["Authorization"] for r in script.sent] == ["Bearer tok-1", "Bearer tok-2"]
    assert script.sleeps == []


def test_a_second_401_fails() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")), tokens=[token("a"), token("b"), token("c")])
    with pytest.raises(CoupaAuthError) as caught:
        script.run(response(401), response(401), response(200, []))
    assert len(script.sent) == 2
    assert "freshly fetched token" in str(caught.value)
    assert script.left  # the third answer was never asked for


def test_a_401_on_a_brand_new_token_waits_for_it_to_settle_first() -> None:
    clock = FakeClock(1000.0)
    policy = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, token_settle=3.0)
    ctx = make_ctx(retry=policy, clock=clock)
    script = Script(call(ctx, Operation("GET", "/integrations")), tokens=[token("new", obtained_at=999.0), token()])
    assert script.run(response(401), response(200, [])) == []
    assert script.sleeps == [pytest.approx(2.0)]
    assert [r.headers["Authorization"] for r in script.sent] == ["Bearer new", "Bearer new"]


def test_a_401_with_an_api_key_is_final() -> None:
    script = Script(call(make_ctx(api_key="k" * 40), Operation("GET", "/integrations")))
    with pytest.raises(CoupaAuthError):
        script.run(response(401, {"error": "invalid_api_key"}), response(200, []))
    assert len(script.sent) == 1


# ------------------------------------------------------------------------------------------------ creates
def _create() -> Operation:
    def query() -> Operation:
        return Operation("GET", "/integration_history_records", (("document-id", "1"),))

    return Operation(
        "POST",
        "/integration_history_records",
        body={"document-id": 1},
        idempotent=False,
        verify=Verification(query, lambda found: found[0] if found else None),
    )


@pytest.mark.parametrize(
    "outcome",
    [TransportFailure("answer lost", True), TransportFailure("reset", None), response(500), response(502)],
    ids=["sent", "unknown", "500", "502"],
)
def test_a_create_whose_outcome_is_unknown_is_looked_up_and_adopted(outcome: Any) -> None:
    script = Script(call(make_ctx(), _create()))
    assert script.run(outcome, response(200, [RECORD])) == {
        "id": 7,
        "document_type": "InvoiceHeader",
        "document_id": 1,
        "status": "Success",
    }
    assert [r.method for r in script.sent] == ["POST", "GET"]
    assert script.sent[1].params == (("document-id", "1"),)


def test_a_create_that_did_not_land_is_sent_again() -> None:
    script = Script(call(make_ctx(), _create()))
    assert script.run(TransportFailure("lost", True), response(200, []), response(201, RECORD))["id"] == 7
    assert [r.method for r in script.sent] == ["POST", "GET", "POST"]


@pytest.mark.parametrize("outcome", [TransportFailure("refused", False), response(503), response(429)])
def test_a_create_coupa_surely_refused_is_sent_again_without_a_lookup(outcome: Any) -> None:
    script = Script(call(make_ctx(), _create()))
    assert script.run(outcome, response(201, RECORD))["id"] == 7
    assert [r.method for r in script.sent] == ["POST", "POST"]


def test_a_non_idempotent_call_without_a_verification_is_not_resent() -> None:
    op = Operation("POST", "/integration_history_records", body={"a": 1}, idempotent=False)
    script = Script(call(make_ctx(), op))
    with pytest.raises(CoupaTransportError) as caught:
        script.run(TransportFailure("lost", True), response(201, RECORD))
    assert len(script.sent) == 1
    assert "may have reached Coupa" in str(caught.value)


# ------------------------------------------------------------------------------------------------ redirects
def test_a_redirect_is_not_followed_and_says_why() -> None:
    script = Script(call(make_ctx(), Operation("GET", "/integrations")))
    with pytest.raises(CoupaError) as caught:
        script.run(response(302, b"", location="https://evil.example.com/api/integrations"), response(200, []))
    assert caught.value.status == 302
    assert len(script.sent) == 1
    assert "redirects are not followed" in str(caught.value)
    assert "evil.example.com" in str(caught.value)


def test_a_redirected_token_request_says_why() -> None:
    script = Script(fetch_token(make_ctx()))
    with pytest.raises(CoupaError) as caught:
        script.run(response(301, b"", location="https://login.example.com/oauth2/token"))
    assert caught.value.status == 301
    assert "redirects are not followed" in str(caught.value)


# ------------------------------------------------------------------------------------------------ fetch_token
def test_fetch_token_posts_the_form_and_masks_the_token() -> None:
    masked: list[str] = []
    ctx = make_ctx(mask_secret=masked.append)
    script = Script(fetch_token(ctx))
    result = script.run(response(200, {"access_token": "abc.def", "token_type": "bearer", "expires_in": 86399}))
    assert isinstance(result, Token)
    assert result.value == "abc.def"
    assert masked == ["abc.def"]
    (request,) = script.sent
    assert request.url == f"{BASE}/oauth2/token"
    assert request.form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": SECRET,
        "scope": "core.integration.read core.integration.write",
    }
    assert SECRET not in repr(request)
    assert "abc.def" not in repr(result)


def test_fetch_token_retries_transient_failures() -> None:
    script = Script(fetch_token(make_ctx()))
    ok = response(200, {"access_token": "t", "expires_in": 10})
    assert script.run(response(503), TransportFailure("reset", None), ok).value == "t"
    assert len(script.sent) == 3
    assert len(script.sleeps) == 2


def test_fetch_token_does_not_retry_a_refusal() -> None:
    script = Script(fetch_token(make_ctx()))
    with pytest.raises(CoupaAuthError) as caught:
        script.run(response(401, {"error": "invalid_client", "error_description": "bad"}), response(200, {}))
    assert len(script.sent) == 1
    assert "Setup > OAuth2" in str(caught.value)


# ------------------------------------------------------------------------------------------------ helpers
def test_run_sync_closes_the_flow_when_the_handler_fails() -> None:
    closed: list[bool] = []

    def flow() -> Generator[Any, Any, Any]:
        try:
            yield Sleep(1)
        finally:
            closed.append(True)

    def boom(effect: Any) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sync(flow(), boom)
    assert closed == [True]


def test_retry_warnings_are_logged_with_method_and_path_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    Script(call(make_ctx(), Operation("GET", "/integrations", (("code", "X"),)))).run(response(503), response(200, []))
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("Coupa GET /api/integrations: status 503")
    assert "tok-1" not in caplog.text
