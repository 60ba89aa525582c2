"""Credentials: the token request form, parsing Coupa's answers, a token's renewal timing, the API key header."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from airflow_provider_coupa_ihr.client.auth import (
    API_KEY_HEADER,
    COUPA_TOKEN_LIFETIME,
    Token,
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


# ------------------------------------------------------------------------------------------ hostile tokens and keys
@pytest.mark.parametrize(
    "token",
    ["abc\r\nX-Evil: 1", "abc\ndef", "abc\x00def", "abc def", "tökén", "ȷ-not-latin-1", "abc\x7fdef"],
)
def test_a_token_no_header_can_carry_is_refused_masked_and_never_quoted(token: str) -> None:
    masked: list[str] = []
    with pytest.raises(CoupaAuthError) as refused:
        parse_token_response(200, _answer(access_token=token, token_type="bearer"), now=0.0, on_secret=masked.append)
    assert masked == [token]  # masked first: it is a secret even when refused
    text = f"{refused.value} {refused.value!r}"
    assert "cannot carry" in text
    assert token not in text
    assert "abc" not in text


@pytest.mark.parametrize("key", ["Kéy" + "k" * 37, "ȷ" * 40, "k" * 39 + "\x7f"])
def test_an_api_key_outside_visible_ascii_is_refused_unquoted(key: str) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        api_key_headers(key)
    assert key not in str(refused.value)
    assert "kkkk" not in str(refused.value)


@pytest.mark.parametrize("key", [12345, ["k"], b"key"])
def test_an_api_key_that_is_not_text_is_refused_unquoted(key: Any) -> None:
    with pytest.raises(CoupaConfigError) as refused:
        api_key_headers(key)
    assert "12345" not in str(refused.value)


@pytest.mark.parametrize("scopes", [7, None, 3.5])
def test_scopes_that_are_not_names_are_a_config_error(scopes: Any) -> None:
    with pytest.raises(CoupaConfigError, match="scopes"):
        normalise_scopes(scopes)


def test_an_echoed_form_is_redacted_in_every_spelling() -> None:
    secret = "Sec+ret/@=&%é"
    body = json.dumps({"error": "invalid_client", "error_description": f"client_secret={quote_plus(secret)}"})
    with pytest.raises(CoupaAuthError) as refused:
        parse_token_response(401, body, now=0.0, secrets=[secret])
    assert refused.value.messages == ["invalid_client: client_secret=***"]
