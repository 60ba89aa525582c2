"""What Coupa refuses in an IHR body (400 with ``{"errors": {"integration_history_record": [...]}}``) and what it
quietly ignores."""

from __future__ import annotations

import pytest
from emulator_helpers import IHR, Api, errors_of, ihr, parse_xml, session

from airflow_provider_coupa_ihr.client.records import DOCUMENT_TYPES
from airflow_provider_coupa_ihr.testing import CoupaEmulator

STRING_FIELDS = ["contact-alert-type", "document-status", "external-id", "status", "creation-method"]


# ------------------------------------------------------------------------------------------ required fields
@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("contact-alert-type", "Contact alert type can't be blank"),
        ("document-type", "Document type can't be blank"),
        ("document-id", "Document id can't be blank"),
    ],
)
@pytest.mark.parametrize("how", ["absent", "null", "empty"])
def test_missing_required_field_is_400(
    coupa_emulator: CoupaEmulator, api: Api, field: str, message: str, how: str
) -> None:
    body = ihr()
    if how == "absent":
        del body[field]
    else:
        body[field] = None if how == "null" else "  "
    response = api.post(IHR, json=body)
    assert response.status_code == 400
    assert errors_of(response) == [message]
    assert coupa_emulator.records() == []


def test_every_missing_field_is_reported_at_once(api: Api) -> None:
    response = api.post(IHR, json={"status": "Success"})
    assert response.status_code == 400
    assert sorted(errors_of(response)) == [
        "Contact alert type can't be blank",
        "Document id can't be blank",
        "Document type can't be blank",
    ]


def test_empty_body_is_400(api: Api) -> None:
    assert api.post(IHR, data=b"", headers={"Content-Type": "application/json"}).status_code == 400


# ------------------------------------------------------------------------------------------ document types
def test_r39_has_31_document_types() -> None:
    assert len(DOCUMENT_TYPES) == 31
    assert len(set(DOCUMENT_TYPES)) == 31


@pytest.mark.parametrize("document_type", DOCUMENT_TYPES)
def test_each_r39_document_type_is_accepted(coupa_emulator: CoupaEmulator, api: Api, document_type: str) -> None:
    response = api.post(IHR, json=ihr(**{"document-type": document_type}))
    assert response.status_code == 201, response.text
    assert response.json()["document-type"] == document_type
    found = api.get(IHR, params={"document-type": document_type}).json()
    assert [r["document-type"] for r in found] == [document_type]


@pytest.mark.parametrize("document_type", ["Banana", "invoiceheader", "Invoice Header", "ServiceOrder"])
def test_unknown_document_type_is_refused(coupa_emulator: CoupaEmulator, api: Api, document_type: str) -> None:
    response = api.post(IHR, json=ihr(**{"document-type": document_type}))
    assert response.status_code == 400
    assert errors_of(response) == ["Document type is not included in the list"]
    assert coupa_emulator.records() == []


def test_extra_document_types_accepts_a_newer_one() -> None:
    with CoupaEmulator(extra_document_types=["ServiceOrder"], rate_limit=None) as coupa:
        coupa.add_integration("AIRFLOW-TEST")
        with session(coupa) as api:
            response = api.post(IHR, json=ihr(**{"document-type": "ServiceOrder"}))
            assert response.status_code == 201, response.text
            assert response.json()["document-type"] == "ServiceOrder"
            # The R39 values still work, and anything else is still refused.
            assert api.post(IHR, json=ihr()).status_code == 201
            assert api.post(IHR, json=ihr(**{"document-type": "Banana"})).status_code == 400


# ------------------------------------------------------------------------------------------ integers
@pytest.mark.parametrize("field", ["document-id", "document-revision", "integration-run-id"])
@pytest.mark.parametrize("value", ["abc", "12abc", True, [1], {"n": 1}])
def test_integer_fields_refuse_non_numbers(coupa_emulator: CoupaEmulator, api: Api, field: str, value: object) -> None:
    response = api.post(IHR, json=ihr(**{field: value}))
    assert response.status_code == 400
    assert any(m.endswith("is not a number") for m in errors_of(response)), response.text
    assert coupa_emulator.records() == []


def test_integer_fields_refuse_fractions(api: Api) -> None:
    response = api.post(IHR, json=ihr(**{"document-id": 1.5}))
    assert response.status_code == 400
    assert errors_of(response) == ["Document id must be an integer"]


def test_integer_fields_accept_digit_strings_and_store_integers(api: Api) -> None:
    response = api.post(IHR, json=ihr(**{"document-id": "42", "document-revision": "7"}))
    assert response.status_code == 201
    assert response.json()["document-id"] == 42
    assert response.json()["document-revision"] == 7


def test_update_coerces_digit_strings_too(api: Api) -> None:
    record = api.post(IHR, json=ihr()).json()
    updated = api.patch(f"{IHR}/{record['id']}", json={"document-revision": "9"}).json()
    assert updated["document-revision"] == 9


# ------------------------------------------------------------------------------------------ lengths
@pytest.mark.parametrize("field", STRING_FIELDS)
def test_string_fields_take_255_characters(api: Api, field: str) -> None:
    response = api.post(IHR, json=ihr(**{field: "x" * 255}))
    assert response.status_code == 201, response.text
    assert response.json()[field] == "x" * 255


