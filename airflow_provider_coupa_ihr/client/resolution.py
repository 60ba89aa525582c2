"""Waiting until Coupa users resolve integration history records: what to ask Coupa, and what it means. No I/O.

A pipeline that must not go on while Coupa shows an unresolved integration error waits on a *target*:

- **ids** (one or many records): the wait is over when every given record is resolved *at the same check*.
  The current state is what counts: a record resolved and then unresolved again before the next check counts
  as unresolved, because that is what a user sees in Coupa at that moment (someone reopened it). A record that
  was resolved at one check and is unresolved at the next puts the wait back on hold; the wait never ends on
  a state Coupa no longer shows. An id Coupa does not know can never be resolved, so it ends the wait at once
  as :attr:`WaitState.missing` instead of waiting until the timeout.
- **a query** (Coupa filters, e.g. every record of one integration or one document): the wait is over when no
  record matching the query is unresolved, i.e. the query plus ``resolved=false`` finds nothing. Records that
  start to match while waiting (a new error for the same document) extend the wait, as a user would expect.

Everything here is a plain function over pages Coupa answered: the clients' ``check_resolution`` performs
``target.poll_operations``, hands the pages to :func:`state_from_pages` and, when a query wait is over, walks
``target.resolved_walk(since)`` into :func:`resolved_state`. The blocking sensor and the async trigger call
the same functions, so they cannot disagree about when a wait is over.

Costs, per check: ids go ``id[in]=`` 50 at a time (one request for up to 50 ids), trimmed with ``fields=`` to
:data:`RECORD_FIELDS_WANTED`; a query costs one request (one page of at most 50 unresolved ids) while it waits,
and one walk at the end for the records to return.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow_provider_coupa_ihr.client import operations as ops
from airflow_provider_coupa_ihr.client.answers import page_records, record_id
from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import Operation
from airflow_provider_coupa_ihr.client.paging import Walk
from airflow_provider_coupa_ihr.client.query import PAGE_SIZE, filter_params
from airflow_provider_coupa_ihr.client.records import RECORDS_PATH
from airflow_provider_coupa_ihr.client.summaries import is_resolved, record_summary
from airflow_provider_coupa_ihr.client.values import CLOCK_SKEW_SECONDS, parse_ids, quoted

__all__ = [
    "POLL_JITTER",
    "RECORD_FIELDS_WANTED",
    "RECORD_KEYS",
    "ResolutionTarget",
    "WaitState",
    "ids_wait_state",
    "next_delay",
    "resolved_state",
    "state_from_pages",
]

#: How much deferred waits spread their polls (each delay drawn from ``delay * (1 ± POLL_JITTER)``).
POLL_JITTER = 0.1

#: What a check asks Coupa for (``fields=``) and what the wait returns for each record: enough to act on
#: (which document, which integration, what status), nothing more, and nothing secret.
RECORD_FIELDS_WANTED: tuple[Any, ...] = (
    "id",
    "status",
    "document_type",
    "document_id",
    "external_id",
    "resolved",
    "updated_at",
    {"integration": ["code"]},
)
#: The keys of each returned record (snake_case), in this order, whatever else Coupa might add.
RECORD_KEYS: tuple[str, ...] = tuple(f if isinstance(f, str) else next(iter(f)) for f in RECORD_FIELDS_WANTED)


def _shape(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the wait returns it: :data:`RECORD_KEYS` only, as :func:`.summaries.record_summary` shapes."""
    shaped = record_summary(record, RECORD_KEYS)
    assert shaped is not None
    return shaped


