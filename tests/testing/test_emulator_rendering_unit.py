"""``testing.rendering`` without a server: which format, and what the JSON and Rails-style XML look like."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from airflow_provider_coupa_ihr.testing.rendering import (
    MAX_JSON_DEPTH,
    BadJson,
    errors_body,
    quoted,
    read_json,
    render,
    wants_json,
)


def _parse(body: bytes) -> ET.Element:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(body)  # noqa: S314 (our own output)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/xml", False),
        ("text/xml", False),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        ("application/json, text/xml", True),  # same weight: the earlier range wins
        ("application/xml, application/json", False),
        ("application/json, */*", True),  # same weight: the more specific range wins
        ("*/*;q=0.1, application/json;q=0.1", True),
        ("application/*", False),
        ("application/json;q=0", False),
        ("application/json;q=0.4, text/xml;q=0.5", False),
        ("application/json;q=2", False),  # a weight above 1 is unreadable: the range is ignored
        ("application/json;q=, application/xml", False),
        ("json", False),
        ("application/jsonp", False),
        (",;,", False),
    ],
)
def test_wants_json(accept: str | None, expected: bool) -> None:
    assert wants_json(accept) is expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested more than 100 levels"),
        (b"[" * 101 + b"]" * 101, "nested more than 100 levels"),
        (b'{"a": ' * 101 + b"1" + b"}" * 101, "nested more than 100 levels"),
        (b"9" * 5000, "not valid JSON"),
    ],
)
def test_read_json_refuses_what_rails_refuses(raw: bytes, problem: str) -> None:
    with pytest.raises(BadJson, match=problem):
        read_json(raw)


def test_read_json_takes_nesting_up_to_rails_max_nesting() -> None:
    assert MAX_JSON_DEPTH == 100
    nested = read_json(b"[" * 100 + b"]" * 100)
    for _ in range(99):
        [nested] = nested
    assert nested == []
    assert read_json('{"a": "é"}'.encode()) == {"a": "é"}


def test_quoted_cuts_long_values() -> None:
    assert quoted("short") == "'short'"
    assert len(quoted("x" * 10_000)) == 60
    assert quoted("x" * 10_000).endswith("...")


def test_json_is_compact_and_bare() -> None:
    body, ctype = render(
        [{"id": 1, "document-type": "InvoiceHeader"}], as_json=True, root="integration-history-records"
    )
    assert ctype == "application/json; charset=utf-8"
    assert body == b'[{"id":1,"document-type":"InvoiceHeader"}]'


def test_xml_types() -> None:
    value = {
        "id": 7,
        "resolved": True,
        "status": "Success",
        "document-status": None,
        "created-at": "2024-03-25T18:38:00-07:00",
        "start-time": "2024-03-25T18:38:00-07:00",
        "integration": {"code": "SAP"},
        "responses": [{"response-code": "E1"}],
        "integration-errors": [],
        "entries": [{"x": 1}],
    }
    body, ctype = render(value, as_json=False, root="integration-history-record")
    assert ctype == "application/xml; charset=utf-8"
    root = _parse(body)
    assert root.tag == "integration-history-record"
    assert (root.find("id").get("type"), root.findtext("id")) == ("integer", "7")  # type: ignore[union-attr]
    assert (root.find("resolved").get("type"), root.findtext("resolved")) == ("boolean", "true")  # type: ignore[union-attr]
    assert root.find("status").attrib == {}  # type: ignore[union-attr]
    assert root.find("document-status").attrib == {"nil": "true"}  # type: ignore[union-attr]
    assert root.find("created-at").get("type") == "dateTime"  # type: ignore[union-attr]
    assert root.find("start-time").get("type") == "dateTime"  # type: ignore[union-attr]
    assert root.findtext("integration/code") == "SAP"
    assert root.find("responses").get("type") == "array"  # type: ignore[union-attr]
    assert [e.tag for e in root.find("responses")] == ["response"]  # type: ignore[union-attr]
    assert list(root.find("integration-errors")) == []  # type: ignore[arg-type]
    assert [e.tag for e in root.find("entries")] == ["entry"]  # type: ignore[union-attr]


def test_xml_escapes_text() -> None:
    body, _ = render({"external-id": "<A&B>"}, as_json=False, root="integration-history-record")
    assert b"&lt;A&amp;B&gt;" in body
    assert _parse(body).findtext("external-id") == "<A&B>"


def test_xml_list_root() -> None:
    body, _ = render([{"id": 1}, {"id": 2}], as_json=False, root="integration-runs")
    root = _parse(body)
    assert root.get("type") == "array"
    assert [(e.tag, e.findtext("id")) for e in root] == [("integration-run", "1"), ("integration-run", "2")]


def test_errors_body_shapes() -> None:
    body, ctype = errors_body("integration_history_record", ["A can't be blank", "B"], as_json=True)
    assert ctype.startswith("application/json")
    assert json.loads(body) == {"errors": {"integration_history_record": ["A can't be blank", "B"]}}
    body, ctype = errors_body("integration_history_record", ["A can't be blank", "B"], as_json=False)
    assert ctype.startswith("application/xml")
    root = _parse(body)
    assert root.tag == "errors"
    assert [(e.tag, e.text) for e in root] == [("error", "A can't be blank"), ("error", "B")]
