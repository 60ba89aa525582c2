"""Coupa index queries built from Python values: filters, ``fields=`` and order. No I/O. Paging is :mod:`.paging`.

Users write filters in Coupa's own syntax (``{"updated_at[gt]": since, "integration[code]": "SAP"}``) so the
documentation Coupa publishes applies as is; this module's job is to catch what Coupa would refuse *before*
a request is spent on it, with a message that says what was wrong and what is allowed, and to render values
the way Coupa reads them.

One builder serves records, runs and errors: pass the resource's field mapping from
:mod:`~airflow_provider_coupa_ihr.client.records` as ``known_fields``.

Why one module of this size: filters, ``fields=`` and order are the three parts of one query string and are
checked together (:func:`build_index_params` reports every problem of all three at once); most of the length is
the messages that say what Coupa would refuse and what it allows instead.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from airflow_provider_coupa_ihr.client.errors import CoupaValidationError
from airflow_provider_coupa_ihr.client.records import (
    ERROR_FIELDS,
    INTEGRATION_FIELDS,
    QUERY_OPERATORS,
    RECORD_FIELDS,
    RESPONSE_FIELDS,
    RUN_FIELDS,
    Field,
)
from airflow_provider_coupa_ihr.client.values import MAX_ID, is_unicode, quoted, render_datetime, whole_number

__all__ = [
    "CONTROL_PARAMS",
    "FILTER_ASSOCIATIONS",
    "PAGE_SIZE",
    "PROJECTIONS",
    "RETURN_OBJECT_VALUES",
    "USER_FIELDS",
    "build_index_params",
    "fields_param",
    "filter_params",
    "order_params",
]

#: Coupa never returns more than 50 records a page; ``limit`` above it is refused here rather than ignored there.
PAGE_SIZE = 50
#: Query keys that steer the query rather than filter it: each has its own keyword in :func:`build_index_params`.
CONTROL_PARAMS: Mapping[str, str] = {
    "limit": "limit=",
    "offset": "offset=",
    "order_by": "order_by=",
    "dir": "direction=",
    "fields": "fields=",
    "return_object": "return_object=",
}
RETURN_OBJECT_VALUES: tuple[str, ...] = ("limited", "shallow", "none")

#: The user fields a ``created-by``/``updated-by`` filter can reach (Coupa's User resource; the common ones).
USER_FIELDS: Mapping[str, Field] = {
    f.name: f
    for f in (
        Field("id", "integer"),
        Field("login", "string"),
        Field("email", "string"),
        Field("employee-number", "string"),
        Field("firstname", "string"),
        Field("lastname", "string"),
    )
}
#: Associations a filter may reach into (``integration[code]=X``) and the fields it can filter them on.
#: Object fields missing here (``flow``, ``responses``) cannot be filtered on: Coupa documents no such query.
FILTER_ASSOCIATIONS: Mapping[str, Mapping[str, Field]] = {
    "integration": INTEGRATION_FIELDS,
    "integration-run": RUN_FIELDS,
    "created-by": USER_FIELDS,
    "updated-by": USER_FIELDS,
}
#: What ``fields=[{"assoc": [...]}]`` may name inside an association. Associations missing here (users,
#: ``flow``) take any name: trimming a payload to a field Coupa lacks costs nothing, refusing a real one would.
PROJECTIONS: Mapping[str, Mapping[str, Field]] = {
    "integration": INTEGRATION_FIELDS,
    "integration-run": RUN_FIELDS,
    "responses": RESPONSE_FIELDS,
    "integration-errors": ERROR_FIELDS,
}

_TEXT_OPS = frozenset({"contains", "starts_with", "ends_with"})
_ORDER_OPS = frozenset({"gt", "lt", "gt_or_eq", "lt_or_eq"})
_LIST_OPS = frozenset({"in", "not_in"})
_NESTED = ("object", "array")
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)((?:\[[^\[\]]*\])*)")


def _wire(name: str) -> str:
    return name.strip().replace("_", "-")


def _did_you_mean(wrong: str, candidates: Collection[str], what: str) -> str:
    close = difflib.get_close_matches(wrong, list(candidates), n=3, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(close)}?"
    return f"{what}: {', '.join(sorted(candidates))}"


def _problem(key: str, message: str) -> str:
    return f"{key}: {message}"


# ---------------------------------------------------------------------------------------------------- filters
def filter_params(
    filters: Mapping[str, Any] | None,
    known_fields: Mapping[str, Field] = RECORD_FIELDS,
    *,
    associations: Mapping[str, Mapping[str, Field] | None] = FILTER_ASSOCIATIONS,
) -> list[tuple[str, str]]:
    """Render ``filters`` as query pairs, or raise one :class:`CoupaValidationError` listing every problem.

    Keys are Coupa's syntax: ``field``, ``field[op]``, ``assoc[field]`` or ``assoc[field][op]``, with dashes or
    underscores. Values: ``str``, ``int``, ``bool``, ``datetime``, ``date``, and for ``[in]``/``[not_in]`` a
    list, tuple or set (or a comma-separated string). Rendering follows what Coupa reads:

    - names go out dash-case (Coupa accepts both; one spelling keeps logs and tests predictable), operators as
      Coupa spells them (``gt_or_eq``);
    - datetimes as ISO 8601 with their offset; a *naive* datetime is taken as UTC, because Airflow's own
      datetimes are UTC and guessing the machine's local zone would shift windows by hours;
    - booleans as ``true``/``false``; lists comma-joined (so a value may not itself contain a comma).
    """
    if filters is not None and not isinstance(filters, Mapping):
        raise CoupaValidationError(
            [_problem("filters", f"must be a mapping of filter to value, got {quoted(filters)}")]
        )
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for key, value in (filters or {}).items():
        try:
            pairs.append(_filter_pair(str(key), value, known_fields, associations))
        except _Refused as refused:
            problems.append(_problem(str(key), str(refused)))
    if problems:
        raise CoupaValidationError(problems)
    return pairs


class _Refused(Exception):
    """One filter's problem, collected so all of them are reported at once."""


