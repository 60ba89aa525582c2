"""What the shared Coupa budget costs a client, and why it is our own Redis script rather than a library.

    .venv/bin/python benchmarks/limiter_cost.py [--calls 300] [--rounds 5] [--libraries]

Needs ``redis-server`` (``python3 scripts/services.py install``) and the ``redis`` package; started here on a
free loopback port and stopped at the end.

**Cost per call** (:func:`measure`): the same ``CoupaClient`` makes the same calls (create, then get) against
the emulator over HTTPS, once with the local :class:`TokenBucket` and once with the :class:`SharedThrottle` on
Redis, both set far above any rate reached (so the figure is the limiter's cost, not its waiting). Rounds
alternate; the median of per-round ratios of the client thread's CPU time (and wall time) is reported; the
target is <= 1.2x CPU. Also the bare cost of one ``reserve()``/``areserve()`` in microseconds.

**Libraries** (:func:`compare_libraries`, ``--libraries``): ``limits`` (moving window on Redis) and
``pyrate-limiter`` (GCRA on a Redis state store) beside our script, if they are installed:

- the cost of one uncontended acquire, sync and asyncio;
- a small fleet: 3 processes x 4 threads taking slots as fast as they are given for a few seconds under 25/s
  burst 20, one process's clock 0.5 s ahead (hosts disagree; NTP keeps them within milliseconds only when it
  works). Counted from the moments the slots were used: total against what the bucket allows (rate x T +
  burst), the most in any one-second window (Coupa allows 45), and Redis commands per slot (polling shows here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import services  # noqa: E402

from airflow_provider_coupa_ihr.client.config import ClientConfig  # noqa: E402
from airflow_provider_coupa_ihr.client.limiter import TokenBucket  # noqa: E402
from airflow_provider_coupa_ihr.client.shared_limiter import RedisSettings, SharedThrottle  # noqa: E402
from airflow_provider_coupa_ihr.client.sync import CoupaClient  # noqa: E402

UNLIMITED = 1e9  # requests/s: far above anything measured, so no limiter ever makes a caller wait
FLEET_PROCESSES, FLEET_THREADS, SKEW = 3, 4, 0.5
RATE, BURST = 25.0, 20


# ------------------------------------------------------------------------------------------------ cost
def _client_loop(client: CoupaClient, calls: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        created = client.create_record(
            document_type="InvoiceHeader", document_id=7, contact_alert_type="Technical", status="Success"
        )
        client.get_record(created["id"])
    return time.perf_counter() - started, time.thread_time() - cpu


def _reserve_cost(limiter: Any, calls: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        limiter.reserve()
    return (time.perf_counter() - started) / calls * 1e6, (time.thread_time() - cpu) / calls * 1e6


def _areserve_cost(limiter: Any, calls: int) -> tuple[float, float]:
    async def loop() -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            await limiter.areserve()
        return (time.perf_counter() - started) / calls * 1e6, (time.thread_time() - cpu) / calls * 1e6

    return asyncio.run(loop())


def _median_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def measure(calls: int, rounds: int, redis_port: int | None = None) -> dict[str, Any]:
    """Client CPU and wall per call with the shared budget over the local bucket; bare limiter call costs."""
    from airflow_provider_coupa_ihr.testing import CoupaEmulator

    server = None if redis_port else services.start_redis()
    port = redis_port or server.port  # type: ignore[union-attr]
    try:
        settings = RedisSettings(port=port)
        with CoupaEmulator(rate_limit=None, tls=True) as coupa:
            config = ClientConfig(
                coupa.url, coupa.credentials.client_id, coupa.credentials.client_secret, verify=coupa.ca_bundle or ""
            )
            local = TokenBucket(UNLIMITED, 10**9)
            shared = SharedThrottle(settings, "coupa-ihr:budget:bench", rate=UNLIMITED, burst=10**9)
            clients = {
                "local": CoupaClient(config, throttle=local),
                "shared": CoupaClient(config, throttle=shared),  # type: ignore[arg-type]
            }
            for client in clients.values():
                _client_loop(client, 20)  # warm every path, fetch the token
            cpu: dict[str, list[float]] = {"local": [], "shared": []}
            wall: dict[str, list[float]] = {"local": [], "shared": []}
            for _ in range(rounds):
                for name, client in clients.items():
                    w, c = _client_loop(client, calls)
                    wall[name].append(w)
                    cpu[name].append(c)
            for client in clients.values():
                client.close()
        bare = {
            "local_reserve": _reserve_cost(local, 5000),
            "shared_reserve": _reserve_cost(shared, 3000),
            "shared_areserve": _areserve_cost(shared, 3000),
        }
        assert shared.stats["failures"] == 0, shared.stats
        shared.close()
    finally:
        if server is not None:
            server.cleanup()
    per_call = calls * 2
    return {
        "calls_per_round": per_call,
        "rounds": rounds,
        "shared_over_local_cpu": _median_ratio(cpu["shared"], cpu["local"]),
        "shared_over_local_wall": _median_ratio(wall["shared"], wall["local"]),
        "client_cpu_us_per_call": {k: statistics.median(v) / per_call * 1e6 for k, v in cpu.items()},
        "client_wall_us_per_call": {k: statistics.median(v) / per_call * 1e6 for k, v in wall.items()},
        "limiter_call_us": {k: {"wall": round(w, 1), "cpu": round(c, 1)} for k, (w, c) in bare.items()},
    }


# ------------------------------------------------------------------------------------------------ libraries
class _Ours:
    name = "own GCRA script (Redis TIME)"

    def __init__(self, port: int, key: str, rate: float, burst: int, skew: float) -> None:
        # The skew changes nothing here by construction: the script reads Redis's clock, not this host's.
        self.limiter = SharedThrottle(RedisSettings(port=port), key, rate=rate, burst=burst)

    def acquire(self) -> None:
        time.sleep(self.limiter.reserve())

    async def aacquire(self) -> None:
        await asyncio.sleep(await self.limiter.areserve())


class _Pyrate:
    name = "pyrate-limiter GCRA (RedisStateStore)"

    def __init__(self, port: int, key: str, rate: float, burst: int, skew: float, asynchronous: bool = False) -> None:
        from pyrate_limiter import Limiter, Rate
        from pyrate_limiter.buckets.redis_state import RedisStateStore
        from pyrate_limiter.buckets.state_bucket import StateBucket
        from pyrate_limiter.clocks import WallClock

        class SkewedClock(WallClock):
            def now(self) -> int:
                return int(super().now() + skew * 1000)

        if asynchronous:
            from redis.asyncio import Redis as AsyncRedis

            redis: Any = AsyncRedis(port=port)
        else:
            from redis import Redis

            redis = Redis(port=port)
        # Rate(limit, interval in ms, burst): GCRA, 25 per 1000 ms, burst 20.
        store = RedisStateStore(redis, key)
        bucket = StateBucket([Rate(int(rate), 1000, burst)], store=store, clock=SkewedClock())
        self.limiter = Limiter(bucket)

    def acquire(self) -> None:
        assert self.limiter.try_acquire("x", blocking=True)

    async def aacquire(self) -> None:
        assert await self.limiter.try_acquire_async("x", blocking=True)


class _Limits:
    name = "limits moving window (RedisStorage)"

    def __init__(self, port: int, key: str, rate: float, burst: int, skew: float) -> None:
        import types

        import limits.storage.redis as redis_storage
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        if skew:
            real = time.time
            redis_storage.time = types.SimpleNamespace(time=lambda: real() + skew)  # type: ignore[attr-defined,assignment]
        self.skew = skew
        self.item = RateLimitItemPerSecond(int(rate))  # a window has no burst: 25 in any second
        self.key = key
        self.limiter = MovingWindowRateLimiter(RedisStorage(f"redis://127.0.0.1:{port}"))

    def acquire(self) -> None:
        while not self.limiter.hit(self.item, self.key):
            reset = self.limiter.get_window_stats(self.item, self.key).reset_time
            time.sleep(min(1.0, max(0.001, reset - time.time() - self.skew)))

    async def aacquire(self) -> None:  # limits' asyncio API needs its own storage; the sync cost is indicative
        self.acquire()


_LIBRARIES: dict[str, Any] = {"ours": _Ours, "pyrate": _Pyrate, "limits": _Limits}


def _available(name: str) -> bool:
    module = {"ours": "redis", "pyrate": "pyrate_limiter", "limits": "limits"}[name]
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _fleet_process(library: str, port: int, key: str, skew: float, start_at: float, seconds: float, out: Any) -> None:
    from redis.connection import Connection

    sent = [0]
    send = Connection.send_packed_command

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return send(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    Connection.send_packed_command = counting  # type: ignore[method-assign]  # round trips to Redis
    limiter = _LIBRARIES[library](port, key, RATE, BURST, skew)
    used: list[float] = []
    lock = threading.Lock()
    deadline = start_at + seconds
    time.sleep(max(0.0, start_at - time.time()))

    def worker() -> None:
        while True:
            limiter.acquire()
            now = time.time()
            if now >= deadline:
                return
            with lock:
                used.append(now)

    threads = [threading.Thread(target=worker) for _ in range(FLEET_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((used, sent[0]))


def _fleet(library: str, port: int, seconds: float, skew: float) -> dict[str, Any]:
    """3 processes x 4 threads from one moment for ``seconds``; the first process's clock ``skew`` s ahead."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    key = f"bench:{library}:fleet:{time.time_ns()}"
    if library == "ours":  # a budget Redis holds, full by the start (a new one starts with one token)
        SharedThrottle(RedisSettings(port=port), key, rate=RATE, burst=BURST).reserve()
    start_at = time.time() + 4  # every process imported and waiting by then
    procs = [
        ctx.Process(target=_fleet_process, args=(library, port, key, skew if i == 0 else 0.0, start_at, seconds, out))
        for i in range(FLEET_PROCESSES)
    ]
    for p in procs:
        p.start()
    answers = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(30)
    used = [t for times, _ in answers for t in times]
    return {
        "slots": len(used),
        "allowed": int(RATE * seconds + BURST),
        "peak_1s": _peak(used),
        "round_trips_per_slot": round(sum(n for _, n in answers) / max(1, len(used)), 2),
        "late_start_s": round(min(used, default=start_at) - start_at, 3),
    }


