"""A batch of record writes, decided without I/O: what to send for each item, and what an earlier try wrote.

The bulk operator hands a list of items (usually an upstream task's XCom); :func:`plan_records` checks every
item before anything is sent and names every problem at once. On an Airflow retry, :func:`lookup_walks` are
the queries that find the records an earlier try wrote (``document-id[in]=`` 50 at a time), and
:func:`match_written` pairs each stored record with at most one item, so a retry writes only what is missing.
The clients run the walks and the writes; nothing here touches the network.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaValidationError
from airflow_provider_coupa_ihr.client.operations import RECORD_ACTIONS, is_same_write
from airflow_provider_coupa_ihr.client.paging import Walk
from airflow_provider_coupa_ihr.client.payloads import build_payload
from airflow_provider_coupa_ihr.client.query import PAGE_SIZE
from airflow_provider_coupa_ihr.client.records import RECORDS_PATH, to_python_keys
from airflow_provider_coupa_ihr.client.values import render_epoch

__all__ = ["MAX_PROBLEMS_SHOWN", "Planned", "lookup_walks", "match_written", "plan_records", "sent_records"]

#: A batch error lists this many problems, then says how many more there are: a 10,000-item batch with one
#: systematic mistake must not become a 10,000-line message.
MAX_PROBLEMS_SHOWN = 20

#: One planned write: the IHR action, and the record's fields (Python names, as the caller gave them).
Planned = tuple[str, dict[str, Any]]


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
        fields = {**(defaults or {}), **item}
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


def lookup_walks(sent: Sequence[Mapping[str, Any]], since: float) -> list[Walk]:
    """The queries for records like ``sent`` created since ``since`` (epoch seconds, on Coupa's clock).

    One walk per document type and 50 document ids (``document-id[in]``), so a batch of 1,000 costs about 20
    requests, not 1,000.
    """
    by_type: dict[str, set[int]] = defaultdict(set)
    for fields in sent:
        by_type[fields["document_type"]].add(int(fields["document_id"]))
    created_since = render_epoch(since)
    walks = []
    for document_type, ids in by_type.items():
        ordered = sorted(ids)
        for start in range(0, len(ordered), PAGE_SIZE):
            filters = {
                "document_type": document_type,
                "document_id[in]": ordered[start : start + PAGE_SIZE],
                "created_at[gt_or_eq]": created_since,
            }
            walks.append(Walk(RECORDS_PATH, filters))
    return walks


def match_written(sent: Sequence[Mapping[str, Any]], stored: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """Item index -> id of the stored record that item would have created; each record matches one item at most."""
    candidates: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for record in stored:
        candidates[(str(record.get("document_type")), int(record["document_id"]))].append(record)
    found: dict[int, int] = {}
    for index, fields in enumerate(sent):
        pool = candidates.get((fields["document_type"], int(fields["document_id"])), [])
        match = next((r for r in pool if is_same_write(r, fields)), None)
        if match is not None:
            pool.remove(match)
            found[index] = int(match["id"])
    return found