def _filter_pair(
    key: str,
    value: Any,
    known_fields: Mapping[str, Field],
    associations: Mapping[str, Mapping[str, Field] | None],
) -> tuple[str, str]:
    match = _KEY.fullmatch(key.strip())
    if match is None:
        raise _Refused("not a Coupa filter; write field, field[operator] or association[field]")
    raw_name, brackets = match.groups()
    parts = re.findall(r"\[([^\[\]]*)\]", brackets)
    name = _wire(raw_name)
    if name.replace("-", "_") in CONTROL_PARAMS:
        raise _Refused(f"not a filter; pass it as {CONTROL_PARAMS[name.replace('-', '_')]}")
    spec = known_fields.get(name)
    if spec is None:
        candidates = [*known_fields, *(f"{a}[{s}]" for a, subs in associations.items() for s in subs or ())]
        raise _Refused(f"unknown field {name}; {_did_you_mean(name, candidates, 'known fields')}")
    prefix = name
    if spec.kind in _NESTED:
        if name not in associations:
            raise _Refused(f"{name} is {'a list' if spec.kind == 'array' else 'an object'} Coupa cannot filter on")
        sub_fields = associations[name]
        if not parts:
            example = next(iter(sub_fields), "id") if sub_fields else "id"
            raise _Refused(f"{name} is an association: filter on one of its fields, e.g. {name}[{example}]")
        sub = _wire(parts.pop(0))
        if sub_fields is not None:
            sub_spec = sub_fields.get(sub)
            if sub_spec is None:
                raise _Refused(f"unknown field {sub} of {name}; {_did_you_mean(sub, sub_fields, 'known')}")
            if sub_spec.kind in _NESTED:
                raise _Refused(f"{name}[{sub}] is not a plain value; Coupa filters one level deep")
            spec = sub_spec
        else:
            spec = Field(sub, "string")
        prefix = f"{name}[{sub}]"
    if len(parts) > 1:
        raise _Refused("too many [brackets]; write field[operator] or association[field][operator]")
    operator = parts[0].strip().replace("-", "_") if parts else None
    if operator is not None and operator not in QUERY_OPERATORS:
        listed = ", ".join(f"[{op}]" for op in QUERY_OPERATORS)
        close = difflib.get_close_matches(operator, QUERY_OPERATORS, n=1)
        maybe = f"did you mean [{close[0]}]? " if close else ""
        raise _Refused(f"unknown operator [{operator}]; {maybe}Coupa's operators: {listed}")
    rendered = _render(operator, spec, value, prefix)
    return (f"{prefix}[{operator}]" if operator else prefix, rendered)


