"""Small hostile HTTP servers on loopback: what a misbehaving proxy or gateway does to a Coupa client.

Each server is one :class:`HostileServer` with a *script*: a function from the request it received to the
:class:`Reply` it sends. The replies are written by hand on the socket, so a reply can trickle one byte at a
time, lie about its encoding, or never end; the scripts below are the behaviours the reliability suite holds
the client to:

- :func:`echo_token_form`: a token endpoint (or the proxy before it) that refuses the request and echoes the
  form it was sent, as text, JSON (``\\u0026``-escaped) or HTML;
- :func:`trickle`: a server that answers one byte every ``interval`` seconds;
- :func:`ignoring_paging`: an index endpoint that ignores ``id[gt]`` / ``offset`` (or order) and serves the same
  page again and again, or ids out of order;
- :func:`gzip_bomb`: a page whose ``Content-Encoding: gzip`` body inflates to far more than it weighs.

Every server counts the requests it saw, binds 127.0.0.1 only and stops at the end of its ``with`` block.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "HostileServer",
    "Reply",
    "Request",
    "echo_request",
    "echo_token_form",
    "gateway_escape",
    "gzip_bomb",
    "gzip_bomb_body",
    "ignoring_paging",
    "json_reply",
    "token_reply",
    "trickle",
]


@dataclass(frozen=True)
class Request:
    """What the hostile server received."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What to send back. ``chunks`` are written in order; ``byte_interval`` > 0 writes them byte by byte."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    chunks: Sequence[bytes] | Iterator[bytes] = ()
    byte_interval: float = 0.0
    #: Also trickle the status line and headers (a stalled gateway), not only the body.
    trickle_head: bool = False


Script = Callable[[Request], Reply]


@dataclass
class HostileServer:
    """A threaded HTTP server on ``127.0.0.1`` answering every request with ``script(request)``."""

    script: Script
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    tuple(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                owner.requests.append(request)
                reply = owner.script(request)
                self.close_connection = True
                # The client may give up on us mid-reply: exactly what some tests want.
                with contextlib.suppress(OSError):
                    owner._write(self.wfile, reply)

            do_GET = do_POST = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def api_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/api")]

    @staticmethod
    def _write(out: Any, reply: Reply) -> None:
        head = f"HTTP/1.1 {reply.status} Hostile\r\n".encode()
        names = {name.lower() for name, _ in reply.headers}
        headers = list(reply.headers)
        if "connection" not in names:
            headers.append(("Connection", "close"))
        head += b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers) + b"\r\n"
        if reply.byte_interval > 0 and reply.trickle_head:
            _trickle(out, head, reply.byte_interval)
        else:
            out.write(head)
            out.flush()
        for chunk in reply.chunks:
            if reply.byte_interval > 0:
                _trickle(out, chunk, reply.byte_interval)
            else:
                out.write(chunk)
        out.flush()


def _trickle(out: Any, data: bytes, interval: float) -> None:
    for i in range(len(data)):
        out.write(data[i : i + 1])
        out.flush()
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------- scripts
def json_reply(value: Any, status: int = 200, *, extra_headers: Sequence[tuple[str, str]] = ()) -> Reply:
    body = json.dumps(value).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra_headers]
    return Reply(status, headers, [body])


def token_reply(token: str = "hostile-token", expires_in: int = 86399) -> Reply:
    """A well-formed OAuth token answer, so a client gets past the token endpoint to the script under test."""
    return json_reply({"access_token": token, "token_type": "bearer", "expires_in": expires_in})


def echo_token_form(status: int, kind: str) -> Script:
    """Refuse the token request with ``status``, echoing what was sent: ``text``, ``json`` or ``html``.

    The echo carries the body exactly as the client encoded it (``client_secret=Sec%2Bret...``), the decoded
    form values (JSON-escaped with ``ensure_ascii``, so ``&`` is ``\\u0026`` and ``é`` is ``\\u00e9``), and the
    request's headers (a Basic ``Authorization`` header would arrive base64-encoded).
    """

    def script(request: Request) -> Reply:
        raw = request.body.decode("latin-1")
        decoded = dict(parse_qsl(raw, keep_blank_values=True))
        if kind == "json":
            payload = {"error": "invalid_request", "error_description": f"bad form {raw}", "form": decoded}
            payload["headers"] = request.headers
            body = json.dumps(payload, ensure_ascii=True).encode()
            content_type = "application/json"
        elif kind == "html":
            body = f"<html><head><title>Proxy error {raw}</title></head><body>{decoded}{request.headers}</body></html>"
            body_bytes = body.encode()
            headers = [("Content-Type", "text/html"), ("Content-Length", str(len(body_bytes)))]
            return Reply(status, headers, [body_bytes])
        else:
            body = f"refused: {raw} {decoded!r} {request.headers!r}".encode()
            content_type = "text/plain"
        return Reply(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], [body])

    return script


def trickle(page: Any, interval: float, *, head: bool = True, token: bool = True) -> Script:
    """Answer ``page`` as JSON one byte every ``interval`` s (the status line and headers too, with ``head``).

    With ``token`` the token endpoint answers at once, so the trickle is met by an API call.
    """

    def script(request: Request) -> Reply:
        if token and request.path.endswith("/token"):
            return token_reply()
        reply = json_reply(page)
        reply.byte_interval = interval
        reply.trickle_head = head
        return reply

    return script


