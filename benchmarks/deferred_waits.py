"""What hundreds of deferred waits cost a triggerer: memory per wait and CPU per poll, measured.

    .venv/bin/python benchmarks/deferred_waits.py [--triggers 500] [--seconds 10] [--poke-interval 1]
                                                   [--coupa-limits] [--private-pools]

``--triggers`` CoupaRecordsResolvedTriggers, each waiting on its own unresolved record, run concurrently in one
event loop, as a triggerer runs them. Each is built the way the triggerer builds it: ``serialize()``, through
JSON, then the class called with the kwargs. The emulator runs in a separate process, so the figures are the
triggers' own (a triggerer does not host Coupa either).

- **memory per wait**: the process's RSS growth once every trigger is waiting (first poll done), divided by the
  number of waits; and, in a second round under ``tracemalloc``, the Python memory they hold, divided likewise.
- **CPU per poll**: ``time.process_time()`` over a steady window of ``--seconds`` while all of them wait, divided
  by the polls the emulator answered in that window. Sleeping waits cost nothing; each poll costs this.
- then every record is resolved at once (over the emulator's admin API) and the script checks that each
  trigger yields exactly one ``resolved`` event, and how long the last one took.

Rate limits: by default both Coupa's (the emulator's 25 requests/s) and the client's are off (connection extra
``rate_limit: 0``), so the window measures the triggers rather than the limit. ``--coupa-limits`` turns both on
at Coupa's 25/s (burst 20): every trigger in the process shares the client's one throttle (per instance and
client), so the 500 waits together stay under Coupa's limit and the emulator answers no 429 at all; polls then
queue behind the throttle and the poll rate is 25/s whatever the poke interval.

``--private-pools`` gives each wait its own HTTP connection pool (what the async client did before pools were
shared per event loop), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

CONN_ID = "coupa_bench"
RECORD = {"document_type": "InvoiceHeader", "document_id": 7, "contact_alert_type": "Both", "status": "Error"}


@dataclass
class Result:
    triggers: int
    poke_interval: float
    coupa_limits: bool
    shared_pools: bool
    rss_kb_per_wait: float
    traced_kb_per_wait: float
    start_cpu_ms_per_wait: float
    window_seconds: float
    polls: int
    cpu_ms_per_poll: float
    polls_per_second: float
    throttled_429: int
    resolved_events: int
    events_per_trigger: int
    seconds_to_last_event: float
    http_pools: int


# ---------------------------------------------------------------------------------------------- the emulator
@contextmanager
def emulator_process(rate_limit: float | None) -> Iterator[str]:
    """``coupa-emulator`` in a child process on a free port; yields its URL."""
    command = [sys.executable, "-m", "airflow_provider_coupa_ihr.testing", "--port", "0"]
    command += ["--rate-limit", str(rate_limit or 0), "--integration", "BENCH"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        found = re.search(r"(http://\S+)", line)
        if found is None:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield found.group(1)
    finally:
        child.terminate()
        child.wait(10)


def admin(url: str, method: str, path: str) -> Any:
    request = urllib.request.Request(f"{url}/_emulator/{path}", method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def requests_seen(url: str) -> tuple[int, int]:
    """(API requests answered, 429s) so far."""
    stats = admin(url, "GET", "stats")
    return int(stats["requests"]), int(stats["by_status"].get("429", 0))


# ---------------------------------------------------------------------------------------------- the triggers
def build_triggers(ids: list[int], poke_interval: float) -> list[Any]:
    """Each trigger as the triggerer makes it: from its serialized form, through JSON."""
    from airflow_provider_coupa_ihr.triggers.coupa import CoupaRecordsResolvedTrigger

    made = []
    for record_id in ids:
        original = CoupaRecordsResolvedTrigger(
            coupa_conn_id=CONN_ID, record_ids=[record_id], deadline=time.time() + 3600, poke_interval=poke_interval
        )
        classpath, kwargs = original.serialize()
        assert classpath.endswith(".CoupaRecordsResolvedTrigger")
        made.append(CoupaRecordsResolvedTrigger(**json.loads(json.dumps(kwargs))))
    return made


async def drain(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def wait_for_polls(url: str, at_least: int, tasks: list[asyncio.Future[Any]], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (await asyncio.to_thread(requests_seen, url))[0] < at_least:
        ended = [t for t in tasks if t.done()]
        if ended:
            raise RuntimeError(f"{len(ended)} waits ended before they all waited, e.g.: {ended[0].result()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {at_least} requests after {timeout} s")
        await asyncio.sleep(0.1)


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


async def one_round(url: str, ids: list[int], poke_interval: float, window: float, traced: bool) -> dict[str, Any]:
    from airflow_provider_coupa_ihr.client import aio

    def resolve_all() -> None:
        for record_id in ids:
            admin(url, "PUT", f"records/{record_id}/resolve")

    before_requests, _ = await asyncio.to_thread(requests_seen, url)
    if traced:
        tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0] if traced else 0
    rss_before, cpu_before = rss_bytes(), time.process_time()
    tasks = [asyncio.ensure_future(drain(t)) for t in build_triggers(ids, poke_interval)]
    await wait_for_polls(url, before_requests + len(ids), tasks)  # every wait has made its first poll: all are waiting
    start_cpu = time.process_time() - cpu_before
    rss_waiting = rss_bytes() - rss_before
    traced_waiting = tracemalloc.get_traced_memory()[0] - traced_before if traced else 0
    if traced:
        tracemalloc.stop()
    loop = asyncio.get_running_loop()
    pools = sum(1 for pool in aio._POOLS.get(loop, {}).values() if pool.users)

    polls_a, throttled_a = await asyncio.to_thread(requests_seen, url)
    cpu_a, wall_a = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    cpu_b, wall_b = time.process_time(), time.monotonic()
    polls_b, throttled_b = await asyncio.to_thread(requests_seen, url)

    await asyncio.to_thread(resolve_all)
    resolved_at = time.monotonic()
    outcomes = await asyncio.gather(*tasks)
    last_event = time.monotonic() - resolved_at
    return {
        "rss": rss_waiting,
        "traced": traced_waiting,
        "start_cpu": start_cpu,
        "window": wall_b - wall_a,
        "polls": polls_b - polls_a,
        "cpu": cpu_b - cpu_a,
        "throttled": throttled_b - throttled_a,
        "events": outcomes,
        "last_event": last_event,
        "pools": pools if pools else len(ids),
    }


def create_records(count: int) -> list[int]:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    hook = CoupaHook(CONN_ID)
    try:
        return [int(hook.create_record(action="create_alert", **RECORD)["id"]) for _ in range(count)]
    finally:
        hook.client.close()


def run(
    triggers: int = 500,
    seconds: float = 10.0,
    poke_interval: float = 1.0,
    *,
    coupa_limits: bool = False,
    shared_pools: bool = True,
) -> Result:
    """Measure ``triggers`` concurrent waits; see the module docstring."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="coupa-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_provider_coupa_ihr.client import aio
    from airflow_provider_coupa_ihr.testing import DEFAULT_CLIENT

    env_name = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    previous_env = os.environ.get(env_name)
    original_lease = aio._lease
    with emulator_process(25.0 if coupa_limits else None) as url:
        extra = {} if coupa_limits else {"rate_limit": 0}
        conn = {"conn_type": "coupa", "host": url, "login": DEFAULT_CLIENT.client_id}
        conn |= {"password": DEFAULT_CLIENT.client_secret, "extra": extra}
        os.environ[env_name] = json.dumps(conn)
        if not shared_pools:
            aio._lease = lambda config: (aio._Pool(aio._new_http(config)), None)
        try:
            warm = create_records(1)
            admin(url, "PUT", f"records/{warm[0]}/resolve")
            asyncio.run(drain(build_triggers(warm, 0.01)[0]))  # imports, token, connection path: warm
            plain = asyncio.run(one_round(url, create_records(triggers), poke_interval, seconds, traced=False))
            traced = asyncio.run(one_round(url, create_records(triggers), poke_interval, 0.0, traced=True))
        finally:
            aio._lease = original_lease
            if previous_env is None:
                os.environ.pop(env_name, None)
            else:
                os.environ[env_name] = previous_env
    events = plain["events"]
    return Result(
        triggers=triggers,
        poke_interval=poke_interval,
        coupa_limits=coupa_limits,
        shared_pools=shared_pools,
        rss_kb_per_wait=plain["rss"] / triggers / 1024,
        traced_kb_per_wait=traced["traced"] / triggers / 1024,
        start_cpu_ms_per_wait=plain["start_cpu"] / triggers * 1000,
        window_seconds=plain["window"],
        polls=plain["polls"],
        cpu_ms_per_poll=plain["cpu"] / max(plain["polls"], 1) * 1000,
        polls_per_second=plain["polls"] / plain["window"] if plain["window"] else 0.0,
        throttled_429=plain["throttled"],
        resolved_events=sum(1 for e in events if len(e) == 1 and e[0]["status"] == "resolved"),
        events_per_trigger=max(len(e) for e in events),
        seconds_to_last_event=plain["last_event"],
        http_pools=plain["pools"],
    )


