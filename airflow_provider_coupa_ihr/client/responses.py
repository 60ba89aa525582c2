"""What of an HTTP answer's body may be read, quoted or logged: Coupa's error messages, cut and redacted.

Coupa answers errors as JSON, as XML (to clients that forget ``Accept``), and proxies answer HTML pages whatever
was asked; this module turns any of them into a short list of messages. Two rules hold for everything it
returns: nothing secret (:func:`redact` with the secrets the caller knows, in every spelling an echoing proxy
may use: :func:`secret_spellings`) and nothing huge (bodies are cut to :data:`MAX_PARSE_CHARS` before parsing
and quoted text to :data:`MAX_TEXT_CHARS`, after redaction, so a cut never leaves half a secret readable), so a
50 MB proxy error page cannot become a 50 MB log line.

This is the one home of "every spelling of a secret": the client redacts with :func:`redact`, and the hook
gives each of :func:`secret_spellings` to Airflow's masker.
"""

from __future__ import annotations

import base64
import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "LOGGED_BODY_CHARS",
    "MAX_PARSE_CHARS",
    "MAX_TEXT_CHARS",
    "body_preview",
    "parse_error_messages",
    "redact",
    "secret_spellings",
]

#: Bodies are cut to this many characters before parsing: Coupa's error documents are tiny, and anything
#: bigger is a proxy page or an attack, neither of which deserves a full parse.
MAX_PARSE_CHARS = 64 * 1024
#: Quoted (unparsed) body text is cut to this many characters, so it fits on one readable log line.
MAX_TEXT_CHARS = 500
#: Longest slice of a response body that may reach a log line.
LOGGED_BODY_CHARS = 300


#: Spellings shorter than this are not hidden on their own (a base64 fragment of a few characters would match
#: unrelated text); the secret itself always is, however short.
MIN_ENCODED_CHARS = 8


def secret_spellings(secret: str, *, user: str | None = None) -> frozenset[str]:
    """The whole spellings of ``secret`` a leak usually takes, for maskers that match literal text (Airflow's).

    Raw; percent-encoded as ``quote`` (with and without ``/`` kept) and ``quote_plus`` write it; JSON-escaped
    (``\\u00e9``; ``\\/``; every symbol as ``\\uXXXX``, as HTML-safe encoders write ``&``); HTML-escaped;
    ``repr``- and ``ascii``-escaped; its UTF-8 read as Latin-1 (mojibake); base64, and with ``user`` the base64 of
    an HTTP Basic ``user:secret``. A short list on purpose: Airflow recompiles its masker for each one given.

    :func:`redact` hides all of these and more: any mixture of the character-level spellings (a body half
    percent-encoded, half JSON-escaped), lower-case hex, Latin-1 percent-encoding, HTML entities, and base64 at
    any alignment inside a longer encoded text (an ``id:secret`` Basic header, say).
    """
    if not secret:
        return frozenset()
    as_json = json.dumps(secret)[1:-1]
    found = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        as_json,
        as_json.replace("/", "\\/"),
        json.dumps(secret, ensure_ascii=False)[1:-1],
        "".join(f"\\u{ord(ch):04x}" if not ch.isalnum() else ch for ch in secret),
        html.escape(secret),
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        secret.encode().decode("latin-1"),
        base64.b64encode(secret.encode()).decode(),
    }
    if user is not None:
        found.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
        if _encodings(secret)[-1] == "latin-1":  # requests encodes Basic credentials as Latin-1
            found.add(base64.b64encode(f"{user}:{secret}".encode("latin-1")).decode())
    return frozenset(s for s in found if s == secret or len(s) >= min(MIN_ENCODED_CHARS, len(secret)))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every spelling of every non-empty secret in ``text`` (see :func:`secret_spellings`) with ``***``.

    Longer secrets go first, so a secret that contains another (a token that embeds the client id, say) is
    hidden whole instead of leaving its tail readable.
    """
    unique = tuple(sorted({s for s in secrets if s}, key=lambda s: (-len(s), s)))
    if not unique or not text:
        return text
    return _pattern(unique).sub("***", text)


def _encodings(secret: str) -> tuple[str, ...]:
    try:
        secret.encode("latin-1")
    except UnicodeEncodeError:
        return ("utf-8",)
    return ("utf-8", "latin-1")


def _byte_forms(secret: str) -> tuple[bytes, ...]:
    return tuple(dict.fromkeys(secret.encode(encoding) for encoding in _encodings(secret)))


def _base64_spellings(raw: bytes, *, cores: bool = True) -> set[str]:
    """Whole base64 encodings of ``raw``; with ``cores`` also, for each of the three alignments ``raw`` can take
    inside a longer encoded text, the stretch of characters that depends on ``raw`` alone."""
    found = set()
    whole = base64.b64encode(raw).decode()
    found |= {whole, whole.rstrip("=")}
    if cores:
        for pad in range(3):
            encoded = base64.b64encode(b"\0" * pad + raw).decode()
            start = (0, 2, 3)[pad]
            end = (pad + len(raw)) // 3 * 4
            found.add(encoded[start:end])
    found |= {s.replace("+", "-").replace("/", "_") for s in found}
    return {s for s in found if len(s) >= MIN_ENCODED_CHARS}


@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for all ``secrets``: each character in any of its spellings, or a base64 spelling whole."""
    alternatives: list[str] = []
    for secret in secrets:
        encoded = sorted((s for r in _byte_forms(secret) for s in _base64_spellings(r)), key=len, reverse=True)
        alternatives += [re.escape(s) for s in encoded if s != secret]
        alternatives.append("".join(_char_pattern(ch) for ch in secret))
    return re.compile("|".join(alternatives))


