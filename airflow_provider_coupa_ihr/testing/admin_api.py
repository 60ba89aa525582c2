"""The admin API: ``/_emulator/...``, inspecting and steering a running emulator over HTTP.

For a DAG run in another process (``coupa-emulator`` on a port, Airflow elsewhere), these endpoints do what the
Python API of :class:`~.emulator.CoupaEmulator` does in-process. They need no token and are never rate limited
or faulted, so a test can always reach them. Every answer is JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_coupa_ihr.testing.coupa_api import json_response
from airflow_provider_coupa_ihr.testing.faults import Fault
from airflow_provider_coupa_ihr.testing.state import Invalid, NotFound

if TYPE_CHECKING:
    from aiohttp import web

    from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator

__all__ = ["add_admin_routes"]


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

    async def records(request: web.Request) -> web.Response:
        return json_response(200, emulator.records())

    async def reset(request: web.Request) -> web.Response:
        emulator.reset()
        return json_response(200, {"reset": True})

    async def get_faults(request: web.Request) -> web.Response:
        return json_response(
            200, {"seed": emulator.faults.seed, "faults": [f.as_dict() for f in emulator.faults.faults]}
        )

    async def put_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            faults = [Fault.from_dict(f) for f in body.get("faults", [])]
        except (ValueError, TypeError, AttributeError) as exc:
            return json_response(400, {"errors": {"faults": [str(exc)]}})
        emulator.faults.clear(seed=body.get("seed"))
        emulator.faults.replace(faults)
        return await get_faults(request)

    async def post_fault(request: web.Request) -> web.Response:
        try:
            emulator.faults.add(Fault.from_dict(await request.json()))
        except (ValueError, TypeError) as exc:
            return json_response(400, {"errors": {"faults": [str(exc)]}})
        return await get_faults(request)

    async def delete_faults(request: web.Request) -> web.Response:
        emulator.faults.clear()
        return await get_faults(request)

    async def expire(request: web.Request) -> web.Response:
        return json_response(200, {"expired": emulator.expire_tokens()})

    async def stats(request: web.Request) -> web.Response:
        return json_response(200, emulator.stats())

    async def rate_limit(request: web.Request) -> web.Response:
        body = await request.json()
        emulator.set_rate_limit(body.get("rate"), int(body.get("burst", 20)), send_retry_after=body.get("retry_after"))
        return json_response(200, {"rate": body.get("rate"), "burst": body.get("burst", 20)})

    async def resolve(request: web.Request) -> web.Response:
        try:
            row = emulator.resolve(int(request.match_info["id"]), request.match_info["action"] == "resolve")
        except NotFound:
            return json_response(404, {"errors": {"base": ["Record not found"]}})
        return json_response(200, row)

    async def integration(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            return json_response(201, emulator.add_integration(**body))
        except (Invalid, TypeError) as exc:
            return json_response(400, {"errors": {"integration": [str(exc)]}})

    async def seed(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            count = int(body.pop("count"))
            last = emulator.seed_records(count, **body)
        except (ValueError, TypeError, KeyError, Invalid) as exc:
            return json_response(400, {"errors": {"seed": [f"{type(exc).__name__}: {exc}"]}})
        return json_response(201, {"seeded": count, "last_id": last})

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
