"""Every Coupa integration API call as an :class:`~.flow.Operation`: built and validated here, sent elsewhere.

Each builder checks its input before anything is sent (a :class:`CoupaValidationError` names every problem)
and says whether the call may be re-sent blindly. Calls that create something carry a
:class:`~.flow.Verification`: the query that finds the record if the answer to the create was lost, and the
test that recognises it, so a retry never makes a duplicate (Coupa has no idempotency key).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import Operation, Verification
from airflow_provider_coupa_ihr.client.paging import Walk
from airflow_provider_coupa_ihr.client.payloads import build_payload, with_default_contact
from airflow_provider_coupa_ihr.client.query import PAGE_SIZE, build_index_params, fields_param, filter_params
from airflow_provider_coupa_ihr.client.records import (
    ERROR_FIELDS,
    ERRORS_PATH,
    FIELDS_BY_PATH,
    RECORD_FIELDS,
    RECORDS_PATH,
    RUN_ACTIONS,
    RUN_FIELDS,
    RUNS_PATH,
    Field,
    to_python_keys,
)
from airflow_provider_coupa_ihr.client.values import (
    LOOKBACK_SECONDS,
    MAX_ID,
    parse_id,
    parse_ids,
    quoted,
    render_datetime,
    render_epoch,
    whole_number,
)

__all__ = [
    "RECORD_ACTIONS",
    "create_error",
    "create_record",
    "create_run",
    "excluded_ids",
    "find_same_write",
    "get_resource",
    "ids_to_change",
    "is_same_write",
    "matching_ids_walk",
    "query_resources",
    "run_is_already",
    "run_transition",
    "set_resolved",
    "update_record",
]

#: The IHR write actions: each creates one record; all but ``create`` also do what their name says.
RECORD_ACTIONS: Mapping[str, str] = {
    "create": "",
    "acknowledge": "/acknowledge",
    "mark_exported": "/mark_exported",
    "create_alert": "/create_alert",
    "create_alert_and_mark_exported": "/create_alert_and_mark_exported",
}
ERROR_ACTIONS: Mapping[str, str] = {"create": "", "create_alert": "/create_alert"}

#: The fields that say two records are the same write (besides document type and id, which the query pins).
_IDENTITY = ("status", "contact_alert_type", "external_id", "document_status", "document_revision", "creation_method")


def _choose(action: str, actions: Mapping[str, str], what: str) -> str:
    if action not in actions:
        raise CoupaValidationError([f"action must be one of {', '.join(actions)} for {what}, got {quoted(action)}"])
    return actions[action]


# ------------------------------------------------------------------------------------------------ records, errors
def create_record(
    fields: Mapping[str, Any],
    *,
    action: str = "create",
    now: float,
    extra_document_types: Collection[str] = (),
) -> Operation:
    """``POST /integration_history_records[/<action>]`` with one record; ``now`` is the wall-clock time."""
    suffix = _choose(action, RECORD_ACTIONS, "a record")
    body = build_payload(with_default_contact(fields), known=RECORD_FIELDS, extra_document_types=extra_document_types)
    return _create(RECORDS_PATH, suffix, body, RECORD_FIELDS, now)


def create_error(
    fields: Mapping[str, Any],
    *,
    action: str = "create",
    now: float,
    extra_document_types: Collection[str] = (),
) -> Operation:
    """``POST /integration_errors[/create_alert]``: a record that belongs to an integration run."""
    suffix = _choose(action, ERROR_ACTIONS, "an integration error")
    body = build_payload(
        with_default_contact(fields),
        known=ERROR_FIELDS,
        extra_document_types=extra_document_types,
        what="integration error",
    )
    return _create(ERRORS_PATH, suffix, body, ERROR_FIELDS, now)


def _create(path: str, suffix: str, body: dict[str, Any], known: Mapping[str, Field], now: float) -> Operation:
    """``POST <path><suffix>``: not idempotent, so it carries how to find the record (under ``path``) if the
    answer is lost."""
    verify = find_same_write(path, body, since=now - LOOKBACK_SECONDS, known=known)
    return Operation("POST", path + suffix, body=body, idempotent=False, verify=verify)


def find_same_write(
    path: str, body: Mapping[str, Any], *, since: float, known: Mapping[str, Field] = RECORD_FIELDS
) -> Verification:
    """The query for records like ``body`` (wire keys) created since ``since`` (epoch seconds), newest first,
    and the test that picks one. Used after a lost answer, and by operators on an Airflow retry. Both are built
    only when called: a create carries this safety net at no cost."""

    def query() -> Operation:
        filters: dict[str, Any] = {"created_at[gt_or_eq]": render_epoch(since)}
        for name in ("document-type", "document-id", "integration-run-id"):
            if body.get(name) is not None:
                filters[name] = body[name]
        run = body.get("integration-run")
        if isinstance(run, Mapping) and run.get("id") is not None:
            filters["integration-run-id"] = run["id"]
        params = build_index_params(filters, order_by="id", direction="desc", limit=PAGE_SIZE, known_fields=known)
        return Operation("GET", path, tuple(params))

    def pick(found: list[dict[str, Any]]) -> dict[str, Any] | None:
        sent = to_python_keys(dict(body))
        return next((record for record in found if is_same_write(record, sent)), None)

    return Verification(query, pick)


def is_same_write(record: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Whether stored ``record`` is what ``sent`` (snake_case keys, as sent) would have created.

    Only what was sent is compared: Coupa fills in the rest (an integration taken from the run, say).
    """
    for name in ("document_type", "document_id", *_IDENTITY):
        if name in sent and sent[name] != record.get(name):
            return False
    integration = sent.get("integration")
    stored = record.get("integration")
    stored = stored if isinstance(stored, Mapping) else {}
    if isinstance(integration, Mapping) and any(stored.get(k) != v for k, v in integration.items()):
        return False
    run = sent.get("integration_run")
    run_id = run.get("id") if isinstance(run, Mapping) else sent.get("integration_run_id")
    if run_id is not None and record.get("integration_run_id") != run_id:
        return False
    return _response_pairs(sent.get("responses")) == _response_pairs(record.get("responses"))


