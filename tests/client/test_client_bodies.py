"""The body reader both clients share: inflating gzip and deflate under a cap, cutting error bodies, refusing the
rest. Pure: chunks are fed by hand."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterable

import pytest

from airflow_provider_coupa_ihr.client.bodies import (
    ACCEPT_ENCODING,
    ERROR_BODY_BYTES,
    INFLATE_STEP,
    BodyReader,
    reader_for,
)
from airflow_provider_coupa_ihr.client.errors import CoupaError

BODY = b'[{"id": 1, "status": "Error"}]' * 1000  # 30 KB that compresses well


def fed(reader: BodyReader, data: bytes, chunk: int = 1000) -> bytes:
    for start in range(0, len(data), chunk):
        if not reader.feed(data[start : start + chunk]):
            break
    return reader.body()


def feed_all(reader: BodyReader, pieces: Iterable[bytes]) -> None:
    for piece in pieces:
        reader.feed(piece)


def deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


def chunks_of_zeros(total: int) -> Iterable[bytes]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    for _ in range(total >> 20):
        if out := compressor.compress(block):
            yield out
    yield compressor.flush()


def test_the_clients_ask_only_for_what_the_reader_inflates() -> None:
    assert ACCEPT_ENCODING == "gzip, deflate"


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZip ", gzip.compress),
        ("deflate", lambda b: deflate(b, 15)),  # RFC 9110: zlib-wrapped
        ("deflate", lambda b: deflate(b, -15)),  # what some servers send: raw deflate
        ("deflate, gzip", lambda b: gzip.compress(deflate(b, 15))),  # applied in the order listed
    ],
)
def test_every_encoding_asked_for_is_inflated_whatever_the_chunking(encoding, encode, chunk) -> None:
    assert fed(BodyReader(encoding, 1 << 20), encode(BODY), chunk) == BODY


def test_gzip_members_one_after_another_are_one_body() -> None:
    assert fed(BodyReader("gzip", 1 << 20), gzip.compress(b"[1, ") + gzip.compress(b"2]")) == b"[1, 2]"


def test_bytes_after_the_end_of_the_stream_are_ignored() -> None:
    assert fed(BodyReader("gzip", 1 << 20), gzip.compress(b"[]") + b"\0\0\0\0") == b"[]"


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_body_past_the_cap_is_refused_naming_it(encoding: str | None) -> None:
    data = BODY if encoding is None else gzip.compress(BODY)
    with pytest.raises(CoupaError) as refused:
        fed(BodyReader(encoding, 10_000), data)
    assert "max_response_bytes (10,000 bytes)" in str(refused.value)
    assert "raise ClientConfig.max_response_bytes" in str(refused.value)


def test_a_body_exactly_at_the_cap_is_read() -> None:
    assert fed(BodyReader("gzip", len(BODY)), gzip.compress(BODY)) == BODY


def test_a_gzip_bomb_is_refused_holding_no_more_than_the_cap() -> None:
    limit = 1 << 20
    reader = BodyReader("gzip", limit)
    bomb = list(chunks_of_zeros(256 << 20))  # 256 MB inflated, about 250 KB on the wire
    tracemalloc.start()
    try:
        with pytest.raises(CoupaError, match="max_response_bytes"):
            feed_all(reader, bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit + 4 * INFLATE_STEP  # the cap and a few steps of inflating


def test_a_body_that_inflates_to_nothing_cannot_be_read_forever() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    reader = BodyReader("gzip", 64 * 1024)
    reader.feed(compressor.compress(b""))  # the gzip header
    empty_block = compressor.flush(zlib.Z_FULL_FLUSH)  # an empty stored block: 5 bytes, inflating to nothing
    with pytest.raises(CoupaError, match="compressed"):
        feed_all(reader, (empty_block * 100 for _ in range(100_000)))


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br", "gzip, gzip, gzip, gzip"])
def test_encodings_not_asked_for_are_refused_before_any_byte(encoding: str) -> None:
    with pytest.raises(CoupaError) as refused:
        BodyReader(encoding, 1 << 20)
    assert "Content-Encoding" in str(refused.value)
    assert "did not ask for" in str(refused.value)


def test_bytes_that_do_not_inflate_are_refused() -> None:
    with pytest.raises(CoupaError, match="not valid gzip"):
        fed(BodyReader("gzip", 1 << 20), b"this is not gzip at all")


def test_an_error_body_is_cut_where_its_message_ends_and_reading_stops() -> None:
    reader = BodyReader(None, 100, cut=True)
    assert reader.feed(b"x" * 60)
    assert not reader.feed(b"y" * 60)  # enough: the driver stops reading here
    assert not reader.feed(b"z" * 60)
    assert reader.body() == b"x" * 60 + b"y" * 40


def test_an_error_body_the_reader_cannot_read_is_empty_not_an_error() -> None:
    assert fed(BodyReader("br", 100, cut=True), b"\x1b\x00\x00") == b""
    assert fed(BodyReader("gzip", 100, cut=True), b"not gzip") == b""
    assert fed(BodyReader("gzip", 100, cut=True), gzip.compress(b"e" * 10_000)) == b"e" * 100


@pytest.mark.parametrize(("status", "cut", "limit"), [(200, False, 5000), (204, False, 5000), (404, True, 5000)])
def test_answers_are_read_whole_and_errors_cut(status: int, cut: bool, limit: int) -> None:
    reader = reader_for(status, {"content-encoding": "gzip"}, limit)
    assert (reader.cut, reader.limit) == (cut, limit)
    assert reader_for(500, {}, 10 * ERROR_BODY_BYTES).limit == ERROR_BODY_BYTES
