"""The exception family: types by status, Coupa's messages, hints, no leaked secrets."""

from __future__ import annotations

import pickle

import pytest

from airflow_provider_coupa_ihr.client.errors import (
    CoupaAuthError,
    CoupaBadRequestError,
    CoupaConfigError,
    CoupaError,
    CoupaForbiddenError,
    CoupaNotFoundError,
    CoupaRateLimitError,
    CoupaServerError,
    CoupaTransportError,
    CoupaValidationError,
    error_from_response,
    scope_for_method,
)
from airflow_provider_coupa_ihr.client.records import Problem

IHR = "/api/integration_history_records"
JSON = "application/json; charset=utf-8"
XML = "application/xml"


# ------------------------------------------------------------------------------------------ str() and fields
def test_str_reads_like_a_sentence_with_status_target_message_and_hint() -> None:
    err = error_from_response(
        400,
        b'{"errors": {"integration_history_record": ["Document type is not included in the list"]}}',
        JSON,
        "post",
        IHR,
    )
    assert isinstance(err, CoupaBadRequestError)
    text = str(err)
    assert text.startswith(
        "Coupa answered 400 Bad Request to POST /api/integration_history_records: "
        "Document type is not included in the list. Hint: Coupa R39 accepts these document types: "
    )
    assert "InvoiceHeader" in text
    assert "extra_document_types" in text
    assert err.status == 400
    assert err.method == "POST"
    assert err.path == IHR
    assert err.messages == ["Document type is not included in the list"]
    assert not err.retryable


def test_message_already_ending_in_a_full_stop_gets_no_second_one() -> None:
    err = CoupaError(["It broke."], status=500, method="GET", path="/api/x")
    assert str(err) == "Coupa answered 500 Internal Server Error to GET /api/x: It broke."


def test_no_messages_and_no_hint() -> None:
    assert str(CoupaError(status=418, method="GET", path="/api/x")) == "Coupa answered 418 I'm a Teapot to GET /api/x."


def test_unknown_status_has_no_phrase_and_no_target() -> None:
    err = CoupaError("odd", status=599)
    assert err.reason == ""
    assert str(err) == "Coupa answered 599: odd."


def test_plain_coupa_error_without_status_or_target() -> None:
    err = CoupaError("something")
    assert str(err) == "Coupa request failed: something."
    assert err.args == ("something",)
    assert err.reason == ""
    assert CoupaError().messages == []
    assert str(CoupaError()) == "Coupa request failed."


def test_many_messages_are_summarised() -> None:
    err = CoupaError([f"m{i}" for i in range(25)], status=400)
    assert "m19 (and 5 more)." in str(err)
    assert "m20" not in str(err)


def test_path_keeps_only_the_path() -> None:
    err = CoupaError("x", status=500, method="GET", path="https://user:pw@acme.coupahost.com/api/x?token=abc#frag")
    assert err.path == "/api/x"
    assert "pw" not in str(err)
    assert "abc" not in str(err)
    assert CoupaError("x", path="https://acme.coupahost.com").path == "/"
    assert CoupaError("x", path="").path is None


def test_repr_names_type_and_facts() -> None:
    err = CoupaNotFoundError(["Not found"], status=404, method="GET", path="/api/x/1")
    assert repr(err) == ("CoupaNotFoundError(status=404, method='GET', path='/api/x/1', messages=['Not found'])")


def test_with_attempts_notes_why_retrying_stopped() -> None:
    err = CoupaServerError(["down"], status=503, method="GET", path="/api/x", hint="Try later.")
    assert err.with_attempts(6, "6 attempts allowed") is err
    assert str(err) == (
        "Coupa answered 503 Service Unavailable to GET /api/x: down. "
        "(gave up after 6 attempts: 6 attempts allowed) Hint: Try later."
    )


