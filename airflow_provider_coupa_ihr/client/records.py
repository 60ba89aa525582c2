"""Coupa's integration resources as its R39 Swagger defines them, and the checks Coupa applies to them.

This module is the single place the project keeps Coupa's facts (field names, types, limits, the document-type
list). The client validates with it before sending, and the emulator validates with it on receipt, so the two
can never disagree about what Coupa accepts; the conformance test holds both to Coupa's own Swagger.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from airflow_provider_coupa_ihr.client.values import whole_number

__all__ = [
    "CONTACT_ALERT_TYPES",
    "DEFAULT_CONTACT_ALERT_TYPE",
    "DOCUMENT_TYPES",
    "ERRORS_PATH",
    "ERROR_FIELDS",
    "FIELDS_BY_PATH",
    "INTEGRATIONS_PATH",
    "INTEGRATION_FIELDS",
    "MAX_TEXT_BYTES",
    "QUERY_OPERATORS",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_PER_SECOND",
    "READ_SCOPE",
    "RECORDS_PATH",
    "RECORD_FIELDS",
    "RESPONSE_FIELDS",
    "RUNS_PATH",
    "RUN_ACTIONS",
    "RUN_FIELDS",
    "RUN_STATUSES",
    "WRITE_SCOPE",
    "Field",
    "Problem",
    "check_fields",
    "humanize",
    "snake_object",
    "to_python_keys",
    "to_wire_keys",
]

#: The ``document-type`` values of Coupa R39, in Coupa's order. Coupa adds values in new releases (R27, R31 and
#: R38 did), so callers can allow more on purpose; nothing here is meant to be edited at run time.
DOCUMENT_TYPES: tuple[str, ...] = (
    "ContingentWorkOrderHeader",
    "ExternalOrderHeader",
    "OrderHeader",
    "InventoryTransaction",
    "InvoiceHeader",
    "ExpenseReport",
    "RequisitionHeader",
    "Account",
    "Supplier",
    "User",
    "Address",
    "RemitToAddress",
    "Contract",
    "ExchangeRate",
    "Invoice",
    "Requisition",
    "Payment",
    "ApprovalChain",
    "LookupValue",
    "Item",
    "SupplierInformation",
    "Asn::Header",
    "AccountValidationRule",
    "Payables::External::Payable",
    "Charge",
    "Payables::Invoice",
    "Payables::Expense",
    "CoupaPay::Payment",
    "CoupaPay::Statement",
    "ReceiptRequest",
    "InventoryRequestHeader",
)

#: The contact types an integration's contacts carry; ``create_alert`` notifies the contacts of the record's type.
CONTACT_ALERT_TYPES: tuple[str, ...] = ("Technical", "Functional", "Both")
#: The contact type a record gets when none is given, everywhere (client, hook, operators, bulk, notifier,
#: listener): Functional, the business users who can fix the document in Coupa. Coupa requires one on every record.
DEFAULT_CONTACT_ALERT_TYPE = "Functional"

#: Coupa's filter operators (``field[op]=value``); plain ``field=value`` is equality.
QUERY_OPERATORS: tuple[str, ...] = (
    "contains",
    "starts_with",
    "ends_with",
    "gt",
    "lt",
    "gt_or_eq",
    "lt_or_eq",
    "not_eq",
    "in",
    "not_in",
    "blank",
)

#: Statuses an integration run moves through (Coupa's own words, as its API returns them).
RUN_STATUSES: tuple[str, ...] = ("pending", "running", "paused", "successful", "failed")

#: A run's status after each of its actions (``PUT /integration_runs/{id}/<action>``). Coupa documents the
#: actions by name only; ``finish`` ending a run as successful is the project's reading.
RUN_ACTIONS: Mapping[str, str] = {
    "run": "running",
    "pause": "paused",
    "pending": "pending",
    "success": "successful",
    "finish": "successful",
    "fail": "failed",
}

#: OAuth scopes of Coupa's integration APIs: reads (index, show) need the first, every other call the second.
READ_SCOPE = "core.integration.read"
WRITE_SCOPE = "core.integration.write"

#: Coupa's only published rate limit: 25 requests per second, bursts of 20 (the emulator enforces the same).
RATE_LIMIT_PER_SECOND = 25
RATE_LIMIT_BURST = 20

#: The most a ``text`` field (``response-message``) may hold, in bytes of UTF-8. Coupa documents ``text`` with no
#: limit; 65,535 bytes is the smallest ``text`` column of the databases Rails runs on (MySQL's TEXT), so a message
#: within it is never cut or refused by Coupa's database. The client refuses a longer one before sending it (the
#: notifier and the listener cut theirs much shorter, see ``notifications.outcome``), and the emulator does too.
MAX_TEXT_BYTES = 65_535

Kind = Literal["string", "text", "integer", "boolean", "datetime", "object", "array"]


@dataclass(frozen=True)
class Field:
    """One attribute of a Coupa resource, under its wire (dash-case) name."""

    name: str
    kind: Kind
    max_length: int | None = None
    required: bool = False
    read_only: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")


def _fields(*fields: Field) -> Mapping[str, Field]:
    return {f.name: f for f in fields}


def _string(name: str, **kw: Any) -> Field:
    return Field(name, "string", max_length=255, **kw)


_AUDIT = (
    Field("id", "integer", read_only=True),
    Field("created-at", "datetime", read_only=True),
    Field("updated-at", "datetime", read_only=True),
    Field("created-by", "object", read_only=True),
    Field("updated-by", "object", read_only=True),
)

RESPONSE_FIELDS: Mapping[str, Field] = _fields(
    *_AUDIT,
    _string("response-code"),
    Field("response-message", "text"),
)

_RECORD_BODY = (
    _string("contact-alert-type", required=True),
    _string("document-type", required=True, choices=DOCUMENT_TYPES),
    Field("document-id", "integer", required=True),
    Field("document-revision", "integer"),
    _string("document-status"),
    _string("external-id"),
    _string("status"),
    _string("creation-method"),
    Field("integration", "object"),
    Field("integration-run", "object"),
    Field("integration-run-id", "integer"),
    Field("responses", "array"),
    Field("resolved", "boolean", read_only=True),
)

#: ``IntegrationHistoryRecord``. ``integration-filename`` is read-only for records (not for errors).
RECORD_FIELDS: Mapping[str, Field] = _fields(*_AUDIT, *_RECORD_BODY, _string("integration-filename", read_only=True))

#: ``IntegrationError``: a record that belongs to an integration run.
ERROR_FIELDS: Mapping[str, Field] = _fields(
    *_AUDIT,
    *(replace(f, required=f.name == "contact-alert-type") for f in _RECORD_BODY if f.name != "integration-run"),
    Field("integration-run", "object", required=True),
    _string("integration-filename"),
)

#: ``IntegrationRun``.
RUN_FIELDS: Mapping[str, Field] = _fields(
    *_AUDIT,
    Field("integration", "object", required=True),
    _string("status", read_only=True),
    Field("start-time", "datetime"),
    Field("end-time", "datetime"),
    Field("total-records", "integer"),
    Field("records-processed", "integer"),
    Field("flow", "object"),
    Field("integration-errors", "array", read_only=True),
)

#: ``Integration``.
INTEGRATION_FIELDS: Mapping[str, Field] = _fields(
    *_AUDIT,
    _string("code", required=True),
    _string("name", required=True),
    _string("business-object", required=True),
    _string("direction", required=True, choices=("to_coupa", "from_coupa")),
    _string("end-system", required=True),
    _string(
        "end-system-type",
        required=True,
        choices=("payroll", "erp", "hr", "third_party_partner", "third_party_vendor", "other", "internal"),
    ),
    _string(
        "integration-type",
        choices=("flat_file", "api", "corporate_credit_card_file", "json", "xml", "original_format"),
    ),
    Field("standard", "boolean", read_only=True),
)


#: Where each resource lives, under ``/api``.
RECORDS_PATH = "/integration_history_records"
ERRORS_PATH = "/integration_errors"
RUNS_PATH = "/integration_runs"
INTEGRATIONS_PATH = "/integrations"
#: Each resource's fields, by its path: what a query on that path may filter, trim and order by.
FIELDS_BY_PATH: Mapping[str, Mapping[str, Field]] = {
    RECORDS_PATH: RECORD_FIELDS,
    ERRORS_PATH: ERROR_FIELDS,
    RUNS_PATH: RUN_FIELDS,
    INTEGRATIONS_PATH: INTEGRATION_FIELDS,
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a payload, phrased the way Coupa (Rails) phrases it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{humanize(self.field)} {self.message}"


def humanize(wire_name: str) -> str:
    """``document-type`` -> ``Document type``, as Rails' full error messages name attributes."""
    words = wire_name.replace("_", "-").split("-")
    return " ".join([words[0].capitalize(), *words[1:]])


