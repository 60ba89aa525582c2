"""A batch of record writes, decided without I/O: what to send for each item, what an earlier try wrote, and
what became of each item.

The bulk operator hands a list of items (usually an upstream task's XCom); :func:`plan_records` checks every
item before anything is sent and names every problem at once. On an Airflow retry, :func:`lookup_chunks` are
the queries that find the records an earlier try wrote (``document-id[in]=`` 50 at a time), and
:func:`earlier_writes` pairs each stored record with at most one item, so a retry writes only what is missing.
A chunk whose query failed does not stop the others: its items are neither written blindly (that could
duplicate) nor lost, but reported :data:`NOT_LOOKED_UP` for the next try to look up again. A write that fails
is :data:`FAILED` only when the record surely is not in Coupa; when the create may have landed (an answer lost
after sending, a 5xx that may have acted, a lookup that could not tell), :class:`LandingWitness` says so and
the item is :data:`UNKNOWN`, for the next try's lookup to settle. The clients run the walks and the writes;
nothing here touches the network.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import HttpRequest, HttpResponse, TransportFailure
from airflow_provider_coupa_ihr.client.operations import RECORD_ACTIONS, is_same_write
from airflow_provider_coupa_ihr.client.paging import Walk
from airflow_provider_coupa_ihr.client.payloads import build_payload, with_default_contact
from airflow_provider_coupa_ihr.client.query import PAGE_SIZE
from airflow_provider_coupa_ihr.client.records import RECORDS_PATH, to_python_keys
from airflow_provider_coupa_ihr.client.values import render_epoch

__all__ = [
    "ALREADY_PRESENT",
    "CREATED",
    "FAILED",
    "MAX_PROBLEMS_SHOWN",
    "NOT_LOOKED_UP",
    "OUTCOME_STATUSES",
    "RETRY_SETTLES",
    "UNKNOWN",
    "EarlierWrites",
    "LandingWitness",
    "LookupChunk",
    "Planned",
    "count_outcomes",
    "describe_outcomes",
    "earlier_writes",
    "failed_write",
    "lookup_chunks",
    "lookup_walks",
    "match_written",
    "plan_records",
    "sent_records",
]

#: A batch error lists this many problems, then says how many more there are: a 10,000-item batch with one
#: systematic mistake must not become a 10,000-line message.
MAX_PROBLEMS_SHOWN = 20

#: One planned write: the IHR action, and the record's fields (Python names, as the caller gave them).
Planned = tuple[str, dict[str, Any]]

# What became of one item: the ``status`` of its outcome. Only the first two mean "in Coupa, once".
#: Written by this try.
CREATED: Final = "created"
#: Written by an earlier try (found by this try's lookup), so not written again.
ALREADY_PRESENT: Final = "already_present"
#: Not in Coupa: Coupa refused it (a 400), or it surely never reached Coupa (refused connection, 429, 503).
FAILED: Final = "failed"
#: May be in Coupa: the create's answer was lost after sending, or a 500/502/504 came after Coupa may have
#: acted, and no lookup could tell. Counting it as failed would have a retry write it twice; as written, lose it.
UNKNOWN: Final = "unknown"
#: Not written, because the lookup of what an earlier try wrote failed for its chunk of 50 document ids:
#: writing it blindly could make a duplicate.
NOT_LOOKED_UP: Final = "not_looked_up"
OUTCOME_STATUSES: tuple[str, ...] = (CREATED, ALREADY_PRESENT, FAILED, UNKNOWN, NOT_LOOKED_UP)
#: The statuses only another try can settle (its lookup finds the record or writes it): a batch with any of
#: them must end in a retryable failure, whatever its policy for plain failures.
RETRY_SETTLES: frozenset[str] = frozenset({UNKNOWN, NOT_LOOKED_UP})

#: 5xx answers after which Coupa has not acted, as :mod:`.retry` reads them (it re-sends a create after these).
_REFUSED_SERVER_STATUSES = frozenset({503})


def plan_records(
    items: Any,
    *,
    defaults: Mapping[str, Any] | None = None,
    action: str = "create",
    extra_document_types: Collection[str] = (),
) -> list[Planned]:
    """``(action, fields)`` per item, each item merged over ``defaults``; an item's own ``action`` wins.

    Every item is checked before anything is sent, and all problems are reported at once (the first
    :data:`MAX_PROBLEMS_SHOWN`) in one :class:`CoupaValidationError` about the batch.
    """
    if isinstance(items, Mapping) or not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise CoupaValidationError([f"items must be a list of dicts of record fields, got {type(items).__name__}"])
    planned: list[Planned] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"item {index}: must be a dict of record fields, got {type(item).__name__}")
            continue
        fields = dict(with_default_contact({**(defaults or {}), **item}))
        chosen = str(fields.pop("action", action))
        try:
            if chosen not in RECORD_ACTIONS:
                raise CoupaValidationError([f"action must be one of {', '.join(RECORD_ACTIONS)}, got {chosen!r}"])
            build_payload(fields, extra_document_types=extra_document_types)
        except CoupaError as exc:
            problems.extend(f"item {index}: {p}" for p in getattr(exc, "problems", [str(exc)]))
        planned.append((chosen, fields))
    if problems:
        more = len(problems) - MAX_PROBLEMS_SHOWN
        shown = problems[:MAX_PROBLEMS_SHOWN] + ([f"... and {more} more"] if more > 0 else [])
        raise CoupaValidationError(shown, what="batch (nothing was sent)")
    return planned


def sent_records(
    items: Sequence[Mapping[str, Any]], extra_document_types: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Each item as Coupa would store it (snake_case keys): what a stored record is compared with."""
    return [to_python_keys(build_payload(fields, extra_document_types=extra_document_types)) for fields in items]


