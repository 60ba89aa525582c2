"""``testing.state`` without a server, on a fake clock: the rules Coupa applies when its data changes."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from airflow_provider_coupa_ihr.testing.state import CoupaState, Invalid, NotFound

USER = {"id": 1, "login": "api"}


def make_state(**kwargs: Any) -> CoupaState:
    ticks = itertools.count()
    state = CoupaState(clock=lambda: f"2024-03-25T18:{next(ticks) % 60:02d}:00-07:00", **kwargs)
    state.add_integration("SAP")
    return state


def record(**overrides: Any) -> dict[str, Any]:
    return {
        "contact_alert_type": "Technical",
        "document_type": "InvoiceHeader",
        "document_id": 1,
        "integration": {"code": "SAP"},
        **overrides,
    }


def test_create_stores_wire_keys_and_stamps() -> None:
    state = make_state()
    row = state.create(state.records, record(external_id="E"), user=USER)
    assert row["id"] == 1
    assert row["external-id"] == "E"
    assert row["created-at"] == row["updated-at"]
    assert row["created-by"] == USER
    assert row["resolved"] is False
    assert row["integration-filename"] is None
    assert row["integration"]["code"] == "SAP"
    assert state.get(state.records, 1) == row


def test_returned_rows_are_copies() -> None:
    state = make_state()
    row = state.create(state.records, record(), user=USER)
    row["status"] = "tampered"
    row["integration"]["code"] = "tampered"
    assert state.get(state.records, 1)["status"] is None
    assert state.get(state.records, 1)["integration"]["code"] == "SAP"
    state.snapshot(state.records)[0]["responses"].append("x")
    assert state.get(state.records, 1)["responses"] == []


def test_invalid_payload_names_the_resource_and_stores_nothing() -> None:
    state = make_state()
    with pytest.raises(Invalid) as caught:
        state.create(state.records, {"document_type": "Nope"}, user=USER)
    assert caught.value.resource == "integration_history_record"
    assert "Document type is not included in the list" in caught.value.messages
    assert "Contact alert type can't be blank" in caught.value.messages
    assert state.snapshot(state.records) == []
    assert state.records.next_id == 1  # no id burnt


def test_extra_document_types() -> None:
    state = make_state(extra_document_types=["ServiceOrder"])
    assert state.create(state.records, record(document_type="ServiceOrder"), user=None)["id"] == 1
    with pytest.raises(Invalid):
        make_state().create(make_state().records, record(document_type="ServiceOrder"), user=None)


def test_update_moves_updated_at_only() -> None:
    state = make_state()
    row = state.create(state.records, record(), user=USER)
    updated = state.update(state.records, 1, {"status": "Error"}, user={"id": 2, "login": "other"})
    assert updated["created-at"] == row["created-at"]
    assert updated["updated-at"] != row["updated-at"]
    assert updated["created-by"] == USER
    assert updated["updated-by"]["login"] == "other"
    with pytest.raises(NotFound):
        state.update(state.records, 99, {}, user=None)


def test_set_resolved() -> None:
    state = make_state()
    state.create(state.records, record(), user=None)
    assert state.set_resolved(state.records, 1, True)["resolved"] is True
    assert state.set_resolved(state.records, 1, False)["resolved"] is False
    with pytest.raises(NotFound):
        state.set_resolved(state.records, 2, True)


@pytest.mark.parametrize(
    ("action", "kinds"),
    [
        ("create", []),
        ("acknowledge", ["acknowledged"]),
        ("mark_exported", ["exported"]),
        ("create_alert", ["alert"]),
        ("create_alert_and_mark_exported", ["alert", "exported"]),
    ],
)
def test_action_side_effects(action: str, kinds: list[str]) -> None:
    state = make_state()
    row = state.create(state.records, record(contact_alert_type="Both"), user=None, action=action)
    effects = state.effects()
    assert [e.kind for e in effects] == kinds
    for effect in effects:
        assert effect.record_id == row["id"]
        assert (effect.document_type, effect.document_id, effect.integration_code) == ("InvoiceHeader", 1, "SAP")
        assert effect.contact_alert_type == ("Both" if effect.kind == "alert" else None)
        assert effect.at == row["created-at"]


def test_run_transitions_and_errors() -> None:
    state = make_state()
    run = state.create(state.runs, {"integration": {"code": "SAP"}}, user=None)
    assert run["status"] == "pending"
    running = state.run_action(run["id"], "run", {"total_records": "3"}, user=None)
    assert (running["status"], running["total-records"]) == ("running", 3)
    started = running["start-time"]
    assert started
    error = state.create(
        state.errors, {"contact_alert_type": "Technical", "integration_run": {"id": run["id"]}}, user=None
    )
    listed = state.get(state.runs, run["id"])["integration-errors"]
    assert [e["id"] for e in listed] == [error["id"]]
    assert listed[0]["integration-run"]["status"] == "running"  # the run as it is now
    assert state.run_action(run["id"], "pause", {}, user=None)["status"] == "paused"
    failed = state.run_action(run["id"], "fail", {}, user=None)
    assert failed["status"] == "failed"
    assert failed["start-time"] == started
    assert failed["end-time"]
    with pytest.raises(Invalid, match="cannot change once the run is failed"):
        state.run_action(run["id"], "run", {}, user=None)
    with pytest.raises(NotFound):
        state.run_action(99, "run", {}, user=None)


def test_max_updated_at_per_integration() -> None:
    state = make_state()
    state.add_integration("ORACLE")
    first = state.create(state.runs, {"integration": {"code": "SAP"}}, user=None)
    started = state.run_action(first["id"], "run", {}, user=None)["start-time"]
    state.run_action(first["id"], "success", {}, user=None)
    other = state.create(state.runs, {"integration": {"code": "ORACLE"}}, user=None)
    assert state.run_action(other["id"], "max_updated_at", {}, user=None)["max-updated-at"] is None
    second = state.create(state.runs, {"integration": {"code": "SAP"}}, user=None)
    assert state.run_action(second["id"], "max_updated_at", {}, user=None)["max-updated-at"] == started


def test_integration_codes_are_unique_and_defaults_filled() -> None:
    state = make_state()
    sap = state.integration_by_code("SAP")
    assert sap is not None
    assert (sap["direction"], sap["end-system-type"], sap["standard"]) == ("from_coupa", "erp", False)
    with pytest.raises(Invalid, match="Code has already been taken"):
        state.add_integration("SAP")
    assert state.add_integration("WD", end_system="Workday")["end-system"] == "Workday"


def test_reset_forgets_everything() -> None:
    state = make_state()
    state.create(state.records, record(), user=None, action="create_alert")
    state.reset()
    assert state.snapshot(state.records) == []
    assert state.snapshot(state.integrations) == []
    assert state.effects() == []
    assert state.records.next_id == 1


def test_concurrent_creates_get_unique_ids() -> None:
    state = make_state()

    def write() -> None:
        for n in range(50):
            state.create(state.records, record(document_id=n), user=None)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [r["id"] for r in state.snapshot(state.records)]
    assert ids == list(range(1, 201))
