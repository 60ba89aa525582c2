"""``AsyncCoupaClient``: the same calls for triggers and async notifiers, driving :mod:`.flow` with httpx.

httpx comes with both Airflow lines, so this adds no dependency. Clients share the process-wide token cache and
rate limit with the sync client, and, when made inside a running event loop, one ``httpx.AsyncClient`` (a
connection pool) per loop and Coupa instance: a triggerer holding hundreds of waits then holds one pool, not
hundreds, because a fresh pool (mostly its TLS context) is costly to start and to keep while a wait sleeps.
``benchmarks/deferred_waits.py`` measures what that saves.

Bounded like the sync client: each attempt runs under ``asyncio.timeout`` for the time the call gives it
(:mod:`.deadlines`), so a trickling server cannot hold a trigger past its bound, and bodies are read raw and
inflated under ``max_response_bytes`` by the reader both clients share (:mod:`.bodies`).

Why one module of this size: it is the async twin of :mod:`.sync`, one class whose length is the verbs it mirrors
plus the per-event-loop pool sharing; every decision behind the verbs lives in the pure modules both share.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_coupa_ihr.client import batch
from airflow_provider_coupa_ihr.client import operations as ops
from airflow_provider_coupa_ihr.client.answers import record_id
from airflow_provider_coupa_ihr.client.auth import Token
from airflow_provider_coupa_ihr.client.bodies import reader_for
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaTransportError, CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import (
    CallContext,
    Effect,
    Flow,
    GetToken,
    HttpRequest,
    HttpResponse,
    Operation,
    Reserve,
    Send,
    Sleep,
    TransportFailure,
    answer_object,
    call,
    fetch_token,
    run_async,
)
from airflow_provider_coupa_ihr.client.limiter import Limiter
from airflow_provider_coupa_ihr.client.paging import MATCHING_HINT, MAX_MATCHING_RECORDS, Walk
from airflow_provider_coupa_ihr.client.records import RECORDS_PATH, RUNS_PATH
from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget, WaitState, resolved_state, state_from_pages
from airflow_provider_coupa_ihr.client.tokens import TOKEN_CACHE, TokenCache, TokenKey

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["AsyncCoupaClient"]

T = TypeVar("T")


#: Requests one pool has on the wire at once; more wait their turn in an asyncio semaphore. Coupa takes bursts
#: of 20, so more in flight would only queue there; and httpcore scans its whole queue against every connection
#: each time a request starts or ends, which grows with the waits polling through one pool
#: (benchmarks/deferred_waits.py measures it with and without this gate).
MAX_IN_FLIGHT = 20


@dataclass
class _Pool:
    http: httpx.AsyncClient
    users: int = 0
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))


#: The shared pools, by event loop (an httpx pool's connections belong to the loop that opened them) and then by
#: instance, client and transport settings. Weak on the loop, so a finished loop takes its entries with it.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Pool]] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def _pool_key(config: ClientConfig) -> tuple[Any, ...]:
    proxy = config.proxies.get("https") or config.proxies.get("http")
    return (
        config.base_url,
        config.client_id or "api-key",
        config.verify,
        proxy,
        config.connect_timeout,
        config.read_timeout,
    )


def _new_http(config: ClientConfig) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
        # As many connections as requests in flight (see MAX_IN_FLIGHT), all kept alive: httpcore checks every
        # connection of the pool each time a request starts or ends.
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
        verify=_verify(config.verify),
        follow_redirects=False,
        proxy=config.proxies.get("https") or config.proxies.get("http"),
        # Like the sync client: the environment's proxy and CA settings (HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE)
        # apply unless the connection names a proxy, so a trigger goes out the way the task before it did.
        trust_env=not config.proxies,
    )


def _verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx takes a CA bundle as an SSL context (a path is deprecated there, and warns)."""
    if not isinstance(verify, str):
        return verify
    import os
    import ssl

    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def _lease(config: ClientConfig) -> tuple[_Pool, tuple[asyncio.AbstractEventLoop, tuple[Any, ...]] | None]:
    """The running loop's shared pool for ``config`` (one more user of it), or a private one outside a loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _Pool(_new_http(config)), None
    key = _pool_key(config)
    with _POOLS_LOCK:
        pools = _POOLS.setdefault(loop, {})
        pool = pools.get(key)
        if pool is None or pool.http.is_closed:
            pool = pools[key] = _Pool(_new_http(config))
        pool.users += 1
        return pool, (loop, key)


def _release(http: httpx.AsyncClient, lease: tuple[asyncio.AbstractEventLoop, tuple[Any, ...]]) -> bool:
    """One user fewer; True when that was the last one, so the caller closes the pool."""
    loop, key = lease
    with _POOLS_LOCK:
        pools = _POOLS.get(loop, {})
        pool = pools.get(key)
        if pool is None or pool.http is not http:
            return not http.is_closed
        pool.users -= 1
        if pool.users > 0:
            return False
        del pools[key]
        return True


class AsyncCoupaClient:
    """Async twin of :class:`~.sync.CoupaClient` for the reads a trigger makes and the writes a notifier makes."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        client: httpx.AsyncClient | None = None,
        token_cache: TokenCache = TOKEN_CACHE,
        mask_secret: Callable[[str], None] | None = None,
        throttle: Limiter | None = None,
    ) -> None:
        self.config = config
        self._own_client = client is None
        self._lease: tuple[asyncio.AbstractEventLoop, tuple[Any, ...]] | None = None
        self._closed = False
        if client is None:
            self._pool, self._lease = _lease(config)
        else:
            self._pool = _Pool(client)
        self.http = self._pool.http
        self._token_cache = token_cache
        self._ctx = CallContext.for_client(config, throttle=throttle, mask_secret=mask_secret)
        if config.api_key is None:
            self._token_key = TokenKey.for_config(config)

    async def aclose(self) -> None:
        """Close the connection pool, or, for a shared one, let go of it (the last user closes it)."""
        if not self._own_client or self._closed:
            return
        self._closed = True
        if self._lease is None or _release(self.http, self._lease):
            await self.http.aclose()

    async def __aenter__(self) -> AsyncCoupaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------------------------------- plumbing
    async def perform(self, operation: Operation) -> Any:
        return await self._run(call(self._ctx, operation))

    async def _run(self, flow: Flow[T]) -> T:
        return await run_async(flow, self._handle)

    async def _handle(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            return await self._send(effect.request, effect.timeout)
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, Reserve):
            assert self._ctx.throttle is not None
            return await self._ctx.throttle.areserve()
        return await self._token(effect)

    async def _token(self, effect: GetToken) -> Token:
        if effect.refresh and effect.stale is not None:
            self._token_cache.invalidate(self._token_key, effect.stale)
        fetch = self._token_cache.aget_or_fetch(
            self._token_key, lambda: self._run(fetch_token(self._ctx, within=effect.timeout))
        )
        if effect.timeout is None:
            return await fetch
        try:
            # Our own fetch ends in time by itself; this bounds the wait for another task's fetch too.
            return await _within(effect.timeout, fetch)
        except asyncio.TimeoutError:
            raise CoupaTransportError(
                [f"no token within the {effect.timeout:.1f} s the call had left"],
                sent=None,
                method="POST",
                path=self.config.token_path,
            ) from None

    async def _send(self, request: HttpRequest, timeout: float | None = None) -> HttpResponse | TransportFailure:
        """One attempt, over by ``timeout`` seconds (its turn at the pool's gate included), however the server
        trickles: the attempt is cancelled then."""
        if timeout is None:
            return await self._attempt(request)
        try:
            return await _within(timeout, self._attempt(request))
        except asyncio.TimeoutError:
            return TransportFailure(
                f"no complete answer within the {timeout:.1f} s this attempt had (the call's time bound); the "
                "server was still sending or had not answered",
                True,
            )

    async def _attempt(self, request: HttpRequest) -> HttpResponse | TransportFailure:
        import httpx

        config = self.config
        try:
            async with (
                self._pool.gate,
                self.http.stream(
                    request.method,
                    request.url,
                    params=list(request.params) or None,
                    json=request.json_body,
                    data=dict(request.form) if request.form is not None else None,
                    headers=dict(request.headers),
                ) as response,
            ):
                return await _read(response, config.max_response_bytes)
        except httpx.ConnectTimeout:
            return TransportFailure(f"connecting to {config.host} timed out after {config.connect_timeout:g} s", False)
        except (httpx.ConnectError, httpx.PoolTimeout) as exc:
            return TransportFailure(f"connection failed: {type(exc).__name__}: {str(exc)[:200]}", False)
        except httpx.ReadTimeout:
            return TransportFailure(f"no answer within the read timeout of {config.read_timeout:g} s", True)
        except httpx.TransportError as exc:
            return TransportFailure(f"connection failed: {type(exc).__name__}: {str(exc)[:200]}", None)

    # ---------------------------------------------------------------------------------------- calls
    async def create_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """As :meth:`CoupaClient.create_record <.sync.CoupaClient.create_record>`."""
        op = ops.create_record(
            fields, action=action, now=time.time(), extra_document_types=self.config.extra_document_types
        )
        return answer_object(await self.perform(op))

    async def get_record(self, record_id: int, *, fields: Sequence[Any] | None = None) -> dict[str, Any]:
        return answer_object(await self.perform(ops.get_resource(RECORDS_PATH, record_id, fields=fields)))

    def query_records(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        fields: Sequence[Any] | None = None,
        order_by: str = "id",
        direction: str = "asc",
        max_records: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every record matching ``filters``, page by page (see :class:`.paging.Walk`)."""
        walk = Walk(
            RECORDS_PATH, filters, fields=fields, order_by=order_by, direction=direction, max_records=max_records
        )
        return self.walk(walk)

    async def walk(self, walk: Walk) -> AsyncIterator[dict[str, Any]]:
        while (operation := walk.next_operation()) is not None:
            for record in walk.take(await self.perform(operation)):
                yield record

    async def run_transition(self, run_id: int, action: str, **fields: Any) -> dict[str, Any]:
        return answer_object(await self.perform(ops.run_transition(run_id, action, **fields)))

    async def get_run(self, run_id: Any) -> dict[str, Any]:
        return answer_object(await self.perform(ops.get_resource(RUNS_PATH, run_id)))

    async def create_run(self, integration: str, **fields: Any) -> dict[str, Any]:
        return answer_object(await self.perform(ops.create_run(integration, now=time.time(), **fields)))

    async def start_run(self, integration: str, *, total_records: Any = None) -> dict[str, Any]:
        """As :meth:`CoupaClient.start_run <.sync.CoupaClient.start_run>`."""
        ops.check_run_change("run", total_records=total_records)
        run = await self.create_run(integration)
        return await self.run_transition(record_id(run), "run", total_records=total_records)

    async def finish_run(
        self, run_id: Any, *, records_processed: Any = None, action: str = "success"
    ) -> dict[str, Any]:
        """As :meth:`CoupaClient.finish_run <.sync.CoupaClient.finish_run>`."""
        if action == "fail":
            raise CoupaValidationError(["action must be success or finish; use fail_run() to fail a run"])
        return await self._close_run(run_id, action, records_processed)

    async def fail_run(self, run_id: Any, *, records_processed: Any = None) -> dict[str, Any]:
        return await self._close_run(run_id, "fail", records_processed)

    async def _close_run(self, run_id: Any, action: str, records_processed: Any) -> dict[str, Any]:
        current = await self.get_run(ops.check_run_end(run_id, action, records_processed))
        if ops.run_is_already(current, action):
            return current
        return await self.run_transition(record_id(current), action, records_processed=records_processed)

    def validate_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """The wire body :meth:`create_record` would send, sending nothing (no I/O, so not a coroutine)."""
        op = ops.create_record(fields, action=action, now=0.0, extra_document_types=self.config.extra_document_types)
        return dict(op.body)

    async def resolve(self, record_id: Any) -> dict[str, Any]:
        return answer_object(await self.perform(ops.set_resolved(record_id, True)))

    async def unresolve(self, record_id: Any) -> dict[str, Any]:
        return answer_object(await self.perform(ops.set_resolved(record_id, False)))

    async def resolve_records(self, record_ids: Any, *, exclude: Any = ()) -> list[dict[str, Any]]:
        return [await self.resolve(i) for i in ops.ids_to_change(record_ids, exclude)]

    async def unresolve_records(self, record_ids: Any, *, exclude: Any = ()) -> list[dict[str, Any]]:
        return [await self.unresolve(i) for i in ops.ids_to_change(record_ids, exclude)]

    async def resolve_matching(
        self, filters: Mapping[str, Any] | None, *, exclude: Any = (), max_records: int | None = None
    ) -> list[dict[str, Any]]:
        """As :meth:`CoupaClient.resolve_matching <.sync.CoupaClient.resolve_matching>` (refused above 10,000
        matching records unless ``max_records`` is given)."""
        return await self._set_matching(filters, True, exclude, max_records)

    async def unresolve_matching(
        self, filters: Mapping[str, Any] | None, *, exclude: Any = (), max_records: int | None = None
    ) -> list[dict[str, Any]]:
        return await self._set_matching(filters, False, exclude, max_records)

    async def _set_matching(
        self, filters: Mapping[str, Any] | None, resolved: bool, exclude: Any, max_records: int | None
    ) -> list[dict[str, Any]]:
        walk = ops.matching_ids_walk(filters, resolved=resolved, max_records=max_records)
        if max_records is None:
            walk.refuse_beyond(MAX_MATCHING_RECORDS, hint=MATCHING_HINT)
        skip = ops.excluded_ids(exclude)
        ids = [i for i in [record_id(r) async for r in self.walk(walk)] if i not in skip]
        return [await (self.resolve(i) if resolved else self.unresolve(i)) for i in ids]

    async def find_existing_records(self, items: Sequence[Mapping[str, Any]], since: float) -> dict[int, int]:
        """As :meth:`CoupaClient.find_existing_records <.sync.CoupaClient.find_existing_records>`."""
        sent = batch.sent_records(items, self.config.extra_document_types)
        stored = [record for walk in batch.lookup_walks(sent, since) async for record in self.walk(walk)]
        return batch.match_written(sent, stored)

    async def look_up_earlier_writes(
        self, items: Sequence[Mapping[str, Any]], since: float, *, among: Collection[int] | None = None
    ) -> batch.EarlierWrites:
        """As :meth:`CoupaClient.look_up_earlier_writes <.sync.CoupaClient.look_up_earlier_writes>`: a chunk whose
        lookup fails leaves only its own items unsettled."""
        sent = batch.sent_records(items, self.config.extra_document_types)
        chunks = batch.lookup_chunks(sent, since, among)
        answers: list[list[dict[str, Any]] | CoupaError] = []
        for chunk in chunks:
            try:
                answers.append([record async for record in self.walk(chunk.walk)])
            except CoupaError as exc:
                answers.append(exc)
        return batch.earlier_writes(sent, chunks, answers)

    async def check_resolution(self, target: ResolutionTarget, *, since: datetime | None = None) -> WaitState:
        """As :meth:`CoupaClient.check_resolution <.sync.CoupaClient.check_resolution>`: the trigger's check."""
        pages = [await self.perform(operation) for operation in target.poll_operations]
        state = state_from_pages(target, pages)
        return state if state is not None else resolved_state([r async for r in self.walk(target.resolved_walk(since))])


async def _read(response: httpx.Response, max_response_bytes: int) -> HttpResponse:
    """The answer's body, raw off the wire through a :class:`.bodies.BodyReader` (inflated and capped there)."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    try:
        reader = reader_for(response.status_code, headers, max_response_bytes)
        async for chunk in response.aiter_raw():
            if not reader.feed(chunk):
                break  # an error answer, read as far as its message needs; the rest goes with the connection
    except CoupaError as refused:
        return HttpResponse(response.status_code, headers, b"", unreadable=refused)
    return HttpResponse(response.status_code, headers, reader.body())


async def _within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, cancelled after ``seconds`` (``asyncio.TimeoutError``)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10
