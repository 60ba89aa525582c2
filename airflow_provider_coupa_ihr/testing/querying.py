"""Coupa's query language, as the emulator reads it from a query string: filters, order, pages and ``fields=``.

Pure functions over plain dicts, so every rule is tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_coupa_ihr.client.records import INTEGRATION_FIELDS, QUERY_OPERATORS, RUN_FIELDS, Field
from airflow_provider_coupa_ihr.client.values import MAX_ID, whole_number
from airflow_provider_coupa_ihr.testing.rendering import BadJson, quoted, read_json

__all__ = [
    "MAX_LIMIT",
    "Condition",
    "Query",
    "QueryError",
    "apply_query",
    "bigint",
    "matching_ids",
    "parse_query",
    "project",
]

#: Coupa never returns more than 50 records a page, whatever ``limit`` asks for.
MAX_LIMIT = 50
#: Query-string keys that steer the query rather than filter it.
CONTROL_PARAMS = frozenset({"limit", "offset", "order_by", "dir", "fields", "return_object"})

_USER_FIELDS: Mapping[str, Field] = {
    "id": Field("id", "integer"),
    "login": Field("login", "string"),
    "email": Field("email", "string"),
}
#: Associations a filter may reach into (``integration[code]=X``), with the fields they can be filtered on.
ASSOCIATIONS: Mapping[str, Mapping[str, Field]] = {
    "integration": INTEGRATION_FIELDS,
    "integration-run": RUN_FIELDS,
    "created-by": _USER_FIELDS,
    "updated-by": _USER_FIELDS,
}
RETURN_OBJECT_VALUES = ("limited", "shallow", "none")
#: The smallest number a bigint column holds (the largest is the client's ``MAX_ID``).
MIN_BIGINT = -MAX_ID - 1


class QueryError(ValueError):
    """A query Coupa would answer with 400."""


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]
    operator: str
    value: Any
    kind: str

    def matches(self, resource: Mapping[str, Any]) -> bool:
        current: Any = resource
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        return _compare(self.operator, _typed(current, self.kind), self.value)


@dataclass(frozen=True)
class Query:
    conditions: tuple[Condition, ...] = ()
    order_by: str = "id"
    descending: bool = False
    limit: int = MAX_LIMIT
    offset: int = 0
    fields: list[Any] | None = None
    return_object: str | None = None


def parse_query(params: Iterable[tuple[str, str]], fields: Mapping[str, Field]) -> Query:
    """Read a query string the way Coupa does; unknown fields and operators are refused with a 400."""
    conditions: list[Condition] = []
    control: dict[str, str] = {}
    for raw_key, raw_value in params:
        key = raw_key.replace("_", "-")
        if raw_key in CONTROL_PARAMS or key.replace("-", "_") in CONTROL_PARAMS:
            control[key.replace("-", "_")] = raw_value
            continue
        conditions.append(_condition(key, raw_value, fields))
    return Query(
        conditions=tuple(conditions),
        order_by=_order_by(control.get("order_by"), fields),
        descending=_direction(control.get("dir")),
        limit=_limit(control.get("limit")),
        offset=_int_param("offset", control.get("offset"), default=0),
        fields=_fields_param(control.get("fields")),
        return_object=_return_object(control.get("return_object")),
    )


def matching_ids(rows: Iterable[Mapping[str, Any]], query: Query) -> list[int]:
    """Ids of the rows that match, in the query's order (paging is left to the caller). ``rows`` come in id order."""
    kept = [r for r in rows if all(c.matches(r) for c in query.conditions)]
    if query.order_by != "id":
        kept.sort(key=lambda r: _sort_key(r.get(query.order_by), r.get("id")))
    if query.descending:
        kept.reverse()
    return [int(r["id"]) for r in kept]


def apply_query(rows: Sequence[Mapping[str, Any]], query: Query) -> list[Mapping[str, Any]]:
    """Filter, order and cut one page out of ``rows`` (in id order)."""
    by_id = {int(r["id"]): r for r in rows}
    return [by_id[i] for i in matching_ids(rows, query)[query.offset : query.offset + query.limit]]


def project(resource: Any, spec: Sequence[Any] | None) -> Any:
    """Keep only what ``fields=[...]`` names; ``{"integration": ["code"]}`` reaches into an association."""
    if spec is None:
        return resource
    if isinstance(resource, list):
        return [project(item, spec) for item in resource]
    if not isinstance(resource, Mapping):
        return resource
    out: dict[str, Any] = {}
    for item in spec:
        if isinstance(item, str):
            name = item.replace("_", "-")
            if name in resource:
                out[name] = resource[name]
        else:
            for assoc, sub in item.items():
                name = assoc.replace("_", "-")
                if name in resource:
                    out[name] = project(resource[name], sub)
    return out


def bigint(raw: str, what: str, *, minimum: int = MIN_BIGINT) -> int:
    """``raw`` (query-string or path text) as a whole number a bigint column holds, else :class:`QueryError`.

    Coupa's ids and counts are Postgres bigints: a number beyond them cannot name anything, and Coupa refuses it
    rather than answering "nothing found", so the emulator answers 400 too.
    """
    try:
        number = whole_number(raw, text=True)
    except ValueError:  # more digits than int() reads: far beyond a bigint
        number = MAX_ID + 1
    if number is None:
        raise QueryError(f"{what} takes a whole number, got {quoted(raw)}")
    if not minimum <= number <= MAX_ID:
        raise QueryError(f"{what} must be a whole number from {minimum} to {MAX_ID} (a bigint), got {quoted(raw)}")
    return number


