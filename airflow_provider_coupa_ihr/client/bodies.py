"""Reading an answer's body in bounded memory: inflated here, and capped after inflating. No I/O.

Why not leave decompression to urllib3 or httpx: their decoders inflate whatever a chunk holds in one go, so a
gzip body of 1 MB becomes 1 GB in memory before any cap could look at it (observed: a 298 KB body raised peak
memory by 600-900 MB). The drivers instead ask for ``Accept-Encoding: gzip, deflate`` (:data:`ACCEPT_ENCODING`),
read the raw bytes off the wire, and feed them to one :class:`BodyReader`, which inflates with zlib's
``max_length`` in steps of :data:`INFLATE_STEP`: no more than the cap and one step is ever held, whatever the
library versions. The sync and async clients share it, so they refuse the same answers with the same words.

Two kinds of reading (:func:`reader_for`):

- an answer (2xx) must fit whole in ``ClientConfig.max_response_bytes``: a bigger one fails the call with a
  :class:`~.errors.CoupaError` naming the cap (a truncated JSON page would only fail later, less clearly);
- an error answer is read only as far as its message needs (:data:`ERROR_BODY_BYTES`, what
  :mod:`.responses` parses at most); the rest is left unread.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping

from airflow_provider_coupa_ihr.client.errors import CoupaError
from airflow_provider_coupa_ihr.client.responses import MAX_PARSE_CHARS

__all__ = ["ACCEPT_ENCODING", "ERROR_BODY_BYTES", "INFLATE_STEP", "READ_CHUNK", "BodyReader", "reader_for"]

#: What the clients accept: the encodings :class:`BodyReader` can inflate under its cap.
ACCEPT_ENCODING = "gzip, deflate"
#: An error answer is read this far and no further: :mod:`.responses` parses no more than this anyway.
ERROR_BODY_BYTES = MAX_PARSE_CHARS
#: The most bytes one zlib call may produce: the memory a reader holds beyond its cap.
INFLATE_STEP = 64 * 1024
#: How many raw bytes the drivers ask the socket for at a time.
READ_CHUNK = 64 * 1024
#: A body may name at most this many encodings (``gzip, gzip, ...``): each one holds a zlib window.
MAX_ENCODINGS = 3

_GZIP = frozenset({"gzip", "x-gzip"})
_KNOWN = _GZIP | {"deflate"}


class _Inflater:
    """One ``Content-Encoding`` layer, inflated a step at a time."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in _GZIP
        self._zlib: zlib._Decompress | None = zlib.decompressobj(31) if self.gzip else None
        self._head = b""  # deflate: the first bytes, until they tell zlib-wrapped from raw deflate
        self._ended = False

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of ``data``, in pieces of at most :data:`INFLATE_STEP`."""
        if self._zlib is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            # RFC 9110 says "deflate" is zlib-wrapped; some servers send raw deflate (as urllib3 also allows).
            self._zlib = zlib.decompressobj(15 if _is_zlib_header(data[:2]) else -15)
        inflater = self._zlib
        while data and not self._ended:
            try:
                out = inflater.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise CoupaError(
                    [f"Coupa's answer is not valid {'gzip' if self.gzip else 'deflate'} data ({exc})"],
                    hint="A proxy between the client and Coupa may be altering answers.",
                ) from None
            if out:
                yield out
            data = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data
                if self.gzip and rest[:2] == b"\x1f\x8b":  # another gzip member follows (RFC 1952 allows many)
                    inflater = self._zlib = zlib.decompressobj(31)
                    data = rest
                else:
                    self._ended = True  # bytes after the end of the stream are padding: ignored, as urllib3 does


def _is_zlib_header(head: bytes) -> bool:
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class BodyReader:
    """Feed it the raw bytes of one body; get the inflated body, never holding more than ``limit`` bytes of it.

    ``cut``: keep the first ``limit`` bytes and stop (error answers); else a body past ``limit`` raises a
    :class:`~.errors.CoupaError` naming the cap (answers), and so do an unknown encoding (at once, before any
    byte) and bytes that do not inflate. A cut reader never raises: an error answer it cannot read has no
    message, and the error is still the answer's status.
    """

    def __init__(self, content_encoding: str | None, limit: int, *, cut: bool = False) -> None:
        self.limit = limit
        self.cut = cut
        self.done = False
        self._parts: list[bytes] = []
        self._size = 0
        self._raw = 0
        try:
            self._layers = _layers(content_encoding)
        except CoupaError:
            if not cut:
                raise
            self._layers, self.done = [], True

    def feed(self, chunk: bytes) -> bool:
        """Take one raw chunk; False once the reader wants no more (a cut body is complete)."""
        if self.done or not chunk:
            return not self.done
        self._raw += len(chunk)
        if not self._layers:
            self._keep(chunk)
        else:
            # Even a body that inflates to nothing cannot be read forever: raw bytes count against the cap too.
            if self._raw > self.limit + INFLATE_STEP and not self.cut:
                self._refuse("compressed")
            try:
                for piece in self._inflate(chunk, 0):
                    self._keep(piece)
                    if self.done:
                        break
            except CoupaError:
                if not self.cut:
                    raise
                self.done = True
        return not self.done

    def body(self) -> bytes:
        """The body read so far (all of it once the driver has fed every chunk)."""
        self.done = True
        return b"".join(self._parts)

    def _inflate(self, data: bytes, layer: int) -> Iterator[bytes]:
        # Encodings apply in the order listed, so the last one listed comes off first.
        for piece in self._layers[layer].pieces(data):
            if layer + 1 == len(self._layers):
                yield piece
            else:
                yield from self._inflate(piece, layer + 1)

    def _keep(self, piece: bytes) -> None:
        room = self.limit - self._size
        if len(piece) > room:
            if not self.cut:
                self._refuse("inflated" if self._layers else "")
            piece = piece[:room]
            self.done = True
        self._parts.append(piece)
        self._size += len(piece)
        if self.cut and self._size >= self.limit:
            self.done = True

    def _refuse(self, how: str) -> None:
        size = f"{self.limit:,} bytes"
        raise CoupaError(
            [f"the answer is larger than max_response_bytes ({size}){' once ' + how if how else ''}; not read further"],
            hint="Coupa's pages are far smaller than that: this is likely a proxy's page or a compression bomb. "
            "If the answer is genuine, raise ClientConfig.max_response_bytes.",
        )


def _layers(content_encoding: str | None) -> list[_Inflater]:
    if not content_encoding:
        return []  # most answers: nothing to inflate
    names = [n.strip().lower() for n in (content_encoding or "").split(",")]
    names = [n for n in names if n and n != "identity"]
    unknown = sorted({n for n in names if n not in _KNOWN})
    if unknown or len(names) > MAX_ENCODINGS:
        shown = ", ".join(repr(n[:40]) for n in (unknown or names)[:MAX_ENCODINGS])
        raise CoupaError(
            [f"the answer's Content-Encoding is {shown}, which the client did not ask for and cannot read"],
            hint=f"The client asks for {ACCEPT_ENCODING!r} only; a proxy between the client and Coupa may be "
            "re-encoding answers.",
        )
    return [_Inflater(n) for n in reversed(names)]


def reader_for(status: int, headers: Mapping[str, str], max_response_bytes: int) -> BodyReader:
    """The reader for an answer with ``status`` and ``headers`` (lower-case keys): whole and capped for a 2xx,
    cut to :data:`ERROR_BODY_BYTES` otherwise."""
    encoding = headers.get("content-encoding")
    if 200 <= status < 300:
        return BodyReader(encoding, max_response_bytes)
    return BodyReader(encoding, min(ERROR_BODY_BYTES, max_response_bytes), cut=True)