def to_wire_keys(value: Any) -> Any:
    """Snake_case keys to Coupa's dash-case, recursively (values are left alone)."""
    return _map_keys(value, "_", "-")


def to_python_keys(value: Any) -> Any:
    """Coupa's dash-case keys to snake_case, recursively. Coupa sends both; this normalises once, at the edge.

    Every record of every page passes through here, so it avoids per-key work: keys come from a small set
    (Coupa's attribute names), and each is converted once per process (see :data:`_SNAKE`).
    """
    if isinstance(value, dict):
        cache = _SNAKE
        out = {}
        for k, v in value.items():
            key = cache.get(k)
            if key is None:
                key = _snake_key(k)
            out[key] = to_python_keys(v) if isinstance(v, (dict, list)) else v
        return out
    if isinstance(value, list):
        return [to_python_keys(v) if isinstance(v, (dict, list)) else v for v in value]
    return _map_keys(value, "-", "_")


#: Dash-case key -> snake_case key, filled as keys are met. Bounded: the keys come from the server, and a hostile
#: one (or a proxy's page) could send millions of distinct ones; Coupa's attribute names are a few hundred, so the
#: first :data:`SNAKE_CACHE_SIZE` short keys met are kept and any other is converted each time it is met.
_SNAKE: dict[Any, str] = {}
#: How many keys :data:`_SNAKE` holds at most.
SNAKE_CACHE_SIZE = 4096
#: Keys longer than this are never cached (no Coupa attribute name comes close).
SNAKE_CACHE_KEY_CHARS = 64