def ignoring_paging(mode: str, *, page_size: int = 50, first_id: int = 1) -> Script:
    """An index endpoint that misbehaves when paged:

    - ``same``: ignores ``id[gt]``/``offset`` and serves ids ``first_id..first_id+page_size-1`` every time;
    - ``descending``: serves a full page of ids in descending order (ignores ``order_by``);
    - ``repeat``: each page repeats the last id of the page before it, then goes on (a non-advancing key).
    """
    served = {"pages": 0}

    def record(record_id: int) -> dict[str, Any]:
        return {"id": record_id, "status": "Error", "document-type": "InvoiceHeader", "document-id": record_id,
                "resolved": False}

    def script(request: Request) -> Reply:
        if request.path.endswith("/token"):
            return token_reply()
        if request.method != "GET":
            return json_reply({"id": first_id, "resolved": True})
        served["pages"] += 1
        if mode == "same":
            ids = list(range(first_id, first_id + page_size))
        elif mode == "descending":
            start = first_id + page_size * served["pages"]
            ids = list(range(start + page_size, start, -1))
        elif mode == "repeat":
            ids = [first_id] * page_size
        else:
            raise ValueError(mode)
        return json_reply([record(i) for i in ids])

    return script


@lru_cache(maxsize=4)
def gzip_bomb_body(inflated_bytes: int) -> bytes:
    """A gzip member that inflates to ``inflated_bytes`` of JSON-looking text (``[`` then spaces)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    parts = [compressor.compress(b"[")]
    left = inflated_bytes - 1
    while left > 0:
        piece = block if left >= len(block) else block[:left]
        parts.append(compressor.compress(piece))
        left -= len(piece)
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_bomb(inflated_bytes: int) -> Script:
    """Every API page is a gzip body inflating to ``inflated_bytes`` (a 1 GB bomb weighs about 1 MB)."""

    def script(request: Request) -> Reply:
        if request.path.endswith("/token"):
            return token_reply()
        body = gzip_bomb_body(inflated_bytes)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(body))),
        ]
        return Reply(200, headers, [body])

    return script


# ------------------------------------------------------------------------------------------ echoing an API request
def gateway_escape(text: str) -> str:
    """JSON-escape ``text`` the way HTML-safe encoders do (Go, Rails' ``to_json``): ``&``, ``<``, ``>`` and every
    non-ASCII character as ``\\uXXXX``, ``/`` as ``\\/``."""
    escaped = json.dumps(text, ensure_ascii=True)[1:-1]
    for char in "&<>":
        escaped = escaped.replace(char, f"\\u{ord(char):04x}")
    return escaped.replace("/", "\\/")


def echo_request(status: int, kind: str, *, token: str = "hostile-token") -> Script:
    """Answer every API request with ``status``, echoing what it was sent (``text``, ``json`` or ``html``): its
    headers (``Authorization: Bearer ...``, ``X-COUPA-API-KEY``) and body raw, URL-encoded (``quote`` and
    ``quote_plus``) and JSON-escaped as an HTML-safe encoder writes it, as a gateway's error page might. The token
    endpoint answers ``token`` at once, so the echo is met by an API call.
    """
    from urllib.parse import quote, quote_plus

    def script(request: Request) -> Reply:
        if request.path.endswith("/token"):
            return token_reply(token)
        # Credentials first, so they are in what a client quotes even when it quotes only the start of a page.
        first = [request.headers[h] for h in ("authorization", "x-coupa-api-key") if h in request.headers]
        values = [*first, request.body.decode("utf-8", "replace"), *request.headers.values()]
        spelt = [f"{quote(v, safe='')} {quote_plus(v)} {gateway_escape(v)}" for v in values]
        if kind == "json":
            body = json.dumps(
                {"errors": [f"gateway refused {request.method} {request.path}", *spelt], "headers": request.headers}
            ).encode()
            content_type = "application/json"
        elif kind == "html":
            body = (
                f"<html><head><title>Bad gateway {spelt[0]}</title></head>"
                f"<body>{' '.join(spelt)} {request.headers!r}</body></html>"
            ).encode()
            content_type = "text/html"
        else:
            body = f"gateway refused: {' '.join(spelt)} {request.headers!r}".encode()
            content_type = "text/plain"
        return Reply(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], [body])

    return script


# ---------------------------------------------------------------------------------------------------- network
# (added for the network tests: paging that must end, bodies that must be cut, calls that must end in time)
def endless_pages(*, page_size: int = 50) -> Script:
    """A well-behaved index endpoint that never runs out: each page is the next ``page_size`` ids after
    ``id[gt]`` (from 1). Writes (a resolve's PUT) answer the record resolved, and are counted by the server."""

    def script(request: Request) -> Reply:
        if request.path.endswith("/token"):
            return token_reply()
        if request.method != "GET":
            return json_reply({"id": 1, "resolved": True})
        after = int(dict(request.query).get("id[gt]", "0"))
        return json_reply([{"id": i, "resolved": False} for i in range(after + 1, after + 1 + page_size)])

    return script


def misbehaving_when_resolved(mode: str) -> Script:
    """For a wait on a query: nothing unresolved matches (so the wait is over), and the walk for the resolved
    records then meets :func:`ignoring_paging` in ``mode``."""
    misbehave = ignoring_paging(mode)

    def script(request: Request) -> Reply:
        if ("resolved", "false") in request.query:
            return json_reply([])
        return misbehave(request)

    return script


def endless_error_body(status: int = 502, *, chunk: int = 64 * 1024) -> Script:
    """An error answer whose body never ends (no length, never closed): a client must read only what the
    message needs. The bytes written are counted in the returned script's ``sent`` list."""
    sent = [0]

    def body() -> Iterator[bytes]:
        piece = b"<html>" + b"x" * chunk
        while True:
            sent[0] += len(piece)
            yield piece

    def script(request: Request) -> Reply:
        if request.path.endswith("/token"):
            return token_reply()
        return Reply(status, [("Content-Type", "text/html")], body())

    script.sent = sent  # type: ignore[attr-defined]
    return script
