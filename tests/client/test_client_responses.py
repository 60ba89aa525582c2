"""Reading an answer's body: Coupa's messages from every body shape, cut and redacted; short log previews."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_coupa_ihr.client.responses import (
    LOGGED_BODY_CHARS,
    MAX_PARSE_CHARS,
    MAX_TEXT_CHARS,
    body_preview,
    parse_error_messages,
    redact,
    secret_spellings,
)

JSON = "application/json; charset=utf-8"
XML = "application/xml"
SECRET = "s3cr3t"


# ------------------------------------------------------------------------------------ parse_error_messages
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"errors": {"integration_history_record": ["Document type can't be blank"]}},
            ["Document type can't be blank"],
        ),
        ({"errors": {"a": ["one", "two"], "b": "three"}}, ["one", "two", "three"]),
        ({"errors": {"a": {"b": ["deep"]}}}, ["deep"]),
        ({"errors": ["one", "two"]}, ["one", "two"]),
        ({"errors": [{"field": "x", "message": "with message"}]}, ["with message"]),
        ({"errors": "just text"}, ["just text"]),
        ({"errors": {"a": [None, "", 5]}}, ["5"]),
        ({"errors": {}}, []),
        ({"error": "invalid_client"}, ["invalid_client"]),
        ({"error": "invalid_scope", "error_description": "bad scope"}, ["invalid_scope: bad scope"]),
        ({"error": "", "error_description": None}, ['{"error": "", "error_description": null}']),
        ({"message": "Generic failure"}, ["Generic failure"]),
        ({"status": "nope"}, ['{"status": "nope"}']),
        (["top", "level"], ["top", "level"]),
    ],
)
def test_json_shapes(body: object, expected: list[str]) -> None:
    assert parse_error_messages(json.dumps(body).encode(), JSON) == expected


def test_json_scalar_falls_back_to_text() -> None:
    assert parse_error_messages(b'"oops"', JSON) == ['"oops"']


def test_json_declared_but_xml_sent_is_still_read() -> None:
    assert parse_error_messages(b"<errors><error>From XML</error></errors>", JSON) == ["From XML"]


def test_xml_declared_but_json_sent_is_still_read() -> None:
    assert parse_error_messages(b'{"errors": ["From JSON"]}', XML) == ["From JSON"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n<errors>\n'
            "  <error>Document type can't be blank</error>\n"
            "  <error>Document id is not a number</error>\n</errors>",
            ["Document type can't be blank", "Document id is not a number"],
        ),
        ("<errors><error>  spaced\n  out </error></errors>", ["spaced out"]),
        ("<errors><error><b>nested</b> text</error></errors>", ["nested text"]),
        ('<errors xmlns="urn:x"><error>namespaced</error></errors>', ["namespaced"]),
        ("<error>alone</error>", ["alone"]),
        ("<errors></errors>", []),
        ("<errors><error></error></errors>", []),
        ("<hash><status>500</status></hash>", ["<hash><status>500</status></hash>"]),
    ],
)
def test_xml_shapes(body: str, expected: list[str]) -> None:
    assert parse_error_messages(body.encode(), XML) == expected


def test_xml_with_a_dtd_is_not_parsed() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<errors><error>&lol2;</error></errors>"
    )
    (message,) = parse_error_messages(bomb.encode(), XML)
    assert "lollol" not in message
    assert len(message) <= MAX_TEXT_CHARS


def test_broken_xml_falls_back_to_text() -> None:
    assert parse_error_messages(b"<errors><error>unclosed", XML) == ["<errors><error>unclosed"]


def test_garbage_falls_back_to_cut_text() -> None:
    assert parse_error_messages(b"Service   temporarily\nunavailable", "text/plain") == [
        "Service temporarily unavailable"
    ]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert parse_error_messages(b"bad \xff\xfe bytes", None) == ["bad \ufffd\ufffd bytes"]


def test_broken_json_falls_back_to_text() -> None:
    assert parse_error_messages(b'{"errors": [', JSON) == ['{"errors": [']


@pytest.mark.parametrize("body", [None, b"", "   \n"])
def test_empty_bodies_have_no_messages(body: bytes | str | None) -> None:
    assert parse_error_messages(body, JSON) == []


def test_huge_body_is_cut_before_parsing_and_when_quoted() -> None:
    huge = b'{"errors": ["' + b"x" * (MAX_PARSE_CHARS * 4) + b'"]}'
    (message,) = parse_error_messages(huge, JSON)
    assert len(message) == MAX_TEXT_CHARS
    assert message.endswith("…")


def test_huge_valid_message_is_cut_when_quoted() -> None:
    (message,) = parse_error_messages(json.dumps({"errors": ["y" * 5000]}), JSON)
    assert len(message) == MAX_TEXT_CHARS


def test_huge_xml_is_cut_and_still_safe() -> None:
    huge = b"<errors><error>" + b"z" * (MAX_PARSE_CHARS * 2) + b"</error></errors>"
    (message,) = parse_error_messages(huge, XML)
    assert len(message) <= MAX_TEXT_CHARS


def test_html_page_is_reduced_to_its_title() -> None:
    page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Oops</h1></body></html>"
    assert parse_error_messages(page, "text/html") == ["502 Bad Gateway"]


def test_html_without_title_is_reduced_to_visible_text() -> None:
    page = (
        b"<html><head><style>p{color:red}</style><script>var token='x';</script></head>"
        b"<body><p>Gateway</p> <p>timed out</p></body></html>"
    )
    assert parse_error_messages(page, None) == ["Gateway timed out"]


def test_html_with_empty_title_uses_body_text() -> None:
    assert parse_error_messages(b"<html><title> </title><body>Down</body></html>", "text/html") == ["Down"]


# ------------------------------------------------------------------------------------------------ redact
def test_redact_replaces_each_secret_longest_first() -> None:
    assert redact("abc abcdef xyz", ["abc", "abcdef", ""]) == "*** *** xyz"
    assert redact("nothing here", []) == "nothing here"
    assert redact("a-a-a", iter(["a"])) == "***-***-***"


def test_body_preview_is_short_and_redacted() -> None:
    body = (SECRET + " " + "x" * 1000).encode()
    preview = body_preview(body, [SECRET])
    assert SECRET not in preview
    assert preview.startswith("***")
    assert preview.endswith("...")
    assert len(preview) < 320


# ------------------------------------------------------------------------------------------------ every spelling
HOSTILE = "Sec+ret/@=&%é-x7Q\"'\\"


def _lead_encodings(secret: str) -> dict[str, str]:
    """The spellings the hostile suite searches for (tests/reliability/test_reliability_hostile_secrets.py)."""
    return {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "quote_keep_slash": quote(secret),
        "json": json.dumps(secret)[1:-1],
        "json_ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "json_unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
        "repr": repr(secret)[1:-1],
        "ascii": ascii(secret)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic": base64.b64encode(f"client-id:{secret}".encode()).decode(),
        "latin1_utf8": secret.encode().decode("latin-1"),
        "html": html.escape(secret),
    }


def test_secret_spellings_name_every_usual_spelling_and_redact_hides_each() -> None:
    spellings = secret_spellings(HOSTILE, user="client-id")
    for name, spelt in _lead_encodings(HOSTILE).items():
        assert spelt in spellings, name
    for spelt in spellings:
        assert spelt not in redact(f"before {spelt} after", [HOSTILE])
    assert secret_spellings("") == frozenset()


@pytest.mark.parametrize(
    "spelt",
    [
        pytest.param(re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(HOSTILE, safe="")), id="lower-hex"),
        pytest.param(quote(HOSTILE, safe="", encoding="latin-1"), id="latin-1-percent"),
        pytest.param(quote(HOSTILE[:8], safe="") + json.dumps(HOSTILE[8:])[1:-1], id="half-percent-half-json"),
        pytest.param("".join(f"&#{ord(c)};" for c in HOSTILE), id="html-decimal-entities"),
        pytest.param("".join(f"&#x{ord(c):X};" for c in HOSTILE), id="html-hex-entities"),
        pytest.param(HOSTILE.replace("é", "\ufffd"), id="latin-1-byte-read-as-utf-8"),
        pytest.param(repr(HOSTILE.encode())[2:-1], id="bytes-repr"),
        pytest.param(base64.urlsafe_b64encode(HOSTILE.encode()).decode(), id="urlsafe-base64"),
        pytest.param(base64.b64encode(b"user:" + HOSTILE.encode("latin-1")).decode(), id="basic-latin-1"),
        pytest.param(base64.b64encode(b"xx-any-prefix:" + HOSTILE.encode() + b":suffix").decode(), id="base64-inside"),
    ],
)
def test_redact_hides_spellings_beyond_the_usual_ones(spelt: str) -> None:
    hidden = redact(f"<{spelt}>", [HOSTILE])
    assert spelt not in hidden
    assert "***" in hidden


def test_a_secret_with_control_characters_is_hidden_in_its_escaped_spellings_too() -> None:
    secret = "line1\r\nline2\tend"
    for spelt in (json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret)):
        assert redact(f"[{spelt}]", [secret]) == "[***]"


def test_a_message_cut_short_never_keeps_half_a_secret() -> None:
    secret = "half-a-secret-" + "k" * 40
    for at in (MAX_TEXT_CHARS - 30, MAX_TEXT_CHARS - 5, MAX_TEXT_CHARS + 10):
        body = json.dumps({"errors": ["x" * at + quote_plus(secret) + " tail"]}).encode()
        (message,) = parse_error_messages(body, JSON, [secret])
        assert "half-a-sec" not in message
        assert len(message) <= MAX_TEXT_CHARS


def test_a_secret_escaped_in_a_json_body_is_hidden_before_parsing_and_after() -> None:
    secret = "s3cr&t/é"
    body = json.dumps({"error": "invalid_client", "error_description": f"got {secret}", "form": secret})
    assert "\\u0026" not in body  # json.dumps leaves & alone; escape it as HTML-safe encoders do
    body = body.replace("&", "\\u0026")
    (message,) = parse_error_messages(body, JSON, [secret])
    assert message == "invalid_client: got ***"


def test_body_preview_does_not_cut_a_secret_in_half() -> None:
    secret = "preview-secret-" + "z" * 30
    body = ("x" * (LOGGED_BODY_CHARS - 10) + secret + "y" * 500).encode()
    preview = body_preview(body, [secret])
    assert "preview-se" not in preview
    assert preview.endswith("...")


def test_deeply_nested_errors_are_read_without_recursion_errors() -> None:
    body = '{"errors": ' + "[" * 5000 + '"deep"' + "]" * 5000 + "}"
    assert len(parse_error_messages(body, JSON)) == 1


@pytest.mark.parametrize("secret", ["ends-in-percent%", "ends-in-amp&", "ends-in-backslash\\", "ends-in-é"])
def test_an_encoded_last_character_is_hidden_whole(secret: str) -> None:
    for spelt in (quote_plus(secret), json.dumps(secret, ensure_ascii=True)[1:-1], repr(secret)[1:-1]):
        assert redact(f"[{spelt}]", [secret]) == "[***]", spelt
