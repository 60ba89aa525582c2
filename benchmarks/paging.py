"""Walking 100,000 records: CoupaClient's generator against a bare offset-paging loop, time and memory.

    .venv/bin/python benchmarks/paging.py [--records 100000] [--rounds 3]

The emulator runs in its own process (the ``coupa-emulator`` command), seeded over its admin API, so the
memory measured here is the client's alone: ``tracemalloc``'s peak while the walk runs, over what was allocated
before it. Both sides read every record and keep none (counting only), as a streaming consumer would.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import requests

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import DEFAULT_CLIENT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorProcess:
    """The emulator as a separate process, so its memory and CPU never count as the client's."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = Path(sys.executable).parent / "coupa-emulator"
        self.process = subprocess.Popen(
            [str(command), "--port", str(self.port), "--rate-limit", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.admin("GET", "health")
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the emulator did not start")

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=600) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bare_walk(url: str, token: str) -> int:
    """What a user writes without us: offset paging with requests, 50 at a time, until a short page."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    seen, offset = 0, 0
    while True:
        page = session.get(
            f"{url}/api/integration_history_records",
            params={"limit": 50, "offset": offset, "order_by": "id"},
            headers=headers,
            timeout=60,
        ).json()
        seen += len(page)
        offset += len(page)
        if len(page) < 50:
            return seen


def client_walk(client: CoupaClient) -> int:
    return sum(1 for _ in client.query_records())


def measure(records: int, rounds: int) -> dict[str, Any]:
    with EmulatorProcess() as emulator:
        emulator.admin("POST", "seed", {"count": records})
        config = ClientConfig(emulator.url, DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret, rate_limit=None)
        client = CoupaClient(config, token_cache=TokenCache())
        token = client.token().value
        bare_times, client_times = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            assert bare_walk(emulator.url, token) == records
            bare_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert client_walk(client) == records
            client_times.append(time.perf_counter() - started)
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        client_walk(client)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "records": records,
        "rounds": rounds,
        "bare_seconds_median": statistics.median(bare_times),
        "client_seconds_median": statistics.median(client_times),
        "client_over_bare": statistics.median(c / b for c, b in zip(client_times, bare_times, strict=True)),
        "peak_memory_growth_mb": (peak - before) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    r = measure(args.records, args.rounds)
    print(f"walked {r['records']:,} records, median of {r['rounds']}:")
    print(f"  bare offset loop : {r['bare_seconds_median']:.1f} s")
    print(f"  CoupaClient      : {r['client_seconds_median']:.1f} s  ({r['client_over_bare']:.2f}x)")
    print(f"  peak memory growth during the walk: {r['peak_memory_growth_mb']:.2f} MB")


if __name__ == "__main__":
    main()
