"""The emulator as users hold it from Python: start and stop it, read what landed, steer its faults and limits.

:class:`CoupaEmulator` owns the pieces (the state, the OAuth authority, the fault plan, the rate limit, the
request log) and serves them on its own event loop in a background thread, so a test (or a DAG) in the main
thread talks to it over a real loopback socket exactly as it would talk to Coupa, while the test inspects and
steers it from Python. What the HTTP side answers lives in :mod:`.coupa_api` (Coupa's routes) and
:mod:`.admin_api` (``/_emulator/...``); both read this object, so a change made here shows on the wire at once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_coupa_ihr.client.limiter import TokenBucket
from airflow_provider_coupa_ihr.testing.auth import DEFAULT_CLIENT, Authority, OAuthClient
from airflow_provider_coupa_ihr.testing.coupa_api import CoupaApi, RequestRecord
from airflow_provider_coupa_ihr.testing.faults import FaultPlan
from airflow_provider_coupa_ihr.testing.state import CoupaState
from airflow_provider_coupa_ihr.testing.tls import make_self_signed

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["DEFAULT_CLIENT", "CoupaEmulator", "RequestRecord"]

#: The most requests :attr:`CoupaEmulator.request_log` keeps (the oldest go first), so a long soak stays bounded.
REQUEST_LOG_SIZE = 200_000


class CoupaEmulator:
    """A local Coupa instance for tests, demos and users' own DAG tests.

    >>> with CoupaEmulator() as coupa:                     # doctest: +SKIP
    ...     coupa.url, coupa.credentials.client_id          # base URL on a free loopback port, the login
    ...     coupa.faults.storm(count=10, retry_after=1)     # the next 10 API calls answer 429
    ...     coupa.records()                                 # what has been written, as Coupa returns it

    :param host: where to listen: loopback by default.
    :param port: the port; 0 (the default) picks a free one, then :attr:`url` names it.
    :param clients: the OAuth clients it accepts (default: :data:`DEFAULT_CLIENT` with read and write scopes).
    :param api_keys: legacy ``X-COUPA-API-KEY`` values it accepts; none (legacy auth off) by default.
    :param token_lifetime: seconds a token lives (Coupa: 86399).
    :param rate_limit: requests per second the token bucket in front of ``/api`` allows (Coupa: 25); ``None``
        turns rate limiting off.
    :param burst: the bucket's burst (Coupa: 20).
    :param send_retry_after: whether a throttled answer carries ``Retry-After`` (Coupa's behaviour is disputed).
    :param seed: seeds the fault decisions, so a failing run replays.
    :param extra_document_types: document types newer than R39 that this instance should accept.
    :param tls: serve HTTPS with a fresh self-signed certificate (trust it with :attr:`ca_bundle`), as Coupa
        always does; off by default because plain http on loopback is simpler for most tests.
    :param new_connection_latency: seconds added to the first request on each new connection, modelling what
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
        self.tls = make_self_signed() if tls else None
        self.port = port
        self.state = CoupaState(extra_document_types=extra_document_types)
        self.authority = Authority(clients, api_keys=api_keys, token_lifetime=token_lifetime)
        self.faults = FaultPlan(seed=seed)
        self.send_retry_after = send_retry_after
        #: Coupa's budget in front of ``/api`` (``None``: no rate limit), the very bucket the client paces itself
        #: with, so the two cannot disagree about the arithmetic. Replace it with :meth:`set_rate_limit`.
        self.rate_limiter: TokenBucket | None = None
        self.set_rate_limit(rate_limit, burst)
        self.request_log: collections.deque[RequestRecord] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._api = CoupaApi(self)
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
                "login": self.credentials.client_id,
                "password": self.credentials.client_secret,
                "extra": extra,
            }
        )

    @property
    def credentials(self) -> OAuthClient:
        """The first registered OAuth client (id, secret, scopes): what a connection to this emulator logs in with."""
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

    def app(self) -> web.Application:
        """The aiohttp application: Coupa's API and the admin API, both over this emulator."""
        from aiohttp import web

        from airflow_provider_coupa_ihr.testing.admin_api import add_admin_routes

        app = web.Application(client_max_size=8 * 1024 * 1024)
        self._api.add_routes(app)
        add_admin_routes(app, self)
        return app

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

    # ------------------------------------------------------------------------------------------ steering
    def set_rate_limit(self, rate: float | None, burst: int = 20, *, send_retry_after: bool | None = None) -> None:
        """Change the token bucket while running (``rate=None`` turns rate limiting off)."""
        self.rate_limiter = TokenBucket(rate, burst) if rate else None
        if send_retry_after is not None:
            self.send_retry_after = send_retry_after

    def reset(self) -> None:
        """Forget all data, faults and the request log (tokens stay valid)."""
        self.state.reset()
        self.faults.clear()
        self.request_log.clear()

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

    def expire_tokens(self) -> int:
        """Expire every token issued so far, before its advertised lifetime. Returns how many."""
        return self.authority.expire_all()

    # ------------------------------------------------------------------------------------------ inspecting
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


def _matching(rows: list[dict[str, Any]], equals: Mapping[str, Any]) -> list[dict[str, Any]]:
    wanted = {k.replace("_", "-"): v for k, v in equals.items()}
    return [r for r in rows if all(r.get(k) == v for k, v in wanted.items())]
