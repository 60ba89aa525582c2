"""Run-level logging: integrations (by code), integration runs and their status transitions, integration errors,
and records that point at a run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from emulator_helpers import CODE, ERRORS, IHR, INTEGRATIONS, RUNS, Api, errors_of, ihr

from airflow_provider_coupa_ihr.testing import CoupaEmulator

INTEGRATION = {
    "code": "SAP-INVOICES",
    "name": "Invoices to SAP",
    "business-object": "invoice",
    "direction": "from_coupa",
    "end-system": "SAP",
    "end-system-type": "erp",
    "integration-type": "api",
}


def _run(api: Api, code: str = CODE) -> dict[str, Any]:
    response = api.post(RUNS, json={"integration": {"code": code}})
    assert response.status_code == 201, response.text
    return response.json()


def _act(api: Api, run_id: int, action: str, body: dict[str, Any] | None = None) -> Any:
    return api.put(f"{RUNS}/{run_id}/{action}", json=body)


def _error(run_id: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contact-alert-type": "Technical",
        "document-type": "InvoiceHeader",
        "document-id": 7,
        "status": "Error",
        "integration-run": {"id": run_id},
        "responses": [{"response-code": "E1", "response-message": "Vendor not in ERP"}],
    }
    body.update(overrides)
    return body


# ------------------------------------------------------------------------------------------ integrations
def test_integration_create_show_index_update_by_code(coupa_emulator: CoupaEmulator, api: Api) -> None:
    created = api.post(INTEGRATIONS, json=INTEGRATION)
    assert created.status_code == 201, created.text
    integration = created.json()
    for key, value in INTEGRATION.items():
        assert integration[key] == value
    assert integration["standard"] is False

    found = api.get(INTEGRATIONS, params={"code": "SAP-INVOICES"}).json()
    assert [i["id"] for i in found] == [integration["id"]]
    assert api.get(f"{INTEGRATIONS}/{integration['id']}").json() == integration
    assert {i["code"] for i in api.get(INTEGRATIONS).json()} == {CODE, "SAP-INVOICES"}

    updated = api.put(f"{INTEGRATIONS}/{integration['id']}", json={"name": "Invoices to S/4"})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Invoices to S/4"
    assert updated.json()["code"] == "SAP-INVOICES"
    patched = api.patch(f"{INTEGRATIONS}/{integration['id']}", json={"end_system": "S4"})
    assert patched.json()["end-system"] == "S4"
    assert patched.json()["name"] == "Invoices to S/4"

    # Records point at it by code.
    record = api.post(IHR, json=ihr(integration={"code": "SAP-INVOICES"})).json()
    assert record["integration"]["id"] == integration["id"]


def test_integration_code_is_unique(api: Api) -> None:
    assert api.post(INTEGRATIONS, json=INTEGRATION).status_code == 201
    again = api.post(INTEGRATIONS, json=INTEGRATION)
    assert again.status_code == 400
    assert errors_of(again, "integration") == ["Code has already been taken"]
    # Renaming onto a taken code is refused too; keeping one's own code is not a clash.
    mine = api.get(INTEGRATIONS, params={"code": "SAP-INVOICES"}).json()[0]
    clash = api.put(f"{INTEGRATIONS}/{mine['id']}", json={"code": CODE})
    assert clash.status_code == 400
    assert errors_of(clash, "integration") == ["Code has already been taken"]
    assert api.get(f"{INTEGRATIONS}/{mine['id']}").json()["code"] == "SAP-INVOICES"
    assert api.put(f"{INTEGRATIONS}/{mine['id']}", json={"code": "SAP-INVOICES", "name": "n"}).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code": None}, "Code can't be blank"),
        ({"name": ""}, "Name can't be blank"),
        ({"direction": "sideways"}, "Direction is not included in the list"),
        ({"end-system-type": "mainframe"}, "End system type is not included in the list"),
        ({"integration-type": "carrier_pigeon"}, "Integration type is not included in the list"),
    ],
)
def test_integration_validation(api: Api, change: dict[str, Any], message: str) -> None:
    response = api.post(INTEGRATIONS, json={**INTEGRATION, **change})
    assert response.status_code == 400
    assert message in errors_of(response, "integration")


def test_unknown_integration_is_404(api: Api) -> None:
    assert api.get(f"{INTEGRATIONS}/999").status_code == 404
    assert api.put(f"{INTEGRATIONS}/999", json={"name": "x"}).status_code == 404


# ------------------------------------------------------------------------------------------ runs
def test_run_is_created_pending(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = _run(api)
    assert run["status"] == "pending"
    assert run["integration"]["code"] == CODE
    assert run["start-time"] is None
    assert run["end-time"] is None
    assert run["integration-errors"] == []
    assert api.get(f"{RUNS}/{run['id']}").json() == run
    assert coupa_emulator.integration_runs() == [run]


def test_run_needs_a_known_integration(api: Api) -> None:
    missing = api.post(RUNS, json={"total-records": 3})
    assert missing.status_code == 400
    assert errors_of(missing, "integration_run") == ["Integration can't be blank"]
    unknown = api.post(RUNS, json={"integration": {"code": "NOPE"}})
    assert unknown.status_code == 400
    assert errors_of(unknown, "integration_run")[0].startswith("Integration not found")


def test_run_status_is_read_only(api: Api) -> None:
    run = api.post(RUNS, json={"integration": {"code": CODE}, "status": "successful"}).json()
    assert run["status"] == "pending"
    assert api.put(f"{RUNS}/{run['id']}", json={"status": "failed"}).json()["status"] == "pending"


def test_run_lifecycle_to_success(api: Api) -> None:
    run = _run(api)
    running = _act(api, run["id"], "run", {"total_records": 5})
    assert running.status_code == 200, running.text
    body = running.json()
    assert body["status"] == "running"
    assert body["total-records"] == 5
    assert body["start-time"]
    assert datetime.fromisoformat(body["start-time"]).utcoffset() is not None
    assert body["end-time"] is None
    start = body["start-time"]

    paused = _act(api, run["id"], "pause").json()
    assert paused["status"] == "paused"
    assert _act(api, run["id"], "pending").json()["status"] == "pending"
    assert _act(api, run["id"], "run").json()["start-time"] == start  # resuming keeps the first start

    done = _act(api, run["id"], "success", {"records-processed": 5}).json()
    assert done["status"] == "successful"
    assert done["records-processed"] == 5
    assert done["end-time"]
    assert api.get(f"{RUNS}/{run['id']}").json()["status"] == "successful"


def test_run_total_records_as_text_is_stored_as_an_integer(api: Api) -> None:
    run = _run(api)
    body = _act(api, run["id"], "run", {"total-records": "12"}).json()
    assert body["total-records"] == 12
    refused = _act(api, _run(api)["id"], "run", {"total-records": "twelve"})
    assert refused.status_code == 400
    assert errors_of(refused, "integration_run") == ["Total records is not a number"]


@pytest.mark.parametrize(
    ("action", "status"), [("success", "successful"), ("finish", "successful"), ("fail", "failed")]
)
def test_run_finishes(api: Api, action: str, status: str) -> None:
    run = _run(api)
    _act(api, run["id"], "run")
    finished = _act(api, run["id"], action)
    assert finished.status_code == 200
    assert finished.json()["status"] == status
    assert finished.json()["end-time"]


@pytest.mark.parametrize("first", ["success", "finish", "fail"])
@pytest.mark.parametrize("then", ["run", "pause", "pending", "success", "finish", "fail"])
def test_finished_run_refuses_further_transitions(
    coupa_emulator: CoupaEmulator, api: Api, first: str, then: str
) -> None:
    run = _run(api)
    finished = _act(api, run["id"], first).json()
    refused = _act(api, run["id"], then)
    assert refused.status_code == 400
    assert errors_of(refused, "integration_run")[0].startswith("Status cannot change once the run is")
    assert coupa_emulator.integration_runs()[0] == finished


@pytest.mark.parametrize("action", ["run", "pause", "pending", "success", "finish", "fail", "max_updated_at"])
def test_unknown_run_is_404(api: Api, action: str) -> None:
    assert _act(api, 999, action).status_code == 404
    assert api.get(f"{RUNS}/999").status_code == 404


def test_max_updated_at_is_the_start_of_the_last_successful_run(api: Api) -> None:
    first = _run(api)
    assert _act(api, first["id"], "max_updated_at").json()["max-updated-at"] is None
    started = _act(api, first["id"], "run").json()["start-time"]
    _act(api, first["id"], "success")
    second = _run(api)
    assert _act(api, second["id"], "max_updated_at").json()["max-updated-at"] == started


# ------------------------------------------------------------------------------------------ records in a run
@pytest.mark.parametrize("reference", ["object", "id-field"])
def test_record_references_a_run(coupa_emulator: CoupaEmulator, api: Api, reference: str) -> None:
    other = coupa_emulator.add_integration("OTHER")
    run = _run(api, "OTHER")
    body = ihr()
    del body["integration"]
    if reference == "object":
        body["integration-run"] = {"id": run["id"]}
    else:
        body["integration_run_id"] = run["id"]
    response = api.post(IHR, json=body)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["integration-run-id"] == run["id"]
    assert record["integration-run"]["id"] == run["id"]
    assert record["integration"]["id"] == other["id"]  # taken from the run
    found = api.get(IHR, params={"integration-run[id]": str(run["id"])}).json()
    assert [r["id"] for r in found] == [record["id"]]


def test_record_with_unknown_run_is_refused(coupa_emulator: CoupaEmulator, api: Api) -> None:
    response = api.post(IHR, json=ihr(**{"integration-run": {"id": 404}}))
    assert response.status_code == 400
    assert errors_of(response)[0].startswith("Integration run not found")
    refused = api.post(IHR, json=ihr(**{"integration-run": {"code": "x"}}))
    assert refused.status_code == 400
    assert coupa_emulator.records() == []


# ------------------------------------------------------------------------------------------ integration errors
def test_integration_error_belongs_to_its_run(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = _run(api)
    response = api.post(ERRORS, json=_error(run["id"]))
    assert response.status_code == 201, response.text
    error = response.json()
    assert error["integration-run-id"] == run["id"]
    assert error["integration-run"]["id"] == run["id"]
    assert error["integration"]["code"] == CODE
    assert error["resolved"] is False
    assert error["responses"][0]["response-message"] == "Vendor not in ERP"
    listed = api.get(f"{RUNS}/{run['id']}").json()["integration-errors"]
    assert [e["id"] for e in listed] == [error["id"]]
    assert api.get(f"{ERRORS}/{error['id']}").json() == error
    assert coupa_emulator.integration_errors() == [error]
    assert coupa_emulator.alerts == []


def test_integration_error_create_alert(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = _run(api)
    response = api.post(f"{ERRORS}/create_alert", json=_error(run["id"], **{"contact-alert-type": "Both"}))
    assert response.status_code == 201
    [alert] = coupa_emulator.alerts
    assert alert["resource"] == "integration_error"
    assert alert["record_id"] == response.json()["id"]
    assert alert["contact_alert_type"] == "Both"
    assert alert["integration_code"] == CODE
    assert len(api.get(f"{RUNS}/{run['id']}").json()["integration-errors"]) == 1


def test_integration_error_resolve_and_unresolve(api: Api) -> None:
    error = api.post(ERRORS, json=_error(_run(api)["id"])).json()
    resolved = api.put(f"{ERRORS}/{error['id']}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["resolved"] is True
    assert api.get(f"{ERRORS}/{error['id']}").json()["resolved"] is True
    unresolved = api.put(f"{ERRORS}/{error['id']}/unresolve")
    assert unresolved.json()["resolved"] is False
    assert api.put(f"{ERRORS}/999/resolve").status_code == 404
    assert api.put(f"{ERRORS}/999/unresolve").status_code == 404


def test_integration_error_update(api: Api) -> None:
    error = api.post(ERRORS, json=_error(_run(api)["id"])).json()
    updated = api.patch(f"{ERRORS}/{error['id']}", json={"status": "Retried", "resolved": True})
    assert updated.status_code == 200
    assert updated.json()["status"] == "Retried"
    assert updated.json()["resolved"] is False
    assert updated.json()["document-id"] == 7


def test_integration_error_validation(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = _run(api)
    no_run = _error(run["id"])
    del no_run["integration-run"]
    response = api.post(ERRORS, json=no_run)
    assert response.status_code == 400
    assert "Integration run can't be blank" in errors_of(response, "integration_error")
    no_contact = api.post(ERRORS, json=_error(run["id"], **{"contact-alert-type": None}))
    assert errors_of(no_contact, "integration_error") == ["Contact alert type can't be blank"]
    unknown = api.post(ERRORS, json=_error(404))
    assert unknown.status_code == 400
    bad_type = api.post(ERRORS, json=_error(run["id"], **{"document-type": "Banana"}))
    assert errors_of(bad_type, "integration_error") == ["Document type is not included in the list"]
    # Unlike records, errors need no document.
    bare = {"contact-alert-type": "Technical", "integration-run": {"id": run["id"]}}
    assert api.post(ERRORS, json=bare).status_code == 201
    assert len(coupa_emulator.integration_errors()) == 1


# ------------------------------------------------------------------------------------------ associations stay current
def test_a_record_shows_its_run_and_integration_as_they_are_now(coupa_emulator: CoupaEmulator, api: Api) -> None:
    """Coupa joins associations when it answers, so a record shows its run's status today, not at creation."""
    run = _run(api)
    record = api.post(IHR, json=ihr(**{"integration-run": {"id": run["id"]}})).json()
    assert record["integration-run"]["status"] == "pending"
    assert _act(api, run["id"], "run", {"total_records": 1}).status_code == 200
    assert _act(api, run["id"], "success", {"records_processed": 1}).status_code == 200
    integration_id = record["integration"]["id"]
    assert api.put(f"{INTEGRATIONS}/{integration_id}", json={"name": "Renamed"}).status_code == 200

    for seen in (
        api.get(f"{IHR}/{record['id']}").json(),
        api.get(IHR, params={"id": record["id"]}).json()[0],
        coupa_emulator.record(record["id"]),
        coupa_emulator.records()[0],
    ):
        assert seen["integration-run"]["status"] == "successful"
        assert seen["integration-run"]["records-processed"] == 1
        assert seen["integration-run"]["integration"]["name"] == "Renamed"
        assert seen["integration"]["name"] == "Renamed"
    assert api.get(f"{RUNS}/{run['id']}").json()["integration"]["name"] == "Renamed"
    # Filters on an association read it as it is now (a cached answer from before the change is not reused).
    assert api.get(IHR, params={"integration-run[status]": "successful"}).json()[0]["id"] == record["id"]
    assert api.get(IHR, params={"integration[name]": "Renamed"}).json()[0]["id"] == record["id"]