def _snake_key(key: Any) -> str:
    """``key`` in snake_case, remembered in :data:`_SNAKE` while there is room and it is short."""
    name = str(key).replace("-", "_")
    if len(_SNAKE) < SNAKE_CACHE_SIZE and len(name) <= SNAKE_CACHE_KEY_CHARS:
        _SNAKE[key] = name
    return name


def snake_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads(..., object_pairs_hook=snake_object)``: objects come out with snake_case keys."""
    cache = _SNAKE
    out = {}
    for key, value in pairs:
        name = cache.get(key)
        if name is None:
            name = _snake_key(key)
        out[name] = value
    return out


def _map_keys(value: Any, old: str, new: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k).replace(old, new): _map_keys(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_keys(v, old, new) for v in value]
    return value


def check_fields(
    payload: Mapping[str, Any],
    fields: Mapping[str, Field],
    *,
    require: bool = True,
    extra_choices: Mapping[str, Collection[str]] | None = None,
) -> list[Problem]:
    """Return what Coupa would reject in ``payload`` (wire keys; unknown and read-only keys are not judged).

    ``require`` is False for updates, where absent fields keep their value. ``extra_choices`` widens a field's
    allowed values (a document type newer than R39, say) for callers who do so on purpose.
    """
    problems: list[Problem] = []
    for name, spec in fields.items():
        if spec.read_only:
            continue
        present = name in payload
        value = payload.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.required and (require or present):
                problems.append(Problem(name, "can't be blank"))
            continue
        problems.extend(_check_value(name, spec, value, extra_choices))
    return problems


def _check_value(
    name: str, spec: Field, value: Any, extra_choices: Mapping[str, Collection[str]] | None
) -> Iterable[Problem]:
    if spec.kind == "integer":
        if whole_number(value, text=True) is None:
            yield Problem(name, "is not a number" if not isinstance(value, float) else "must be an integer")
        return
    if spec.kind == "boolean":
        if not isinstance(value, bool):
            yield Problem(name, "must be true or false")
        return
    if spec.kind in ("string", "text", "datetime"):
        if not isinstance(value, str):
            yield Problem(name, "must be text")
            return
        if spec.max_length is not None and len(value) > spec.max_length:
            yield Problem(name, f"is too long (maximum is {spec.max_length} characters)")
        if spec.kind == "text" and len(value) > MAX_TEXT_BYTES // 4 and _utf8_size(value) > MAX_TEXT_BYTES:
            yield Problem(name, f"is too long (maximum is {MAX_TEXT_BYTES} bytes of UTF-8)")
        allowed = tuple(spec.choices or ()) + tuple((extra_choices or {}).get(name, ()))
        if spec.choices is not None and value not in allowed:
            yield Problem(name, "is not included in the list")
        return
    if spec.kind == "object" and not isinstance(value, Mapping):
        yield Problem(name, "must be an object")
    if spec.kind == "array":
        if not isinstance(value, list):
            yield Problem(name, "must be a list")
        elif name == "responses":
            yield from _check_responses(value)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _check_responses(items: list[Any]) -> Iterable[Problem]:
    for item in items:
        if not isinstance(item, Mapping):
            yield Problem("responses", "must be a list of objects with response-code and response-message")
            return
        wire = to_wire_keys(item)
        for problem in check_fields(wire, RESPONSE_FIELDS, require=False):
            yield Problem("responses", f"{problem.field} {problem.message}")
