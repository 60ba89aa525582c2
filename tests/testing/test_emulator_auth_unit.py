"""``testing.auth`` without a server, on a fake clock: issuing, checking and expiring credentials."""

from __future__ import annotations

import base64

import pytest

from airflow_provider_coupa_ihr.testing.auth import READ_SCOPE, WRITE_SCOPE, AuthFailure, Authority, OAuthClient

CLIENT = OAuthClient("id", "secret")
FORM = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _authority(**kwargs: object) -> tuple[Authority, FakeClock]:
    clock = FakeClock()
    return Authority([CLIENT], clock=clock, **kwargs), clock  # type: ignore[arg-type]


def _failure(call: object, *args: object) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_token_lives_exactly_its_lifetime() -> None:
    authority, clock = _authority()
    answer = authority.issue(FORM, None)
    assert answer["expires_in"] == 86399
    bearer = f"Bearer {answer['access_token']}"
    clock.now += 86398.9
    assert authority.check(bearer, None, READ_SCOPE).client_id == "id"
    clock.now += 0.1
    failure = _failure(authority.check, bearer, None, READ_SCOPE)
    assert (failure.status, failure.error) == (401, "invalid_token")


def test_expire_all_counts_live_tokens() -> None:
    authority, _ = _authority()
    tokens = [authority.issue(FORM, None)["access_token"] for _ in range(3)]
    assert authority.expire_all() == 3
    for token in tokens:
        assert _failure(authority.check, f"Bearer {token}", None, READ_SCOPE).status == 401
    assert authority.every_token() == tokens
    assert authority.tokens_issued == 3


def test_basic_credentials_win_over_the_form() -> None:
    authority, _ = _authority()
    basic = "Basic " + base64.b64encode(b"id:secret").decode()
    assert authority.issue({"grant_type": "client_credentials", "client_secret": "wrong"}, basic)["access_token"]
    bad = "Basic " + base64.b64encode(b"id:wrong").decode()
    assert _failure(authority.issue, FORM, bad).error == "invalid_client"
    no_colon = "Basic " + base64.b64encode(b"idsecret").decode()
    assert _failure(authority.issue, FORM, no_colon).error == "invalid_client"


def test_scopes() -> None:
    authority, _ = _authority()
    read = authority.issue({**FORM, "scope": READ_SCOPE}, None)
    bearer = f"Bearer {read['access_token']}"
    assert authority.check(bearer, None, READ_SCOPE).scopes == frozenset({READ_SCOPE})
    failure = _failure(authority.check, bearer, None, WRITE_SCOPE)
    assert (failure.status, failure.error) == (403, "insufficient_scope")
    both = authority.issue(FORM, None)
    assert set(str(both["scope"]).split()) == {READ_SCOPE, WRITE_SCOPE}


def test_api_keys() -> None:
    off, _ = _authority()
    assert _failure(off.check, None, "k" * 40, READ_SCOPE).error == "invalid_request"  # ignored: no bearer
    on, _ = _authority(api_keys=["k" * 40])
    grant = on.check(None, "k" * 40, WRITE_SCOPE)
    assert grant.client_id == "api-key"
    assert _failure(on.check, None, "x" * 40, READ_SCOPE).error == "invalid_api_key"


def test_bearer_scheme_is_case_insensitive() -> None:
    authority, _ = _authority()
    token = authority.issue(FORM, None)["access_token"]
    assert authority.check(f"bearer {token}", None, READ_SCOPE)
