"""Every action of ``/api/integration_history_records``: index, show, create, update, the four POST actions,
resolve and unresolve, with their side effects and 404s."""

from __future__ import annotations

import pytest
from emulator_helpers import CODE, ERRORS, IHR, INTEGRATIONS, RUNS, Api, errors_of, ihr, seed_records

from airflow_provider_coupa_ihr.testing import CoupaEmulator


def _create(api: Api, path: str = IHR, **overrides: object) -> dict:
    response = api.post(path, json=ihr(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


# ------------------------------------------------------------------------------------------ create / show / index
def test_create_answers_201_with_the_stored_record(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api, responses=[{"response-code": "OK", "response-message": "Posted to ERP"}])
    assert isinstance(record["id"], int)
    assert record["document-type"] == "InvoiceHeader"
    assert record["document-id"] == 1001
    assert record["contact-alert-type"] == "Functional"
    assert record["status"] == "Success"
    assert record["resolved"] is False
    assert record["integration"]["code"] == CODE
    assert record["created-by"]["login"] == coupa_emulator.credentials.client_id
    assert record["created-at"]
    assert record["updated-at"]
    [response] = record["responses"]
    assert response["response-code"] == "OK"
    assert response["response-message"] == "Posted to ERP"
    assert isinstance(response["id"], int)
    assert coupa_emulator.records() == [record]
    # A plain create has no side effects.
    assert coupa_emulator.alerts == []
    assert coupa_emulator.exported == []
    assert coupa_emulator.acknowledged == []


def test_ids_increase(api: Api) -> None:
    ids = [_create(api, **{"document-id": n})["id"] for n in (1, 2, 3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_show_returns_the_record(api: Api) -> None:
    record = _create(api)
    response = api.get(f"{IHR}/{record['id']}")
    assert response.status_code == 200
    assert response.json() == record


def test_index_lists_records(api: Api) -> None:
    first, second = _create(api, **{"document-id": 1}), _create(api, **{"document-id": 2})
    response = api.get(IHR)
    assert response.status_code == 200
    assert response.json() == [first, second]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PUT", ""), ("PATCH", ""), ("PUT", "/resolve"), ("PUT", "/unresolve")],
)
def test_unknown_id_is_404(api: Api, method: str, suffix: str) -> None:
    _create(api)
    response = api.request(method, f"{IHR}/999{suffix}", json={"status": "Error"})
    assert response.status_code == 404
    assert "errors" in response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{IHR}/{{id}}"),
        ("PUT", f"{IHR}/{{id}}"),
        ("PATCH", f"{IHR}/{{id}}"),
        ("PUT", f"{IHR}/{{id}}/resolve"),
        ("PUT", f"{ERRORS}/{{id}}/unresolve"),
        ("GET", f"{RUNS}/{{id}}"),
        ("PUT", f"{RUNS}/{{id}}/run"),
        ("GET", f"{INTEGRATIONS}/{{id}}"),
    ],
)
def test_an_id_beyond_a_bigint_in_the_path_is_400_not_404(api: Api, method: str, path: str) -> None:
    beyond = api.request(method, path.format(id=2**63), json={"status": "Error"})
    assert beyond.status_code == 400, beyond.text
    assert "errors" in beyond.json()
    largest = api.request(method, path.format(id=2**63 - 1), json={"status": "Error"})
    assert largest.status_code == 404, largest.text


def test_create_accepts_a_body_wrapped_in_its_resource_name(coupa_emulator: CoupaEmulator, api: Api) -> None:
    response = api.post(IHR, json={"integration_history_record": ihr()})
    assert response.status_code == 201
    assert coupa_emulator.records()[0]["document-id"] == 1001


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ("[1, 2]", {"Content-Type": "application/json"}),
        ("{not json", {"Content-Type": "application/json"}),
        ("[" * 100_000 + "]" * 100_000, {"Content-Type": "application/json"}),
        ('{"responses": ' + "[" * 500 + "]" * 500 + "}", {"Content-Type": "application/json"}),
        ('{"document-id": ' + "9" * 5000 + "}", {"Content-Type": "application/json"}),
        (b"\xff\xfe{}", {"Content-Type": "application/json"}),
    ],
    ids=["array", "garbage", "nested-beyond-the-parser", "nested-beyond-rails-max-nesting", "huge-number", "not-utf8"],
)
def test_create_refuses_a_body_that_is_not_a_json_object(
    coupa_emulator: CoupaEmulator, api: Api, data: str | bytes, headers: dict[str, str]
) -> None:
    response = api.post(IHR, data=data, headers=headers)
    assert response.status_code == 400
    assert "errors" in response.json()
    assert coupa_emulator.records() == []


