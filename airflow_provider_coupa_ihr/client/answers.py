"""What a successful answer must look like before anything reads it: a page is a list of objects, an id a Coupa id.

Coupa answers an index with a JSON list and a show or a write with one object, every one carrying a whole-number
``id``. A proxy, a login page answering 200, or a server that is not Coupa can send anything else; code that
trusted the shape (``int(record["id"])``) would raise ``KeyError``, ``TypeError`` or ``ValueError`` from deep
inside a walk or a wait. These checks turn any such answer into a :class:`~.errors.CoupaError` that says what
came back, in one place, so every reader (paging, the wait, resolve-by-filter, the operators) fails the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_coupa_ihr.client.errors import CoupaError
from airflow_provider_coupa_ihr.client.values import MAX_ID, quoted, whole_number

__all__ = ["answer_record", "not_a_record", "page_records", "record_id"]

_HINT = (
    "Coupa answers an index with a JSON list of records and a single record as a JSON object with an id; "
    "anything else comes from a proxy or a server that is not Coupa: check the connection's host"
)


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON list"
    if value is None:
        return "nothing"
    return f"a JSON {type(value).__name__} ({quoted(value, 60)})"


def _malformed(message: str, where: str | None) -> CoupaError:
    return CoupaError([f"Coupa's answer{f' to {where}' if where else ''} {message}"], hint=_HINT)


def page_records(answer: Any, where: str | None = None) -> list[dict[str, Any]]:
    """The records of an index answer: a list of objects (``None``, an empty body, is an empty page).

    ``where`` (``"GET /api/integration_history_records"``) names the request in the error.
    """
    if answer is None:
        return []
    if not isinstance(answer, list):
        raise _malformed(f"is not a page of records (a JSON list): it is {_kind(answer)}", where)
    for index, item in enumerate(answer):
        if not isinstance(item, Mapping):
            raise _malformed(f"holds {_kind(item)} at position {index} of the page, not a record", where)
    return answer


def not_a_record(answer: Any, where: str | None = None) -> CoupaError:
    """The error for an answer that should be one record (a JSON object) and is ``answer`` instead."""
    return _malformed(f"is not a record (a JSON object): it is {_kind(answer)}", where)


def answer_record(answer: Any, where: str | None = None) -> dict[str, Any]:
    """The one record of a show or write answer: an object with a Coupa id."""
    if not isinstance(answer, Mapping):
        raise not_a_record(answer, where)
    record_id(answer, where)
    return dict(answer) if not isinstance(answer, dict) else answer


def record_id(record: Any, where: str | None = None) -> int:
    """The ``id`` of a record Coupa answered: a whole number from 1 to :data:`.values.MAX_ID`."""
    if not isinstance(record, Mapping):
        raise _malformed(f"holds {_kind(record)} where a record belongs", where)
    value = record.get("id")
    number = whole_number(value, minimum=1, maximum=MAX_ID, text=True)
    if number is None:
        shown = "no id" if value is None else f"the id {quoted(value, 60)}, not a Coupa id"
        raise _malformed(f"holds a record with {shown}", where)
    return number
