"""Walking every record a query matches, page by page, in constant memory: the page plan and the walk. No I/O.

Coupa pages by ``limit`` (at most 50) and ``offset`` and gives no total count. :class:`Pager` is the plan of
limits and offsets; :class:`Walk` turns a query into the request for each next page (by key on ``id`` when it
can, by offset otherwise) and takes each answered page. The clients loop: ``while (op := walk.next_operation())
is not None: yield from walk.take(perform(op))``.

A walk always ends, whatever the server does: :meth:`Walk.take` checks each page against the last, and a server
(or a proxy before it) that ignores ``id[gt]``, ``offset`` or the order ends the walk with a
:class:`~.errors.CoupaError` naming the cause, at the first page that shows it. Without the checks such a server
makes the walk loop forever (the same page again) or skip records silently (ids out of order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from airflow_provider_coupa_ihr.client.answers import page_records, record_id
from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import Operation
from airflow_provider_coupa_ihr.client.query import PAGE_SIZE, build_index_params, filter_params
from airflow_provider_coupa_ihr.client.records import FIELDS_BY_PATH
from airflow_provider_coupa_ihr.client.values import MAX_ID, parse_id, whole_number

__all__ = ["MATCHING_HINT", "MAX_MATCHING_RECORDS", "Pager", "Walk"]

#: Resolving or unresolving by filter changes at most this many records unless the caller sets ``max_records``:
#: above it the verb refuses before changing anything, since a filter that broad is more likely a mistake (a
#: typo'd or empty filter matches every record) than a plan.
MAX_MATCHING_RECORDS = 10_000
#: What the error says when more than :data:`MAX_MATCHING_RECORDS` match.
MATCHING_HINT = (
    f"Nothing was changed: resolving or unresolving by filter stops above {MAX_MATCHING_RECORDS:,} matching records "
    "unless max_records says how many to change. Narrow the filters, or pass max_records=N to change the first N "
    "by id."
)

_T = TypeVar("_T")


class Pager:
    """The page plan of one index walk: which ``limit`` and ``offset`` to ask for next, and when to stop.

    Coupa gives no total count, so the end is the first page shorter than asked for (an empty one included).
    ``max_records`` caps the walk: the last request asks only for what is still wanted, so no record is
    fetched to be thrown away. Offsets advance by the records actually received, starting at 0 (Coupa's
    first record; starting at 1 skips one).

    Loop::

        pager = Pager(max_records=500)
        while not pager.done:
            page = get(base_params + pager.params())
            yield from pager.take(page)
    """

    def __init__(self, *, page_size: int = PAGE_SIZE, max_records: int | None = None, offset: int = 0) -> None:
        problems = []
        if whole_number(page_size, minimum=1, maximum=PAGE_SIZE) is None:
            problems.append(f"page_size: must be a whole number from 1 to {PAGE_SIZE}, got {page_size!r}")
        if max_records is not None and whole_number(max_records, minimum=0) is None:
            problems.append(f"max_records: must be a whole number from 0, got {max_records!r}")
        if whole_number(offset, minimum=0) is None:
            problems.append(f"offset: must be a whole number from 0, got {offset!r}")
        if problems:
            raise CoupaValidationError(problems)
        self.page_size = page_size
        self.max_records = max_records
        self.offset = offset
        self.received = 0
        self.pages = 0
        self.done = max_records == 0

    def __repr__(self) -> str:
        return (
            f"Pager(offset={self.offset}, received={self.received}, pages={self.pages}, "
            f"max_records={self.max_records}, done={self.done})"
        )

    @property
    def limit(self) -> int:
        """How many records to ask for next: a full page, or what ``max_records`` still allows."""
        if self.max_records is None:
            return self.page_size
        return max(0, min(self.page_size, self.max_records - self.received))

    def params(self) -> list[tuple[str, str]]:
        """``limit`` and ``offset`` for the next request."""
        if self.done:
            raise RuntimeError("the walk is over; nothing more to ask Coupa for")
        return [("limit", str(self.limit)), ("offset", str(self.offset))]

    def next_offset(self, page_len: int) -> int | None:
        """Record a page of ``page_len`` records; the next offset, or ``None`` when the walk is over."""
        if isinstance(page_len, bool) or not isinstance(page_len, int) or page_len < 0:
            raise ValueError(f"page_len must be a whole number from 0, got {page_len!r}")
        if self.done:
            return None
        asked = self.limit
        got = min(page_len, asked)
        self.received += got
        self.offset += got
        self.pages += 1
        if page_len < asked or (self.max_records is not None and self.received >= self.max_records):
            self.done = True
            return None
        return self.offset

    def take(self, page: Sequence[_T]) -> list[_T]:
        """The records of ``page`` to keep (never more than asked for), advancing the plan past them."""
        kept = list(page[: self.limit]) if not self.done else []
        self.next_offset(len(page))
        return kept


class Walk:
    """Every record matching a query, page by page, in constant memory.

    Ordered by id (the default), it pages by key: each page asks for ``id[gt]=<last id seen>`` from offset 0.
    Unlike offset paging this cannot skip or repeat a record when records change while the walk runs (say, the
    caller resolves each unresolved record it reads, which would shift every later offset), and Coupa's
    database finds each page by index instead of counting past all earlier ones. Any other order falls back to
    offset paging (offset from 0, which is Coupa's first record).
    """

    def __init__(
        self,
        path: str,
        filters: Mapping[str, Any] | None = None,
        *,
        fields: Sequence[Any] | None = None,
        order_by: str = "id",
        direction: str = "asc",
        max_records: int | None = None,
    ) -> None:
        self.path = path
        self.known = FIELDS_BY_PATH[path]
        if filters is not None and not isinstance(filters, Mapping):  # a template rendered to text, say
            filter_params(filters, self.known)  # raises CoupaValidationError, naming what was given
        filters = dict(filters or {})
        self.by_key = order_by == "id"
        self.descending = isinstance(direction, str) and direction.strip().lower() == "desc"
        self.last_id: int | None = None
        if self.by_key:
            for key in ("id[gt]", "id[lt]") if not self.descending else ("id[lt]",):
                if key in filters and (key == "id[gt]") != self.descending:
                    self.last_id = parse_id(filters.pop(key), key)
            if fields is not None and "id" not in fields:
                fields = ["id", *fields]
        self.fields = fields
        self.filters = filters
        self.pager = Pager(max_records=max_records)
        #: Offset paging: the ids (or the records, without ids) of the last full page, to tell a repeat.
        self._last_page: tuple[Any, ...] | None = None
        self._refuse_beyond: int | None = None
        self._refusal_hint: str | None = None
        # Validate everything once, up front: a bad filter fails before the first request.
        self._base = build_index_params(
            filters,
            fields=fields,
            order_by=order_by,
            direction=direction,
            limit=None,
            offset=None,
            known_fields=self.known,
        )

    @property
    def done(self) -> bool:
        return self.pager.done

    def next_operation(self) -> Operation | None:
        """The request for the next page, or None when the walk is over."""
        if self.pager.done:
            return None
        params = list(self._base)
        if self.by_key:
            if self.last_id is not None:
                params.append((f"id[{'lt' if self.descending else 'gt'}]", str(self.last_id)))
            params += [("limit", str(self.pager.limit)), ("offset", "0")]
        else:
            params += self.pager.params()
        return Operation("GET", self.path, tuple(params))

    def refuse_beyond(self, count: int, *, hint: str | None = None) -> None:
        """End the walk with a :class:`~.errors.CoupaError` as soon as more than ``count`` records match, instead
        of returning them: for callers that collect every record before acting on any (one extra record is
        fetched to tell). Call before the first page."""
        self.pager = Pager(max_records=count + 1)
        self._refuse_beyond = count
        self._refusal_hint = hint

    def take(self, page: Any) -> list[dict[str, Any]]:
        """The records of one answered page; advances the walk.

        Raises :class:`~.errors.CoupaError` for a page that is not a list of records, a record without a usable
        id (when paging by key; :mod:`.answers` says so), and a page that shows the server ignores the paging
        (see the module docstring).
        """
        if type(page) is not list or not all(type(record) is dict for record in page):  # the fast path: JSON's own
            page = page_records(page, f"GET /api{self.path}")
        kept = self.pager.take(page)
        if self.by_key:
            self._check_keys(kept)
        elif len(kept) == self.pager.page_size:
            self._check_offset(kept)
        if self._refuse_beyond is not None and self.pager.received > self._refuse_beyond:
            self._fail(f"more than {self._refuse_beyond:,} records match; refusing to go on", self._refusal_hint)
        return kept

    def _check_keys(self, kept: list[dict[str, Any]]) -> None:
        """Ids must come strictly after the last one seen, in the walk's order: else the server ignores
        ``id[gt]``/``id[lt]`` (the walk would never end) or the order (records would be skipped)."""
        previous = self.last_id
        for record in kept:
            this = record.get("id")
            if type(this) is not int or not 0 < this <= MAX_ID:  # the fast path: a JSON integer in range
                this = record_id(record, f"GET /api{self.path}")
            if previous is not None and (this <= previous if not self.descending else this >= previous):
                if record is kept[0] and previous == self.last_id:
                    self._fail(
                        f"the next page did not advance: it starts at id {this}, not "
                        f"{'after' if not self.descending else 'before'} the last id seen ({previous}); the server "
                        f"ignores the id[{'lt' if self.descending else 'gt'}] paging filter, so the walk would "
                        "never end"
                    )
                what = "repeated" if this == previous else "out of order"
                self._fail(
                    f"ids came back {what}: id {this} after id {previous} in a walk ordered by id "
                    f"{'descending' if self.descending else 'ascending'}; the server ignores the order asked "
                    "for, so records would be skipped or repeated"
                )
            previous = this
        self.last_id = previous

    def _check_offset(self, kept: list[dict[str, Any]]) -> None:
        """A full page equal to the one before it means the server ignores ``offset``: the walk would never end."""
        ids = tuple(record.get("id") for record in kept)
        fingerprint = ids if all(i is not None for i in ids) else tuple(repr(r) for r in kept)
        if fingerprint == self._last_page:
            self._fail(
                f"the page at offset {self.pager.offset - len(kept)} is the page before it again; the server "
                "ignores the offset paging parameter, so the walk would never end"
            )
        self._last_page = fingerprint

    def _fail(self, message: str, hint: str | None = None) -> NoReturn:
        raise CoupaError(
            [message],
            method="GET",
            path=f"/api{self.path}",
            hint=hint
            or "Coupa pages as the client asks; a proxy or gateway between them that drops or rewrites query "
            "parameters, or a server that is not Coupa, answers like this. Check the connection's host.",
        )