@lru_cache(maxsize=512)
def _char_pattern(ch: str) -> str:
    """A regex group matching ``ch`` as raw text, percent-, JSON-, Python-, HTML-escaped or as mojibake."""
    code = ord(ch)
    utf8 = ch.encode()
    forms = [re.escape(ch)]
    if ch == " ":
        forms.append(r"\+")
    forms.append("".join(f"%{_any_case(f'{b:02x}')}" for b in utf8))
    if code < 256 and code >= 128:
        forms.append(f"%{_any_case(f'{code:02x}')}")
    if code <= 0xFFFF:
        forms.append(rf"\\u{_any_case(f'{code:04x}')}")
    else:
        high, low = divmod(code - 0x10000, 0x400)
        forms.append(rf"\\u{_any_case(f'{0xD800 + high:04x}')}\\u{_any_case(f'{0xDC00 + low:04x}')}")
        forms.append(rf"\\U{_any_case(f'{code:08x}')}")
    if code < 256:
        forms.append(rf"\\x{_any_case(f'{code:02x}')}")
    if code >= 128:
        forms.append("".join(rf"\\x{_any_case(f'{b:02x}')}" for b in utf8))
        forms.append(re.escape(utf8.decode("latin-1")))
        forms.append("\ufffd")  # its Latin-1 byte read as UTF-8
    if ch in "'\"\\/":
        forms.append(re.escape("\\" + ch))
    if ch in _SHORT_ESCAPES:
        forms.append(re.escape(_SHORT_ESCAPES[ch]))
    forms.append(f"&#0*{code};")
    forms.append(f"&#[xX]0*{_any_case(f'{code:x}')};")
    named = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}.get(ch)
    if named:
        forms.append(f"&{named};")
    # Escaped forms before the raw one: the first that matches wins, so a secret ending in "%" must take a "%25"
    # whole rather than leave "25" of it readable.
    return "(?:" + "|".join([*forms[1:], forms[0]]) + ")"


#: How JSON and ``repr`` spell control characters.
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _any_case(hex_digits: str) -> str:
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in hex_digits)


def parse_error_messages(
    body: bytes | str | None, content_type: str | None = None, secrets: Iterable[str] = ()
) -> list[str]:
    """Coupa's error messages from a JSON, XML or unknown body; the cut body text when nothing parses.

    The content type is a first guess only: Coupa answers XML to clients that forget ``Accept``, and proxies
    answer HTML whatever was asked, so the body's first character decides when the declared type fails.
    ``secrets`` are redacted from the body before it is parsed (their escaped spellings) and from each message
    before it is cut (what parsing unescaped), so no message can carry a secret or half of one.
    """
    if body is None:
        return []
    known = tuple(s for s in secrets if s)
    text = body[: MAX_PARSE_CHARS * 4].decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = redact(text[: MAX_PARSE_CHARS + _margin(known)], known)[:MAX_PARSE_CHARS].strip()
    if not text:
        return []
    return [_cut(redact(message, known)) for message in _messages(text, content_type)]


def _messages(text: str, content_type: str | None) -> list[str]:
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
    return [text]


def _margin(secrets: Sequence[str]) -> int:
    """How far past a cut to read so that a secret spelt across the cut is still found whole (a character may
    take a dozen in its longest spelling)."""
    return 12 * max(map(len, secrets), default=0)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def _json_messages(text: str) -> list[str] | None:
    if not text.startswith(("{", "[")):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, Mapping):
        if "errors" in data:
            return _flatten(data["errors"])
        if "error" in data:
            # OAuth 2.0 (RFC 6749 §5.2): {"error": "invalid_client", "error_description": "..."}.
            code, description = data.get("error"), data.get("error_description")
            parts = [str(p)[:MAX_TEXT_CHARS] for p in (code, description) if p not in (None, "")]
            return [": ".join(parts)] if parts else None
        if isinstance(data.get("message"), str):
            return [data["message"]]
        return None
    return _flatten(data)  # text starting with "[" that parses is a list


def _flatten(value: Any, depth: int = 0) -> list[str]:
    """Every message in Coupa's ``errors`` value, however nested: dict values, list items or a bare string."""
    if value is None or value == "":
        return []
    if depth > 20:  # deeper than any error document: a hostile body, quoted as one message
        return [str(value)[:MAX_TEXT_CHARS]]
    if isinstance(value, Mapping):
        if isinstance(value.get("message"), str):
            return [value["message"]]
        return [m for v in value.values() for m in _flatten(v, depth + 1)]
    if isinstance(value, list):
        return [m for v in value for m in _flatten(v, depth + 1)]
    return [str(value)]


def _xml_messages(text: str) -> list[str] | None:
    if not text.startswith("<"):
        return None
    # Coupa's error documents never declare a DTD; refusing any keeps entity expansion out of the picture
    # (the stdlib parser is otherwise fine here: the input is small and cut to MAX_PARSE_CHARS).
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        return None
    try:
        root = ET.fromstring(text)  # noqa: S314 - DTDs refused above, size bounded by MAX_PARSE_CHARS
    except (ET.ParseError, RecursionError):
        return None
    found = [" ".join("".join(e.itertext()).split()) for e in root.iter() if _local(e.tag) == "error"]
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
        return title.group(1)
    no_scripts = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
    return re.sub(r"<[^>]+>", " ", no_scripts)


def body_preview(body: bytes, secrets: Sequence[str]) -> str:
    """A short, redacted slice of a body for log lines: never a whole payload, never a secret (nor half of one:
    the slice is redacted before it is cut)."""
    known = [s for s in secrets if s]
    text = body[: LOGGED_BODY_CHARS + _margin(known)].decode("utf-8", "replace")
    return redact(text, known)[:LOGGED_BODY_CHARS] + ("..." if len(body) > LOGGED_BODY_CHARS else "")