@dataclass(frozen=True)
class WaitState:
    """The outcome of one check.

    ``done`` when nothing is waiting and nothing is missing; then ``records`` are the resolved records (for ids:
    in the order given; for a query: those resolved and changed since the wait began). ``waiting`` lists the
    ids still unresolved (for a query, the first page of them, with ``more`` when there are others).
    ``missing`` lists ids Coupa does not know: the wait can never end well, so callers fail at once.
    """

    records: tuple[dict[str, Any], ...] = ()
    waiting: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()
    more: bool = False

    @property
    def done(self) -> bool:
        return not self.waiting and not self.missing

    def describe(self, target: ResolutionTarget) -> str:
        """One line for the task log: what the wait is on, and why it goes on or ends."""
        if self.missing:
            ids = ", ".join(map(str, self.missing))
            plural = "s" if len(self.missing) > 1 else ""
            return (
                f"Coupa has no integration history record{plural} with id{plural} {ids}: a record that does not "
                "exist can never be resolved. Check the record ids given to the sensor (and that the connection "
                "points at the Coupa instance that holds them)."
            )
        if self.waiting:
            shown = ", ".join(map(str, self.waiting[:20]))
            if len(self.waiting) > 20:
                shown += f" (and {len(self.waiting) - 20} more)"
            if target.record_ids is not None:
                return f"Waiting for {len(self.waiting)} of {_records(len(target.record_ids))} to be resolved: {shown}"
            count = f"at least {len(self.waiting)}" if self.more else str(len(self.waiting))
            noun = "record" if count == "1" else "records"
            return f"Waiting for {count} unresolved {noun} matching {target.describe()}: {shown}"
        return f"All resolved: {target.describe()} ({_records(len(self.records))} returned)"


def _records(count: int) -> str:
    return f"{count} record{'' if count == 1 else 's'}"


def ids_wait_state(wanted: Sequence[int], found: Mapping[int, Mapping[str, Any]]) -> WaitState:
    """The state of a wait on ``wanted`` ids, given the records one check found (by id): the heart of it.

    Missing ids win over waiting ones: no amount of waiting resolves a record that does not exist.
    """
    missing = tuple(i for i in wanted if i not in found)
    if missing:
        return WaitState(missing=missing)
    waiting = tuple(i for i in wanted if not is_resolved(found[i]))
    if waiting:
        return WaitState(waiting=waiting)
    return WaitState(records=tuple(_shape(found[i]) for i in wanted))


@dataclass(frozen=True)
class ResolutionTarget:
    """What to wait on: ``record_ids`` or ``filters``, exactly one. Build it with :meth:`of`.

    ``filters`` are kept rendered (``{"document-id": "7", "created-at[gt]": "2026-...+00:00"}``): validated
    once, plain JSON (a trigger can carry them), and read by Coupa exactly as the user's values would be.
    """

    record_ids: tuple[int, ...] | None = None
    filters: Mapping[str, str] | None = field(default=None, hash=False)

    @classmethod
    def of(cls, *, record_ids: Any = None, filters: Mapping[str, Any] | None = None) -> ResolutionTarget:
        """Validate and normalise; raises :class:`CoupaValidationError` naming every problem."""
        if (record_ids is None) == (filters is None):
            raise CoupaValidationError(
                ["give either record_ids (wait on these records) or filters (wait on every record matching them)"]
            )
        if record_ids is not None:
            return cls(record_ids=parse_ids(record_ids))
        if not isinstance(filters, Mapping):
            raise CoupaValidationError([f"filters: must be a mapping of Coupa filter to value, got {quoted(filters)}"])
        rendered = dict(filter_params(filters))
        clashing = sorted(k for k in rendered if k.split("[", 1)[0] == "resolved")
        if clashing:
            raise CoupaValidationError(
                [f"filters: {', '.join(clashing)} is set by the wait itself (it looks for resolved=false); remove it"]
            )
        return cls(filters=rendered)

    def describe(self) -> str:
        if self.record_ids is not None:
            shown = ", ".join(map(str, self.record_ids[:20]))
            more = f" (and {len(self.record_ids) - 20} more)" if len(self.record_ids) > 20 else ""
            return f"records {shown}{more}" if self.record_ids else "no records"
        assert self.filters is not None
        return " & ".join(f"{k}={v}" for k, v in self.filters.items()) or "every record"

    @cached_property
    def poll_operations(self) -> tuple[Operation, ...]:
        """The requests of one check while waiting, built (and validated) once for the whole wait.

        ids: one ``id[in]=`` request per 50 ids. Query: one page of the unresolved records' ids.
        """
        if self.record_ids is not None:
            return tuple(
                ops.query_resources(
                    RECORDS_PATH,
                    {"id[in]": list(self.record_ids[start : start + PAGE_SIZE])},
                    fields=RECORD_FIELDS_WANTED,
                    limit=PAGE_SIZE,
                )
                for start in range(0, len(self.record_ids), PAGE_SIZE)
            )
        assert self.filters is not None
        return (ops.query_resources(RECORDS_PATH, {**self.filters, "resolved": "false"}, fields=["id"]),)

    def resolved_walk(self, since: datetime | None) -> Walk:
        """Query mode, once the wait is over: the matching records resolved and changed since ``since``."""
        assert self.filters is not None
        filters: dict[str, Any] = {**self.filters, "resolved": "true"}
        if since is not None and "updated-at[gt_or_eq]" not in filters:
            # Rendered by values.render_datetime, like every datetime in a filter (naive means UTC).
            filters["updated-at[gt_or_eq]"] = since - timedelta(seconds=CLOCK_SKEW_SECONDS)
        return Walk(RECORDS_PATH, filters, fields=RECORD_FIELDS_WANTED)


