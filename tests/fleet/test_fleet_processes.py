"""Plain processes sharing one Coupa budget through Redis, as a fleet's workers do, judged by what Coupa saw.

Each process is a fresh Python that builds a ``CoupaHook`` from ``AIRFLOW_CONN_*`` variables, the Coupa
connection naming a redis connection in ``rate_limit_redis_conn_id``, and writes records as fast as the client
lets it. The emulator enforces Coupa's 25 requests/s with bursts of 20 and answers 429 beyond; so:

- three processes together stay within the bucket (429s at most 1 % of the API requests, at most 45 requests in
  any one-second window) and still use it fully;
- one process alone gets at least 90 % of 25 requests/s: sharing costs a lone process nothing, where the static
  division (``rate_limit = 25 / 4``) would hold it to a quarter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
from reliability_helpers import api_requests, peak_per_window

from airflow_provider_coupa_ihr.testing import CoupaEmulator

INTEGRATION = "FLEET-PROCESSES"
RATE, BURST = 25.0, 20

_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    seconds, first_id = float(sys.argv[1]), int(sys.argv[2])
    created = failed = 0
    with CoupaHook() as hook:
        hook.client.token()
        print("ready", flush=True)
        sys.stdin.readline()  # every process starts together
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                hook.create_record(document_type="InvoiceHeader", document_id=first_id + created,
                                   contact_alert_type="Functional", status="Success", integration=sys.argv[3])
                created += 1
            except Exception as exc:  # counted, and the figures say so
                failed += 1
                print(f"error: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr, flush=True)
    print(json.dumps({"created": created, "failed": failed}), flush=True)
    """
)


def _environment(coupa: CoupaEmulator, redis_port: int, budget: str) -> dict[str, str]:
    home = tempfile.mkdtemp(prefix="coupa-fleet-proc-")
    conn = json.loads(coupa.airflow_connection(rate_limit_redis_conn_id="coupa_budget", rate_limit_budget=budget))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW_CONN_COUPA_DEFAULT": json.dumps(conn),
            "AIRFLOW_CONN_COUPA_BUDGET": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": redis_port}),
        }
    )
    return env


def _run_processes(coupa: CoupaEmulator, redis_port: int, count: int, seconds: float, budget: str) -> dict[str, Any]:
    env = _environment(coupa, redis_port, budget)
    # stderr to files, not pipes: Airflow's start-up chatter must not fill a pipe nobody reads yet.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(count)]  # noqa: SIM115 - closed in finally
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(seconds), str(100_000 * (i + 1)), INTEGRATION],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logs[i],
            text=True,
        )
        for i in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            # Airflow 2 logs to stdout as it starts: skip to the worker's own word.
            while (line := process.stdout.readline()) and line.strip() != "ready":
                pass
            assert line.strip() == "ready", _tail(logs[processes.index(process)])
        before = len(api_requests(coupa))
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in processes:
            out, _ = process.communicate(timeout=seconds + 120)
            assert process.returncode == 0, _tail(logs[processes.index(process)])
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for log in logs:
            log.close()
    seen = api_requests(coupa)[before:]
    answered = [r for r in seen if r.status is not None]
    times = [r.at for r in answered]
    span = max(times) - min(times) if len(times) > 1 else seconds
    ok = [r for r in answered if r.status is not None and 200 <= r.status < 300]
    refused = [r for r in answered if r.status == 429]
    return {
        "created": sum(r["created"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "requests": len(answered),
        "ok": len(ok),
        "429": len(refused),
        "span": span,
        "rate": len(ok) / span if span > 0 else 0.0,
        "peak": peak_per_window(times),
    }


def _tail(log: Any) -> str:
    log.seek(0)
    return str(log.read())[-2000:]


@pytest.fixture
def coupa() -> Any:
    with CoupaEmulator(rate_limit=RATE, burst=BURST) as emulator:
        emulator.add_integration(INTEGRATION)
        yield emulator


def test_three_processes_share_one_budget_and_one_alone_uses_it_all(
    coupa: CoupaEmulator, redis_server: Any, fleet_report: Callable[[str], None]
) -> None:
    budget = f"processes-{time.time_ns()}"
    together = _run_processes(coupa, redis_server.port, 3, 10.0, budget)
    fleet_report(
        f"3 processes, one budget in Redis: {together['ok']} records in {together['span']:.1f} s = "
        f"{together['rate']:.1f}/s ({together['rate'] / RATE:.0%} of {RATE:g}/s); 429s {together['429']} of "
        f"{together['requests']} API requests; peak {together['peak']} in any 1-s window (limit {RATE:g} + burst "
        f"{BURST}); failed calls {together['failed']}"
    )
    assert together["failed"] == 0
    assert together["created"] == together["ok"]
    assert together["429"] <= 0.01 * together["requests"]
    assert together["peak"] <= RATE + BURST
    assert together["rate"] >= 0.9 * RATE

    alone = _run_processes(coupa, redis_server.port, 1, 8.0, f"{budget}-alone")
    fleet_report(
        f"1 process alone on the shared budget: {alone['ok']} records in {alone['span']:.1f} s = "
        f"{alone['rate']:.1f}/s ({alone['rate'] / RATE:.0%} of {RATE:g}/s; the static division for a 3-slot pool "
        f"and a triggerer would allow {RATE / 4:g}/s); 429s {alone['429']}"
    )
    assert alone["failed"] == 0
    assert alone["rate"] >= 0.9 * RATE
