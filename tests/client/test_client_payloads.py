"""build_payload: Python keyword arguments to Coupa's wire body, refusing (all at once, in plain words) what Coupa
would refuse or silently drop."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.payloads import build_payload, normalise_responses
from airflow_provider_coupa_ihr.client.records import ERROR_FIELDS

VALID: dict[str, Any] = {"document_type": "InvoiceHeader", "document_id": 42, "contact_alert_type": "Functional"}


def refused(fields: dict[str, Any], **kw: Any) -> CoupaValidationError:
    with pytest.raises(CoupaValidationError) as caught:
        build_payload(fields, **kw)
    return caught.value


# ------------------------------------------------------------------------------------------------ shapes accepted
def test_a_minimal_record_goes_out_dash_case() -> None:
    assert build_payload(VALID) == {
        "document-type": "InvoiceHeader",
        "document-id": 42,
        "contact-alert-type": "Functional",
    }


def test_dash_case_keys_and_none_values() -> None:
    body = build_payload(
        {"document-type": "OrderHeader", "document-id": "7", "contact-alert-type": "Both", "status": None}
    )
    assert body == {"document-type": "OrderHeader", "document-id": 7, "contact-alert-type": "Both"}


def test_every_writable_field() -> None:
    body = build_payload(
        {
            **VALID,
            "document_revision": "3",
            "document_status": "approved",
            "external_id": "ERP-42",
            "status": "Success",
            "creation_method": "api",
            "integration": "ERP",
            "integration_run": 12,
            "responses": [("E1", "Supplier blocked")],
        }
    )
    assert body["document-revision"] == 3
    assert body["integration"] == {"code": "ERP"}
    assert body["integration-run"] == {"id": 12}
    assert body["responses"] == [{"response-code": "E1", "response-message": "Supplier blocked"}]
    assert body["external-id"] == "ERP-42"


@pytest.mark.parametrize(
    ("given", "sent"),
    [("ERP", {"code": "ERP"}), ({"code": "ERP"}, {"code": "ERP"}), ({"id": 3}, {"id": 3})],
)
def test_integration_shorthands(given: Any, sent: dict[str, Any]) -> None:
    assert build_payload({**VALID, "integration": given})["integration"] == sent


@pytest.mark.parametrize("given", [12, "12", {"id": 12}, {"id": "12"}])
def test_integration_run_shorthands(given: Any) -> None:
    assert build_payload({**VALID, "integration_run": given})["integration-run"] == {"id": 12}


@pytest.mark.parametrize(
    "given",
    [
        ("E1", "m"),
        [("E1", "m")],
        {"response_code": "E1", "response_message": "m"},
        [{"response-code": "E1", "response-message": "m"}],
    ],
)
def test_responses_shorthands(given: Any) -> None:
    assert build_payload({**VALID, "responses": given})["responses"] == [
        {"response-code": "E1", "response-message": "m"}
    ]


def test_responses_values_become_text() -> None:
    assert normalise_responses([(404, ValueError("gone"))]) == [{"response-code": "404", "response-message": "gone"}]


def test_extra_document_types_allow_a_newer_type_on_purpose() -> None:
    body = build_payload({**VALID, "document_type": "Payables::NewThing"}, extra_document_types=["Payables::NewThing"])
    assert body["document-type"] == "Payables::NewThing"


def test_partial_bodies_for_updates_need_no_required_field() -> None:
    assert build_payload({"status": "Error"}, partial=True) == {"status": "Error"}


# ------------------------------------------------------------------------------------------------ refusals
def test_missing_required_fields_are_all_named_at_once() -> None:
    error = refused({})
    assert error.problems == [
        "contact_alert_type can't be blank",
        "document_type can't be blank",
        "document_id can't be blank",
    ]
    assert str(error).startswith("Not sent to Coupa, it would refuse this integration history record:")
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_required_field_is_missing(blank: str) -> None:
    assert refused({**VALID, "document_type": blank}).problems == ["document_type can't be blank"]


def test_a_blank_required_field_is_refused_in_an_update_too() -> None:
    assert refused({"document_type": ""}, partial=True).problems == ["document_type can't be blank"]


def test_an_unknown_document_type_suggests_the_close_match_and_extra_document_types() -> None:
    error = refused({**VALID, "document_type": "InvoiceHeadr"})
    assert error.problems == [
        "document_type 'InvoiceHeadr' is not one of Coupa's document types; did you mean 'InvoiceHeader'?"
    ]
    assert "extra_document_types=[...]" in str(error)
    assert "Payables::Invoice" in str(error)  # the hint lists the allowed types


def test_an_unknown_document_type_with_extra_types_names_them() -> None:
    error = refused({**VALID, "document_type": "Zzz"}, extra_document_types=["NewDoc"])
    assert "or the extra ones allowed (NewDoc)" in error.problems[0]
    assert "(the allowed ones are listed below)" in error.problems[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "document_id is not a number, got 'abc'"),
        (1.5, "document_id must be an integer, got 1.5"),
        (True, "document_id is not a number, got True"),
        ([1], "document_id is not a number"),
    ],
)
def test_a_document_id_must_be_a_whole_number(value: Any, message: str) -> None:
    assert refused({**VALID, "document_id": value}).problems == [message]


@pytest.mark.parametrize("name", ["external_id", "status", "document_status", "creation_method"])
def test_strings_hold_at_most_255_characters(name: str) -> None:
    assert build_payload({**VALID, name: "x" * 255})[name.replace("_", "-")] == "x" * 255
    error = refused({**VALID, name: "x" * 256})
    assert error.problems == [f"{name} is too long (maximum is 255 characters), got 256 characters"]
    assert "x" * 100 not in str(error)


def test_a_string_field_takes_text_only() -> None:
    assert refused({**VALID, "status": 5}).problems == ["status must be text, got 5"]


def test_an_unknown_field_gets_a_typo_suggestion_and_the_list() -> None:
    (problem,) = refused({**VALID, "stauts": "Error"}).problems
    assert problem.startswith("'stauts' is not a field of a Coupa integration history record; did you mean status?")
    assert "Fields: contact_alert_type, creation_method, document_id" in problem


def test_an_unknown_field_without_a_close_match_still_lists_the_fields() -> None:
    (problem,) = refused({**VALID, "qqqq": 1}).problems
    assert "did you mean" not in problem
    assert "Fields: contact_alert_type" in problem


def test_resolved_is_read_only_and_points_at_resolve() -> None:
    (problem,) = refused({**VALID, "resolved": True}).problems
    assert (
        problem == "resolved is read-only in Coupa and would be ignored; use resolve() / unresolve() "
        "(the resolve and unresolve actions) instead"
    )


@pytest.mark.parametrize("name", ["id", "created_at", "updated_by", "integration_filename"])
def test_other_read_only_fields_are_refused(name: str) -> None:
    assert refused({**VALID, name: 1}).problems == [f"{name} is read-only in Coupa and would be ignored; Coupa sets it"]


@pytest.mark.parametrize("value", ["Everyone", "technical", "Functional "])
def test_a_contact_alert_type_must_be_one_of_coupas(value: str) -> None:
    assert refused({**VALID, "contact_alert_type": value}).problems == [
        f"contact_alert_type must be one of Technical, Functional, Both (whose contacts Coupa alerts), got {value!r}"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("just text", "responses must be a list of {response_code, response_message} or (code, message) pairs"),
        (5, "responses must be a list of {response_code, response_message} or (code, message) pairs"),
        ([("E1",)], "responses items must be dicts or (code, message) pairs, got ('E1',)"),
        ([["E1", "m"]], "responses items must be dicts or (code, message) pairs, got ['E1', 'm']"),
        ([{"code": "E1"}], "responses items take response_code and response_message only, got ['code']"),
    ],
)
def test_bad_responses_shapes(value: Any, message: str) -> None:
    assert refused({**VALID, "responses": value}).problems == [message]


def test_a_too_long_response_code_is_named_without_quoting_every_response() -> None:
    long_message = "stack trace line\n" * 500
    error = refused({**VALID, "responses": [("E" * 256, long_message)]})
    (problem,) = error.problems
    assert problem.startswith("responses response-code is too long (maximum is 255 characters)")
    assert "stack trace line" not in str(error)
    assert len(str(error)) < 1000


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"integration": 5}, "integration takes the integration's code (a string) or {'code': ...}, got 5"),
        ({"integration": {"name": "x"}}, "integration takes the integration's code (a string) or {'code': ...}"),
        ({"integration_run": "abc"}, "integration_run takes the run's id (an integer) or {'id': ...}, got 'abc'"),
        ({"integration_run": {"code": 1}}, "integration_run takes the run's id (an integer) or {'id': ...}"),
    ],
)
def test_bad_references(fields: dict[str, Any], message: str) -> None:
    (problem,) = refused({**VALID, **fields}).problems
    assert problem.startswith(message)


def test_every_problem_is_reported_together() -> None:
    error = refused({"document_type": "Nope", "document_id": "x", "contact_alert_type": "All", "stauts": 1})
    assert len(error.problems) == 4


def test_an_integration_error_needs_its_run() -> None:
    error = refused(VALID, known=ERROR_FIELDS, what="integration error")
    assert error.problems == ["integration_run can't be blank"]
    assert "refuse this integration error" in str(error)
    assert build_payload({**VALID, "integration_run": 3}, known=ERROR_FIELDS)["integration-run"] == {"id": 3}


# ------------------------------------------------------------------------------------------------ bounds
@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"document_id": 0}, "document_id must be a whole number from 1 to 9223372036854775807 (a Coupa id), got 0"),
        ({"document_id": -7}, "got -7"),
        ({"document_id": 2**63}, f"got {2**63}"),
        ({"document_id": str(2**63)}, f"got '{2**63}'"),
        ({"document_revision": -1}, "document_revision must be a whole number from 0 to 9223372036854775807, got -1"),
        ({"integration_run_id": 0}, "integration_run_id must be a whole number from 1"),
        (
            {"integration_run": 0},
            "integration_run takes the run's id from 1 to 9223372036854775807 (a Coupa id), got 0",
        ),
        ({"integration_run": {"id": 2**63}}, "integration_run takes the run's id from 1"),
        ({"integration": {"id": -3}}, "integration takes the integration's id from 1"),
        ({"integration": "I" * 256}, "integration takes the integration's code, at most 255 characters, got 256"),
        ({"document_id": "9" * 5000}, "document_id is not a number, got 5000 characters"),
        ({"document_id": 10**5000}, "got a whole number of about 5000 digits"),
        ({"document_id": "²"}, "document_id is not a number, got '²'"),
        ({"document_id": "①"}, "document_id is not a number, got '①'"),
    ],
)
def test_ids_are_coupa_ids_and_revisions_count_from_zero(change: dict[str, Any], words: str) -> None:
    problems = refused({**VALID, **change}).problems
    assert any(words in p for p in problems), problems
    assert not any("can't be blank" in p for p in problems)  # the field's problem is named once


def test_the_largest_ids_and_revision_zero_are_fine() -> None:
    body = build_payload({**VALID, "document_id": 2**63 - 1, "document_revision": 0, "integration_run": 2**63 - 1})
    assert (body["document-id"], body["document-revision"]) == (2**63 - 1, 0)
    assert body["integration-run"] == {"id": 2**63 - 1}


def test_a_response_message_has_a_documented_cap() -> None:
    from airflow_provider_coupa_ihr.client.records import MAX_TEXT_BYTES

    build_payload({**VALID, "responses": [("E1", "m" * MAX_TEXT_BYTES)]})
    problems = refused({**VALID, "responses": [("E1", "m" * (MAX_TEXT_BYTES + 1))]}).problems
    assert problems == [f"responses response-message is too long (maximum is {MAX_TEXT_BYTES} bytes of UTF-8)"]
    # bytes, not characters: é is two bytes of UTF-8
    assert refused({**VALID, "responses": [("E1", "é" * (MAX_TEXT_BYTES // 2 + 1))]}).problems


def test_a_lone_surrogate_is_refused_before_it_could_fail_the_transport() -> None:
    problems = refused({**VALID, "status": "Err\ud800or"}).problems
    assert problems == [
        "a text field holds a lone surrogate (\\ud800-\\udfff), which is not Unicode and cannot be sent"
    ]
    assert refused({**VALID, "responses": [("E1", "x\udfffy")]}).problems


@pytest.mark.parametrize(
    "change",
    [
        {"status": "s" * 100_000},
        {"contact_alert_type": "c" * 100_000},
        {"document_type": "d" * 100_000},
        {"documnet_status" + "x" * 100_000: "v"},
        {"integration": ["i"] * 100_000},
        {"integration_run": "r" * 100_000},
        {"responses": [("E1",)] * 5 + ["r" * 100_000]},
        {"document_id": "9" * 100_000},
    ],
)
def test_a_bad_value_is_quoted_a_couple_of_hundred_characters_at_most(change: dict[str, Any]) -> None:
    error = refused({**VALID, **change})
    assert len(str(error)) < 2000, str(error)[:3000]
