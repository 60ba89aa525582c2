"""Coupa's two formats: JSON (dash-case keys) only for ``Accept: application/json``, Rails-style XML otherwise."""

from __future__ import annotations

import pytest
from emulator_helpers import CODE, IHR, INTEGRATIONS, RUNS, Api, all_keys, ihr, parse_xml, seed_records, session

from airflow_provider_coupa_ihr.testing import CoupaEmulator


@pytest.fixture
def record(coupa_emulator: CoupaEmulator) -> dict:
    [stored] = seed_records(
        coupa_emulator,
        [ihr(responses=[{"response-code": "E42", "response-message": "Vendor missing"}], **{"document-revision": 2})],
    )
    return stored


# ------------------------------------------------------------------------------------------ JSON
@pytest.mark.parametrize("accept", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_when_asked_for(coupa_emulator: CoupaEmulator, record: dict, accept: str) -> None:
    with session(coupa_emulator, accept_json=False) as api:
        response = api.get(IHR, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, list)  # a bare array, no root node
    assert body[0]["id"] == record["id"]


def test_json_keys_are_dash_case_everywhere(api: Api, record: dict) -> None:
    for body in (
        api.get(IHR).json(),
        api.get(f"{IHR}/{record['id']}").json(),
        api.post(IHR, json=ihr(responses=[{"response_code": "c", "response_message": "m"}])).json(),
    ):
        keys = set(all_keys(body))
        assert "document-type" in keys
        assert "created-at" in keys
        assert "response-code" in keys
        assert not [k for k in keys if "_" in k]


def test_json_single_record_is_a_bare_object(api: Api, record: dict) -> None:
    body = api.get(f"{IHR}/{record['id']}").json()
    assert isinstance(body, dict)
    assert body["id"] == record["id"]
    assert "integration-history-record" not in body


def test_json_datetimes_carry_an_offset(api: Api, record: dict) -> None:
    from datetime import datetime

    body = api.get(f"{IHR}/{record['id']}").json()
    for key in ("created-at", "updated-at"):
        parsed = datetime.fromisoformat(body[key])
        assert parsed.utcoffset() is not None, body[key]


def test_empty_json_index_is_an_empty_array(api: Api) -> None:
    response = api.get(IHR)
    assert response.status_code == 200
    assert response.json() == []
    filtered = api.get(IHR, params={"document-type": "InvoiceHeader"})
    assert (filtered.status_code, filtered.json()) == (200, [])


def test_json_404_shape(api: Api) -> None:
    response = api.get(f"{IHR}/12345")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"errors"}


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        ("application/json;q=0.5, application/xml;q=0.9", False),
        ("application/xml;q=0.5, application/json", True),
        ("application/json;q=0", False),
        ("application/json; q=0.0, */*", False),
        ("*/*, application/json;q=0.8", False),  # */* at q=1 covers XML, which Coupa prefers on a tie
        ("text/html, application/json;q=0.9", True),
        ("application/*", False),
        ("application/jsonp", False),
        ("application/vnd.example+json", False),
        ("text/plain; format=json", False),
        ("application/json;q=bogus, application/xml", False),
        ("application/json ; Q=0.7 ,text/html", True),
    ],
)
def test_accept_is_parsed_as_media_ranges_with_weights(
    coupa_emulator: CoupaEmulator, record: dict, accept: str, json_wanted: bool
) -> None:
    with session(coupa_emulator, accept_json=False) as api:
        response = api.get(IHR, headers={"Accept": accept})
    assert response.status_code == 200
    wanted = "application/json" if json_wanted else "application/xml"
    assert response.headers["Content-Type"].startswith(wanted), (accept, response.headers["Content-Type"])


# ------------------------------------------------------------------------------------------ XML
@pytest.mark.parametrize("accept", [None, "*/*", "application/xml", "text/html"])
def test_xml_unless_json_asked_for(coupa_emulator: CoupaEmulator, record: dict, accept: str | None) -> None:
    with session(coupa_emulator, accept_json=False) as api:
        headers = {"Accept": accept} if accept is not None else {}
        if accept is None:
            api.headers.pop("Accept", None)
        response = api.get(IHR, headers=headers)
    assert response.status_code == 200
    root = parse_xml(response)
    assert root.tag == "integration-history-records"