def report(result: Result) -> str:
    r = result
    limits = "Coupa's 25/s (emulator and client)" if r.coupa_limits else "off (emulator and client)"
    pools = "one shared per event loop" if r.shared_pools else "one private pool per wait"
    window = f"{r.polls} polls in {r.window_seconds:.1f} s, {r.polls_per_second:.0f}/s; 429s: {r.throttled_429}"
    return "\n".join(
        [
            f"{r.triggers} deferred waits in one event loop; emulator in its own process; rate limits {limits};",
            f"HTTP pools: {pools} ({r.http_pools} in use); poke interval {r.poke_interval:g} s",
            f"  memory per wait : {r.rss_kb_per_wait:7.1f} KB RSS   {r.traced_kb_per_wait:7.1f} KB tracemalloc",
            f"  CPU per poll    : {r.cpu_ms_per_poll:7.3f} ms  ({window})",
            f"  CPU to start    : {r.start_cpu_ms_per_wait:7.3f} ms per wait (connection, client, first poll)",
            f"  resolved        : {r.resolved_events}/{r.triggers} events 'resolved', at most {r.events_per_trigger} "
            f"event per trigger, the last {r.seconds_to_last_event:.2f} s after the records were resolved",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--triggers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0, help="steady window measured for CPU per poll")
    parser.add_argument("--poke-interval", type=float, default=1.0)
    parser.add_argument("--coupa-limits", action="store_true", help="Coupa's 25 req/s on emulator and client")
    parser.add_argument("--private-pools", action="store_true", help="one HTTP pool per wait, for comparison")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    result = run(
        args.triggers,
        args.seconds,
        args.poke_interval,
        coupa_limits=args.coupa_limits,
        shared_pools=not args.private_pools,
    )
    print(report(result))
    if args.json:
        print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