def state_from_pages(target: ResolutionTarget, pages: Sequence[Any]) -> WaitState | None:
    """The state of the wait once ``target.poll_operations`` are answered (``pages``, in the same order).

    None in query mode when nothing matching is unresolved: the wait is over, and what it returns are the
    records of ``target.resolved_walk(since)``, passed to :func:`resolved_state`. A page that is not a list of
    records with Coupa ids raises :class:`~.errors.CoupaError` (see :mod:`.answers`), never a ``KeyError``.
    """
    where = f"GET /api{RECORDS_PATH}"
    if target.record_ids is not None:
        found: dict[int, Mapping[str, Any]] = {
            record_id(r, where): r for page in pages for r in page_records(page, where)
        }
        return ids_wait_state(target.record_ids, found)
    (page,) = pages
    pending = [record_id(r, where) for r in page_records(page, where)]
    if pending:
        return WaitState(waiting=tuple(pending), more=len(pending) >= PAGE_SIZE)
    return None


def resolved_state(records: Iterable[Mapping[str, Any]]) -> WaitState:
    """The end of a query wait: the resolved records (from :meth:`ResolutionTarget.resolved_walk`), shaped."""
    where = f"GET /api{RECORDS_PATH}"
    return WaitState(records=tuple(_shape(r) for r in records if record_id(r, where)))


def next_delay(
    poke_interval: float,
    polls: int,
    *,
    exponential_backoff: bool = False,
    max_wait: float | None = None,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before check number ``polls + 1`` (``polls`` checks made so far, from 1).

    Without backoff, ``poke_interval`` every time. With it, the interval doubles after each check
    (``poke_interval * 2 ** (polls - 1)``), capped by ``max_wait``: a wait that is long already is likely to be
    long still, and each check costs a request against Coupa's shared rate limit.

    ``jitter`` (a share, e.g. :data:`POLL_JITTER`) spreads each delay uniformly over ``delay * (1 ± jitter)``
    (never past ``max_wait``): a thousand waits deferred by one DAG run would otherwise poll in the same second,
    every interval, and meet the rate budget as one burst.
    """
    delay = float(poke_interval)
    if exponential_backoff:
        delay *= 2.0 ** min(max(polls - 1, 0), 32)
    if max_wait is not None:
        delay = min(delay, float(max_wait))
    if jitter > 0:
        delay *= 1.0 + (rng or random).uniform(-jitter, jitter)
        if max_wait is not None:
            delay = min(delay, float(max_wait))
    return max(delay, 0.0)