def test_create_with_return_object_none_answers_200_without_a_body(coupa_emulator: CoupaEmulator, api: Api) -> None:
    response = api.post(IHR, params={"return_object": "none"}, json=ihr())
    assert response.status_code == 200
    assert response.content == b""
    assert len(coupa_emulator.records()) == 1


# ------------------------------------------------------------------------------------------ update
def test_put_updates_the_fields_given(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api)
    response = api.put(f"{IHR}/{record['id']}", json={"status": "Error", "external-id": "ERP-2"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["status"] == "Error"
    assert updated["external-id"] == "ERP-2"
    assert updated["document-id"] == record["document-id"]
    assert updated["created-at"] == record["created-at"]
    assert coupa_emulator.record(record["id"]) == updated


def test_patch_is_a_partial_update_that_keeps_other_fields(api: Api) -> None:
    record = _create(
        api,
        **{"document-status": "approved", "document-revision": 3},
        responses=[{"response-code": "A", "response-message": "first"}],
    )
    response = api.patch(f"{IHR}/{record['id']}", json={"document_status": "paid"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["document-status"] == "paid"
    for unchanged in ("document-revision", "external-id", "status", "document-type", "integration", "responses"):
        assert updated[unchanged] == record[unchanged], unchanged


def test_update_replaces_responses_when_given(api: Api) -> None:
    record = _create(api, responses=[{"response-code": "A", "response-message": "first"}])
    response = api.put(f"{IHR}/{record['id']}", json={"responses": [{"response_code": "B", "response_message": "2"}]})
    assert [r["response-code"] for r in response.json()["responses"]] == ["B"]


def test_update_validates(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api)
    response = api.put(f"{IHR}/{record['id']}", json={"document-type": "Banana", "document-id": None})
    assert response.status_code == 400
    messages = errors_of(response)
    assert "Document type is not included in the list" in messages
    assert "Document id can't be blank" in messages
    assert coupa_emulator.record(record["id"]) == record


# ------------------------------------------------------------------------------------------ the POST actions
def test_acknowledge_creates_and_records_an_acknowledgement(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api, IHR + "/acknowledge")
    assert coupa_emulator.records() == [record]
    [ack] = coupa_emulator.acknowledged
    assert ack["record_id"] == record["id"]
    assert (ack["document_type"], ack["document_id"]) == ("InvoiceHeader", 1001)
    assert coupa_emulator.alerts == []
    assert coupa_emulator.exported == []


def test_mark_exported_creates_and_marks_the_document_exported(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api, IHR + "/mark_exported", **{"document-type": "OrderHeader", "document-id": 77})
    assert coupa_emulator.records() == [record]
    [exported] = coupa_emulator.exported
    assert exported["record_id"] == record["id"]
    assert (exported["document_type"], exported["document_id"]) == ("OrderHeader", 77)
    assert exported["integration_code"] == CODE
    assert coupa_emulator.alerts == []
    assert coupa_emulator.acknowledged == []


@pytest.mark.parametrize("contact", ["Technical", "Functional", "Both"])
def test_create_alert_alerts_the_contacts_of_the_record_type(
    coupa_emulator: CoupaEmulator, api: Api, contact: str
) -> None:
    record = _create(api, IHR + "/create_alert", status="Error", **{"contact-alert-type": contact})
    assert record["status"] == "Error"
    [alert] = coupa_emulator.alerts
    assert alert["kind"] == "alert"
    assert alert["record_id"] == record["id"]
    assert alert["contact_alert_type"] == contact
    assert alert["integration_code"] == CODE
    assert alert["resource"] == "integration_history_record"
    assert coupa_emulator.exported == []


def test_create_alert_and_mark_exported_does_both(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api, IHR + "/create_alert_and_mark_exported", **{"contact-alert-type": "Technical"})
    assert [a["record_id"] for a in coupa_emulator.alerts] == [record["id"]]
    assert coupa_emulator.alerts[0]["contact_alert_type"] == "Technical"
    assert [e["record_id"] for e in coupa_emulator.exported] == [record["id"]]
    assert coupa_emulator.acknowledged == []


@pytest.mark.parametrize("action", ["acknowledge", "mark_exported", "create_alert", "create_alert_and_mark_exported"])
def test_post_actions_validate_like_create_and_leave_no_side_effect(
    coupa_emulator: CoupaEmulator, api: Api, action: str
) -> None:
    response = api.post(f"{IHR}/{action}", json=ihr(**{"document-type": None}))
    assert response.status_code == 400
    assert errors_of(response) == ["Document type can't be blank"]
    assert coupa_emulator.records() == []
    assert coupa_emulator.state.effects() == []


@pytest.mark.parametrize("action", ["acknowledge", "mark_exported", "create_alert", "create_alert_and_mark_exported"])
def test_post_actions_take_one_object_not_a_list_of_ids(coupa_emulator: CoupaEmulator, api: Api, action: str) -> None:
    response = api.post(f"{IHR}/{action}", json=[1, 2])
    assert response.status_code == 400
    assert coupa_emulator.records() == []


# ------------------------------------------------------------------------------------------ resolve / unresolve
def test_resolve_and_unresolve_flip_resolved(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api)
    resolved = api.put(f"{IHR}/{record['id']}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["resolved"] is True
    assert coupa_emulator.record(record["id"])["resolved"] is True
    # Resolving twice is harmless.
    assert api.put(f"{IHR}/{record['id']}/resolve").json()["resolved"] is True
    unresolved = api.put(f"{IHR}/{record['id']}/unresolve", json={})
    assert unresolved.status_code == 200
    assert unresolved.json()["resolved"] is False
    assert coupa_emulator.record(record["id"])["resolved"] is False
    # Only the resolved flag (and the audit stamp) moved.
    after = coupa_emulator.record(record["id"])
    assert {k for k in after if after[k] != record[k]} <= {"updated-at", "updated-by"}


def test_resolved_is_read_only_on_create_and_update(coupa_emulator: CoupaEmulator, api: Api) -> None:
    record = _create(api, resolved=True)
    assert record["resolved"] is False
    for method in ("PUT", "PATCH"):
        response = api.request(method, f"{IHR}/{record['id']}", json={"resolved": True, "status": method})
        assert response.status_code == 200
        assert response.json()["resolved"] is False
        assert response.json()["status"] == method
    api.put(f"{IHR}/{record['id']}/resolve")
    response = api.patch(f"{IHR}/{record['id']}", json={"resolved": False})
    assert response.json()["resolved"] is True


def test_resolve_marks_only_the_record_named(coupa_emulator: CoupaEmulator, api: Api) -> None:
    older, newer = seed_records(coupa_emulator, [ihr(status="Error"), ihr(status="Success")])
    api.put(f"{IHR}/{older['id']}/resolve")
    assert coupa_emulator.record(older["id"])["resolved"] is True
    assert coupa_emulator.record(newer["id"])["resolved"] is False
    assert [r["id"] for r in coupa_emulator.records(resolved=False)] == [newer["id"]]
