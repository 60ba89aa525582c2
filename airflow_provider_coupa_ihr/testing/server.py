"""The Coupa emulator: a real HTTP server (aiohttp) in front of :class:`CoupaState`.

It runs on its own event loop in a background thread, so a test (or a DAG) in the main thread talks to it over a
real loopback socket exactly as it would talk to Coupa, while the test inspects and steers it from Python.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_coupa_ihr.client.records import RUN_ACTIONS
from airflow_provider_coupa_ihr.testing.auth import (
    READ_SCOPE,
    WRITE_SCOPE,
    AuthFailure,
    Authority,
    Grant,
    OAuthClient,
)
from airflow_provider_coupa_ihr.testing.faults import (
    Fault,
    FaultPlan,
    TokenBucket,
    Verdict,
    retry_after_header,
)
from airflow_provider_coupa_ihr.testing.querying import QueryError, parse_query, project
from airflow_provider_coupa_ihr.testing.rendering import JSON, errors_body, render, wants_json
from airflow_provider_coupa_ihr.testing.state import (
    ACTION_EFFECTS,
    CoupaState,
    Invalid,
    NotFound,
)
from airflow_provider_coupa_ihr.testing.tls import make_self_signed

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["DEFAULT_CLIENT", "CoupaEmulator", "RequestRecord"]

#: The OAuth client every emulator knows unless told otherwise. Test credentials, never real ones.
DEFAULT_CLIENT = OAuthClient("coupa-emulator-client", "coupa-emulator-secret")

#: URL collection name -> (XML root of a list, XML root of one resource).
_COLLECTIONS = {
    "integration_history_records": ("integration-history-records", "integration-history-record"),
    "integration_errors": ("integration-errors", "integration-error"),
    "integration_runs": ("integration-runs", "integration-run"),
    "integrations": ("integrations", "integration"),
}
_RESOLVABLE = ("integration_history_records", "integration_errors")
_TOKEN_PATHS = ("/oauth2/token", "/oauth2/access_tokens")


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator saw (admin calls excluded): enough to count, never the credentials."""

    method: str
    path: str
    status: int | None  # None: the connection was dropped without an answer
    client_id: str | None
    at: float