def _render(operator: str | None, spec: Field, value: Any, prefix: str) -> str:
    if value is None:
        raise _Refused(f"None is not a value; to find empty ones use {prefix}[blank]=True")
    if operator == "blank":
        flag = _bool(value)
        if flag is None:
            raise _Refused(f"[blank] takes True or False, got {quoted(value)}")
        return flag
    if operator in _LIST_OPS:
        return _render_list(operator, spec, value, prefix)
    if isinstance(value, (list, tuple, set, frozenset)):
        raise _Refused(f"takes one value, got a {type(value).__name__}; for several use {prefix}[in]")
    if operator in _TEXT_OPS:
        if spec.kind not in ("string", "text"):
            raise _Refused(f"[{operator}] works on text; {spec.name} is {_a(spec.kind)} field (try [gt] / [lt])")
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            raise _Refused(f"[{operator}] takes some text, got {quoted(value)}")
        return str(value)
    if operator in _ORDER_OPS and spec.kind == "boolean":
        raise _Refused(f"[{operator}] cannot compare true/false; {spec.name} is a boolean field")
    if operator is None and isinstance(value, str) and not value.strip():
        raise _Refused(f"an empty value matches nothing useful; to find empty ones use {prefix}[blank]=True")
    return _scalar(spec, value, operator)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _bool(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    return None


def _render_list(operator: str, spec: Field, value: Any, prefix: str) -> str:
    items: list[Any]
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, (set, frozenset)):
        items = sorted(value, key=str)  # a stable order keeps URLs (and caches, and tests) stable
    else:
        raise _Refused(f"[{operator}] takes a list, tuple or set of values, got {quoted(value)}")
    if not items:
        raise _Refused(f"[{operator}] needs at least one value")
    rendered = []
    for item in items:
        if item is None or isinstance(item, (list, tuple, set, frozenset, Mapping)):
            raise _Refused(f"[{operator}] takes plain values, got {quoted(item)} in the list")
        text = _scalar(spec, item, operator)
        if "," in text:
            raise _Refused(f"[{operator}] cannot carry {quoted(text)}: Coupa splits the list on commas")
        rendered.append(text)
    return ",".join(rendered)


def _scalar(spec: Field, value: Any, operator: str | None = None) -> str:
    kind = spec.kind
    if kind == "integer":
        number = whole_number(value, text=True)
        if number is None:
            raise _Refused(f"{spec.name} takes a whole number, got {quoted(value)}")
        low, what = _integer_floor(spec, operator)
        if not low <= number <= MAX_ID:
            raise _Refused(f"{spec.name} takes {what} from {low} to {MAX_ID}, got {quoted(value)}")
        return str(number)
    if kind == "boolean":
        flag = _bool(value)
        if flag is None:
            raise _Refused(f"{spec.name} takes True or False, got {quoted(value)}")
        return flag
    if kind == "datetime":
        return _datetime_text(spec, value)
    if isinstance(value, str):
        if not is_unicode(value):
            raise _Refused(f"{spec.name} takes text; this holds a lone surrogate, which cannot be sent")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Refused(f"{spec.name} takes text, got {quoted(value)}")


def _integer_floor(spec: Field, operator: str | None) -> tuple[int, str]:
    """The smallest value an integer filter may take, and what to call it: an id (``id``, ``document-id``) named
    outright (equal, in, not) is a Coupa id from 1; a comparison (``id[gt]=0``) or any other number may go down to
    a bigint's floor. Nothing may exceed a bigint: Coupa cannot hold it and refuses the query."""
    if (spec.name == "id" or spec.name.endswith("-id")) and operator not in _ORDER_OPS:
        return 1, "a Coupa id (a whole number)"
    return -(2**63), "a whole number"


def _datetime_text(spec: Field, value: Any) -> str:
    text = render_datetime(value)
    if text is None:
        raise _Refused(
            f"{spec.name} takes a datetime, a date or ISO 8601 text such as 2024-03-25T18:38:00-07:00, "
            f"got {quoted(value)}"
        )
    return text


# ----------------------------------------------------------------------------------------------------- fields=
def fields_param(
    fields: Sequence[str | Mapping[str, Any]],
    known_fields: Mapping[str, Field] | None = RECORD_FIELDS,
    *,
    projections: Mapping[str, Mapping[str, Field]] = PROJECTIONS,
) -> str:
    """Coupa's ``fields=`` value: a compact JSON array such as ``["id","status",{"integration":["code"]}]``.

    Items are field names, or one-key mappings from an association to a list of its own items (recursively).
    Names go out dash-case. Names are checked against ``known_fields`` (``None``: any name) and, inside an
    association, against ``projections``; a typo would otherwise silently trim the field away.
    """
    problems: list[str] = []
    spec = _fields_spec(fields, known_fields, projections, "fields", problems)
    if problems:
        raise CoupaValidationError(problems)
    return json.dumps(spec, separators=(",", ":"))


