"""The admin API: ``/_emulator/...``, inspecting and steering a running emulator over HTTP.

For a DAG run in another process (``coupa-emulator`` on a port, Airflow elsewhere), these endpoints do what the
Python API of :class:`~.emulator.CoupaEmulator` does in-process. They need no token and are never rate limited
or faulted, so a test can always reach them. Bodies and answers are JSON; a body that is not a JSON object, or a
value the emulator cannot use, answers 400 with ``{"errors": {topic: [messages]}}`` and changes nothing.

======  ========================================  ==================================================================
Method  Path                                      What it does (Python equivalent)
======  ========================================  ==================================================================
GET     ``/_emulator/health``                     ``{"status": "ok"}`` once the emulator serves.
GET     ``/_emulator/state``                      Everything held: records, errors, runs, integrations and the side
                                                  effects of IHR actions (``alerts``, ``exported``, ``acknowledged``).
GET     ``/_emulator/records``                    Stored records, dash-case keys (``coupa.records(**equals)``).
                                                  Takes the filters of ``GET /api/integration_history_records``:
                                                  ``document_id=7`` or ``document-id=7``, ``resolved=false``,
                                                  ``integration[code]=X``, every ``[operator]``, ``order_by``,
                                                  ``dir``, ``fields``. Unlike the API it answers every match, not
                                                  pages of 50; ``limit`` and ``offset`` cut it when given.
GET     ``/_emulator/integration_runs``           Runs, with the same filters (``coupa.integration_runs()``).
GET     ``/_emulator/integration_errors``         Integration errors, likewise (``coupa.integration_errors()``).
GET     ``/_emulator/stats``                      Requests by status and tokens issued (``coupa.stats()``).
POST    ``/_emulator/reset``                      Forget records, runs, errors, integrations, faults and the request
                                                  log; tokens stay valid (``coupa.reset()``).
POST    ``/_emulator/seed``                       ``{"count": N, <field>: value...}`` stores N records at once
                                                  without HTTP, ``document_id`` counting up (``coupa.seed_records``);
                                                  at most :data:`MAX_SEED` a call. Answers ``seeded`` and ``last_id``.
POST    ``/_emulator/integrations``               ``{"code": "X", <attribute>: value...}`` registers an integration
                                                  (``coupa.add_integration``); 400 if the code is taken.
PUT     ``/_emulator/records/{id}/resolve``       What a Coupa user does in the UI (``coupa.resolve(id)``); 404 for
                                                  an unknown id, 400 for one beyond a bigint.
PUT     ``/_emulator/records/{id}/unresolve``     The reverse (``coupa.resolve(id, False)``).
GET     ``/_emulator/faults``                     The fault plan: ``{"seed": n, "faults": [...]}``.
PUT     ``/_emulator/faults``                     ``{"seed": n, "faults": [...]}`` replaces the plan and restarts the
                                                  seeded sequence, so a run replays (``coupa.faults.replace``).
POST    ``/_emulator/faults``                     One fault object added to the plan (``coupa.faults.add``); its keys
                                                  are :class:`~.faults.Fault`'s: ``kind``, ``rate``, ``status``,
                                                  ``seconds``, ``retry_after``, ``count``, ``methods``,
                                                  ``path_contains``.
DELETE  ``/_emulator/faults``                     Remove every fault (``coupa.faults.clear()``).
POST    ``/_emulator/expire_tokens``              Expire every token issued so far (``coupa.expire_tokens()``):
                                                  answers ``{"expired": n}``.
PUT     ``/_emulator/rate_limit``                 ``{"rate": 25, "burst": 20, "retry_after": true}`` replaces the
                                                  token bucket; ``rate`` 0 or null turns it off
                                                  (``coupa.set_rate_limit``).
======  ========================================  ==================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_coupa_ihr.client.values import finite_number, whole_number
from airflow_provider_coupa_ihr.testing.coupa_api import json_response
from airflow_provider_coupa_ihr.testing.faults import Fault
from airflow_provider_coupa_ihr.testing.querying import QueryError, bigint, parse_query, project
from airflow_provider_coupa_ihr.testing.rendering import BadJson, quoted, read_json
from airflow_provider_coupa_ihr.testing.state import Invalid, NotFound

if TYPE_CHECKING:
    from aiohttp import web

    from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator

__all__ = ["add_admin_routes"]


#: The most records one ``POST /_emulator/seed`` stores: seeding runs on the server's event loop, which answers
#: nothing else meanwhile (about 2 s per 100,000 records on a small machine). Seed more in several calls.
MAX_SEED = 100_000


class _BadRequest(Exception):
    """An admin call the emulator refuses: 400 with ``{"errors": {topic: [message]}}``."""

    def __init__(self, topic: str, message: str) -> None:
        super().__init__(message)
        self.topic = topic
        self.message = message


Handler = Callable[["web.Request"], Awaitable["web.Response"]]


def _answering_400(handler: Handler) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _BadRequest as bad:
            return json_response(400, {"errors": {bad.topic: [bad.message]}})

    return handle


async def _json_object(request: web.Request, topic: str) -> dict[str, Any]:
    """The request's body, which must be a JSON object (malformed, non-UTF-8 or too deeply nested text is 400)."""
    try:
        body = read_json(await request.read(), what="The body")
    except BadJson as exc:
        raise _BadRequest(topic, str(exc)) from None
    if not isinstance(body, dict):
        raise _BadRequest(topic, f"The body must be a JSON object, got {quoted(body)}")
    return body


def _record_id(request: web.Request) -> int:
    try:
        return bigint(request.match_info["id"], "id", minimum=0)
    except QueryError as exc:
        raise _BadRequest("base", str(exc)) from None