def _peak(times: list[float]) -> int:
    times, best, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def compare_libraries(seconds: float = 4.0) -> dict[str, Any]:
    server = services.start_redis()
    results: dict[str, Any] = {}
    try:
        for library in _LIBRARIES:
            if not _available(library):
                results[library] = "not installed"
                continue
            # Uncontended cost of one acquire, sync and asyncio (a rate no one reaches).
            fast = _LIBRARIES[library](server.port, f"bench:{library}:cost", 1e6, 10**6, 0.0)
            for _ in range(50):
                fast.acquire()
            started, cpu = time.perf_counter(), time.thread_time()
            for _ in range(2000):
                fast.acquire()
            sync_us = ((time.perf_counter() - started) / 2000 * 1e6, (time.thread_time() - cpu) / 2000 * 1e6)
            if library == "pyrate":
                fast = _Pyrate(server.port, "bench:pyrate:acost", 1e6, 10**6, 0.0, asynchronous=True)

            async def aloop(limiter: Any) -> tuple[float, float]:
                for _ in range(50):
                    await limiter.aacquire()
                started, cpu = time.perf_counter(), time.thread_time()
                for _ in range(2000):
                    await limiter.aacquire()
                return (time.perf_counter() - started) / 2000 * 1e6, (time.thread_time() - cpu) / 2000 * 1e6

            async_us = asyncio.run(aloop(fast))
            results[library] = {
                "name": _LIBRARIES[library].name,
                "sync_acquire_us": {"wall": round(sync_us[0], 1), "cpu": round(sync_us[1], 1)},
                "async_acquire_us": {"wall": round(async_us[0], 1), "cpu": round(async_us[1], 1)},
                "fleet_seconds": seconds,
                "fleet_clocks_agree": _fleet(library, server.port, seconds, 0.0),
                f"fleet_one_clock_{SKEW:g}s_ahead": _fleet(library, server.port, seconds, SKEW),
            }
    finally:
        server.cleanup()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--libraries", action="store_true", help="also compare limits and pyrate-limiter")
    args = parser.parse_args()
    services.ensure_installed(("redis",))
    result: dict[str, Any] = {"cost": measure(args.calls, args.rounds)}
    if args.libraries:
        result["libraries"] = compare_libraries()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
