"""``coupa-emulator``: run the Coupa emulator in the foreground until interrupted.

Its banner ends with the two ways to point Airflow at it, ready to paste: an ``AIRFLOW_CONN_<ID>`` variable in
Airflow's JSON form, and an ``airflow connections add`` command for the metadata database. Both carry the
emulator's own test credentials, which are the point of the lines (they are never real ones).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from airflow_provider_coupa_ihr.testing.auth import DEFAULT_CLIENT, READ_SCOPE, WRITE_SCOPE, OAuthClient
from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coupa-emulator", description="A local Coupa IHR API for tests and demos.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one; default 8765)")
    p.add_argument("--client-id", default=DEFAULT_CLIENT.client_id, help="OAuth client id it accepts")
    p.add_argument("--client-secret", default=DEFAULT_CLIENT.client_secret, help="OAuth client secret it accepts")
    p.add_argument(
        "--scopes", default=f"{READ_SCOPE} {WRITE_SCOPE}", help="space-separated scopes the client may ask for"
    )
    p.add_argument("--api-key", action="append", default=[], help="enable legacy X-COUPA-API-KEY with this key")
    p.add_argument("--token-lifetime", type=int, default=86399, help="seconds a token lives (default 86399)")
    p.add_argument("--rate-limit", type=float, default=25.0, help="requests per second, 0 for none (default 25)")
    p.add_argument("--burst", type=int, default=20, help="token bucket burst (default 20)")
    p.add_argument("--no-retry-after", action="store_true", help="answer 429 without a Retry-After header")
    p.add_argument("--seed", type=int, default=0, help="seed for fault decisions (default 0)")
    p.add_argument("--integration", action="append", default=[], help="create an integration with this code")
    p.add_argument(
        "--conn-id", default="coupa_default", help="connection id the printed Airflow lines use (default coupa_default)"
    )
    return p


def connection_lines(emulator: CoupaEmulator, conn_id: str = "coupa_default", **extra: Any) -> list[str]:
    """Shell lines that give Airflow a ``coupa`` connection to ``emulator``: an ``export AIRFLOW_CONN_...`` and
    the equivalent ``airflow connections add``. ``extra`` adds connection extras (``scopes=...``)."""
    value = emulator.airflow_connection(**extra)
    fields = json.loads(value)
    variable = "AIRFLOW_CONN_" + conn_id.upper()
    add = [
        "airflow", "connections", "add", conn_id,
        "--conn-type", fields["conn_type"],
        "--conn-host", fields["host"],
        "--conn-login", fields["login"],
        "--conn-password", fields["password"],
        "--conn-extra", json.dumps(fields["extra"]),
    ]  # fmt: skip
    return [f"export {variable}={shlex.quote(value)}", shlex.join(add)]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    emulator = CoupaEmulator(
        host=args.host,
        port=args.port,
        clients=[OAuthClient(args.client_id, args.client_secret, tuple(args.scopes.split()))],
        api_keys=args.api_key,
        token_lifetime=args.token_lifetime,
        rate_limit=args.rate_limit or None,
        burst=args.burst,
        send_retry_after=not args.no_retry_after,
        seed=args.seed,
    )
    for code in args.integration:
        emulator.add_integration(code)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scopes = args.scopes.split()
    extra = {} if set(scopes) == {READ_SCOPE, WRITE_SCOPE} else {"scopes": " ".join(scopes)}
    with emulator:
        print(f"Coupa emulator listening on {emulator.url}", flush=True)
        print(f"  token:  POST {emulator.url}/oauth2/token (client_id={args.client_id})", flush=True)
        print(f"  admin:  {emulator.url}/_emulator/state", flush=True)
        print("Point Airflow at it with either line (test credentials, not real ones):", flush=True)
        for line in connection_lines(emulator, args.conn_id, **extra):
            print(f"  {line}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