@dataclass(frozen=True)
class LookupChunk:
    """One query of a retry's lookup, and the items (indexes into ``sent``) whose records it can find."""

    walk: Walk
    indexes: tuple[int, ...]


def lookup_chunks(
    sent: Sequence[Mapping[str, Any]], since: float, among: Collection[int] | None = None
) -> list[LookupChunk]:
    """The queries for records like ``sent`` created since ``since`` (epoch seconds, on Coupa's clock).

    One query per document type and 50 document ids (``document-id[in]``), so a batch of 1,000 costs about 20
    queries, not 1,000. Each item is in exactly one chunk, with every other item of its document, and a stored
    record can only match items of the chunk that found it: a chunk whose query fails leaves only its own items
    unsettled, and asking again for those (``among``: the item indexes to look for; by default all) finds the
    same matches the whole lookup would have.
    """
    by_type: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, fields in enumerate(sent):
        if among is None or index in among:
            by_type[fields["document_type"]][int(fields["document_id"])].append(index)
    created_since = render_epoch(since)
    chunks = []
    for document_type, by_id in by_type.items():
        ordered = sorted(by_id)
        for start in range(0, len(ordered), PAGE_SIZE):
            ids = ordered[start : start + PAGE_SIZE]
            filters = {"document_type": document_type, "document_id[in]": ids, "created_at[gt_or_eq]": created_since}
            indexes = tuple(sorted(i for document_id in ids for i in by_id[document_id]))
            chunks.append(LookupChunk(Walk(RECORDS_PATH, filters), indexes))
    return chunks


def lookup_walks(sent: Sequence[Mapping[str, Any]], since: float) -> list[Walk]:
    """The walks of :func:`lookup_chunks`, for a caller that needs every chunk answered."""
    return [chunk.walk for chunk in lookup_chunks(sent, since)]


def match_written(
    sent: Sequence[Mapping[str, Any]], stored: Iterable[Mapping[str, Any]], among: Collection[int] | None = None
) -> dict[int, int]:
    """Item index -> id of the stored record that item would have created; each record matches one item at most.

    ``among`` limits the items matched (those whose chunk was looked up); by default all of them.
    """
    candidates: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for record in stored:
        candidates[(str(record.get("document_type")), int(record["document_id"]))].append(record)
    found: dict[int, int] = {}
    for index, fields in enumerate(sent):
        if among is not None and index not in among:
            continue
        pool = candidates.get((fields["document_type"], int(fields["document_id"])), [])
        match = next((r for r in pool if is_same_write(r, fields)), None)
        if match is not None:
            pool.remove(match)
            found[index] = int(match["id"])
    return found


@dataclass(frozen=True)
class EarlierWrites:
    """What a retry's lookup learnt of an earlier try's writes, item by item (indexes into the batch).

    ``found``: item -> id of the record an earlier try wrote for it. ``missing``: items looked up and not found,
    to write now. ``not_looked_up``: item -> why its chunk's lookup failed; those are not written (a blind write
    could duplicate one that did land): ask again, or report them :data:`NOT_LOOKED_UP` for the next try.
    """

    found: dict[int, int] = field(default_factory=dict)
    missing: tuple[int, ...] = ()
    not_looked_up: dict[int, str] = field(default_factory=dict)
    chunks: int = 0
    chunks_failed: int = 0

    def already_present(self) -> list[dict[str, Any]]:
        """An :data:`ALREADY_PRESENT` outcome per item found."""
        return [{"index": i, "status": ALREADY_PRESENT, "id": record_id} for i, record_id in sorted(self.found.items())]

    def unchecked(self) -> list[dict[str, Any]]:
        """A :data:`NOT_LOOKED_UP` outcome per item whose lookup failed (retryable: the next try asks again)."""
        return [
            {
                "index": i,
                "status": NOT_LOOKED_UP,
                "id": None,
                "error": f"lookup failed, not written: {why}",
                "retryable": True,
            }
            for i, why in sorted(self.not_looked_up.items())
        ]


