"""Coupa's HTTP API as the emulator serves it: the OAuth token endpoint and the ``/api/...`` routes.

Every API handler is a plain function of (request, grant, payload) that calls :class:`~.state.CoupaState`;
:meth:`CoupaApi._serve` wraps it in what every Coupa endpoint shares: the rate limit, the injected faults, the
token check and the rendering (JSON or XML, Coupa's error shapes). The settings it obeys (the bucket, the fault
plan, ``send_retry_after``) are read from the emulator on every request, so a test can change them while it runs.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_coupa_ihr.client.records import RUN_ACTIONS
from airflow_provider_coupa_ihr.testing.auth import READ_SCOPE, WRITE_SCOPE, AuthFailure, Grant
from airflow_provider_coupa_ihr.testing.faults import Verdict, retry_after_header
from airflow_provider_coupa_ihr.testing.querying import QueryError, bigint, parse_query, project
from airflow_provider_coupa_ihr.testing.rendering import JSON, BadJson, errors_body, read_json, render, wants_json
from airflow_provider_coupa_ihr.testing.state import ACTION_EFFECTS, Invalid, NotFound

if TYPE_CHECKING:
    from aiohttp import web

    from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator

__all__ = ["CoupaApi", "RequestRecord", "json_response"]

#: URL collection name -> (XML root of a list, XML root of one resource).
COLLECTIONS = {
    "integration_history_records": ("integration-history-records", "integration-history-record"),
    "integration_errors": ("integration-errors", "integration-error"),
    "integration_runs": ("integration-runs", "integration-run"),
    "integrations": ("integrations", "integration"),
}
_RESOLVABLE = ("integration_history_records", "integration_errors")
_TOKEN_PATHS = ("/oauth2/token", "/oauth2/access_tokens")

#: What an endpoint does once the request is let through: (request, grant, payload) -> (status, value, XML root,
#: the ``fields=``/``return_object=`` controls or None).
Action = Callable[["web.Request", Grant, Any], tuple[int, Any, str, Any]]


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator saw (admin calls excluded): enough to count, never the credentials."""

    method: str
    path: str
    status: int | None  # None: the connection was dropped without an answer
    client_id: str | None
    at: float