@pytest.mark.parametrize("field", STRING_FIELDS)
def test_string_fields_refuse_256_characters(coupa_emulator: CoupaEmulator, api: Api, field: str) -> None:
    response = api.post(IHR, json=ihr(**{field: "x" * 256}))
    assert response.status_code == 400
    name = field.replace("-", " ").capitalize()
    assert errors_of(response) == [f"{name} is too long (maximum is 255 characters)"]
    assert coupa_emulator.records() == []


def test_response_code_is_limited_but_response_message_is_text(api: Api) -> None:
    long_message = "m" * 5000
    ok = api.post(IHR, json=ihr(responses=[{"response-code": "c" * 255, "response-message": long_message}]))
    assert ok.status_code == 201
    assert ok.json()["responses"][0]["response-message"] == long_message
    refused = api.post(IHR, json=ihr(responses=[{"response-code": "c" * 256, "response-message": "m"}]))
    assert refused.status_code == 400
    assert "too long" in errors_of(refused)[0]


def test_responses_must_be_a_list_of_objects(api: Api) -> None:
    assert api.post(IHR, json=ihr(responses="oops")).status_code == 400
    assert api.post(IHR, json=ihr(responses=["oops"])).status_code == 400


def test_string_fields_refuse_non_text(api: Api) -> None:
    response = api.post(IHR, json=ihr(status=12))
    assert response.status_code == 400
    assert errors_of(response) == ["Status must be text"]


# ------------------------------------------------------------------------------------------ ignored and references
def test_read_only_and_unknown_fields_are_ignored(coupa_emulator: CoupaEmulator, api: Api) -> None:
    body = ihr(
        id=4242,
        resolved=True,
        **{
            "created-at": "2001-01-01T00:00:00+00:00",
            "updated-at": "2001-01-01T00:00:00+00:00",
            "created-by": {"login": "mallory"},
            "updated-by": {"login": "mallory"},
            "integration-filename": "evil.csv",
            "not-a-coupa-field": "whatever",
        },
    )
    response = api.post(IHR, json=body)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["id"] != 4242
    assert record["resolved"] is False
    assert record["created-at"] != "2001-01-01T00:00:00+00:00"
    assert record["updated-at"] != "2001-01-01T00:00:00+00:00"
    assert record["created-by"]["login"] == coupa_emulator.credentials.client_id
    assert record["updated-by"]["login"] == coupa_emulator.credentials.client_id
    assert record["integration-filename"] is None
    assert "not-a-coupa-field" not in record
    assert api.get(f"{IHR}/4242").status_code == 404


def test_unknown_integration_code_is_refused(coupa_emulator: CoupaEmulator, api: Api) -> None:
    response = api.post(IHR, json=ihr(integration={"code": "NO-SUCH-CODE"}))
    assert response.status_code == 400
    [message] = errors_of(response)
    assert message.startswith("Integration not found")
    assert coupa_emulator.records() == []


def test_integration_can_be_referenced_by_id(coupa_emulator: CoupaEmulator, api: Api) -> None:
    other = coupa_emulator.add_integration("OTHER")
    record = api.post(IHR, json=ihr(integration={"id": other["id"]})).json()
    assert record["integration"]["code"] == "OTHER"


def test_record_without_integration_is_allowed(api: Api) -> None:
    body = ihr()
    del body["integration"]
    response = api.post(IHR, json=body)
    assert response.status_code == 201
    assert response.json()["integration"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"contact_alert_type": "Both", "document_type": "InvoiceHeader", "document_id": 5, "external_id": "E-5"},
        {"contact-alert-type": "Both", "document-type": "InvoiceHeader", "document-id": 5, "external-id": "E-5"},
        {"contact_alert_type": "Both", "document-type": "InvoiceHeader", "document_id": 5, "external-id": "E-5"},
    ],
    ids=["underscores", "dashes", "mixed"],
)
def test_underscore_and_dash_keys_are_both_accepted(api: Api, body: dict) -> None:
    body["responses"] = [{"response_code": "OK", "response-message": "fine"}]
    response = api.post(IHR, json=body)
    assert response.status_code == 201, response.text
    record = response.json()
    assert (record["contact-alert-type"], record["document-type"], record["document-id"]) == (
        "Both",
        "InvoiceHeader",
        5,
    )
    assert record["external-id"] == "E-5"
    assert record["responses"][0]["response-code"] == "OK"
    assert record["responses"][0]["response-message"] == "fine"
    assert not any("_" in key for key in record)


def test_validation_error_in_xml_when_json_not_asked_for(coupa_emulator: CoupaEmulator, xml_api: Api) -> None:
    response = xml_api.post(IHR, json=ihr(**{"document-type": "Banana"}))
    assert response.status_code == 400
    root = parse_xml(response)
    assert root.tag == "errors"
    assert [e.text for e in root.findall("error")] == ["Document type is not included in the list"]


@pytest.mark.parametrize("field", ["document-id", "document-revision", "integration-run-id"])
def test_a_number_past_ints_digit_limit_is_400_not_500(coupa_emulator: CoupaEmulator, api: Api, field: str) -> None:
    response = api.post(IHR, json=ihr(**{field: "9" * 5000}))
    assert response.status_code == 400, response.text[:200]
    assert errors_of(response)
    assert coupa_emulator.records() == []


@pytest.mark.parametrize("field", ["document-id", "document-revision"])
@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, str(2**63), "\u00b2"])
def test_a_number_beyond_a_bigint_in_a_body_is_400(
    coupa_emulator: CoupaEmulator, api: Api, field: str, value: object
) -> None:
    response = api.post(IHR, json=ihr(**{field: value}))
    assert response.status_code == 400, response.text
    assert errors_of(response)
    assert coupa_emulator.records() == []