def add_admin_routes(app: web.Application, emulator: CoupaEmulator) -> None:
    """Add ``/_emulator/...`` to ``app``, each route acting on ``emulator``."""

    async def health(request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    async def state(request: web.Request) -> web.Response:
        s = emulator.state
        return json_response(
            200,
            {
                "integration-history-records": s.snapshot(s.records),
                "integration-errors": s.snapshot(s.errors),
                "integration-runs": s.snapshot(s.runs),
                "integrations": s.snapshot(s.integrations),
                "side-effects": [e.as_dict() for e in s.effects()],
            },
        )

    def listing(name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            state = emulator.state
            table = state.table(name)
            params = [(k, v) for k, v in request.query.items() if k not in ("limit", "offset")]
            try:
                query = parse_query(params, table.fields)
                offset = bigint(request.query.get("offset", "0"), "offset", minimum=0)
                limit = bigint(request.query["limit"], "limit", minimum=0) if "limit" in request.query else None
            except QueryError as exc:
                raise _BadRequest("base", str(exc)) from None
            query = replace(query, offset=offset, limit=limit if limit is not None else sys.maxsize)
            return json_response(200, project(state.select(table, query), query.fields))

        return handler

    async def reset(request: web.Request) -> web.Response:
        emulator.reset()
        return json_response(200, {"reset": True})

    async def get_faults(request: web.Request) -> web.Response:
        return json_response(
            200, {"seed": emulator.faults.seed, "faults": [f.as_dict() for f in emulator.faults.faults]}
        )

    def _faults(items: Any) -> list[Fault]:
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _BadRequest("faults", f"faults must be a list of fault objects, got {quoted(items)}")
        try:
            return [Fault.from_dict(item) for item in items]
        except (ValueError, TypeError) as exc:
            raise _BadRequest("faults", str(exc)) from None

    async def put_faults(request: web.Request) -> web.Response:
        body = await _json_object(request, "faults")
        faults = _faults(body.get("faults", []))
        seed = body.get("seed")
        if seed is not None and whole_number(seed) is None:
            raise _BadRequest("faults", f"seed must be a whole number, got {quoted(seed)}")
        emulator.faults.clear(seed=seed)
        emulator.faults.replace(faults)
        return await get_faults(request)

    async def post_fault(request: web.Request) -> web.Response:
        [fault] = _faults([await _json_object(request, "faults")])
        emulator.faults.add(fault)
        return await get_faults(request)

    async def delete_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return await get_faults(request)

    async def expire(request: web.Request) -> web.Response:
        return json_response(200, {"expired": emulator.expire_tokens()})

    async def stats(request: web.Request) -> web.Response:
        return json_response(200, emulator.stats())

    async def rate_limit(request: web.Request) -> web.Response:
        body = await _json_object(request, "rate_limit")
        rate, burst, retry_after = body.get("rate"), body.get("burst", 20), body.get("retry_after")
        if retry_after is not None and not isinstance(retry_after, bool):
            raise _BadRequest("rate_limit", f"retry_after must be true, false or null, got {quoted(retry_after)}")
        if rate is not None and (finite_number(rate) is None or rate < 0):
            raise _BadRequest("rate_limit", f"rate must be requests per second (0 or null: off), got {quoted(rate)}")
        if whole_number(burst, minimum=1) is None:
            raise _BadRequest("rate_limit", f"burst must be a whole number of 1 or more, got {quoted(burst)}")
        emulator.set_rate_limit(rate, burst, send_retry_after=retry_after)
        return json_response(200, {"rate": rate, "burst": burst})

    async def resolve(request: web.Request) -> web.Response:
        try:
            row = emulator.resolve(_record_id(request), request.match_info["action"] == "resolve")
        except NotFound:
            return json_response(404, {"errors": {"base": ["Record not found"]}})
        return json_response(200, row)

    async def integration(request: web.Request) -> web.Response:
        body = await _json_object(request, "integration")
        code = body.pop("code", None)
        try:
            return json_response(201, emulator.add_integration(code, **body))
        except Invalid as exc:
            raise _BadRequest("integration", str(exc)) from None

    async def seed(request: web.Request) -> web.Response:
        body = await _json_object(request, "seed")
        count = whole_number(body.pop("count", None), minimum=0, maximum=MAX_SEED)
        if count is None:
            raise _BadRequest("seed", f"count must be a whole number from 0 to {MAX_SEED}")
        try:
            last = emulator.seed_records(count, **body)
        except (ValueError, TypeError, Invalid) as exc:
            raise _BadRequest("seed", f"{type(exc).__name__}: {quoted(str(exc), 300)}") from None
        return json_response(201, {"seeded": count, "last_id": last})

    r = app.router
    for method, path, handler in [
        ("GET", "/_emulator/health", health),
        ("POST", "/_emulator/seed", seed),
        ("GET", "/_emulator/state", state),
        ("GET", "/_emulator/records", listing("integration_history_records")),
        ("GET", "/_emulator/integration_runs", listing("integration_runs")),
        ("GET", "/_emulator/integration_errors", listing("integration_errors")),
        ("POST", "/_emulator/reset", reset),
        ("GET", "/_emulator/faults", get_faults),
        ("PUT", "/_emulator/faults", put_faults),
        ("POST", "/_emulator/faults", post_fault),
        ("DELETE", "/_emulator/faults", delete_faults),
        ("POST", "/_emulator/expire_tokens", expire),
        ("GET", "/_emulator/stats", stats),
        ("PUT", "/_emulator/rate_limit", rate_limit),
        ("PUT", r"/_emulator/records/{id:\d+}/{action:resolve|unresolve}", resolve),
        ("POST", "/_emulator/integrations", integration),
    ]:
        r.add_route(method, path, _answering_400(handler))
