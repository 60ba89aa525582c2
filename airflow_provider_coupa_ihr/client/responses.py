"""What of an HTTP answer's body may be read, quoted or logged: Coupa's error messages, cut and redacted.

Coupa answers errors as JSON, as XML (to clients that forget ``Accept``), and proxies answer HTML pages whatever
was asked; this module turns any of them into a short list of messages. Two rules hold for everything it
returns: nothing secret (:func:`redact` with the secrets the caller knows) and nothing huge (bodies are cut to
:data:`MAX_PARSE_CHARS` before parsing and quoted text to :data:`MAX_TEXT_CHARS`), so a 50 MB proxy error
page cannot become a 50 MB log line.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["LOGGED_BODY_CHARS", "MAX_PARSE_CHARS", "MAX_TEXT_CHARS", "body_preview", "parse_error_messages", "redact"]

#: Bodies are cut to this many characters before parsing: Coupa's error documents are tiny, and anything
#: bigger is a proxy page or an attack, neither of which deserves a full parse.
MAX_PARSE_CHARS = 64 * 1024
#: Quoted (unparsed) body text is cut to this many characters, so it fits on one readable log line.
MAX_TEXT_CHARS = 500
#: Longest slice of a response body that may reach a log line.
LOGGED_BODY_CHARS = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every non-empty secret in ``text`` with ``***``.

    Longer secrets go first, so a secret that contains another (a token that embeds the client id, say) is
    hidden whole instead of leaving its tail readable.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def parse_error_messages(body: bytes | str | None, content_type: str | None = None) -> list[str]:
    """Coupa's error messages from a JSON, XML or unknown body; the cut body text when nothing parses.

    The content type is a first guess only: Coupa answers XML to clients that forget ``Accept``, and proxies
    answer HTML whatever was asked, so the body's first character decides when the declared type fails.
    """
    if body is None:
        return []
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text[:MAX_PARSE_CHARS].strip()
    if not text:
        return []
    kind = (content_type or "").split(";")[0].strip().lower()
    parsers = [_json_messages, _xml_messages]
    if "xml" in kind or text.startswith("<"):
        parsers.reverse()
    for parser in parsers:
        found = parser(text)
        if found is not None:
            return found
    if "html" in kind or text[:200].lower().lstrip().startswith(("<!doctype html", "<html")):
        return [_html_summary(text)]
    return [_cut(text)]


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def _json_messages(text: str) -> list[str] | None:
    if not text.startswith(("{", "[")):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, Mapping):
        if "errors" in data:
            return _flatten(data["errors"])
        if "error" in data:
            # OAuth 2.0 (RFC 6749 §5.2): {"error": "invalid_client", "error_description": "..."}.
            code, description = data.get("error"), data.get("error_description")
            parts = [_cut(str(p)) for p in (code, description) if p not in (None, "")]
            return [": ".join(parts)] if parts else None
        if isinstance(data.get("message"), str):
            return [_cut(data["message"])]
        return None
    return _flatten(data)  # text starting with "[" that parses is a list


def _flatten(value: Any) -> list[str]:
    """Every message in Coupa's ``errors`` value, however nested: dict values, list items or a bare string."""
    if value is None or value == "":
        return []
    if isinstance(value, Mapping):
        if isinstance(value.get("message"), str):
            return [_cut(value["message"])]
        return [m for v in value.values() for m in _flatten(v)]
    if isinstance(value, list):
        return [m for v in value for m in _flatten(v)]
    return [_cut(str(value))]


def _xml_messages(text: str) -> list[str] | None:
    if not text.startswith("<"):
        return None
    # Coupa's error documents never declare a DTD; refusing any keeps entity expansion out of the picture
    # (the stdlib parser is otherwise fine here: the input is small and cut to MAX_PARSE_CHARS).
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        return None
    try:
        root = ET.fromstring(text)  # noqa: S314 - DTDs refused above, size bounded by MAX_PARSE_CHARS
    except ET.ParseError:
        return None
    found = [_cut(" ".join("".join(e.itertext()).split())) for e in root.iter() if _local(e.tag) == "error"]
    found = [m for m in found if m]
    if found:
        return found
    if _local(root.tag) == "errors":
        return []
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _html_summary(text: str) -> str:
    """A proxy's HTML error page, reduced to its title (or its visible text)."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        return _cut(title.group(1))
    no_scripts = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
    return _cut(re.sub(r"<[^>]+>", " ", no_scripts))


def body_preview(body: bytes, secrets: Sequence[str]) -> str:
    """A short, redacted slice of a body for log lines: never a whole payload, never a secret."""
    text = body[:LOGGED_BODY_CHARS].decode("utf-8", "replace")
    return redact(text, secrets) + ("..." if len(body) > LOGGED_BODY_CHARS else "")
