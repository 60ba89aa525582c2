"""How many requests per second the Coupa emulator serves on this machine.

    .venv/bin/python benchmarks/emulator_throughput.py [--seconds 3] [--concurrency 1 8 32]

Measured with an aiohttp client in one event loop (so the client costs little next to the server), rate limit
and faults off, for a read (show), an index page of 50 records and a create; each figure is the median of
several rounds. Both ends share this machine's two cores, so the numbers are a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from airflow_provider_coupa_ihr.testing import CoupaEmulator

RECORD = {"document-type": "InvoiceHeader", "document-id": 1, "contact-alert-type": "Technical", "status": "Success"}


async def _round(url: str, token: str, kind: str, concurrency: int, seconds: float) -> float:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if kind == "show":
                resp = await session.get(f"{url}/api/integration_history_records/1")
            elif kind == "index":
                resp = await session.get(f"{url}/api/integration_history_records", params={"limit": "50"})
            else:
                resp = await session.post(
                    f"{url}/api/integration_history_records",
                    data=json.dumps(RECORD),
                    headers={"Content-Type": "application/json"},
                )
            await resp.read()
            assert resp.status < 300, resp.status
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def measure(seconds: float, concurrencies: list[int], rounds: int) -> list[dict[str, Any]]:
    import requests

    results = []
    with CoupaEmulator(rate_limit=None) as coupa:
        token = requests.post(
            f"{coupa.url}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": coupa.credentials.client_id,
                "client_secret": coupa.credentials.client_secret,
            },
            timeout=10,
        ).json()["access_token"]
        for i in range(60):
            coupa.state.create(coupa.state.records, {**RECORD, "document-id": i + 1}, user=None)
        for kind in ("show", "index", "create"):
            for concurrency in concurrencies:
                rates = [asyncio.run(_round(coupa.url, token, kind, concurrency, seconds)) for _ in range(rounds)]
                results.append(
                    {
                        "request": kind,
                        "concurrency": concurrency,
                        "median_rps": statistics.median(rates),
                        "rounds": [round(r) for r in rates],
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    rows = measure(args.seconds, args.concurrency, args.rounds)
    print(f"{'request':<8} {'concurrency':>11} {'median req/s':>13}   rounds")
    for row in rows:
        print(f"{row['request']:<8} {row['concurrency']:>11} {row['median_rps']:>13.0f}   {row['rounds']}")


if __name__ == "__main__":
    main()