def earlier_writes(
    sent: Sequence[Mapping[str, Any]],
    chunks: Sequence[LookupChunk],
    answers: Sequence[Sequence[Mapping[str, Any]] | CoupaError],
) -> EarlierWrites:
    """Settle a lookup from each chunk's answer (its stored records, or the error its walk ended with)."""
    stored: list[Mapping[str, Any]] = []
    looked_up: set[int] = set()
    not_looked_up: dict[int, str] = {}
    for chunk, answer in zip(chunks, answers, strict=True):
        if isinstance(answer, CoupaError):
            not_looked_up.update((i, str(answer)) for i in chunk.indexes)
        else:
            stored.extend(answer)
            looked_up.update(chunk.indexes)
    found = match_written(sent, stored, among=looked_up)
    missing = tuple(sorted(looked_up - set(found)))
    failed = sum(isinstance(answer, CoupaError) for answer in answers)
    return EarlierWrites(found, missing, not_looked_up, len(chunks), failed)


class LandingWitness:
    """Whether a create may be in Coupa although its call failed: watches every request of the call and its answer.

    The call's error alone cannot tell: after a lost answer the client looks for the record before re-sending,
    and when that lookup fails the error is the lookup's (a GET), or a token request's. So the witness sees the
    whole call instead. A create attempt that may have acted (no answer after sending; a 5xx but 503; a 2xx whose
    body could not be read) leaves the outcome open until a lookup answers (the client then adopts the record it
    found or sends again); an attempt Coupa refused (4xx, 429, 503) or that never left (connection refused)
    closes it.

    The driver that puts the call's requests on the wire hands each one to :meth:`saw` with its outcome.
    """

    def __init__(self, api_url: str) -> None:
        self._api_url = api_url
        self.may_have_landed = False

    def saw(self, request: HttpRequest, outcome: HttpResponse | TransportFailure) -> None:
        """Take in one request of the call and what came of it."""
        if request.method.upper() == "GET":
            if isinstance(outcome, HttpResponse) and 200 <= outcome.status < 300:
                self.may_have_landed = False  # the lookup answered: the call adopts what it found or re-sends
        elif request.method.upper() == "POST" and request.url.startswith(self._api_url):
            self.may_have_landed = _may_have_acted(outcome)


def _may_have_acted(outcome: HttpResponse | TransportFailure) -> bool:
    if isinstance(outcome, TransportFailure):
        return outcome.sent is not False
    if 200 <= outcome.status < 300:
        return True  # Coupa acted; the call failed after (an answer it could not read)
    return outcome.status >= 500 and outcome.status not in _REFUSED_SERVER_STATUSES


def failed_write(index: int, error: CoupaError, *, may_have_landed: bool) -> dict[str, Any]:
    """The outcome of a write that raised ``error``: :data:`UNKNOWN` if it may have landed, else :data:`FAILED`.

    An unknown outcome is always retryable: the next try's lookup finds the record or writes it.
    """
    status = UNKNOWN if may_have_landed else FAILED
    retryable = True if may_have_landed else error.retryable
    return {"index": index, "status": status, "id": None, "error": str(error), "retryable": retryable}


def count_outcomes(outcomes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many outcomes have each status of :data:`OUTCOME_STATUSES` (every status present, 0 included)."""
    counts = dict.fromkeys(OUTCOME_STATUSES, 0)
    for outcome in outcomes:
        counts[str(outcome["status"])] = counts.get(str(outcome["status"]), 0) + 1
    return counts


#: Per status not written, how a summary names it and the examples it quotes.
_UNWRITTEN: tuple[tuple[str, str], ...] = (
    (FAILED, "failed (not written: Coupa refused them or never got them)"),
    (UNKNOWN, "outcome unknown (may have landed: the answer was lost or came after Coupa may have acted)"),
    (NOT_LOOKED_UP, "not looked up (the lookup of an earlier try's writes failed; not written)"),
)


def describe_outcomes(outcomes: Sequence[Mapping[str, Any]], *, examples: int = 3) -> str:
    """One line for a log or a task failure: the count of each status, then a few examples of each problem."""
    counts = count_outcomes(outcomes)
    parts = [f"{counts[CREATED]} created", f"{counts[ALREADY_PRESENT]} already present"]
    parts += [f"{counts[status]} {label}" for status, label in _UNWRITTEN if counts[status]]
    text = f"{len(outcomes)} items: " + ", ".join(parts) + "."
    for status, _ in _UNWRITTEN:
        shown = [o for o in outcomes if o["status"] == status][:examples]
        if shown:
            quoted = "; ".join(f"item {o['index']}: {o.get('error')}" for o in shown)
            text += f" First {status.replace('_', ' ')}: {quoted}"
            text = text if text.endswith(".") else text + "."
    return text
