"""The emulator held to Coupa's own R39 Swagger (``<repo>/../shared/coupa/coupa-r39-integrations.swagger.json``).

- Every JSON answer (a record with responses, an integration and a run; a run; an integration error; an
  integration) validates against its Swagger definition, ``#/definitions/...`` references resolved.
- Any property may be ``null``: Coupa returns ``null`` for attributes that were never set (``"document-revision":
  null``), and Swagger 2.0 has no way to say so, so every property schema is widened to ``anyOf [null, schema]``.
- ``format: string(N)`` becomes ``maxLength: N`` and ``format: datetime`` an ISO 8601 pattern with an offset, so
  those Swagger facts are checked too (jsonschema ignores unknown formats otherwise).
- Every property Swagger lists appears in the emulator's JSON, and the emulator adds none of its own.
- ``client/records.py`` (the facts the client and the emulator share) agrees with the Swagger: the 31-value
  document-type enum, field names, required fields, enums and lengths.
- Every path and verb of the Swagger is served and answers one of the statuses the Swagger lists for it.

CI keeps the Swagger beside the clone; without it these tests skip and say why.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import CODE, ERRORS, IHR, INTEGRATIONS, RUNS, Api, ihr

from airflow_provider_coupa_ihr.client.records import (
    DOCUMENT_TYPES,
    ERROR_FIELDS,
    INTEGRATION_FIELDS,
    RECORD_FIELDS,
    RESPONSE_FIELDS,
    RUN_FIELDS,
    Field,
)
from airflow_provider_coupa_ihr.testing import CoupaEmulator

jsonschema = pytest.importorskip("jsonschema")

SWAGGER_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "coupa" / "coupa-r39-integrations.swagger.json"
if not SWAGGER_PATH.is_file():
    pytest.skip(
        f"Coupa's R39 Swagger not found at {SWAGGER_PATH.resolve()} (CI checks it out beside the clone, as "
        "shared/coupa/); conformance tests skipped",
        allow_module_level=True,
    )

SWAGGER: dict[str, Any] = json.loads(SWAGGER_PATH.read_text(encoding="utf-8"))
DEFINITIONS: dict[str, Any] = SWAGGER["definitions"]
DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$"
#: Emulator-only keys, allowed beyond the Swagger (our reading of R38's max_updated_at action).
EXTRA_KEYS = {"IntegrationRun": {"max-updated-at"}}


def _tighten(prop: dict[str, Any]) -> dict[str, Any]:
    prop = {k: v for k, v in prop.items() if k not in ("description", "readOnly", "xml")}
    fmt = prop.pop("format", None)
    if isinstance(fmt, str):
        length = re.fullmatch(r"string\((\d+)\)", fmt)
        if length and prop.get("type") == "string":
            prop["maxLength"] = int(length.group(1))
        elif fmt == "datetime" and prop.get("type") == "string":
            prop["pattern"] = DATETIME
    if "items" in prop:
        prop["items"] = _tighten(prop["items"])
    return prop


def _definitions(*, strict: bool) -> dict[str, Any]:
    """Swagger definitions with null allowed for any property; ``strict`` also forbids unknown properties."""
    out = {}
    for name, definition in copy.deepcopy(DEFINITIONS).items():
        properties = definition.get("properties")
        if properties is not None:
            definition["properties"] = {
                key: {"anyOf": [{"type": "null"}, _tighten(prop)]} for key, prop in properties.items()
            }
            if strict:
                extra = {key: {} for key in EXTRA_KEYS.get(name, ())}
                definition["properties"].update(extra)
                definition["additionalProperties"] = False
        out[name] = definition
    return out


@functools.cache
def _validator(ref: str, *, strict: bool = False) -> Any:
    schema = {"definitions": _definitions(strict=strict), "allOf": [{"$ref": ref}]}
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def assert_conforms(value: Any, definition: str, *, strict: bool = True) -> None:
    validator = _validator(f"#/definitions/{definition}", strict=strict)
    problems = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not problems, "\n".join(f"{list(p.absolute_path)}: {p.message}" for p in problems)


def _listed(definition: str) -> set[str]:
    return set(DEFINITIONS[definition]["properties"])


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def world(coupa_emulator: CoupaEmulator, api: Api) -> dict[str, Any]:
    """One of everything, made over HTTP: a run in progress, a record in it with responses, an error."""
    run = api.post(RUNS, json={"integration": {"code": CODE}}).json()
    run = api.put(f"{RUNS}/{run['id']}/run", json={"total-records": 2}).json()
    record = api.post(
        IHR,
        json=ihr(
            **{"integration-run": {"id": run["id"]}, "document-revision": 1, "document-status": "approved"},
            responses=[{"response-code": "E1", "response-message": "Vendor missing in ERP"}],
        ),
    ).json()
    error = api.post(
        ERRORS,
        json={
            "contact-alert-type": "Technical",
            "document-type": "InvoiceHeader",
            "document-id": 1001,
            "integration-run": {"id": run["id"]},
            "integration-filename": "invoices-2024-03-25.csv",
            "responses": [{"response-code": "E2", "response-message": "Account closed"}],
        },
    ).json()
    integration = api.get(INTEGRATIONS, params={"code": CODE}).json()[0]
    run = api.get(f"{RUNS}/{run['id']}").json()
    return {"record": record, "run": run, "error": error, "integration": integration}


# ------------------------------------------------------------------------------------------ responses vs definitions
@pytest.mark.parametrize(
    ("key", "definition"),
    [
        ("record", "IntegrationHistoryRecord"),
        ("run", "IntegrationRun"),
        ("error", "IntegrationError"),
        ("integration", "Integration"),
    ],
)
def test_json_answers_fit_the_swagger(world: dict[str, Any], key: str, definition: str) -> None:
    value = world[key]
    assert_conforms(value, definition)
    missing = _listed(definition) - set(value)
    assert not missing, f"{definition} JSON lacks Swagger properties {sorted(missing)}"


def test_nested_objects_fit_and_are_complete(world: dict[str, Any]) -> None:
    record = world["record"]
    assert record["integration"] is not None
    assert record["integration-run"] is not None
    assert record["responses"]
    assert _listed("Integration") <= set(record["integration"])
    assert _listed("IntegrationRecordResponse") <= set(record["responses"][0])
    assert _listed("UserSimple") <= set(record["created-by"])
    assert_conforms(record["responses"][0], "IntegrationRecordResponse")
    assert_conforms(record["created-by"], "UserSimple")
    assert_conforms(record["integration-run"], "IntegrationRun")
    assert world["run"]["integration-errors"]
    assert_conforms(world["run"]["integration-errors"][0], "IntegrationError")


def test_index_answers_fit_the_swagger(world: dict[str, Any], api: Api) -> None:
    for path, definition in [
        (IHR, "IntegrationHistoryRecord"),
        (RUNS, "IntegrationRun"),
        (ERRORS, "IntegrationError"),
        (INTEGRATIONS, "Integration"),
    ]:
        items = api.get(path).json()
        assert isinstance(items, list)
        assert items
        for item in items:
            assert_conforms(item, definition)


def test_the_checker_catches_what_it_should(world: dict[str, Any]) -> None:
    """The validation above can fail: a wrong type, a too-long string, a bad datetime, an unknown key."""
    validator = _validator("#/definitions/IntegrationHistoryRecord", strict=True)
    for change in (
        {"document-id": "1001"},
        {"resolved": "false"},
        {"external-id": "x" * 256},
        {"created-at": "25/03/2024"},
        {"document-type": "Banana"},
        {"integration": {"code": 12}},
        {"responses": [None]},
        {"surprise": 1},
    ):
        bad = {**world["record"], **change}
        assert list(validator.iter_errors(bad)), change
    assert not list(validator.iter_errors({**world["record"], "document-revision": None}))


# ------------------------------------------------------------------------------------------ records.py vs Swagger
def test_document_types_equal_the_swagger_enum() -> None:
    for definition in ("IntegrationHistoryRecord", "IntegrationError"):
        enum = DEFINITIONS[definition]["properties"]["document-type"]["enum"]
        assert list(DOCUMENT_TYPES) == enum
    assert len(DOCUMENT_TYPES) == 31


@pytest.mark.parametrize(
    ("definition", "fields"),
    [
        ("IntegrationHistoryRecord", RECORD_FIELDS),
        ("IntegrationError", ERROR_FIELDS),
        ("IntegrationRun", RUN_FIELDS),
        ("Integration", INTEGRATION_FIELDS),
        ("IntegrationRecordResponse", RESPONSE_FIELDS),
    ],
)
def test_field_facts_equal_the_swagger(definition: str, fields: dict[str, Field]) -> None:
    swagger = DEFINITIONS[definition]
    assert set(fields) == set(swagger["properties"])
    assert {n for n, f in fields.items() if f.required} == set(swagger.get("required", ()))
    for name, prop in swagger["properties"].items():
        field = fields[name]
        fmt = prop.get("format", "")
        length = re.fullmatch(r"string\((\d+)\)", fmt)
        assert field.max_length == (int(length.group(1)) if length else None), name
        if "enum" in prop:
            assert list(field.choices or ()) == prop["enum"], name
        expected_kind = {"integer": "integer", "boolean": "boolean", "array": "array"}.get(prop.get("type", ""))
        if expected_kind:
            assert field.kind == expected_kind, name
        if "$ref" in prop:
            assert field.kind == "object", name
        if fmt == "datetime":
            assert field.kind == "datetime", name


# ------------------------------------------------------------------------------------------ every path and verb
def _bodies(run_id: int) -> dict[str, Any]:
    error = {"contact-alert-type": "Technical", "integration-run": {"id": run_id}}
    integration = {
        "code": "CONFORMANCE",
        "name": "Conformance",
        "business-object": "invoice",
        "direction": "to_coupa",
        "end-system": "ERP",
        "end-system-type": "erp",
    }
    return {
        "/integration_errors": error,
        "/integrations": integration,
        "/integration_runs": {"integration": {"code": CODE}},
    }


def _operations() -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in SWAGGER["paths"].items() for method in ops]


def _schema_of(success: dict[str, Any]) -> tuple[str, bool] | None:
    """(definition, is_list) of a success response. R39's update and action answers say ``{"items": {$ref}}``
    without ``type: array`` (a Swagger generator quirk); Coupa answers those with one object."""
    schema = success.get("schema")
    if schema is None:
        return None
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1], False
    ref = schema["items"]["$ref"].rsplit("/", 1)[1]
    return ref, schema.get("type") == "array"


def test_every_swagger_operation_is_served_with_a_listed_status(coupa_emulator: CoupaEmulator, api: Api) -> None:
    run = api.post(RUNS, json={"integration": {"code": CODE}}).json()
    api.post(IHR, json=ihr())
    api.post(ERRORS, json=_bodies(run["id"])["/integration_errors"])
    bodies = _bodies(run["id"])
    seen = 0
    for method, path in _operations():
        url = SWAGGER["basePath"] + path.replace("{id}", "1")
        collection = "/" + path.split("/")[1]
        body: Any = None
        if method == "POST":
            body = bodies.get(collection, ihr())
        elif method in ("PUT", "PATCH"):
            body = {}
        response = api.request(method, url, json=body)
        listed = SWAGGER["paths"][path][method.lower()]["responses"]
        assert str(response.status_code) in listed, f"{method} {url}: {response.status_code} {response.text[:200]}"
        assert response.headers["Content-Type"].startswith("application/json"), f"{method} {url}"
        if response.status_code in (200, 201):
            shape = _schema_of(listed[str(response.status_code)])
            if shape is not None:
                definition, is_list = shape
                value = response.json()
                for item in value if is_list else [value]:
                    assert_conforms(item, definition)
        if collection == "/integrations" and method == "POST":
            bodies["/integrations"] = {**bodies["/integrations"], "code": "CONFORMANCE-2"}
        seen += 1
    assert seen == len(_operations()) == 36