class CoupaEmulator:
    """A local Coupa instance for tests, demos and users' own DAG tests.

    >>> with CoupaEmulator() as coupa:                      # doctest: +SKIP
    ...     coupa.url, coupa.client.client_id               # base URL on a free loopback port
    ...     coupa.faults.storm(count=10, retry_after=1)      # the next 10 API calls answer 429
    ...     coupa.records()                                  # what has been written, as Coupa returns it

    Arguments:
        host, port: where to listen; loopback and a free port by default.
        clients: the OAuth clients it accepts (default: :data:`DEFAULT_CLIENT` with read and write scopes).
        api_keys: legacy ``X-COUPA-API-KEY`` values it accepts; none (legacy auth off) by default.
        token_lifetime: seconds a token lives (Coupa: 86399).
        rate_limit, burst: the token bucket in front of ``/api`` (Coupa: 25/s, bursts of 20); ``None`` turns it off.
        send_retry_after: whether a throttled answer carries ``Retry-After`` (Coupa's behaviour is disputed).
        seed: seeds the fault decisions, so a failing run replays.
        extra_document_types: document types newer than R39 that this instance should accept.
        tls: serve HTTPS with a fresh self-signed certificate (trust it with ``coupa.ca_bundle``), as Coupa
            always does; off by default because plain http on loopback is simpler for most tests.
        new_connection_latency: seconds added to the first request on each new connection, modelling what
            TCP and TLS handshakes cost over a real network (about two round trips), which loopback hides.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clients: Sequence[OAuthClient] = (DEFAULT_CLIENT,),
        api_keys: Sequence[str] = (),
        token_lifetime: int = 86399,
        rate_limit: float | None = 25.0,
        burst: int = 20,
        send_retry_after: bool = True,
        seed: int = 0,
        extra_document_types: Sequence[str] = (),
        tls: bool = False,
        new_connection_latency: float = 0.0,
    ) -> None:
        self.host = host
        self.new_connection_latency = new_connection_latency
        self._seen_transports: weakref.WeakSet[Any] = weakref.WeakSet()
        self.tls = make_self_signed() if tls else None
        self.port = port
        self.state = CoupaState(extra_document_types=extra_document_types)
        self.authority = Authority(clients, api_keys=api_keys, token_lifetime=token_lifetime)
        self.faults = FaultPlan(seed=seed)
        self.send_retry_after = send_retry_after
        self._bucket: TokenBucket | None = None
        self.set_rate_limit(rate_limit, burst)
        self.request_log: collections.deque[RequestRecord] = collections.deque(maxlen=200_000)
        self._users: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL of the instance (what users put in the connection's host)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_bundle(self) -> str | None:
        """With ``tls=True``: the certificate file clients must trust (the connection extra ``verify``)."""
        return self.tls.ca_bundle if self.tls else None

    def airflow_connection(self, **extra: Any) -> str:
        """The value of an ``AIRFLOW_CONN_<ID>`` variable for a ``coupa`` connection to this emulator.

        ``extra`` adds connection extras (``read_timeout=0.5``, ``rate_limit=0``...). With ``tls=True`` the
        emulator's certificate is trusted through the ``verify`` extra.
        """
        if self.tls is not None:
            extra.setdefault("verify", self.tls.ca_bundle)
        return json.dumps(
            {
                "conn_type": "coupa",
                "host": self.url,
                "login": self.client.client_id,
                "password": self.client.client_secret,
                "extra": extra,
            }
        )

    @property
    def client(self) -> OAuthClient:
        """The first OAuth client: the credentials a test usually wants."""
        return next(iter(self.authority.clients.values()))

    def start(self) -> CoupaEmulator:
        """Serve in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._unbind())
            loop.close()

        self._thread = threading.Thread(target=serve, name="coupa-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread = None
            raise RuntimeError(f"Coupa emulator could not listen on {self.host}:{self.port}: {failure[0]}")
        return self

    def stop(self) -> None:
        """Stop serving; open connections are closed. Safe to call twice."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._thread = None

    def __enter__(self) -> CoupaEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _bind(self) -> None:
        from aiohttp import web

        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        ssl_context = self.tls.server_context() if self.tls else None
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        if self.port == 0:
            # The runner knows the address the OS picked: (host, port) for TCP.
            self.port = int(self._runner.addresses[0][1])

    async def _unbind(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------------------------------ Python API
    def set_rate_limit(self, rate: float | None, burst: int = 20, *, send_retry_after: bool | None = None) -> None:
        """Change the token bucket while running (``rate=None`` turns rate limiting off)."""
        self._bucket = TokenBucket(rate, burst) if rate else None
        if send_retry_after is not None:
            self.send_retry_after = send_retry_after

    def reset(self) -> None:
        """Forget all data, faults and the request log (tokens stay valid)."""
        self.state.reset()
        self.faults.clear()
        self.request_log.clear()

    def records(self, **equals: Any) -> list[dict[str, Any]]:
        """Stored IHRs (dash-case keys, as Coupa returns them), optionally only those whose fields equal ``equals``
        (snake_case names: ``coupa.records(document_id=7, resolved=False)``)."""
        return _matching(self.state.snapshot(self.state.records), equals)

    def record(self, record_id: int) -> dict[str, Any]:
        return self.state.get(self.state.records, record_id)

    def integration_errors(self, **equals: Any) -> list[dict[str, Any]]:
        return _matching(self.state.snapshot(self.state.errors), equals)

    def integration_runs(self, **equals: Any) -> list[dict[str, Any]]:
        return _matching(self.state.snapshot(self.state.runs), equals)

    def add_integration(self, code: str, **attributes: Any) -> dict[str, Any]:
        """Register an integration (records and runs refer to it by ``code``)."""
        return self.state.add_integration(code, **attributes)

    def seed_records(self, count: int, **template: Any) -> int:
        """Store ``count`` records at once, without HTTP (for load tests and paging benchmarks).

        ``template`` gives the fields (snake_case); ``document_id`` counts up from its value (default 1).
        Returns the id of the last record stored.
        """
        fields = {"document_type": "InvoiceHeader", "contact_alert_type": "Functional", "status": "Success", **template}
        first = int(fields.pop("document_id", 1))
        last = 0
        for offset in range(count):
            last = self.state.create(self.state.records, {**fields, "document_id": first + offset}, user=None)["id"]
        return last

    def resolve(self, record_id: int, resolved: bool = True) -> dict[str, Any]:
        """What a Coupa user does in the UI: mark a record resolved (or unresolved again)."""
        return self.state.set_resolved(self.state.records, record_id, resolved)

    def summary(self) -> str:
        """A readable table of the records, alerts, exported documents and runs held right now."""
        from airflow_provider_coupa_ihr.testing.report import summary

        return summary(self.state)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Alerts raised by ``create_alert`` actions: record, document and the contact type alerted."""
        return [e.as_dict() for e in self.state.effects("alert")]

    @property
    def exported(self) -> list[dict[str, Any]]:
        """Documents marked exported by ``mark_exported`` actions."""
        return [e.as_dict() for e in self.state.effects("exported")]

    @property
    def acknowledged(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.state.effects("acknowledged")]

    def expire_tokens(self) -> int:
        """Expire every token issued so far, before its advertised lifetime. Returns how many."""
        return self.authority.expire_all()

    @property
    def tokens_issued(self) -> int:
        return self.authority.tokens_issued

    def issued_tokens(self) -> list[str]:
        """Every access token handed out (for tests proving none leaked into logs)."""
        return self.authority.every_token()

    def requests(self, *, method: str | None = None, path_contains: str | None = None) -> list[RequestRecord]:
        """The API requests seen so far (token requests included, admin requests not)."""
        return [
            r
            for r in list(self.request_log)
            if (method is None or r.method == method) and (path_contains is None or path_contains in r.path)
        ]

    def stats(self) -> dict[str, Any]:
        """Counts of requests by status (``dropped`` for connections closed unanswered) and tokens issued."""
        by_status: collections.Counter[str] = collections.Counter(
            "dropped" if r.status is None else str(r.status) for r in list(self.request_log)
        )
        return {"requests": sum(by_status.values()), "by_status": dict(by_status), "tokens_issued": self.tokens_issued}

    # ------------------------------------------------------------------------------------------ HTTP app
    def app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(client_max_size=8 * 1024 * 1024)
        for path in _TOKEN_PATHS:
            app.router.add_post(path, self._token)
        collections_re = "|".join(_COLLECTIONS)
        ihr_actions = "|".join(a for a in ACTION_EFFECTS if a != "create")
        run_actions = "|".join([*RUN_ACTIONS, "max_updated_at"])
        app.router.add_post(r"/api/integration_history_records/{action:" + ihr_actions + "}", self._ihr_action)
        app.router.add_post(r"/api/integration_errors/{action:create_alert}", self._error_action)
        app.router.add_put(
            r"/api/{collection:" + "|".join(_RESOLVABLE) + r"}/{id:\d+}/{action:resolve|unresolve}", self._resolve
        )
        app.router.add_put(r"/api/integration_runs/{id:\d+}/{action:" + run_actions + "}", self._run_action)
        app.router.add_get(r"/api/{collection:" + collections_re + "}", self._index)
        app.router.add_post(r"/api/{collection:" + collections_re + "}", self._create)
        app.router.add_get(r"/api/{collection:" + collections_re + r"}/{id:\d+}", self._show)
        app.router.add_put(r"/api/{collection:" + collections_re + r"}/{id:\d+}", self._update)
        app.router.add_patch(r"/api/{collection:" + collections_re + r"}/{id:\d+}", self._update)
        _add_admin_routes(app, self)
        return app

    # Each API handler body is a plain function of (request, grant); _serve wraps it in the rate limit, faults,
    # auth and rendering that every Coupa endpoint shares.
    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        try:
            body = self.authority.issue(form, request.headers.get("Authorization"))
        except AuthFailure as failure:
            self._log(request, failure.status, None)
            return _oauth_error(failure)
        self._log(request, 200, str(form.get("client_id") or "basic"))
        return _json_response(200, body, headers={"Cache-Control": "no-store"})

    async def _serve(self, request: web.Request, scope: str, act: Any) -> web.StreamResponse:
        from aiohttp import web

        as_json = wants_json(request.headers.get("Accept"))
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait is not None:
                return self._throttled(request, as_json, wait if self.send_retry_after else None)
        transport = request.transport
        if self.new_connection_latency and transport is not None and transport not in self._seen_transports:
            self._seen_transports.add(transport)
            await asyncio.sleep(self.new_connection_latency)
        verdict: Verdict = self.faults.verdict(request.method, request.path)
        if verdict.delay and request.method in ("POST", "PUT", "PATCH"):
            # Take the whole request in before stalling (aiohttp keeps the body for _payload), so a client that
            # gives up during the delay still gets its write done, as the latency fault promises.
            await request.read()
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        if verdict.status == 429:
            return self._throttled(request, as_json, verdict.retry_after)
        if verdict.status is not None:
            self._log(request, verdict.status, None)
            return _plain_error(verdict.status, verdict.retry_after, as_json)
        if verdict.drop_before:
            return self._drop(request)
        try:
            grant = self.authority.check(
                request.headers.get("Authorization"), request.headers.get("X-COUPA-API-KEY"), scope
            )
        except AuthFailure as failure:
            self._log(request, failure.status, None)
            return _oauth_error(failure)
        try:
            payload = await _payload(request) if request.method in ("POST", "PUT", "PATCH") else {}
            status, value, root, query = act(request, grant, payload)
        except NotFound:
            self._log(request, 404, grant.client_id)
            body, ctype = errors_body("base", ["Record not found"], as_json=as_json)
            return web.Response(status=404, body=body, headers={"Content-Type": ctype})
        except (Invalid, QueryError) as problem:
            resource = problem.resource if isinstance(problem, Invalid) else "base"
            messages = problem.messages if isinstance(problem, Invalid) else [str(problem)]
            self._log(request, 400, grant.client_id)
            body, ctype = errors_body(resource, messages, as_json=as_json)
            return web.Response(status=400, body=body, headers={"Content-Type": ctype})
        if verdict.drop_after:
            return self._drop(request)
        return self._respond(request, grant, status, value, root, query, as_json)

    def _respond(
        self, request: web.Request, grant: Grant, status: int, value: Any, root: str, query: Any, as_json: bool
    ) -> web.StreamResponse:
        from aiohttp import web

        if query is not None and query.return_object == "none":
            self._log(request, 200, grant.client_id)
            return web.Response(status=200, body=b"")
        value = _shape(value, query)
        if isinstance(value, list) and not value and not as_json:
            self._log(request, 404, grant.client_id)
            body, ctype = errors_body("base", ["No records found"], as_json=False)
            return web.Response(status=404, body=body, headers={"Content-Type": ctype})
        body, ctype = render(value, as_json=as_json, root=root)
        self._log(request, status, grant.client_id)
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})

    def _throttled(self, request: web.Request, as_json: bool, retry_after: float | str | None) -> web.StreamResponse:
        self._log(request, 429, None)
        return _plain_error(429, retry_after, as_json)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        self._log(request, None, None)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    def _log(self, request: web.Request, status: int | None, client_id: str | None) -> None:
        self.request_log.append(RequestRecord(request.method, request.path, status, client_id, time.time()))

    def _user(self, grant: Grant) -> dict[str, Any]:
        """The API user Coupa stamps into ``created-by`` / ``updated-by`` for this client."""
        user = self._users.get(grant.client_id)
        if user is None:
            user = {
                "id": len(self._users) + 1,
                "login": grant.client_id,
                "email": f"{grant.client_id}@emulator.invalid",
                "firstname": "API",
                "lastname": "Integration",
                "fullname": "API Integration",
                "employee-number": None,
                "salesforce-id": None,
                "avatar-thumb-url": None,
                "created-at": None,
                "updated-at": None,
            }
            self._users[grant.client_id] = user
        return user

    # ------------------------------------------------------------------------------------------ endpoints
    async def _index(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["collection"]
        table = self.state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> Any:
            query = parse_query(request.query.items(), table.fields)
            page = self.state.select(table, query)
            return 200, page, _COLLECTIONS[name][0], query

        return await self._serve(request, READ_SCOPE, act)

    async def _show(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["collection"]
        table = self.state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> Any:
            return 200, self.state.get(table, int(request.match_info["id"])), _COLLECTIONS[name][1], _controls(request)

        return await self._serve(request, READ_SCOPE, act)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        return await self._write(request, request.match_info["collection"], "create")

    async def _ihr_action(self, request: web.Request) -> web.StreamResponse:
        return await self._write(request, "integration_history_records", request.match_info["action"])

    async def _error_action(self, request: web.Request) -> web.StreamResponse:
        return await self._write(request, "integration_errors", request.match_info["action"])

    async def _write(self, request: web.Request, name: str, action: str) -> web.StreamResponse:
        table = self.state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> Any:
            controls = _controls(request)
            row = self.state.create(table, _unwrap(payload, table.resource), user=self._user(grant), action=action)
            return 201, row, _COLLECTIONS[name][1], controls

        return await self._serve(request, WRITE_SCOPE, act)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["collection"]
        table = self.state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> Any:
            controls = _controls(request)
            row = self.state.update(
                table, int(request.match_info["id"]), _unwrap(payload, table.resource), user=self._user(grant)
            )
            return 200, row, _COLLECTIONS[name][1], controls

        return await self._serve(request, WRITE_SCOPE, act)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["collection"]
        table = self.state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> Any:
            controls = _controls(request)
            resolved = request.match_info["action"] == "resolve"
            row = self.state.set_resolved(table, int(request.match_info["id"]), resolved, user=self._user(grant))
            return 200, row, _COLLECTIONS[name][1], controls

        return await self._serve(request, WRITE_SCOPE, act)

    async def _run_action(self, request: web.Request) -> web.StreamResponse:
        def act(request: web.Request, grant: Grant, payload: Any) -> Any:
            controls = _controls(request)
            row = self.state.run_action(
                int(request.match_info["id"]),
                request.match_info["action"],
                _unwrap(payload, "integration_run"),
                user=self._user(grant),
            )
            return 200, row, "integration-run", controls

        return await self._serve(request, WRITE_SCOPE, act)


# ---------------------------------------------------------------------------------------------- helpers
def _matching(rows: list[dict[str, Any]], equals: Mapping[str, Any]) -> list[dict[str, Any]]:
    wanted = {k.replace("_", "-"): v for k, v in equals.items()}
    return [r for r in rows if all(r.get(k) == v for k, v in wanted.items())]


def _controls(request: web.Request) -> Any:
    """``fields=`` and ``return_object=`` on a single-resource call (filters make no sense there)."""
    params = [(k, v) for k, v in request.query.items() if k in ("fields", "return_object")]
    return parse_query(params, {}) if params else None


def _shape(value: Any, query: Any) -> Any:
    if query is None:
        return value
    if query.return_object in ("shallow", "limited"):
        value = _shallow(value, limited=query.return_object == "limited")
    return project(value, query.fields)


def _shallow(value: Any, *, limited: bool) -> Any:
    """Our reading of the older ``return_object``: shallow keeps associations as ids, limited drops them."""
    if isinstance(value, list):
        return [_shallow(v, limited=limited) for v in value]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            if not limited:
                out[key] = {"id": item.get("id")}
        elif isinstance(item, list):
            if not limited:
                out[key] = [{"id": i.get("id")} if isinstance(i, dict) else i for i in item]
        else:
            out[key] = item
    return out


def _unwrap(payload: Any, resource: str) -> Mapping[str, Any]:
    """Coupa takes the bare object; a body wrapped in its resource name (``{"integration_history_record": {}}``)
    is accepted too."""
    if not isinstance(payload, Mapping):
        raise Invalid(resource, ["Request body must be a JSON object"])
    for key in (resource, resource.replace("_", "-")):
        if set(payload) == {key} and isinstance(payload[key], Mapping):
            return payload[key]  # type: ignore[no-any-return]
    return payload


async def _payload(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    content_type = request.headers.get("Content-Type", "")
    if "xml" in content_type:
        raise Invalid("base", ["The emulator reads JSON request bodies only: send Content-Type: application/json"])
    try:
        return json.loads(raw)
    except ValueError:
        raise Invalid("base", ["Request body is not valid JSON"]) from None


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    from aiohttp import web

    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": JSON + "; charset=utf-8", **(headers or {})},
    )


def _oauth_error(failure: AuthFailure) -> web.Response:
    headers = {}
    if failure.status in (401, 403):
        headers["WWW-Authenticate"] = f'Bearer error="{failure.error}"'
    return _json_response(failure.status, {"error": failure.error, "error_description": failure.description}, headers)


_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _plain_error(status: int, retry_after: float | str | None, as_json: bool) -> web.Response:
    from aiohttp import web

    headers = {}
    header = retry_after_header(retry_after)
    if header is not None:
        headers["Retry-After"] = header
    message = _REASONS.get(status, "Error")
    body, ctype = errors_body("base", [message], as_json=as_json)
    return web.Response(status=status, body=body, headers={"Content-Type": ctype, **headers})


def _add_admin_routes(app: web.Application, emulator: CoupaEmulator) -> None:
    """``/_emulator/...``: inspect and steer a running emulator over HTTP (no auth, no limits, no faults)."""

    async def health(request: web.Request) -> web.Response:
        return _json_response(200, {"status": "ok"})

    async def state(request: web.Request) -> web.Response:
        s = emulator.state
        return _json_response(
            200,
            {
                "integration-history-records": s.snapshot(s.records),
                "integration-errors": s.snapshot(s.errors),
                "integration-runs": s.snapshot(s.runs),
                "integrations": s.snapshot(s.integrations),
                "side-effects": [e.as_dict() for e in s.effects()],
            },
        )

    async def records(request: web.Request) -> web.Response:
        return _json_response(200, emulator.records())

    async def reset(request: web.Request) -> web.Response:
        emulator.reset()
        return _json_response(200, {"reset": True})

    async def get_faults(request: web.Request) -> web.Response:
        return _json_response(
            200, {"seed": emulator.faults.seed, "faults": [f.as_dict() for f in emulator.faults.faults]}
        )

    async def put_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            faults = [Fault.from_dict(f) for f in body.get("faults", [])]
        except (ValueError, TypeError, AttributeError) as exc:
            return _json_response(400, {"errors": {"faults": [str(exc)]}})
        emulator.faults.clear(seed=body.get("seed"))
        emulator.faults.replace(faults)
        return await get_faults(request)

    async def post_fault(request: web.Request) -> web.Response:
        try:
            emulator.faults.add(Fault.from_dict(await request.json()))
        except (ValueError, TypeError) as exc:
            return _json_response(400, {"errors": {"faults": [str(exc)]}})
        return await get_faults(request)

    async def delete_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return await get_faults(request)

    async def expire(request: web.Request) -> web.Response:
        return _json_response(200, {"expired": emulator.expire_tokens()})

    async def stats(request: web.Request) -> web.Response:
        return _json_response(200, emulator.stats())

    async def rate_limit(request: web.Request) -> web.Response:
        body = await request.json()
        emulator.set_rate_limit(body.get("rate"), int(body.get("burst", 20)), send_retry_after=body.get("retry_after"))
        return _json_response(200, {"rate": body.get("rate"), "burst": body.get("burst", 20)})

    async def resolve(request: web.Request) -> web.Response:
        try:
            row = emulator.resolve(int(request.match_info["id"]), request.match_info["action"] == "resolve")
        except NotFound:
            return _json_response(404, {"errors": {"base": ["Record not found"]}})
        return _json_response(200, row)

    async def integration(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            return _json_response(201, emulator.add_integration(**body))
        except (Invalid, TypeError) as exc:
            return _json_response(400, {"errors": {"integration": [str(exc)]}})

    async def seed(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            count = int(body.pop("count"))
            last = emulator.seed_records(count, **body)
        except (ValueError, TypeError, KeyError, Invalid) as exc:
            return _json_response(400, {"errors": {"seed": [f"{type(exc).__name__}: {exc}"]}})
        return _json_response(201, {"seeded": count, "last_id": last})

    r = app.router
    r.add_get("/_emulator/health", health)
    r.add_post("/_emulator/seed", seed)
    r.add_get("/_emulator/state", state)
    r.add_get("/_emulator/records", records)
    r.add_post("/_emulator/reset", reset)
    r.add_get("/_emulator/faults", get_faults)
    r.add_put("/_emulator/faults", put_faults)
    r.add_post("/_emulator/faults", post_fault)
    r.add_delete("/_emulator/faults", delete_faults)
    r.add_post("/_emulator/expire_tokens", expire)
    r.add_get("/_emulator/stats", stats)
    r.add_put("/_emulator/rate_limit", rate_limit)
    r.add_put(r"/_emulator/records/{id:\d+}/{action:resolve|unresolve}", resolve)
    r.add_post("/_emulator/integrations", integration)
