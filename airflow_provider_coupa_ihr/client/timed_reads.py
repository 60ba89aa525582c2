"""Blocking reads that end at the attempt's deadline: a ``requests`` adapter for the sync client.

``requests``' read timeout bounds each socket read, not the answer: a server that trickles one byte every few
seconds keeps every read under it and holds the call for as long as it likes. Inside :func:`reads_until`,
every read of an answer's status line, headers and body through a :class:`DeadlineAdapter` waits at most until
the deadline (the socket's timeout is cut to what is left before each read), so the attempt ends then with the
read timeout ``requests`` and ``urllib3`` already report, which the client turns into a
:class:`~.flow.TransportFailure`. No thread watches the socket: the reading thread stops itself.

The adapter changes only the class that reads answers (``http.client``'s ``response_class``, which ``urllib3``
keeps), so connection pooling, TLS and proxies are ``requests``' own. Outside :func:`reads_until` it reads as
usual. Imported only by :mod:`.sync`, when a client is made: it loads ``requests``.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["DeadlineAdapter", "deadline_passed", "reads_until"]

_LOCAL = threading.local()


@contextmanager
def reads_until(deadline: float | None) -> Iterator[None]:
    """Reads of answers in this thread (through a :class:`DeadlineAdapter`) end by ``deadline``
    (``time.monotonic``), or as usual for None."""
    previous = getattr(_LOCAL, "deadline", None)
    _LOCAL.deadline = deadline
    try:
        yield
    finally:
        _LOCAL.deadline = previous


def deadline_passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class _ReadsUntilDeadline(io.RawIOBase):
    """A socket's reads, each cut to the time left before the thread's deadline."""

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self._sock = sock
        self._reads = sock.makefile("rb", buffering=0)  # counted by the socket, as http.client's own file is

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._reads.fileno())

    def readinto(self, buffer: Any) -> int | None:
        deadline = getattr(_LOCAL, "deadline", None)
        if deadline is None:
            return self._reads.readinto(buffer)  # type: ignore[no-any-return]
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt's deadline passed")
        usual = self._sock.gettimeout()
        if usual is not None and usual <= left:
            return self._reads.readinto(buffer)  # type: ignore[no-any-return]
        self._sock.settimeout(left)
        try:
            return self._reads.readinto(buffer)  # type: ignore[no-any-return]
        finally:
            with suppress(OSError):
                self._sock.settimeout(usual)

    def close(self) -> None:
        if not self.closed:
            self._reads.close()
        super().close()


class _Socket:
    """What ``http.client.HTTPResponse`` asks of a socket (``makefile``), with reads that keep the deadline."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_ReadsUntilDeadline(self._sock))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(_Socket(sock), *args, **kwargs)  # type: ignore[arg-type]


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """``requests``' adapter, whose connections read answers until the deadline of :func:`reads_until`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # a SOCKS proxy brings its own connection classes
            manager.pool_classes_by_scheme = _POOLS
        return manager