def test_xml_index_document(xml_api: Api, record: dict) -> None:
    root = parse_xml(xml_api.get(IHR))
    assert root.tag == "integration-history-records"
    assert root.get("type") == "array"
    [item] = list(root)
    assert item.tag == "integration-history-record"
    assert item.findtext("id") == str(record["id"])
    assert item.find("id").get("type") == "integer"  # type: ignore[union-attr]
    assert item.findtext("document-type") == "InvoiceHeader"
    assert item.find("document-type").get("type") is None  # type: ignore[union-attr]
    assert item.find("document-id").get("type") == "integer"  # type: ignore[union-attr]
    assert item.findtext("document-id") == "1001"
    assert item.find("document-revision").get("type") == "integer"  # type: ignore[union-attr]
    resolved = item.find("resolved")
    assert resolved is not None
    assert resolved.get("type") == "boolean"
    assert resolved.text == "false"
    created = item.find("created-at")
    assert created is not None
    assert created.get("type") == "dateTime"
    assert created.text == record["created-at"]
    nil = item.find("document-status")
    assert nil is not None
    assert nil.get("nil") == "true"
    assert not nil.text
    assert item.findtext("integration/code") == CODE
    responses = item.find("responses")
    assert responses is not None
    assert responses.get("type") == "array"
    [response] = list(responses)
    assert response.tag == "response"
    assert response.findtext("response-code") == "E42"
    assert response.findtext("response-message") == "Vendor missing"
    # Element names use dashes, like the JSON keys.
    assert not [el.tag for el in root.iter() if "_" in el.tag]


def test_xml_show_root_is_the_singular(xml_api: Api, record: dict) -> None:
    response = xml_api.get(f"{IHR}/{record['id']}")
    assert response.status_code == 200
    root = parse_xml(response)
    assert root.tag == "integration-history-record"
    assert root.findtext("external-id") == "ERP-1001"


def test_xml_answer_to_a_json_create_without_accept(coupa_emulator: CoupaEmulator, xml_api: Api) -> None:
    response = xml_api.post(IHR, json=ihr())
    assert response.status_code == 201
    root = parse_xml(response)
    assert root.tag == "integration-history-record"
    assert root.findtext("status") == "Success"
    assert len(coupa_emulator.records()) == 1


def test_xml_of_other_resources(coupa_emulator: CoupaEmulator, xml_api: Api, api: Api) -> None:
    run = api.post(RUNS, json={"integration": {"code": CODE}}).json()
    assert parse_xml(xml_api.get(RUNS)).tag == "integration-runs"
    run_xml = parse_xml(xml_api.get(f"{RUNS}/{run['id']}"))
    assert run_xml.tag == "integration-run"
    assert run_xml.findtext("status") == "pending"
    assert run_xml.find("integration-errors").get("type") == "array"  # type: ignore[union-attr]
    integrations = parse_xml(xml_api.get(INTEGRATIONS))
    assert integrations.tag == "integrations"
    assert [i.tag for i in integrations] == ["integration"]
    assert integrations.find("integration/standard").get("type") == "boolean"  # type: ignore[union-attr]


def test_empty_xml_index_is_404(xml_api: Api) -> None:
    response = xml_api.get(IHR)
    assert response.status_code == 404
    root = parse_xml(response)
    assert root.tag == "errors"
    assert [e.tag for e in root] == ["error"]
    assert root.findtext("error")


def test_xml_error_shapes(xml_api: Api, record: dict) -> None:
    missing = xml_api.get(f"{IHR}/999")
    assert missing.status_code == 404
    assert parse_xml(missing).tag == "errors"
    invalid = xml_api.post(IHR, json={"status": "x"})
    assert invalid.status_code == 400
    root = parse_xml(invalid)
    assert root.tag == "errors"
    assert sorted(e.text or "" for e in root.findall("error")) == [
        "Contact alert type can't be blank",
        "Document id can't be blank",
        "Document type can't be blank",
    ]
    bad_query = xml_api.get(IHR, params={"colour": "red"})
    assert bad_query.status_code == 400
    assert parse_xml(bad_query).findtext("error")


def test_xml_respects_fields(xml_api: Api, record: dict) -> None:
    root = parse_xml(xml_api.get(IHR, params={"fields": '["id",{"integration":["code"]}]'}))
    [item] = list(root)
    assert [child.tag for child in item] == ["id", "integration"]
    assert [child.tag for child in item.find("integration")] == ["code"]  # type: ignore[union-attr]