def test_an_integration_error_shows_its_run_as_it_is_now(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = _run(api)
    error = api.post(ERRORS, json=_error(run["id"])).json()
    assert error["integration-run"]["status"] == "pending"
    assert _act(api, run["id"], "fail").status_code == 200
    assert api.get(f"{ERRORS}/{error['id']}").json()["integration-run"]["status"] == "failed"
    assert coupa_emulator.integration_errors()[0]["integration-run"]["status"] == "failed"
    # The run still lists its errors in full; the error's own run is the run itself, without the list again.
    [listed] = api.get(f"{RUNS}/{run['id']}").json()["integration-errors"]
    assert listed["id"] == error["id"]
    assert listed["integration-run"]["status"] == "failed"
    assert "integration-errors" not in listed["integration-run"]


def test_answers_are_copies_a_later_change_cannot_reach(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = _run(api)
    api.post(IHR, json=ihr(**{"integration-run": {"id": run["id"]}}))
    before = coupa_emulator.records()[0]
    assert _act(api, run["id"], "run").status_code == 200
    assert before["integration-run"]["status"] == "pending"  # what the caller holds does not change under it
    before["integration"]["name"] = "scribbled on by a test"
    assert coupa_emulator.records()[0]["integration"]["name"] != "scribbled on by a test"