def _response_pairs(responses: Any) -> list[tuple[Any, Any]] | None:
    """``(code, message)`` of each response; None when the value is not a list of responses at all."""
    if responses is None:
        return []
    if not isinstance(responses, list) or not all(isinstance(r, Mapping) for r in responses):
        return None
    return [(r.get("response_code"), r.get("response_message")) for r in responses]


def update_record(
    record_id: Any,
    fields: Mapping[str, Any],
    *,
    path: str = RECORDS_PATH,
    extra_document_types: Collection[str] = (),
) -> Operation:
    """``PUT /<resource>/<id>`` with only the fields given (the rest keep their values). Safe to re-send."""
    known = RECORD_FIELDS if path == RECORDS_PATH else ERROR_FIELDS
    body = build_payload(fields, known=known, partial=True, extra_document_types=extra_document_types)
    if not body:
        raise CoupaValidationError(["an update needs at least one field to change"])
    return Operation("PUT", f"{path}/{parse_id(record_id, 'record_id')}", body=body)


def set_resolved(record_id: Any, resolved: bool, *, path: str = RECORDS_PATH) -> Operation:
    """``PUT /<resource>/<id>/resolve`` (or ``/unresolve``): the only way ``resolved`` changes. Safe to re-send."""
    return Operation("PUT", f"{path}/{parse_id(record_id, 'record_id')}/{'resolve' if resolved else 'unresolve'}")


def ids_to_change(record_ids: Any, exclude: Any = ()) -> tuple[int, ...]:
    """The ids to resolve (or unresolve): ``record_ids`` less ``exclude``, both read by :func:`.values.parse_ids`.

    Both are checked before any request, and every bad id of either is named in one error.
    """
    problems: list[str] = []
    parsed: list[tuple[int, ...]] = []
    for value, what in ((record_ids, "record_ids"), (exclude, "exclude")):
        try:
            parsed.append(parse_ids(value, what))
        except CoupaValidationError as refused:
            problems += refused.problems
    if problems:
        raise CoupaValidationError(problems)
    wanted, skipped = parsed
    return tuple(i for i in wanted if i not in set(skipped))


def excluded_ids(exclude: Any) -> frozenset[int]:
    """The ids of ``exclude`` (read like ``record_ids``), checked before any request."""
    return frozenset(parse_ids(exclude, "exclude"))


def matching_ids_walk(filters: Mapping[str, Any] | None, *, resolved: bool, max_records: int | None = None) -> Walk:
    """The ids of every record matching ``filters`` that is not yet ``resolved`` (``resolved`` is set here).

    Callers collect every id before changing any, so the walk is never disturbed by its own changes.
    """
    if filters is not None and not isinstance(filters, Mapping):  # a template rendered to text, say
        filter_params(filters)  # raises, naming what was given
    return Walk(RECORDS_PATH, {**(filters or {}), "resolved": not resolved}, fields=["id"], max_records=max_records)


def get_resource(path: str, resource_id: Any, *, fields: Sequence[Any] | None = None) -> Operation:
    """``GET /<resource>/<id>``, trimmed to ``fields`` when given."""
    known = FIELDS_BY_PATH[path]
    params = (("fields", fields_param(fields, known)),) if fields is not None else ()
    return Operation("GET", f"{path}/{parse_id(resource_id, 'id')}", params)


