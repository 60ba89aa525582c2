"""Coupa's two response formats: JSON (dash-case keys, bare objects and arrays) and Rails-style XML.

Coupa answers XML unless the client sends ``Accept: application/json``; a client that forgets the header should
see XML here too, so that mistake shows up in tests rather than in production.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["JSON", "XML", "errors_body", "render", "wants_json"]

JSON = "application/json"
XML = "application/xml"


def wants_json(accept: str | None) -> bool:
    """Coupa sends JSON only when asked for it; anything else (or nothing) gets XML."""
    return bool(accept) and "json" in (accept or "").lower()


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