def test_with_attempts_one_attempt_and_a_reason_still_says_so() -> None:
    err = CoupaRateLimitError(["slow"], method="GET", path="/api/x").with_attempts(1, "Retry-After too long")
    assert "(gave up after 1 attempt: Retry-After too long)" in str(err)


def test_with_attempts_without_reason() -> None:
    err = CoupaServerError(status=502).with_attempts(3)
    assert str(err) == "Coupa answered 502 Bad Gateway. (gave up after 3 attempts)"


@pytest.mark.parametrize(
    "error",
    [
        CoupaError(["a"], status=500, method="GET", path="/api/x", hint="h"),
        CoupaValidationError([Problem("document-type", "can't be blank")], method="POST", path=IHR),
        CoupaConfigError("no host"),
        CoupaBadRequestError(["b"], status=400),
        CoupaAuthError(["c"], status=401),
        CoupaForbiddenError(["d"], status=403),
        CoupaNotFoundError(["e"], status=404),
        CoupaRateLimitError(["f"], retry_after=2.5),
        CoupaServerError(["g"], status=503),
        CoupaTransportError("timed out", sent=True, method="POST", path=IHR),
    ],
)
def test_every_error_survives_pickling(error: CoupaError) -> None:
    error.with_attempts(2, "budget")
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.__dict__ == error.__dict__
    assert clone.args == error.args


# ------------------------------------------------------------------------------------------------ subclasses
def test_validation_error_is_a_value_error_with_problems_and_no_status() -> None:
    err = CoupaValidationError(
        [Problem("document-type", "can't be blank"), "Document id is not a number"], method="post", path=IHR
    )
    assert isinstance(err, ValueError)
    assert isinstance(err, CoupaError)
    assert err.status is None
    assert err.problems == ["Document type can't be blank", "Document id is not a number"]
    assert str(err).startswith(
        "Not sent to Coupa, it would refuse: POST /api/integration_history_records: "
        "Document type can't be blank; Document id is not a number. Hint: Coupa R39 accepts"
    )
    assert not err.retryable


def test_validation_error_from_one_string_without_document_type_has_no_hint() -> None:
    err = CoupaValidationError("limit must be between 1 and 50")
    assert err.problems == ["limit must be between 1 and 50"]
    assert err.hint is None
    assert str(err) == "Not sent to Coupa, it would refuse: limit must be between 1 and 50."


def test_validation_error_names_what_it_refused() -> None:
    err = CoupaValidationError(["Document id can't be blank"], what="integration history record")
    assert err.what == "integration history record"
    assert str(err) == (
        "Not sent to Coupa, it would refuse this integration history record: Document id can't be blank."
    )
    assert str(pickle.loads(pickle.dumps(err))) == str(err)  # noqa: S301 - our own bytes


def test_validation_error_keeps_an_explicit_hint() -> None:
    err = CoupaValidationError(["Document type is not included in the list"], hint="mine")
    assert err.hint == "mine"


def test_config_error_is_a_value_error() -> None:
    err = CoupaConfigError("host must use https", hint="Use https://{org}.coupahost.com")
    assert isinstance(err, ValueError)
    assert str(err) == ("Bad Coupa connection settings: host must use https. Hint: Use https://{org}.coupahost.com")


def test_rate_limit_error_defaults_to_429_and_is_retryable() -> None:
    err = CoupaRateLimitError(retry_after=3.0)
    assert err.status == 429
    assert err.retry_after == 3.0
    assert err.retryable


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (502, True), (503, True), (504, True), (501, False)])
def test_server_error_retryable_only_for_transient_codes(status: int, retryable: bool) -> None:
    assert CoupaServerError(status=status).retryable is retryable


def test_transport_error_after_sending_a_create_hints_to_look_first() -> None:
    err = CoupaTransportError("read timed out", sent=True, method="POST", path=IHR)
    assert err.retryable
    assert err.status is None
    assert err.sent is True
    assert str(err).startswith("No answer from Coupa: POST /api/integration_history_records: read timed out.")
    assert "look for the record" in str(err)


