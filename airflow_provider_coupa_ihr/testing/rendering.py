"""Coupa's two response formats: JSON (dash-case keys, bare objects and arrays) and Rails-style XML.

Coupa answers XML unless the client sends ``Accept: application/json``; a client that forgets the header should
see XML here too, so that mistake shows up in tests rather than in production.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["JSON", "MAX_JSON_DEPTH", "XML", "BadJson", "errors_body", "quoted", "read_json", "render", "wants_json"]

JSON = "application/json"
XML = "application/xml"
_XML_TYPES = (XML, "text/xml")
#: How deeply a JSON request body may nest: the json gem's default ``max_nesting``, which Rails applies to the
#: bodies Coupa parses (deeper answers 400). It also keeps the emulator's own recursive walks far from Python's
#: recursion limit.
MAX_JSON_DEPTH = 100


def wants_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers JSON to XML, read as RFC 9110 media ranges with weights.

    Each type takes the weight of the most specific range that matches it (``application/json`` over
    ``application/*`` over ``*/*``); a range with an unreadable weight is ignored, ``q=0`` refuses. JSON needs a
    higher weight than XML, or the same weight from a more specific or earlier range: Coupa sends JSON only when
    asked for it, so XML wins every true tie (``*/*``, ``application/*``, no header at all).
    """
    if not accept:
        return False
    ranges = _media_ranges(accept)
    json_weight, json_rank = _preference(ranges, (JSON,))
    xml_weight, xml_rank = _preference(ranges, _XML_TYPES)
    if json_weight <= 0.0:
        return False
    return json_weight > xml_weight or (json_weight == xml_weight and json_rank > xml_rank)


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    out = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        kind, slash, subtype = media.lower().partition("/")
        if not slash or not kind or not subtype:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = -1.0
        if 0.0 <= weight <= 1.0:
            out.append((kind, subtype, weight))
    return out


def _preference(ranges: list[tuple[str, str, float]], media_types: tuple[str, ...]) -> tuple[float, tuple[int, int]]:
    """The weight the most specific range matching any of ``media_types`` gives, and that range's rank
    (specificity, then earlier in the header); ``(0.0, (-1, 0))`` when no range matches."""
    best: tuple[tuple[int, int], float] = ((-1, 0), 0.0)
    for media_type in media_types:
        kind, _, subtype = media_type.partition("/")
        for position, (r_kind, r_subtype, weight) in enumerate(ranges):
            if (r_kind, r_subtype) == (kind, subtype):
                specificity = 2
            elif (r_kind, r_subtype) == (kind, "*"):
                specificity = 1
            elif (r_kind, r_subtype) == ("*", "*"):
                specificity = 0
            else:
                continue
            best = max(best, ((specificity, -position), weight))
    return best[1], best[0]


def quoted(value: object, limit: int = 60) -> str:
    """A bad value as an error message quotes it: enough to recognise, never a page of it (a hostile client
    may send megabytes, and the message goes back to it and into test output)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BadJson(ValueError):
    """A request body that is not the JSON it must be (the message says why, without quoting the body)."""


def read_json(raw: bytes | str, *, what: str = "Request body") -> Any:
    """Parse a JSON body as Rails would: malformed text, bad UTF-8, numbers Python cannot hold and nesting deeper
    than :data:`MAX_JSON_DEPTH` are :class:`BadJson`, never an error the server did not plan for."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadJson(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer past int()'s digit limit
        raise BadJson(f"{what} is not valid JSON") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadJson(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def render(value: Any, *, as_json: bool, root: str) -> tuple[bytes, str]:
    """Body and content type for ``value`` (a resource, or a list of them) under the XML ``root`` name."""
    if as_json:
        return json.dumps(value, separators=(",", ":")).encode(), JSON + "; charset=utf-8"
    element = _element(root, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8"), XML + "; charset=utf-8"


def errors_body(resource: str, messages: list[str], *, as_json: bool) -> tuple[bytes, str]:
    """Coupa's validation error shapes: ``{"errors": {resource: [...]}}`` or ``<errors><error>...``."""
    if as_json:
        return json.dumps({"errors": {resource: messages}}).encode(), JSON + "; charset=utf-8"
    root = ET.Element("errors")
    for message in messages:
        ET.SubElement(root, "error").text = message
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8"), XML + "; charset=utf-8"


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def _element(name: str, value: Any) -> ET.Element:
    element = ET.Element(name)
    if value is None:
        element.set("nil", "true")
    elif isinstance(value, bool):
        element.set("type", "boolean")
        element.text = "true" if value else "false"
    elif isinstance(value, int):
        element.set("type", "integer")
        element.text = str(value)
    elif isinstance(value, list):
        element.set("type", "array")
        for item in value:
            element.append(_element(_singular(name), item))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            element.append(_element(str(key), item))
    else:
        text = str(value)
        if name.endswith(("-at", "-time")):
            element.set("type", "dateTime")
        element.text = text
    return element
