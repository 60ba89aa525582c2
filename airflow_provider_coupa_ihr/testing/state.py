"""What the emulated Coupa instance holds, and the rules Coupa applies when it changes.

No HTTP here: the server turns requests into calls on :class:`CoupaState` and its exceptions into Coupa's answers,
and tests can read or change the same state directly from Python. Every method takes the state's lock, because
the server's event loop and a test's thread touch it at once.

It is one module (past 400 lines) because it is one thing: the tables and the rules that keep them consistent
under that single lock. A write checks references across tables (a record's run and integration), updates
another table (a run's error list), records side effects and invalidates cached queries in the same critical
section; split apart, each piece would need the others' lock and internals.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from airflow_provider_coupa_ihr.client.records import (
    ERROR_FIELDS,
    INTEGRATION_FIELDS,
    RECORD_FIELDS,
    RUN_ACTIONS,
    RUN_FIELDS,
    Field,
    Problem,
    check_fields,
    to_wire_keys,
)
from airflow_provider_coupa_ihr.client.values import MAX_ID, whole_number
from airflow_provider_coupa_ihr.testing.querying import Condition, Query, matching_ids
from airflow_provider_coupa_ihr.testing.rendering import quoted

__all__ = ["CoupaState", "Invalid", "NotFound", "SideEffect"]

Resource = dict[str, Any]


class NotFound(LookupError):
    """The id names nothing (Coupa answers 404)."""


class Invalid(ValueError):
    """Coupa would refuse the payload (400 with ``{"errors": {resource: [messages]}}``)."""

    def __init__(self, resource: str, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.resource = resource
        self.messages = messages


@dataclass(frozen=True)
class SideEffect:
    """Something an IHR action did beyond storing the record: who was alerted, what was marked exported."""

    kind: str  # "alert", "exported", "acknowledged"
    record_id: int
    document_type: str | None
    document_id: int | None
    contact_alert_type: str | None = None
    integration_code: str | None = None
    resource: str = "integration_history_record"
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: What each IHR write action does besides creating the record (the project's reading of Coupa's action names).
ACTION_EFFECTS: Mapping[str, tuple[str, ...]] = {
    "create": (),
    "acknowledge": ("acknowledged",),
    "mark_exported": ("exported",),
    "create_alert": ("alert",),
    "create_alert_and_mark_exported": ("alert", "exported"),
}

#: Finished runs take no further transition.
FINISHED_RUN_STATUSES = frozenset({"successful", "failed"})


_RANGE_OPERATORS = frozenset({"gt", "gt_or_eq", "lt", "lt_or_eq"})


def _in_ranges(ids: list[int], ranges: list[Condition]) -> list[int]:
    """The slice of ascending ``ids`` that satisfies every ``id`` range condition (found by bisection)."""
    low, high = 0, len(ids)
    for condition in ranges:
        value = condition.value
        if condition.operator == "gt":
            low = max(low, bisect.bisect_right(ids, value))
        elif condition.operator == "gt_or_eq":
            low = max(low, bisect.bisect_left(ids, value))
        elif condition.operator == "lt":
            high = min(high, bisect.bisect_left(ids, value))
        else:
            high = min(high, bisect.bisect_right(ids, value))
    return ids[low:high] if low < high else []


#: Keys under which a stored row holds another row itself (its integration, its run), not a copy: Coupa joins
#: associations when it answers, so a record shows its run's status today, not the status when it was written.
#: Reads present a fresh copy of the linked row; filters read it live.
_LINKS = frozenset({"integration", "integration-run"})


def _present(row: Resource, *, deep: bool) -> Resource:
    """``row`` as Coupa shows it, copied: each linked row as it is now (a run without its error list, which it
    shows only for itself). ``deep=False`` is for pages: it copies just what later writes could reach (they
    replace top-level values and append to top-level lists), far cheaper than a deep copy on every page served."""
    if deep:
        out = {k: v if k in _LINKS else copy.deepcopy(v) for k, v in row.items()}
    else:
        out = {k: list(v) if type(v) is list else v for k, v in row.items()}
    for key in _LINKS:
        linked = row.get(key)
        if isinstance(linked, dict):
            out[key] = _present({k: v for k, v in linked.items() if k != "integration-errors"}, deep=deep)
    return out


def _bigint(value: Any) -> int | None:
    """``value`` (an int or its text) as a whole number a bigint column holds, else None."""
    try:
        return whole_number(value, minimum=-MAX_ID - 1, maximum=MAX_ID, text=True)
    except ValueError:  # more digits than int() reads: far beyond a bigint
        return None


def _store_integers(fields: Mapping[str, Field], body: Resource, problems: list[Problem]) -> None:
    """Integer fields given as text (``"12"``) are stored and returned as integers, as Rails casts them; a number
    beyond a bigint is refused, as Postgres would (unless the field has a problem already)."""
    for name, spec in fields.items():
        if spec.kind == "integer" and body.get(name) is not None:
            number = _bigint(body[name])
            if number is not None:
                body[name] = number
            elif not any(p.field == name for p in problems):
                problems.append(Problem(name, f"must be a whole number from {-MAX_ID - 1} to {MAX_ID}"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class _Table:
    resource: str
    fields: Mapping[str, Field]
    rows: dict[int, Resource] = field(default_factory=dict)
    next_id: int = 1
    #: Bumped on every write, so cached query results know when they went stale.
    version: int = 0

    def take_id(self) -> int:
        new_id = self.next_id
        self.next_id += 1
        return new_id

    def touch(self) -> None:
        self.version += 1


class CoupaState:
    """The records, integrations, runs and errors of one emulated Coupa instance.

    Resources are kept with wire (dash-case) keys, exactly as Coupa returns them, so reads need no conversion.
    """

    def __init__(self, *, extra_document_types: Collection[str] = (), clock: Callable[[], str] = _now) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._extra_choices = {"document-type": tuple(extra_document_types)}
        self._response_ids = 0
        self._query_cache: dict[tuple[Any, ...], list[int]] = {}
        self.reset()

    # ---------------------------------------------------------------- housekeeping
    def reset(self) -> None:
        """Forget everything: records, integrations, runs, errors and side effects."""
        with self._lock:
            self.records = _Table("integration_history_record", RECORD_FIELDS)
            self.errors = _Table("integration_error", ERROR_FIELDS)
            self.runs = _Table("integration_run", RUN_FIELDS)
            self.integrations = _Table("integration", INTEGRATION_FIELDS)
            self.side_effects: list[SideEffect] = []
            self._query_cache.clear()

    def table(self, name: str) -> _Table:
        return {
            "integration_history_records": self.records,
            "integration_errors": self.errors,
            "integration_runs": self.runs,
            "integrations": self.integrations,
        }[name]

    def snapshot(self, table: _Table) -> list[Resource]:
        """Deep copies of a table's rows in id order, safe to read while the server keeps writing."""
        with self._lock:
            return [self._view(table, table.rows[i]) for i in sorted(table.rows)]

    def select(self, table: _Table, query: Query) -> list[Resource]:
        """One page of a query, as copies safe to render after the lock is released.

        The ids matching a query (before paging) are cached until the table next changes, so walking 100,000
        records page by page with ``offset`` costs one scan, not one scan per page. Ranges on ``id`` (keyset
        paging: ``id[gt]=<last seen>``) are cut from the cached, sorted ids by bisection, as a database index
        would, instead of starting a new scan per page.
        """
        with self._lock:
            by_key = query.order_by == "id"
            ranges = [c for c in query.conditions if by_key and c.path == ("id",) and c.operator in _RANGE_OPERATORS]
            rest = replace(query, conditions=tuple(c for c in query.conditions if c not in ranges), descending=False)
            # A filter or an order on a linked row must see that row's changes too (not only this table's).
            linked = rest.order_by in _LINKS or any(len(c.path) > 1 for c in rest.conditions)
            links_version = (self.integrations.version, self.runs.version) if linked else None
            key = (table.resource, table.version, links_version, rest.conditions, rest.order_by)
            ids = self._query_cache.get(key)
            if ids is None:
                ids = matching_ids(table.rows.values(), rest)
                if len(self._query_cache) >= 16:
                    self._query_cache.pop(next(iter(self._query_cache)))
                self._query_cache[key] = ids
            ids = _in_ranges(ids, ranges) if ranges else ids
            if query.descending:
                ids = ids[::-1]
            page = ids[query.offset : query.offset + query.limit]
            if table is self.runs:
                return [self._view(table, table.rows[i]) for i in page]
            return [_present(table.rows[i], deep=False) for i in page]

    def get(self, table: _Table, resource_id: int) -> Resource:
        with self._lock:
            try:
                return self._view(table, table.rows[resource_id])
            except KeyError:
                raise NotFound(f"{table.resource} {resource_id}") from None

    # ---------------------------------------------------------------- integrations
    def add_integration(self, code: str, **attributes: Any) -> Resource:
        """Create an integration with sensible defaults for the attributes Coupa requires."""
        payload = {
            "code": code,
            "name": code,
            "business-object": "invoice",
            "direction": "from_coupa",
            "end-system": "ERP",
            "end-system-type": "erp",
            "integration-type": "api",
            **to_wire_keys(attributes),
        }
        return self.create(self.integrations, payload, user=None)

    def integration_by_code(self, code: str) -> Resource | None:
        with self._lock:
            for row in self.integrations.rows.values():
                if row["code"] == code:
                    return row
            return None

    # ---------------------------------------------------------------- generic writes
    def create(
        self, table: _Table, payload: Mapping[str, Any], *, user: Mapping[str, Any] | None, action: str = "create"
    ) -> Resource:
        """Validate and store a new resource; run the IHR action's side effects. Returns the stored resource."""
        body = self._accepted(table, payload)
        with self._lock:
            problems = check_fields(body, table.fields, require=True, extra_choices=self._extra_choices)
            resolved_refs = self._resolve_references(table, body, problems)
            if table is self.integrations and self.integration_by_code(str(body.get("code"))) is not None:
                problems.append(Problem("code", "has already been taken"))
            if problems:
                raise Invalid(table.resource, [str(p) for p in problems])
            now = self._clock()
            row: Resource = {name: None for name, spec in table.fields.items() if not spec.read_only}
            row.update(body)
            row.update(resolved_refs)
            row.update(
                {
                    "id": table.take_id(),
                    "created-at": now,
                    "updated-at": now,
                    "created-by": copy.deepcopy(user),
                    "updated-by": copy.deepcopy(user),
                }
            )
            self._initialise(table, row, now, user)
            table.rows[row["id"]] = row
            table.touch()
            if table is self.errors and row.get("integration-run-id") in self.runs.rows:
                self.runs.rows[row["integration-run-id"]]["integration-errors"].append({"id": row["id"]})
            for kind in ACTION_EFFECTS.get(action, ()):
                self._record_effect(kind, table, row, now)
            return self._view(table, row)

    def update(
        self, table: _Table, resource_id: int, payload: Mapping[str, Any], *, user: Mapping[str, Any] | None
    ) -> Resource:
        """PUT and PATCH alike: change the fields given, leave the rest (Coupa's update semantics)."""
        body = self._accepted(table, payload)
        with self._lock:
            row = self._row(table, resource_id)
            problems = check_fields(body, table.fields, require=False, extra_choices=self._extra_choices)
            resolved_refs = self._resolve_references(table, body, problems)
            if table is self.integrations and body.get("code") is not None:
                holder = self.integration_by_code(str(body["code"]))
                if holder is not None and holder["id"] != resource_id:
                    problems.append(Problem("code", "has already been taken"))
            if problems:
                raise Invalid(table.resource, [str(p) for p in problems])
            row.update(body)
            row.update(resolved_refs)
            if "responses" in body:
                row["responses"] = self._responses(body["responses"], self._clock(), user)
            row["updated-at"] = self._clock()
            row["updated-by"] = copy.deepcopy(user)
            table.touch()
            return self._view(table, row)

    def set_resolved(
        self, table: _Table, resource_id: int, resolved: bool, *, user: Mapping[str, Any] | None = None
    ) -> Resource:
        """``/resolve`` and ``/unresolve``: the only way ``resolved`` changes."""
        with self._lock:
            row = self._row(table, resource_id)
            row["resolved"] = resolved
            row["updated-at"] = self._clock()
            if user is not None:
                row["updated-by"] = copy.deepcopy(user)
            table.touch()
            return self._view(table, row)

    def run_action(
        self, resource_id: int, action: str, payload: Mapping[str, Any], *, user: Mapping[str, Any] | None
    ) -> Resource:
        """A run's status transition (``/run``, ``/pause``, ``/pending``, ``/success``, ``/finish``, ``/fail``)."""
        body = self._accepted(self.runs, payload)
        with self._lock:
            row = self._row(self.runs, resource_id)
            if action == "max_updated_at":
                row["max-updated-at"] = self._max_updated_at(row)
                return self._view(self.runs, row)
            problems = check_fields(body, RUN_FIELDS, require=False)
            _store_integers(RUN_FIELDS, body, problems)
            if row["status"] in FINISHED_RUN_STATUSES:
                problems.append(Problem("status", f"cannot change once the run is {row['status']}"))
            if problems:
                raise Invalid("integration_run", [str(p) for p in problems])
            now = self._clock()
            body.pop("integration", None)
            row.update(body)
            row["status"] = RUN_ACTIONS[action]
            if action == "run" and not row.get("start-time"):
                row["start-time"] = now
            if row["status"] in FINISHED_RUN_STATUSES:
                row["end-time"] = now
            row["updated-at"] = now
            row["updated-by"] = copy.deepcopy(user)
            self.runs.touch()
            return self._view(self.runs, row)

    # ---------------------------------------------------------------- internals
    def _view(self, table: _Table, row: Resource) -> Resource:
        """A deep copy of ``row`` as Coupa shows it. A run lists its errors in full, as the Swagger's
        ``IntegrationRun.integration-errors`` (items ``IntegrationError``) says, not as the stored ``{"id": N}``."""
        out = _present(row, deep=True)
        if table is self.runs:
            run = {k: v for k, v in out.items() if k != "integration-errors"}
            out["integration-errors"] = [
                {**_present(self.errors.rows[ref["id"]], deep=True), "integration-run": copy.deepcopy(run)}
                for ref in row.get("integration-errors", ())
                if ref["id"] in self.errors.rows
            ]
        return out

    def _row(self, table: _Table, resource_id: int) -> Resource:
        try:
            return table.rows[resource_id]
        except KeyError:
            raise NotFound(f"{table.resource} {resource_id}") from None

    @staticmethod
    def _accepted(table: _Table, payload: Mapping[str, Any]) -> Resource:
        """Wire keys only, read-only and unknown attributes dropped, as Rails' strong parameters do."""
        wire = to_wire_keys(dict(payload))
        writable = {name for name, spec in table.fields.items() if not spec.read_only}
        return {k: v for k, v in wire.items() if k in writable}

    def _resolve_references(self, table: _Table, body: Resource, problems: list[Problem]) -> Resource:
        """Turn ``{"code": ...}`` / ``{"id": ...}`` references into the full objects Coupa returns."""
        out: Resource = {}
        if table is self.integrations:
            return out
        _store_integers(table.fields, body, problems)
        if isinstance(body.get("integration"), Mapping):
            ref = body["integration"]
            found = self._find_integration(ref)
            if found is None:
                problems.append(Problem("integration", f"not found for {quoted(dict(ref))}"))
            else:
                out["integration"] = found  # the row itself: see _LINKS
        run_ref = body.get("integration-run")
        run_id = body.get("integration-run-id")
        if isinstance(run_ref, Mapping) and run_ref.get("id") is not None:
            run_id = run_ref.get("id")
        if run_id is not None:
            number = _bigint(run_id)
            run = self.runs.rows.get(number) if number is not None else None
            if run is None:
                problems.append(Problem("integration-run", f"not found for id {quoted(run_id)}"))
            else:
                out["integration-run"] = run  # the row itself: see _LINKS
                out["integration-run-id"] = run["id"]
                if "integration" not in body and table is not self.runs:
                    out["integration"] = run["integration"]
        elif isinstance(run_ref, Mapping):
            problems.append(Problem("integration-run", "must name the run by id"))
        return out

    def _find_integration(self, ref: Mapping[str, Any]) -> Resource | None:
        if ref.get("code") is not None:
            return self.integration_by_code(str(ref["code"]))
        number = _bigint(ref.get("id"))
        return self.integrations.rows.get(number) if number is not None else None

    def _initialise(self, table: _Table, row: Resource, now: str, user: Mapping[str, Any] | None) -> None:
        if table is self.records or table is self.errors:
            row["resolved"] = False
            row["responses"] = self._responses(row.get("responses") or [], now, user)
            if table is self.records:
                row["integration-filename"] = None
        elif table is self.runs:
            row["status"] = "pending"
            row["integration-errors"] = []
        elif table is self.integrations:
            row["standard"] = False

    def _responses(self, items: Iterable[Mapping[str, Any]], now: str, user: Mapping[str, Any] | None) -> list[Any]:
        out = []
        for item in items:
            self._response_ids += 1
            wire = to_wire_keys(dict(item))
            out.append(
                {
                    "id": self._response_ids,
                    "response-code": wire.get("response-code"),
                    "response-message": wire.get("response-message"),
                    "created-at": now,
                    "updated-at": now,
                    "created-by": copy.deepcopy(user),
                    "updated-by": copy.deepcopy(user),
                }
            )
        return out

    def _record_effect(self, kind: str, table: _Table, row: Resource, now: str) -> None:
        integration = row.get("integration") or {}
        self.side_effects.append(
            SideEffect(
                kind=kind,
                record_id=row["id"],
                document_type=row.get("document-type"),
                document_id=row.get("document-id"),
                contact_alert_type=row.get("contact-alert-type") if kind == "alert" else None,
                integration_code=integration.get("code"),
                resource=table.resource,
                at=now,
            )
        )

    def _max_updated_at(self, run: Resource) -> str | None:
        """The start of the integration's last successful run before this one (our reading of R38's action)."""
        code = (run.get("integration") or {}).get("code")
        earlier = [
            r
            for r in self.runs.rows.values()
            if r["id"] < run["id"] and r["status"] == "successful" and (r.get("integration") or {}).get("code") == code
        ]
        return max((r.get("start-time") or r["created-at"] for r in earlier), default=None)

    # ---------------------------------------------------------------- read helpers for tests
    def effects(self, kind: str | None = None) -> list[SideEffect]:
        with self._lock:
            return [e for e in self.side_effects if kind is None or e.kind == kind]