# ------------------------------------------------------------------------------------------------ internals
def _split_key(key: str) -> tuple[str, list[str]]:
    name, _, rest = key.partition("[")
    parts = [p for p in rest.rstrip("]").split("][")] if rest else []
    if rest and not key.endswith("]"):
        raise QueryError(f"Malformed filter {quoted(key)}")
    return name, [p.replace("_", "-") if p not in QUERY_OPERATORS else p for p in parts]


def _condition(key: str, raw_value: str, fields: Mapping[str, Field]) -> Condition:
    name, parts = _split_key(key)
    parts = [p.replace("-", "_") if p.replace("-", "_") in QUERY_OPERATORS else p for p in parts]
    if name in ASSOCIATIONS and name in fields:
        if not parts:
            raise QueryError(f"Filter on {name} must name one of its fields, e.g. {name}[code]")
        sub_fields = ASSOCIATIONS[name]
        sub, ops = parts[0], parts[1:]
        if sub not in sub_fields:
            raise QueryError(f"Unknown field {quoted(sub)} of {name}; known: {', '.join(sorted(sub_fields))}")
        spec, path = sub_fields[sub], (name, sub)  # type: tuple[Field, tuple[str, ...]]
    else:
        if name not in fields:
            raise QueryError(f"Unknown query field {quoted(name)}")
        spec, path, ops = fields[name], (name,), parts
    if len(ops) > 1:
        raise QueryError(f"Malformed filter {quoted(key)}")
    operator = ops[0] if ops else "eq"
    if operator != "eq" and operator not in QUERY_OPERATORS:
        raise QueryError(f"Unknown operator [{operator}] in {quoted(key)}; known: {', '.join(QUERY_OPERATORS)}")
    if operator in ("contains", "starts_with", "ends_with") and spec.kind in ("datetime", "integer", "boolean"):
        raise QueryError(f"[{operator}] does not apply to {spec.kind} field {'.'.join(path)}")
    return Condition(path, operator, _parse_value(operator, raw_value, spec, key), spec.kind)


def _parse_value(operator: str, raw: str, spec: Field, key: str) -> Any:
    if operator == "blank":
        if raw.lower() not in ("true", "false"):
            raise QueryError(f"{key} takes true or false")
        return raw.lower() == "true"
    if operator in ("in", "not_in"):
        return tuple(_scalar(v.strip(), spec, key) for v in raw.split(",") if v.strip())
    return _scalar(raw, spec, key)


def _scalar(raw: str, spec: Field, key: str) -> Any:
    if spec.kind == "integer":
        return bigint(raw, key)
    if spec.kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise QueryError(f"{key} takes true or false, got {quoted(raw)}")
        return raw.lower() == "true"
    if spec.kind == "datetime":
        parsed = _datetime(raw)
        if parsed is None:
            raise QueryError(f"{key} takes a date or time (ISO 8601), got {quoted(raw)}")
        return parsed
    return raw


def _datetime(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _typed(value: Any, kind: str) -> Any:
    return _datetime(value) if kind == "datetime" else value


def _compare(operator: str, actual: Any, expected: Any) -> bool:
    if operator == "blank":
        return bool((actual is None or actual == "") == expected)
    if operator == "in":
        return actual in expected
    if operator == "not_in":
        return actual not in expected
    if operator == "not_eq":
        return bool(actual != expected)
    if actual is None:
        return False
    if operator == "eq":
        return bool(actual == expected)
    if operator in ("contains", "starts_with", "ends_with"):
        text, needle = str(actual).lower(), str(expected).lower()
        return {"contains": needle in text, "starts_with": text.startswith(needle), "ends_with": text.endswith(needle)}[
            operator
        ]
    try:
        return bool(
            {
                "gt": actual > expected,
                "lt": actual < expected,
                "gt_or_eq": actual >= expected,
                "lt_or_eq": actual <= expected,
            }[operator]
        )
    except TypeError:
        return False


def _sort_key(value: Any, tie: Any) -> tuple[int, Any, Any]:
    if value is None:
        return (0, "", tie)
    if isinstance(value, (dict, list)):
        return (1, json.dumps(value, sort_keys=True), tie)
    return (1, value, tie)


def _order_by(raw: str | None, fields: Mapping[str, Field]) -> str:
    if raw is None:
        return "id"
    name = raw.replace("_", "-")
    if name not in fields:
        raise QueryError(f"Cannot order by unknown field {quoted(raw)}")
    return name


def _direction(raw: str | None) -> bool:
    if raw is None or raw.lower() == "asc":
        return False
    if raw.lower() == "desc":
        return True
    raise QueryError(f"dir must be asc or desc, got {quoted(raw)}")


def _int_param(name: str, raw: str | None, *, default: int) -> int:
    if raw is None:
        return default
    return bigint(raw, name, minimum=0)


def _limit(raw: str | None) -> int:
    limit = _int_param("limit", raw, default=MAX_LIMIT)
    return min(limit, MAX_LIMIT) if limit > 0 else MAX_LIMIT


def _fields_param(raw: str | None) -> list[Any] | None:
    if raw is None:
        return None
    try:
        spec = read_json(raw, what="fields")
    except BadJson as exc:
        raise QueryError(f'{exc}: it must be a JSON array such as ["id","status"], got {quoted(raw)}') from None
    if not _valid_fields_spec(spec):
        raise QueryError("fields must be a JSON array of names and {association: [names]} objects")
    return list(spec)


def _valid_fields_spec(spec: Any) -> bool:
    if not isinstance(spec, list):
        return False
    for item in spec:
        if isinstance(item, str):
            continue
        if not (isinstance(item, dict) and all(_valid_fields_spec(v) for v in item.values())):
            return False
    return True


def _return_object(raw: str | None) -> str | None:
    if raw is not None and raw not in RETURN_OBJECT_VALUES:
        raise QueryError(f"return_object must be one of {', '.join(RETURN_OBJECT_VALUES)}, got {quoted(raw)}")
    return raw