class CoupaApi:
    """The ``/oauth2`` and ``/api`` routes of one emulator."""

    def __init__(self, emulator: CoupaEmulator) -> None:
        self.emulator = emulator
        self._seen_transports: weakref.WeakSet[Any] = weakref.WeakSet()
        self._users: dict[str, dict[str, Any]] = {}

    def add_routes(self, app: web.Application) -> None:
        for path in _TOKEN_PATHS:
            app.router.add_post(path, self._token)
        collections_re = "|".join(COLLECTIONS)
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

    # ------------------------------------------------------------------------------------------ shared path
    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        try:
            body = self.emulator.authority.issue(form, request.headers.get("Authorization"))
        except AuthFailure as failure:
            self._log(request, failure.status, None)
            return _oauth_error(failure)
        self._log(request, 200, str(form.get("client_id") or "basic"))
        return json_response(200, body, headers={"Cache-Control": "no-store"})

    async def _serve(self, request: web.Request, scope: str, act: Action) -> web.StreamResponse:
        """Answer one API call in the order that keeps every status honest: the credentials first (a missing,
        bad or expired token is 401 and a missing scope 403, whatever else is going on), then the rate limit
        (only calls Coupa would serve spend its budget), then the injected faults, then the endpoint itself."""
        from aiohttp import web

        emulator = self.emulator
        as_json = wants_json(request.headers.get("Accept"))
        transport = request.transport
        if emulator.new_connection_latency and transport is not None and transport not in self._seen_transports:
            self._seen_transports.add(transport)
            await asyncio.sleep(emulator.new_connection_latency)
        try:
            grant = emulator.authority.check(
                request.headers.get("Authorization"), request.headers.get("X-COUPA-API-KEY"), scope
            )
        except AuthFailure as failure:
            self._log(request, failure.status, None)
            return _oauth_error(failure)
        bucket = emulator.rate_limiter
        if bucket is not None:
            wait = bucket.try_acquire()  # a refused request takes no token, as a server's limit works
            if wait is not None:
                return self._throttled(request, grant, as_json, wait if emulator.send_retry_after else None)
        verdict: Verdict = emulator.faults.verdict(request.method, request.path)
        if verdict.delay and request.method in ("POST", "PUT", "PATCH"):
            # Take the whole request in before stalling (aiohttp keeps the body for _payload), so a client that
            # gives up during the delay still gets its write done, as the latency fault promises.
            await request.read()
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        if verdict.status == 429:
            return self._throttled(request, grant, as_json, verdict.retry_after)
        if verdict.status is not None:
            self._log(request, verdict.status, grant.client_id)
            return _plain_error(verdict.status, verdict.retry_after, as_json)
        if verdict.drop_before:
            return self._drop(request, grant)
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
            return self._drop(request, grant)
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

    def _throttled(
        self, request: web.Request, grant: Grant, as_json: bool, retry_after: float | str | None
    ) -> web.StreamResponse:
        self._log(request, 429, grant.client_id)
        return _plain_error(429, retry_after, as_json)

    def _drop(self, request: web.Request, grant: Grant) -> web.StreamResponse:
        from aiohttp import web

        self._log(request, None, grant.client_id)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    def _log(self, request: web.Request, status: int | None, client_id: str | None) -> None:
        self.emulator.request_log.append(RequestRecord(request.method, request.path, status, client_id, time.time()))

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
        state = self.emulator.state
        name = request.match_info["collection"]
        table = state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> tuple[int, Any, str, Any]:
            query = parse_query(request.query.items(), table.fields)
            page = state.select(table, query)
            return 200, page, COLLECTIONS[name][0], query

        return await self._serve(request, READ_SCOPE, act)

    async def _show(self, request: web.Request) -> web.StreamResponse:
        state = self.emulator.state
        name = request.match_info["collection"]
        table = state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> tuple[int, Any, str, Any]:
            return 200, state.get(table, _path_id(request)), COLLECTIONS[name][1], _controls(request)

        return await self._serve(request, READ_SCOPE, act)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        return await self._write(request, request.match_info["collection"], "create")

    async def _ihr_action(self, request: web.Request) -> web.StreamResponse:
        return await self._write(request, "integration_history_records", request.match_info["action"])

    async def _error_action(self, request: web.Request) -> web.StreamResponse:
        return await self._write(request, "integration_errors", request.match_info["action"])

    async def _write(self, request: web.Request, name: str, action: str) -> web.StreamResponse:
        state = self.emulator.state
        table = state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> tuple[int, Any, str, Any]:
            controls = _controls(request)
            row = state.create(table, _unwrap(payload, table.resource), user=self._user(grant), action=action)
            return 201, row, COLLECTIONS[name][1], controls

        return await self._serve(request, WRITE_SCOPE, act)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        state = self.emulator.state
        name = request.match_info["collection"]
        table = state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> tuple[int, Any, str, Any]:
            controls = _controls(request)
            row = state.update(table, _path_id(request), _unwrap(payload, table.resource), user=self._user(grant))
            return 200, row, COLLECTIONS[name][1], controls

        return await self._serve(request, WRITE_SCOPE, act)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        state = self.emulator.state
        name = request.match_info["collection"]
        table = state.table(name)

        def act(request: web.Request, grant: Grant, payload: Any) -> tuple[int, Any, str, Any]:
            controls = _controls(request)
            resolved = request.match_info["action"] == "resolve"
            row = state.set_resolved(table, _path_id(request), resolved, user=self._user(grant))
            return 200, row, COLLECTIONS[name][1], controls

        return await self._serve(request, WRITE_SCOPE, act)

    async def _run_action(self, request: web.Request) -> web.StreamResponse:
        state = self.emulator.state

        def act(request: web.Request, grant: Grant, payload: Any) -> tuple[int, Any, str, Any]:
            controls = _controls(request)
            row = state.run_action(
                _path_id(request),
                request.match_info["action"],
                _unwrap(payload, "integration_run"),
                user=self._user(grant),
            )
            return 200, row, "integration-run", controls

        return await self._serve(request, WRITE_SCOPE, act)


# ---------------------------------------------------------------------------------------------- helpers
def _path_id(request: web.Request) -> int:
    """The ``{id}`` of the path; beyond a bigint it names nothing Coupa could hold, so 400 rather than 404."""
    return bigint(request.match_info["id"], "id", minimum=0)


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
        return read_json(raw)
    except BadJson as exc:
        raise Invalid("base", [str(exc)]) from None


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer outside Coupa's resource shapes (tokens, OAuth errors, the admin API)."""
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
    return json_response(failure.status, {"error": failure.error, "error_description": failure.description}, headers)


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