def query_resources(
    path: str,
    filters: Mapping[str, Any] | None = None,
    *,
    fields: Sequence[Any] | None = None,
    order_by: str = "id",
    direction: str = "asc",
    limit: int = PAGE_SIZE,
    offset: int = 0,
) -> Operation:
    """One page of ``GET /<resource>?filters`` (at most 50)."""
    params = build_index_params(
        filters,
        fields=fields,
        order_by=order_by,
        direction=direction,
        limit=limit,
        offset=offset,
        known_fields=FIELDS_BY_PATH[path],
    )
    return Operation("GET", path, tuple(params))


# ------------------------------------------------------------------------------------------------ runs
def create_run(integration: str, *, now: float, **fields: Any) -> Operation:
    """``POST /integration_runs`` for the integration with code ``integration`` (a run starts ``pending``)."""
    if not isinstance(integration, str) or not integration.strip() or len(integration) > 255:
        raise CoupaValidationError(
            [
                f"integration must be the integration's code (at most 255 characters), e.g. 'ERP-INVOICES', "
                f"got {quoted(integration)}"
            ]
        )
    body = _run_body(fields)
    body["integration"] = {"code": integration}

    def query() -> Operation:
        filters = {
            "integration[code]": integration,
            "created_at[gt_or_eq]": render_epoch(now - LOOKBACK_SECONDS),
            "status": "pending",
        }
        params = build_index_params(filters, order_by="id", direction="desc", limit=1, known_fields=RUN_FIELDS)
        return Operation("GET", RUNS_PATH, tuple(params))

    verify = Verification(query, lambda found: found[0] if found else None)
    return Operation("POST", RUNS_PATH, body=body, idempotent=False, verify=verify)


def run_transition(run_id: Any, action: str, **fields: Any) -> Operation:
    """``PUT /integration_runs/<id>/<action>`` (run, pause, pending, success, finish, fail).

    Not blindly re-sent: Coupa refuses to move a finished run, so a retried ``/success`` whose first answer was
    lost would fail. A lost answer is checked by reading the run's status instead.
    """
    body = check_run_change(action, **fields)
    run = parse_id(run_id, "run_id")
    target = RUN_ACTIONS[action]
    verify = Verification(
        lambda: Operation("GET", RUNS_PATH, (("id", str(run)),)),
        lambda found: next((r for r in found if r.get("status") == target), None),
    )
    return Operation("PUT", f"{RUNS_PATH}/{run}/{action}", body=body or None, idempotent=False, verify=verify)


def check_run_change(action: str, **fields: Any) -> dict[str, Any]:
    """The body of a run transition, checked: a verb that sends a request *before* the transition (create the
    run, read it) calls this first, so bad input is refused before anything reaches Coupa."""
    if action not in RUN_ACTIONS:
        raise CoupaValidationError([f"action must be one of {', '.join(RUN_ACTIONS)}, got {quoted(action)}"])
    return _run_body(fields)


def check_run_end(run_id: Any, action: str, records_processed: Any) -> int:
    """Everything a finish or fail will send, checked before the run is read: the run id, as a number."""
    if action not in ("success", "finish", "fail"):
        raise CoupaValidationError([f"action must be success, finish or fail, got {quoted(action)}"])
    check_run_change(action, records_processed=records_processed)
    return parse_id(run_id, "run_id")


def run_is_already(run: Mapping[str, Any], action: str) -> bool:
    """Whether ``run`` already has the status ``action`` leads to: then a retried finish leaves it as it is."""
    if action not in RUN_ACTIONS:
        raise CoupaValidationError([f"action must be one of {', '.join(RUN_ACTIONS)}, got {quoted(action)}"])
    return run.get("status") == RUN_ACTIONS[action]


def _run_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    allowed = ("total_records", "records_processed", "start_time", "end_time")
    unknown = [k for k in fields if k not in allowed]
    if unknown:
        raise CoupaValidationError([f"unknown run field(s) {unknown}; allowed: {', '.join(allowed)}"])
    body = {k.replace("_", "-"): v for k, v in fields.items() if v is not None}
    for name in ("total-records", "records-processed"):
        if name in body:
            number = whole_number(body[name], minimum=0, maximum=MAX_ID, text=True)
            if number is None:
                raise CoupaValidationError(
                    [f"{name.replace('-', '_')} must be a whole number from 0 to {MAX_ID}, got {quoted(body[name])}"]
                )
            body[name] = number
    for name in ("start-time", "end-time"):
        if name in body:
            text = render_datetime(body[name])
            if text is None:
                raise CoupaValidationError(
                    [
                        f"{name.replace('-', '_')} takes a datetime or ISO 8601 text such as "
                        f"2024-03-25T18:38:00-07:00, got {quoted(body[name])}"
                    ]
                )
            body[name] = text
    return body