@pytest.mark.parametrize(("sent", "method"), [(False, "POST"), (True, "GET"), (None, None)])
def test_transport_error_without_unknown_create_outcome_has_no_hint(sent: bool | None, method: str | None) -> None:
    err = CoupaTransportError("connection refused", sent=sent, method=method)
    assert err.hint is None


def test_transport_error_with_unknown_sent_on_write_hints() -> None:
    assert CoupaTransportError("reset", sent=None, method="PUT").hint is not None


# ------------------------------------------------------------------------------------- error_from_response
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, CoupaBadRequestError),
        (422, CoupaBadRequestError),
        (401, CoupaAuthError),
        (403, CoupaForbiddenError),
        (404, CoupaNotFoundError),
        (429, CoupaRateLimitError),
        (500, CoupaServerError),
        (503, CoupaServerError),
        (520, CoupaServerError),
        (409, CoupaError),
        (302, CoupaError),
    ],
)
def test_status_picks_the_type(status: int, cls: type[CoupaError]) -> None:
    err = error_from_response(status, b"", None, "GET", "/api/x")
    assert type(err) is cls
    assert err.status == status


def test_rate_limit_carries_retry_after_and_the_published_limit() -> None:
    err = error_from_response(429, "", None, "GET", IHR, retry_after=7.0)
    assert isinstance(err, CoupaRateLimitError)
    assert err.retry_after == 7.0
    assert "25 requests per second with bursts of 20" in str(err)


def test_401_hint_talks_about_token_and_credentials() -> None:
    err = error_from_response(
        401, b'{"error": "invalid_token", "error_description": "The access token expired"}', JSON, "GET", IHR
    )
    assert err.messages == ["invalid_token: The access token expired"]
    assert err.hint is not None
    assert "expired" in err.hint
    assert "client id" in err.hint


@pytest.mark.parametrize(
    ("method", "scope"),
    [("GET", "core.integration.read"), ("POST", "core.integration.write"), ("put", "core.integration.write")],
)
def test_403_hint_names_the_scope_the_method_needs(method: str, scope: str) -> None:
    err = error_from_response(403, b"", None, method, IHR)
    assert err.hint is not None
    assert scope in err.hint
    assert scope_for_method(method) == scope


def test_scope_for_missing_method_is_read() -> None:
    assert scope_for_method(None) == "core.integration.read"
    assert scope_for_method("HEAD") == "core.integration.read"


def test_404_hint_under_api_mentions_id_and_host() -> None:
    err = error_from_response(404, b"", None, "GET", IHR + "/99")
    assert err.hint is not None
    assert "id" in err.hint
    assert "/api" in err.hint


def test_404_hint_outside_api_points_at_the_base_path() -> None:
    err = error_from_response(
        404, b"<html><title>Not Found</title></html>", "text/html", "GET", "/integration_history_records"
    )
    assert err.hint is not None
    assert "under /api" in err.hint
    assert "/integration_history_records is outside it" in err.hint
    assert err.messages == ["Not Found"]


def test_400_without_document_type_has_no_hint() -> None:
    err = error_from_response(400, b'{"errors": {"x": ["Document id is not a number"]}}', JSON, "POST", IHR)
    assert err.hint is None


def test_5xx_hint_says_transient() -> None:
    err = error_from_response(502, b"", None, "GET", IHR)
    assert err.hint is not None
    assert "transient" in err.hint
    assert error_from_response(501, b"", None, "GET", IHR).hint is None


def test_secrets_in_the_body_are_redacted() -> None:
    body = b'{"errors": ["bad token tok-123 for client sec-456"]}'
    err = error_from_response(401, body, JSON, "GET", IHR, secrets=["tok-123", "sec-456", ""])
    assert err.messages == ["bad token *** for client ***"]
    assert "tok-123" not in str(err)
    assert "tok-123" not in repr(err)
    assert "sec-456" not in str(err)
