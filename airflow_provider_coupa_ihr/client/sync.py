"""``CoupaClient``: the blocking client, a thin driver of :mod:`.flow` on one pooled ``requests.Session``.

Everything this module decides is how to put a request on the wire and how to read a failure to send it; what
to send, when to retry, when to refresh the token and how to avoid a duplicate create are decided in
:mod:`.flow`, :mod:`.operations`, :mod:`.batch` and :mod:`.resolution`, which the async client shares.

Why one module of this size: it is one class, and its length is the list of verbs a DAG author needs (records,
resolving, batches, runs, errors, waits), each a few lines over those pure modules; splitting the class would
only scatter the verbs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_coupa_ihr.client import batch
from airflow_provider_coupa_ihr.client import operations as ops
from airflow_provider_coupa_ihr.client.answers import record_id
from airflow_provider_coupa_ihr.client.auth import Token
from airflow_provider_coupa_ihr.client.bodies import READ_CHUNK, reader_for
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import CoupaError, CoupaValidationError
from airflow_provider_coupa_ihr.client.flow import (
    CallContext,
    Effect,
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
    run_sync,
)
from airflow_provider_coupa_ihr.client.limiter import Limiter
from airflow_provider_coupa_ihr.client.paging import MATCHING_HINT, MAX_MATCHING_RECORDS, Walk
from airflow_provider_coupa_ihr.client.payloads import build_payload
from airflow_provider_coupa_ihr.client.records import ERRORS_PATH, INTEGRATIONS_PATH, RECORDS_PATH, RUNS_PATH
from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget, WaitState, resolved_state, state_from_pages
from airflow_provider_coupa_ihr.client.tokens import TOKEN_CACHE, TokenCache, TokenKey
from airflow_provider_coupa_ihr.client.values import whole_number

if TYPE_CHECKING:
    import requests

__all__ = ["CoupaClient"]


class CoupaClient:
    """Coupa's integration APIs for Python code, with Coupa's manners built in.

    - OAuth2 client credentials with one token per process for the same instance, client and scopes, renewed
      before it expires, and one refresh on a 401; or the legacy API key.
    - Retries on 429, 5xx, timeouts and dropped connections with ``Retry-After`` honoured and jittered backoff,
      bounded by ``config.retry``; a create whose answer was lost is looked up before it is sent again.
    - A process-wide throttle under Coupa's 25 requests per second (``config.rate_limit``).
    - One pooled session; default timeouts; no redirects followed (credentials stay on the instance's host).
    - Bounded: a call ends within ``retry.max_elapsed`` plus one ``read_timeout`` (:mod:`.deadlines`), however
      slowly the server answers; an answer is read in at most ``max_response_bytes`` once inflated (:mod:`.bodies`).

    Method arguments use Python names (``document_type=``); the wire uses Coupa's dash-case; answers come back
    with snake_case keys.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: requests.Session | None = None,
        token_cache: TokenCache = TOKEN_CACHE,
        mask_secret: Callable[[str], None] | None = None,
        throttle: Limiter | None = None,
    ) -> None:
        import requests

        self.config = config
        self._own_session = session is None
        self.session = session or requests.Session()
        _read_until_deadlines(self.session, config)
        self._proxies, self._verify = _environment_settings(config, self.session)
        self._token_cache = token_cache
        self._ctx = CallContext.for_client(config, throttle=throttle, mask_secret=mask_secret)
        if config.api_key is None:
            self._token_key = TokenKey.for_config(config)

    # ---------------------------------------------------------------------------------------- plumbing
    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> CoupaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def perform(self, operation: Operation) -> Any:
        """Run one operation from :mod:`.operations` (or your own) with the full retry and auth behaviour."""
        return run_sync(call(self._ctx, operation), self._handle)

    def token(self) -> Token:
        """A valid bearer token (from the process cache, or fetched). For ``test_connection`` and diagnostics."""
        return self._token(GetToken())

    def _handle(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            return self._send(effect.request, effect.timeout)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, Reserve):
            assert self._ctx.throttle is not None
            return self._ctx.throttle.reserve()
        return self._token(effect)

    def _token(self, effect: GetToken) -> Token:
        if effect.refresh and effect.stale is not None:
            self._token_cache.invalidate(self._token_key, effect.stale)
        return self._token_cache.get_or_fetch(
            self._token_key, lambda: run_sync(fetch_token(self._ctx, within=effect.timeout), self._handle)
        )

    def _send(self, request: HttpRequest, timeout: float | None = None) -> HttpResponse | TransportFailure:
        """One attempt, over by ``timeout`` seconds (:mod:`.timed_reads` cuts every socket read to it)."""
        import requests

        from airflow_provider_coupa_ihr.client.timed_reads import deadline_passed, reads_until

        config = self.config
        connect, read = config.connect_timeout, config.read_timeout
        deadline = None
        if timeout is not None:
            deadline = time.monotonic() + timeout
            connect, read = min(connect, timeout), min(read, timeout)
        with reads_until(deadline):
            try:
                response = self.session.request(
                    request.method,
                    request.url,
                    params=list(request.params) or None,
                    json=request.json_body,
                    data=request.form,
                    headers=dict(request.headers),
                    timeout=(connect, read),
                    allow_redirects=False,
                    verify=self._verify,
                    proxies=self._proxies,
                    stream=True,
                )
            except requests.exceptions.ConnectTimeout:
                return TransportFailure(f"connecting to {config.host} timed out after {connect:g} s", False)
            except requests.exceptions.ReadTimeout:
                if deadline_passed(deadline):
                    return _past_deadline(timeout)
                return TransportFailure(f"no answer within the read timeout of {read:g} s", True)
            except requests.exceptions.SSLError as exc:
                return TransportFailure(f"TLS failed: {_reason(exc)}", False)
            except requests.exceptions.ConnectionError as exc:
                if deadline_passed(deadline):
                    return _past_deadline(timeout)
                return TransportFailure(f"connection failed: {_reason(exc)}", _was_sent(exc))
            except requests.exceptions.RequestException as exc:
                return TransportFailure(f"request failed: {_reason(exc)}", None)
            try:
                return self._read(response, deadline, timeout)
            finally:
                response.close()  # after a whole body the connection is back in the pool already

    def _read(
        self, response: requests.Response, deadline: float | None, timeout: float | None
    ) -> HttpResponse | TransportFailure:
        """The answer's body, raw off the wire through a :class:`.bodies.BodyReader` (inflated and capped there)."""
        import urllib3

        from airflow_provider_coupa_ihr.client.timed_reads import deadline_passed

        headers = {k.lower(): v for k, v in response.headers.items()}
        try:
            reader = reader_for(response.status_code, headers, self.config.max_response_bytes)
            for chunk in response.raw.stream(READ_CHUNK, decode_content=False):
                if not reader.feed(chunk):
                    break  # an error answer, read as far as its message needs
                if deadline_passed(deadline):
                    return _past_deadline(timeout)
        except CoupaError as refused:
            return HttpResponse(response.status_code, headers, b"", unreadable=refused)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline_passed(deadline):
                return _past_deadline(timeout)
            return TransportFailure(f"the answer was cut off: {_reason(exc)}", True)
        return HttpResponse(response.status_code, headers, reader.body())

    # ---------------------------------------------------------------------------------------- records
    def create_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """Create one integration history record; ``action`` picks the IHR endpoint.

        ``action``: ``create`` (default), ``create_alert`` (also alerts the integration's contacts of
        ``contact_alert_type``), ``mark_exported`` (also marks the document exported),
        ``create_alert_and_mark_exported``, or ``acknowledge``. ``fields``: ``document_type``, ``document_id``,
        ``contact_alert_type`` (required) and any other IHR field; ``integration="CODE"`` and
        ``integration_run=ID`` are shorthands, ``responses`` takes dicts or ``(code, message)`` pairs.
        """
        op = ops.create_record(
            fields, action=action, now=time.time(), extra_document_types=self.config.extra_document_types
        )
        return answer_object(self.perform(op))

    def find_existing_record(self, since: float, **fields: Any) -> dict[str, Any] | None:
        """The newest record created since ``since`` (epoch seconds) that ``fields`` would have created, if any.

        Operators call this on an Airflow retry, so a record written by an earlier try is not written twice.
        """
        body = build_payload(fields, extra_document_types=self.config.extra_document_types)
        lookup = ops.find_same_write(RECORDS_PATH, body, since=since)
        return lookup.pick(self.perform(lookup.query()) or [])

    def create_alert(self, **fields: Any) -> dict[str, Any]:
        return self.create_record(action="create_alert", **fields)

    def mark_exported(self, **fields: Any) -> dict[str, Any]:
        return self.create_record(action="mark_exported", **fields)

    def create_alert_and_mark_exported(self, **fields: Any) -> dict[str, Any]:
        return self.create_record(action="create_alert_and_mark_exported", **fields)

    def acknowledge(self, **fields: Any) -> dict[str, Any]:
        return self.create_record(action="acknowledge", **fields)

    def get_record(self, record_id: int, *, fields: Sequence[Any] | None = None) -> dict[str, Any]:
        return answer_object(self.perform(ops.get_resource(RECORDS_PATH, record_id, fields=fields)))

    def update_record(self, record_id: int, **fields: Any) -> dict[str, Any]:
        """Change the given fields of a record (``resolved`` excepted: use :meth:`resolve`)."""
        op = ops.update_record(record_id, fields, extra_document_types=self.config.extra_document_types)
        return answer_object(self.perform(op))

    def resolve(self, record_id: int) -> dict[str, Any]:
        return answer_object(self.perform(ops.set_resolved(record_id, True)))

    def unresolve(self, record_id: int) -> dict[str, Any]:
        return answer_object(self.perform(ops.set_resolved(record_id, False)))

    def validate_record(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """The wire body :meth:`create_record` would send, sending nothing; raises what it would raise."""
        op = ops.create_record(fields, action=action, now=0.0, extra_document_types=self.config.extra_document_types)
        return dict(op.body)

    def resolve_records(self, record_ids: Any, *, exclude: Any = ()) -> list[dict[str, Any]]:
        """Resolve each record of ``record_ids`` not in ``exclude`` (ids, or text such as ``"7, 8"``).

        Every id is checked before the first request, and every bad one named at once. Safe to retry.
        """
        return [self.resolve(i) for i in ops.ids_to_change(record_ids, exclude)]

    def unresolve_records(self, record_ids: Any, *, exclude: Any = ()) -> list[dict[str, Any]]:
        """:meth:`resolve_records`, the other way."""
        return [self.unresolve(i) for i in ops.ids_to_change(record_ids, exclude)]

    def resolve_matching(
        self, filters: Mapping[str, Any] | None, *, exclude: Any = (), max_records: int | None = None
    ) -> list[dict[str, Any]]:
        """Resolve every unresolved record matching ``filters`` (``resolved=false`` is added here), but ``exclude``.

        The ids are collected first and changed after, so the walk is never disturbed by its own changes.
        ``max_records``: change at most that many (the first by id). Without it, more than
        :data:`.paging.MAX_MATCHING_RECORDS` (10,000) matching records is refused with a :class:`CoupaError`
        before anything is changed: so broad a filter is more likely a mistake than a plan.
        """
        return self._set_matching(filters, True, exclude, max_records)

    def unresolve_matching(
        self, filters: Mapping[str, Any] | None, *, exclude: Any = (), max_records: int | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`resolve_matching`, the other way (``resolved=true`` is added)."""
        return self._set_matching(filters, False, exclude, max_records)

    def _set_matching(
        self, filters: Mapping[str, Any] | None, resolved: bool, exclude: Any, max_records: int | None
    ) -> list[dict[str, Any]]:
        walk = ops.matching_ids_walk(filters, resolved=resolved, max_records=max_records)
        if max_records is None:
            walk.refuse_beyond(MAX_MATCHING_RECORDS, hint=MATCHING_HINT)
        skip = ops.excluded_ids(exclude)
        ids = [i for i in (record_id(r) for r in self.walk(walk)) if i not in skip]
        return [self.resolve(i) if resolved else self.unresolve(i) for i in ids]

    def plan_records(
        self, items: Any, *, defaults: Mapping[str, Any] | None = None, action: str = "create"
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(action, fields)`` per item of a batch, every item checked before anything is sent (see
        :func:`.batch.plan_records`); pass the result to :meth:`create_records`."""
        return batch.plan_records(
            items, defaults=defaults, action=action, extra_document_types=self.config.extra_document_types
        )

    def find_existing_records(self, items: Sequence[Mapping[str, Any]], since: float) -> dict[int, int]:
        """Item index -> id of the record an earlier try wrote for that item since ``since`` (epoch seconds).

        For a retried batch: one query per document type and 50 document ids; each stored record matches one
        item at most, so two identical items need two stored records.
        """
        sent = batch.sent_records(items, self.config.extra_document_types)
        stored = [record for walk in batch.lookup_walks(sent, since) for record in self.walk(walk)]
        return batch.match_written(sent, stored)

    def look_up_earlier_writes(
        self, items: Sequence[Mapping[str, Any]], since: float, *, among: Collection[int] | None = None
    ) -> batch.EarlierWrites:
        """What an earlier try of a batch wrote since ``since`` (epoch seconds), as far as the lookup could see.

        As :meth:`find_existing_records`, but a chunk (a document type and 50 document ids) whose query fails
        does not stop the others: its items come back in ``not_looked_up`` with the reason, so a retry under a
        flaky network still writes every chunk it could check, and can ask again for the rest (``among``: the
        indexes of the items to look for; by default all).
        """
        sent = batch.sent_records(items, self.config.extra_document_types)
        chunks = batch.lookup_chunks(sent, since, among)
        return batch.earlier_writes(sent, chunks, [self._stored_or_error(chunk.walk) for chunk in chunks])

    def _stored_or_error(self, walk: Walk) -> list[dict[str, Any]] | CoupaError:
        try:
            return list(self.walk(walk))
        except CoupaError as exc:
            return exc

    def create_records(
        self,
        planned: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        max_workers: int = 8,
        skip: Collection[int] = (),
        on_outcome: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Write each planned record (from :meth:`plan_records`) but those at the indexes in ``skip``.

        ``max_workers`` threads write at once, each with its own session and all sharing this client's token
        cache and rate limit, so the bucket, not the thread count, sets the pace; every thread's client is
        closed at the end. Returns one outcome per write, in index order: ``{"index", "status": "created",
        "id"}``, or ``{"index", "status", "id": None, "error", "retryable"}`` with status ``failed`` (surely not
        in Coupa) or ``unknown`` (the create may have landed; see :class:`.batch.LandingWitness`). ``on_outcome``
        is called with each outcome as it comes (in this thread), for a progress line.
        """
        workers = whole_number(max_workers, minimum=1)
        if workers is None:
            raise ValueError(f"max_workers must be 1 or more, got {max_workers!r}")
        skipped = set(skip)
        todo = [i for i in range(len(planned)) if i not in skipped]
        local = threading.local()
        clients: list[_BatchWriter] = []
        lock = threading.Lock()

        def worker_client() -> _BatchWriter:
            client: _BatchWriter | None = getattr(local, "client", None)
            if client is None:
                client = local.client = _BatchWriter(
                    self.config,
                    token_cache=self._token_cache,
                    mask_secret=self._ctx.mask_secret,
                    throttle=self._ctx.throttle,
                )
                with lock:
                    clients.append(client)
            return client

        def write(index: int) -> dict[str, Any]:
            action, fields = planned[index]
            return worker_client().write(index, action, fields)

        outcomes: list[dict[str, Any]] = []
        try:
            with ThreadPoolExecutor(max_workers=min(workers, max(1, len(todo))), thread_name_prefix="coupa") as pool:
                futures: list[Future[dict[str, Any]]] = [pool.submit(write, i) for i in todo]
                for future in as_completed(futures):
                    outcome = future.result()
                    outcomes.append(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
        finally:
            for client in clients:
                client.close()
        return sorted(outcomes, key=lambda o: int(o["index"]))

    def check_resolution(self, target: ResolutionTarget, *, since: datetime | None = None) -> WaitState:
        """One check of a wait for records to be resolved (see :mod:`.resolution`): the sensor's poke.

        ``since`` (query waits) is when the wait began: the records returned at the end are those resolved and
        changed since then, less :data:`.values.CLOCK_SKEW_SECONDS`.
        """
        pages = [self.perform(operation) for operation in target.poll_operations]
        state = state_from_pages(target, pages)
        return state if state is not None else resolved_state(self.walk(target.resolved_walk(since)))

    def query_records(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        fields: Sequence[Any] | None = None,
        order_by: str = "id",
        direction: str = "asc",
        max_records: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record matching ``filters`` (Coupa's syntax: ``{"status": "Error", "id[in]": [1, 2]}``), as a
        generator over pages of 50, so 100,000 records stream in constant memory. See :class:`.paging.Walk`.
        """
        return self.walk(
            Walk(RECORDS_PATH, filters, fields=fields, order_by=order_by, direction=direction, max_records=max_records)
        )

    def walk(self, walk: Walk) -> Iterator[dict[str, Any]]:
        """Run a :class:`.paging.Walk` (validated already, so errors in it surface at the call)."""

        def pages() -> Iterator[dict[str, Any]]:
            while (operation := walk.next_operation()) is not None:
                yield from walk.take(self.perform(operation))

        return pages()

    # ---------------------------------------------------------------------------------------- runs, errors
    def create_run(self, integration: str, **fields: Any) -> dict[str, Any]:
        """Start bookkeeping for one run of ``integration`` (its code); the run starts ``pending``."""
        return answer_object(self.perform(ops.create_run(integration, now=time.time(), **fields)))

    def run_transition(self, run_id: int, action: str, **fields: Any) -> dict[str, Any]:
        """Move a run: ``run`` (with ``total_records``), ``pause``, ``pending``, ``success``, ``finish``, ``fail``."""
        return answer_object(self.perform(ops.run_transition(run_id, action, **fields)))

    def get_run(self, run_id: int) -> dict[str, Any]:
        return answer_object(self.perform(ops.get_resource(RUNS_PATH, run_id)))

    def start_run(self, integration: str, *, total_records: Any = None) -> dict[str, Any]:
        """Create a run of ``integration`` (its code) and move it to ``running``: what a pipeline does first."""
        ops.check_run_change("run", total_records=total_records)
        run = self.create_run(integration)
        return self.run_transition(record_id(run), "run", total_records=total_records)

    def finish_run(self, run_id: Any, *, records_processed: Any = None, action: str = "success") -> dict[str, Any]:
        """End a run as successful (``action``: ``success`` or ``finish``); a run already so is left as it is."""
        if action == "fail":
            raise CoupaValidationError(["action must be success or finish; use fail_run() to fail a run"])
        return self._close_run(run_id, action, records_processed)

    def fail_run(self, run_id: Any, *, records_processed: Any = None) -> dict[str, Any]:
        """End a run as failed; a run already failed is left as it is (so a retried task changes nothing)."""
        return self._close_run(run_id, "fail", records_processed)

    def _close_run(self, run_id: Any, action: str, records_processed: Any) -> dict[str, Any]:
        current = self.get_run(ops.check_run_end(run_id, action, records_processed))
        if ops.run_is_already(current, action):
            return current
        return self.run_transition(record_id(current), action, records_processed=records_processed)

    def create_integration_error(self, *, action: str = "create", **fields: Any) -> dict[str, Any]:
        """Create an integration error (a record that belongs to a run: pass ``integration_run=<id>``)."""
        op = ops.create_error(
            fields, action=action, now=time.time(), extra_document_types=self.config.extra_document_types
        )
        return answer_object(self.perform(op))

    def resolve_integration_error(self, error_id: int, resolved: bool = True) -> dict[str, Any]:
        return answer_object(self.perform(ops.set_resolved(error_id, resolved, path=ERRORS_PATH)))

    def query_integration_errors(
        self, filters: Mapping[str, Any] | None = None, *, max_records: int | None = None
    ) -> Iterator[dict[str, Any]]:
        return self.walk(Walk(ERRORS_PATH, filters, max_records=max_records))

    def get_integration(self, code: str) -> dict[str, Any] | None:
        """The integration with this code, or None."""
        found = self.perform(ops.query_resources(INTEGRATIONS_PATH, {"code": code}, limit=1))
        return found[0] if found else None


class _BatchWriter(CoupaClient):
    """A worker thread's client in :meth:`CoupaClient.create_records`: it watches each create's requests and
    answers (every one passes through :meth:`_handle`), so a failed create says whether it may have landed."""

    _witness: batch.LandingWitness | None = None

    def write(self, index: int, action: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create item ``index``; its outcome (see :meth:`CoupaClient.create_records`)."""
        witness = self._witness = batch.LandingWitness(self.config.api_url)
        try:
            record = self.create_record(action=action, **fields)
        except CoupaError as exc:
            return batch.failed_write(index, exc, may_have_landed=witness.may_have_landed)
        finally:
            self._witness = None
        return {"index": index, "status": batch.CREATED, "id": record["id"]}

    def _handle(self, effect: Effect) -> Any:
        result = super()._handle(effect)
        if self._witness is not None and isinstance(effect, Send):
            self._witness.saw(effect.request, result)
        return result


def _past_deadline(timeout: float | None) -> TransportFailure:
    """The attempt outlived its bound (a slow or trickling answer): the request may have been acted on."""
    return TransportFailure(
        f"no complete answer within the {timeout or 0:.1f} s this attempt had (the call's time bound); the server "
        "was still sending or had not answered",
        True,
    )


def _read_until_deadlines(session: requests.Session, config: ClientConfig) -> None:
    """Mount a :class:`.timed_reads.DeadlineAdapter` for the instance's URLs, unless the session's adapter there
    is one of the caller's own (then each attempt is bounded by the read timeout and the checks between body
    chunks only)."""
    from requests.adapters import HTTPAdapter

    from airflow_provider_coupa_ihr.client.timed_reads import DeadlineAdapter

    prefix = f"{config.base_url}/"
    if type(session.get_adapter(prefix)) is HTTPAdapter:
        session.mount(prefix, DeadlineAdapter())


def _environment_settings(config: ClientConfig, session: requests.Session) -> tuple[dict[str, str], bool | str]:
    """Proxies and CA bundle, with the environment (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``) read
    once here rather than by requests on every call, where it costs more than the rest of the client together.
    The connection's own settings win over the environment."""
    import os

    import requests

    proxies: dict[str, str] = dict(config.proxies)
    verify: bool | str = config.verify
    if session.trust_env:
        if not proxies:
            proxies = requests.utils.get_environ_proxies(config.base_url)
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False
    return proxies, verify


def _reason(exc: BaseException) -> str:
    """The innermost cause of a transport error, without the URL (which may carry query parameters)."""
    inner: BaseException = exc
    while True:
        nxt = inner.__cause__ or inner.__context__ or (inner.args[0] if inner.args else None)
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    return f"{type(inner).__name__}: {str(inner).split(' (Caused by')[0][:200]}"


def _was_sent(exc: BaseException) -> bool | None:
    """A refused or unresolvable connection never carried the request; a reset or closed one may have."""
    text = repr(exc)
    if any(
        s in text for s in ("NewConnectionError", "Failed to establish", "NameResolutionError", "ConnectionRefused")
    ):
        return False
    return None
