"""Per-call cost of CoupaClient against a bare ``requests.Session`` loop and Airflow's ``HttpHook``.

    .venv/bin/python benchmarks/client_overhead.py [--calls 400] [--rounds 5]

All three make the same calls (create, then get) against the same emulator with a valid token, over HTTPS
(the emulator serves TLS with a throwaway certificate, because Coupa is always HTTPS and what a client pays
per connection only shows with TLS). The bare loop
reuses one ``requests.Session``; ``HttpHook`` is used as its documentation shows (one hook per method, ``run()``
per call, the bearer token passed as a header, since it has no OAuth2 client credentials). Rounds alternate
between the three so machine noise hits all alike; the median of the per-round ratios is reported. The
client's own rate limiter is off (``rate_limit=None``): at Coupa's 25 req/s it would measure the limit, not
the client. Also counts token fetches for 1,000 calls through one client.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import requests

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator

RECORD = {"document-type": "InvoiceHeader", "document-id": 7, "contact-alert-type": "Technical", "status": "Success"}


def bare_loop(url: str, token: str, calls: int, ca: str) -> tuple[float, float]:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        created = session.post(
            f"{url}/api/integration_history_records", json=RECORD, headers=headers, timeout=30, verify=ca
        )
        created.raise_for_status()
        got = session.get(
            f"{url}/api/integration_history_records/{created.json()['id']}", headers=headers, timeout=30, verify=ca
        )
        got.raise_for_status()
        got.json()
    return time.perf_counter() - started, time.thread_time() - cpu


def http_hook_loop(conn_id: str, token: str, calls: int, ca: str) -> tuple[float, float]:
    from airflow.providers.http.hooks.http import HttpHook

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    tls = {"verify": ca}
    post = HttpHook(method="POST", http_conn_id=conn_id)
    get = HttpHook(method="GET", http_conn_id=conn_id)
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        created = post.run("/api/integration_history_records", json=RECORD, headers=headers, extra_options=tls)
        get.run(f"/api/integration_history_records/{created.json()['id']}", headers=headers, extra_options=tls)
    return time.perf_counter() - started, time.thread_time() - cpu


def client_loop(client: CoupaClient, calls: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        created = client.create_record(
            document_type="InvoiceHeader", document_id=7, contact_alert_type="Technical", status="Success"
        )
        client.get_record(created["id"])
    return time.perf_counter() - started, time.thread_time() - cpu


def measure(calls: int, rounds: int, new_connection_latency: float = 0.0) -> dict[str, Any]:
    """``new_connection_latency`` > 0 models the handshake round trips of a real network (see the emulator)."""
    import os

    with CoupaEmulator(rate_limit=None, tls=True, new_connection_latency=new_connection_latency) as coupa:
        ca = coupa.ca_bundle or ""
        os.environ["AIRFLOW_CONN_COUPA_BENCH_HTTP"] = json.dumps(
            {"conn_type": "http", "host": coupa.host, "port": coupa.port, "schema": "https"}
        )
        cache = TokenCache()
        credentials = coupa.credentials
        config = ClientConfig(
            coupa.url, credentials.client_id, credentials.client_secret, rate_limit=None, verify=ca
        )
        client = CoupaClient(config, token_cache=cache)
        token = client.token().value
        bare_loop(coupa.url, token, 20, ca)  # warm all paths
        client_loop(client, 20)
        http_hook_loop("coupa_bench_http", token, 20, ca)
        walls: dict[str, list[float]] = {"bare": [], "client": [], "http_hook": []}
        cpus: dict[str, list[float]] = {"bare": [], "client": [], "http_hook": []}
        for _ in range(rounds):
            for name, loop in (
                ("bare", lambda: bare_loop(coupa.url, token, calls, ca)),
                ("client", lambda: client_loop(client, calls)),
                ("http_hook", lambda: http_hook_loop("coupa_bench_http", token, calls, ca)),
            ):
                wall, cpu = loop()
                walls[name].append(wall)
                cpus[name].append(cpu)
        fetches_before = coupa.tokens_issued
        thousand = CoupaClient(config, token_cache=TokenCache())
        for _ in range(500):
            created = thousand.create_record(
                document_type="Supplier", document_id=1, contact_alert_type="Both", status="Success"
            )
            thousand.get_record(created["id"])
        per_call = calls * 2

        def ms(values: list[float]) -> float:
            return statistics.median(values) / per_call * 1000

        def ratio(a: str, b: str, series: dict[str, list[float]]) -> float:
            return statistics.median(x / y for x, y in zip(series[a], series[b], strict=True))

        return {
            "calls_per_round": per_call,
            "rounds": rounds,
            "wall_ms_per_call": {name: ms(v) for name, v in walls.items()},
            "client_cpu_ms_per_call": {name: ms(v) for name, v in cpus.items()},
            "client_over_bare_wall": ratio("client", "bare", walls),
            "client_over_bare_cpu": ratio("client", "bare", cpus),
            "http_hook_over_client_wall": ratio("http_hook", "client", walls),
            "http_hook_over_client_cpu": ratio("http_hook", "client", cpus),
            "token_fetches_per_1000_calls": coupa.tokens_issued - fetches_before,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="create+get pairs per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--new-connection-latency",
        type=float,
        default=0.0,
        help="seconds the emulator adds per new connection, modelling TCP+TLS handshakes over a network",
    )
    args = parser.parse_args()
    result = measure(args.calls, args.rounds, args.new_connection_latency)
    print(f"{'':22} {'wall ms/call':>13} {'client CPU ms/call':>19}")
    for name, label in (
        ("bare", "bare requests.Session"),
        ("client", "CoupaClient"),
        ("http_hook", "Airflow HttpHook"),
    ):
        wall, cpu = result["wall_ms_per_call"][name], result["client_cpu_ms_per_call"][name]
        print(f"{label:22} {wall:>13.3f} {cpu:>19.3f}")
    print(
        f"CoupaClient / bare : {result['client_over_bare_wall']:.2f}x wall, {result['client_over_bare_cpu']:.2f}x CPU"
    )
    hook_wall, hook_cpu = result["http_hook_over_client_wall"], result["http_hook_over_client_cpu"]
    print(f"HttpHook / Coupa   : {hook_wall:.2f}x wall, {hook_cpu:.2f}x CPU")
    print(f"token fetches for 1,000 calls: {result['token_fetches_per_1000_calls']}")


if __name__ == "__main__":
    main()
