"""Python keyword arguments -> the JSON body Coupa expects, refusing before any request what Coupa would refuse.

Users write ``document_type="InvoiceHeader", integration="ERP", responses=[("E42", "Supplier blocked")]``;
Coupa wants ``{"document-type": ..., "integration": {"code": ...}, "responses": [{"response-code": ...}]}``.
The shorthands are what people type in DAG files; the checks are Coupa's own (from ``records.py``) plus the
mistakes Coupa would silently accept: a typo in a field name (Coupa drops unknown attributes) and a read-only
field such as ``resolved`` (Coupa ignores it, so the user's intent would be lost without a word).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.records import (
    CONTACT_ALERT_TYPES,
    DEFAULT_CONTACT_ALERT_TYPE,
    DOCUMENT_TYPES,
    INTEGRATION_FIELDS,
    RECORD_FIELDS,
    Field,
    Problem,
    check_fields,
    to_wire_keys,
)
from airflow_provider_coupa_ihr.client.values import MAX_ID, is_unicode, quoted, whole_number

__all__ = ["build_payload", "normalise_responses", "with_default_contact"]

#: The range of each integer field Coupa stores: ids are bigints from 1, a revision counts from 0. Anything else
#: would be refused by Coupa (or overflow on the way), so it is refused here, before any request.
_INTEGER_RANGES: Mapping[str, tuple[int, int]] = {
    "document-id": (1, MAX_ID),
    "integration-run-id": (1, MAX_ID),
    "document-revision": (0, MAX_ID),
}
#: An integration's code is a string(255).
_CODE_CHARS = INTEGRATION_FIELDS["code"].max_length or 255
#: Any other integer field: what a bigint holds.
_BIGINT = (-(2**63), MAX_ID)

_READ_ONLY_ADVICE = {
    "resolved": "use resolve() / unresolve() (the resolve and unresolve actions) instead",
    "status": "it follows the run's actions (run, pause, success, fail)",
}


def build_payload(
    fields: Mapping[str, Any],
    *,
    known: Mapping[str, Field] = RECORD_FIELDS,
    partial: bool = False,
    extra_document_types: Collection[str] = (),
    what: str = "integration history record",
) -> dict[str, Any]:
    """The wire body for ``fields`` (snake_case or dash-case keys; ``None`` values mean "not given").

    ``partial`` is for updates, where missing required fields keep their stored value. Raises
    :class:`CoupaValidationError` naming every problem at once, so a user fixes a DAG in one go.
    """
    problems: list[str] = []
    refused: set[str] = set()
    wire: dict[str, Any] = {}
    python_names = sorted(f.python_name for f in known.values() if not f.read_only)
    for key, value in fields.items():
        if value is None:
            continue
        name = str(key).replace("_", "-")
        spec = known.get(name)
        python_name = name.replace("-", "_")
        if spec is None:
            close = difflib.get_close_matches(python_name, python_names, n=2)
            suggestion = f"; did you mean {' or '.join(close)}?" if close else ""
            problems.append(
                f"{quoted(key)} is not a field of a Coupa {what}{suggestion} Fields: {', '.join(python_names)}"
            )
            continue
        if spec.read_only:
            advice = _READ_ONLY_ADVICE.get(name, "Coupa sets it")
            problems.append(f"{python_name} is read-only in Coupa and would be ignored; {advice}")
            continue
        try:
            wire[name] = _normalise(name, spec, value)
        except ValueError as exc:
            problems.append(f"{python_name} {exc}")
            refused.add(name)
    if "contact-alert-type" in wire and wire["contact-alert-type"] not in CONTACT_ALERT_TYPES:
        problems.append(
            f"contact_alert_type must be one of {', '.join(CONTACT_ALERT_TYPES)} "
            f"(whose contacts Coupa alerts), got {quoted(wire['contact-alert-type'])}"
        )
    for problem in check_fields(
        wire, known, require=not partial, extra_choices={"document-type": tuple(extra_document_types)}
    ):
        if problem.field not in refused:  # already named, with what was wrong with it
            problems.append(_describe(problem, wire, extra_document_types))
    if _holds_unsendable_text(wire):
        problems.append(
            "a text field holds a lone surrogate (\\ud800-\\udfff), which is not Unicode and cannot be sent"
        )
    if problems:
        raise CoupaValidationError(problems, what=what)
    return wire


def normalise_responses(value: Any) -> list[dict[str, Any]]:
    """``responses`` from any of the shapes people write: dicts (snake or dash keys), ``(code, message)`` pairs,
    or a single one of either; a :class:`CoupaValidationError` says what is wrong with any other."""
    try:
        return _responses(value)
    except ValueError as exc:
        raise CoupaValidationError([f"responses {exc}"]) from None


def _responses(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, (Mapping, tuple)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ValueError("must be a list of {response_code, response_message} or (code, message) pairs")
    out = []
    for item in value:
        if isinstance(item, Mapping):
            entry = to_wire_keys(dict(item))
            unknown = set(entry) - {"response-code", "response-message"}
            if unknown:
                names = sorted(k.replace("-", "_") for k in unknown)
                raise ValueError(f"items take response_code and response_message only, got {names}")
        elif isinstance(item, tuple) and len(item) == 2:
            entry = {"response-code": item[0], "response-message": item[1]}
        else:
            raise ValueError(f"items must be dicts or (code, message) pairs, got {quoted(item)}")
        for key in ("response-code", "response-message"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                entry[key] = str(entry[key])
        out.append(entry)
    return out


def _normalise(name: str, spec: Field, value: Any) -> Any:
    if name == "integration":
        if isinstance(value, str):
            if len(value) > _CODE_CHARS:
                raise ValueError(f"takes the integration's code, at most {_CODE_CHARS} characters, got {len(value)}")
            return {"code": value}
        if isinstance(value, Mapping) and ("code" in value or "id" in value):
            reference = to_wire_keys(dict(value))
            if "id" in reference:
                reference["id"] = _bounded(reference["id"], (1, MAX_ID), "the integration's id")
            return reference
        raise ValueError(f"takes the integration's code (a string) or {{'code': ...}}, got {quoted(value)}")
    if name == "integration-run":
        run_id = whole_number(value.get("id") if isinstance(value, Mapping) else value, text=True)
        if run_id is not None:
            return {"id": _bounded(run_id, (1, MAX_ID), "the run's id")}
        raise ValueError(f"takes the run's id (an integer) or {{'id': ...}}, got {quoted(value)}")
    if name == "responses":
        return _responses(value)
    if spec.kind == "integer" and whole_number(value, text=True) is not None:
        return _bounded(value, _INTEGER_RANGES.get(name, _BIGINT))
    return value


def _bounded(value: Any, bounds: tuple[int, int], what: str | None = None) -> Any:
    """``value`` if it is a whole number within ``bounds`` (or not a number at all: that is reported elsewhere).

    ``what`` names a part of the field's value (``"the run's id"``); the message then quotes that part.
    """
    number = whole_number(value, text=True)
    low, high = bounds
    if number is None:
        return value
    if not low <= number <= high:
        kind = " (a Coupa id)" if low == 1 else ""
        if what:
            raise ValueError(f"takes {what} from {low} to {high}{kind}, got {quoted(value)}")
        raise ValueError(f"must be a whole number from {low} to {high}{kind}, got {quoted(value)}")
    return number


def _holds_unsendable_text(value: Any) -> bool:
    """Whether any text in ``value`` holds a lone surrogate: JSON can spell it, but not as UTF-8 on the wire."""
    if isinstance(value, str):
        return not is_unicode(value)
    if isinstance(value, Mapping):
        return any(_holds_unsendable_text(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unsendable_text(v) for v in value)
    return False


def _describe(problem: Problem, wire: Mapping[str, Any], extra_document_types: Collection[str]) -> str:
    python_name = problem.field.replace("-", "_")
    if problem.field == "document-type" and problem.message == "is not included in the list":
        given = wire.get("document-type")
        close = difflib.get_close_matches(str(given), DOCUMENT_TYPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (the allowed ones are listed below)"
        extra = f" or the extra ones allowed ({', '.join(extra_document_types)})" if extra_document_types else ""
        return f"document_type {quoted(given)} is not one of Coupa's document types{extra}{hint}"
    value = wire.get(problem.field)
    shown = f", got {quoted(value)}" if value is not None and problem.message != "can't be blank" else ""
    if isinstance(value, (list, Mapping)):
        shown = ""  # the problem names the item at fault; quoting every response could quote pages of ERP text
    if isinstance(value, str) and len(value) > 60:
        shown = f", got {len(value)} characters"
    return f"{python_name} {problem.message}{shown}"


def with_default_contact(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """``fields`` with ``contact_alert_type`` set to :data:`~.records.DEFAULT_CONTACT_ALERT_TYPE` when not given:
    one default for every way of writing a record (Coupa itself refuses a record without one)."""
    if fields.get("contact_alert_type") is None and fields.get("contact-alert-type") is None:
        return {**fields, "contact_alert_type": DEFAULT_CONTACT_ALERT_TYPE}
    return fields
