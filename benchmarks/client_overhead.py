"""Per-call cost of CoupaClient against a bare ``requests.Session`` loop, on the same emulator, in the same run.

    .venv/bin/python benchmarks/client_overhead.py [--calls 400] [--rounds 5]

Both sides make the same calls (create, then get) with the same token over one pooled session; rounds
alternate between them so machine noise hits both alike, and the median of the per-round ratios is reported.
The client's own rate limiter is off here (``rate_limit=None``), because at Coupa's 25 req/s it would measure
the limit, not the client. Also counts token fetches for 1,000 calls through one hook-like client.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import requests

from airflow_provider_coupa_ihr.client.auth import TokenCache
from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.testing import CoupaEmulator

RECORD = {"document-type": "InvoiceHeader", "document-id": 7, "contact-alert-type": "Technical", "status": "Success"}


def bare_loop(url: str, token: str, calls: int) -> float:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    started = time.perf_counter()
    for _ in range(calls):
        created = session.post(f"{url}/api/integration_history_records", json=RECORD, headers=headers, timeout=30)
        created.raise_for_status()
        got = session.get(f"{url}/api/integration_history_records/{created.json()['id']}", headers=headers, timeout=30)
        got.raise_for_status()
        got.json()
    return time.perf_counter() - started


def client_loop(client: CoupaClient, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        created = client.create_record(
            document_type="InvoiceHeader", document_id=7, contact_alert_type="Technical", status="Success"
        )
        client.get_record(created["id"])
    return time.perf_counter() - started


def measure(calls: int, rounds: int) -> dict[str, Any]:
    with CoupaEmulator(rate_limit=None) as coupa:
        cache = TokenCache()
        config = ClientConfig(coupa.url, coupa.client.client_id, coupa.client.client_secret, rate_limit=None)
        client = CoupaClient(config, token_cache=cache)
        token = client.token().value
        bare_loop(coupa.url, token, 20)  # warm both paths
        client_loop(client, 20)
        ratios, bare_times, client_times = [], [], []
        for _ in range(rounds):
            b = bare_loop(coupa.url, token, calls)
            c = client_loop(client, calls)
            bare_times.append(b)
            client_times.append(c)
            ratios.append(c / b)
        fetches_before = coupa.tokens_issued
        thousand = CoupaClient(config, token_cache=TokenCache())
        for _ in range(500):
            created = thousand.create_record(
                document_type="Supplier", document_id=1, contact_alert_type="Both", status="Success"
            )
            thousand.get_record(created["id"])
        return {
            "calls_per_round": calls * 2,
            "rounds": rounds,
            "bare_ms_per_call": statistics.median(bare_times) / (calls * 2) * 1000,
            "client_ms_per_call": statistics.median(client_times) / (calls * 2) * 1000,
            "ratio_median": statistics.median(ratios),
            "ratios": [round(r, 3) for r in ratios],
            "token_fetches_per_1000_calls": coupa.tokens_issued - fetches_before,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="create+get pairs per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.calls, args.rounds)
    print(f"bare requests.Session : {result['bare_ms_per_call']:.3f} ms/call")
    print(f"CoupaClient           : {result['client_ms_per_call']:.3f} ms/call")
    print(f"ratio (median of {result['rounds']}) : {result['ratio_median']:.3f}x   rounds: {result['ratios']}")
    print(f"token fetches for 1,000 calls: {result['token_fetches_per_1000_calls']}")


if __name__ == "__main__":
    main()