def _fields_spec(
    items: Any,
    known: Mapping[str, Field] | None,
    projections: Mapping[str, Mapping[str, Field]],
    where: str,
    problems: list[str],
) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        problems.append(_problem(where, f"must be a list of field names, got {quoted(items)}"))
        return []
    if not items:
        problems.append(_problem(where, "must name at least one field"))
        return []
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            name = _wire(item)
            if known is not None and name not in known:
                problems.append(_problem(where, f"unknown field {name}; {_did_you_mean(name, known, 'known')}"))
            out.append(name)
        elif isinstance(item, Mapping) and len(item) == 1:
            ((raw, sub_items),) = item.items()
            name = _wire(str(raw))
            spec = known.get(name) if known is not None else None
            if known is not None and spec is None:
                problems.append(_problem(where, f"unknown field {name}; {_did_you_mean(name, known, 'known')}"))
            elif spec is not None and spec.kind not in _NESTED:
                problems.append(_problem(where, f"{name} is a plain value; only associations take a field list"))
            nested = projections.get(name) if spec is not None or known is None else None
            out.append({name: _fields_spec(sub_items, nested, projections, f"{where} of {name}", problems)})
        else:
            problems.append(
                _problem(where, f"items are names or {{association: [names]}} with one key, got {quoted(item)}")
            )
    return out


# ------------------------------------------------------------------------------------------------ order, pages
def order_params(
    order_by: str | None = "id",
    direction: str = "asc",
    known_fields: Mapping[str, Field] = RECORD_FIELDS,
) -> list[tuple[str, str]]:
    """``order_by`` and ``dir``; ``order_by=None`` leaves Coupa's default order.

    The column goes out with underscores (``updated_at``): it names a database column, and Coupa's examples
    spell it that way even though filters take dashes.
    """
    problems = _order_problems(order_by, direction, known_fields)
    if problems:
        raise CoupaValidationError(problems)
    if order_by is None:
        return []
    return [("order_by", _wire(order_by).replace("-", "_")), ("dir", direction.strip().lower())]


def _order_problems(order_by: str | None, direction: str, known_fields: Mapping[str, Field]) -> list[str]:
    problems = []
    if order_by is not None:
        name = _wire(order_by) if isinstance(order_by, str) else str(order_by)
        spec = known_fields.get(name)
        if spec is None:
            columns = [n for n, f in known_fields.items() if f.kind not in _NESTED]
            problems.append(_problem("order_by", f"unknown field {name}; {_did_you_mean(name, columns, 'known')}"))
        elif spec.kind in _NESTED:
            problems.append(_problem("order_by", f"{name} is not a plain value and cannot order results"))
    if not isinstance(direction, str) or direction.strip().lower() not in ("asc", "desc"):
        problems.append(_problem("direction", f"must be asc or desc, got {quoted(direction)}"))
    return problems


def build_index_params(
    filters: Mapping[str, Any] | None = None,
    *,
    fields: Sequence[str | Mapping[str, Any]] | None = None,
    order_by: str | None = "id",
    direction: str = "asc",
    limit: int | None = PAGE_SIZE,
    offset: int | None = 0,
    return_object: str | None = None,
    known_fields: Mapping[str, Field] = RECORD_FIELDS,
    associations: Mapping[str, Mapping[str, Field] | None] = FILTER_ASSOCIATIONS,
) -> list[tuple[str, str]]:
    """Every query pair of one index request, checked together so one error lists every problem.

    Ordered by ``id asc`` by default: offset paging is only stable on a unique, ever-growing key. ``limit``
    must be 1 to 50 (Coupa would silently return 50 for more, and a caller counting on 100 would stop paging
    early), ``offset`` 0 or more (0 is the first record: starting at 1 skips one). Pass ``limit=None,
    offset=None`` to leave both out, e.g. to add :meth:`.paging.Pager.params` per page.
    """
    problems: list[str] = []
    pairs: list[tuple[str, str]] = []
    try:
        pairs += filter_params(filters, known_fields, associations=associations)
    except CoupaValidationError as refused:
        problems += refused.problems
    if fields is not None:
        try:
            pairs.append(("fields", fields_param(fields, known_fields)))
        except CoupaValidationError as refused:
            problems += refused.problems
    if return_object is not None and return_object not in RETURN_OBJECT_VALUES:
        problems.append(
            _problem("return_object", f"must be one of {', '.join(RETURN_OBJECT_VALUES)}, got {quoted(return_object)}")
        )
    order_problems = _order_problems(order_by, direction, known_fields)
    problems += order_problems
    if limit is not None and whole_number(limit, minimum=1, maximum=PAGE_SIZE) is None:
        problems.append(_problem("limit", f"must be a whole number from 1 to {PAGE_SIZE}, got {quoted(limit)}"))
    if offset is not None and whole_number(offset, minimum=0) is None:
        problems.append(_problem("offset", f"must be a whole number from 0, got {quoted(offset)}"))
    if problems:
        raise CoupaValidationError(problems)
    if return_object is not None:
        pairs.append(("return_object", return_object))
    pairs += order_params(order_by, direction, known_fields)
    if limit is not None:
        pairs.append(("limit", str(limit)))
    if offset is not None:
        pairs.append(("offset", str(offset)))
    return pairs
