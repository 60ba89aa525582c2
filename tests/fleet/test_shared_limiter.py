"""The shared Coupa budget against a real ``redis-server`` on loopback: GCRA semantics decided in Redis, every
process and thread together within the bucket, and the local share while Redis is away (sync and asyncio)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import multiprocessing
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from reliability_helpers import peak_per_window

from airflow_provider_coupa_ihr.client.errors import CoupaConfigError
from airflow_provider_coupa_ihr.client.shared_limiter import (
    KEY_PREFIX,
    RedisSettings,
    SharedBudget,
    SharedThrottle,
    budget_key,
    budget_throttle,
    shared_throttle,
)

LOGGER = "airflow_provider_coupa_ihr.client.shared_limiter"
_KEYS = iter(range(10**6))


def new_key() -> str:
    return f"{KEY_PREFIX}test:{time.time_ns()}:{next(_KEYS)}"


def throttle(server: Any, **options: Any) -> SharedThrottle:
    timeout = options.pop("timeout", 0.5)
    return SharedThrottle(RedisSettings(port=server.port, timeout=timeout), options.pop("key", new_key()), **options)


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------------------------ semantics
def full(limiter: SharedThrottle) -> SharedThrottle:
    """The budget in Redis, idle long enough for its bucket to be full."""
    limiter.reserve()
    time.sleep(limiter.burst / limiter.rate + 0.02)
    return limiter


def test_a_full_budget_gives_the_burst_at_once_then_one_slot_per_interval(redis_server: Any) -> None:
    limiter = full(throttle(redis_server, rate=10, burst=5))
    started = time.monotonic()
    waits = [limiter.reserve() for _ in range(10)]
    elapsed = time.monotonic() - started
    assert waits[:5] == [0.0] * 5
    for n, wait in enumerate(waits[5:], start=1):
        # Booked n intervals after the burst, on Redis's clock, which moved on by at most `elapsed` meanwhile.
        assert n * 0.1 - elapsed - 0.001 <= wait <= n * 0.1 + 0.001, (n, wait, elapsed)
    assert limiter.stats == {"shared": 11, "local": 0, "failures": 0, "fallbacks": 0}
    limiter.close()


def test_a_budget_redis_does_not_hold_starts_with_one_token_not_a_burst(redis_server: Any) -> None:
    """New, long idle, or lost in a restart (while processes on local shares drained Coupa's bucket): one
    request at once, then the rate; the burst builds up as the budget idles."""
    import redis

    limiter = throttle(redis_server, rate=20, burst=5)
    started = time.monotonic()
    waits = [limiter.reserve() for _ in range(4)]
    elapsed = time.monotonic() - started
    assert waits[0] == 0.0
    for n, wait in enumerate(waits[1:], start=1):
        assert n * 0.05 - elapsed - 0.001 <= wait <= n * 0.05 + 0.001, (n, wait)
    redis.Redis(port=redis_server.port).delete(limiter.key)  # what a restart without persistence does
    assert limiter.reserve() == 0.0
    assert limiter.reserve() > 0.04
    limiter.close()


def test_an_idle_budget_refills_to_the_burst_and_expires_an_hour_later(redis_server: Any) -> None:
    import redis

    limiter = full(throttle(redis_server, rate=50, burst=3))
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.reserve() > 0
    ttl_ms = redis.Redis(port=redis_server.port).pttl(limiter.key)
    assert 3_600_000 < ttl_ms <= 3_600_000 + 4 * 20 + 5  # until the bucket is full again, plus an hour
    time.sleep(4 / 50 + 0.02)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    limiter.close()


def test_asyncio_callers_book_the_same_slots(redis_server: Any) -> None:
    limiter = full(throttle(redis_server, rate=20, burst=4))

    async def main() -> list[float]:
        waits = await asyncio.gather(*(limiter.areserve() for _ in range(10)))
        await limiter.aclose()
        return sorted(waits)

    waits = asyncio.run(main())
    assert waits[:4] == [0.0] * 4
    for n, wait in enumerate(waits[4:], start=1):
        assert n * 0.05 - 0.5 <= wait <= n * 0.05 + 0.001, (n, wait)
    assert len(set(waits[4:])) == 6  # distinct slots after the burst
    assert limiter.stats["shared"] == 11


def test_two_instances_never_share_but_a_named_budget_is_one(redis_server: Any) -> None:
    assert budget_key("https://ACME.coupahost.com/") == budget_key("https://acme.coupahost.com:443")
    assert budget_key("https://acme.coupahost.com") != budget_key("https://other.coupahost.com")
    assert budget_key("http://127.0.0.1:8080") == f"{KEY_PREFIX}instance:http://127.0.0.1:8080"
    assert budget_key("https://acme.coupahost.com", "erp-nightly") == f"{KEY_PREFIX}named:erp-nightly"
    with pytest.raises(CoupaConfigError, match="budget name"):
        budget_key("https://acme.coupahost.com", " ")
    with pytest.raises(CoupaConfigError, match="Coupa instance"):
        budget_key("acme")
    first = full(throttle(redis_server, rate=10, burst=2, key=budget_key("https://a.coupahost.com") + new_key()))
    second = full(throttle(redis_server, rate=10, burst=2, key=budget_key("https://b.coupahost.com") + new_key()))
    assert [first.reserve(), first.reserve(), second.reserve(), second.reserve()] == [0.0] * 4
    assert first.reserve() > 0
    assert second.reserve() > 0


def test_one_throttle_per_process_and_budget(redis_server: Any) -> None:
    settings = RedisSettings(port=redis_server.port)
    key = new_key()
    one = shared_throttle(settings, key, rate=25, burst=20, fallback_rate=6.25, fallback_burst=5)
    assert shared_throttle(settings, key, rate=25, burst=20, fallback_rate=6.25, fallback_burst=5) is one
    assert shared_throttle(settings, new_key(), rate=25, burst=20, fallback_rate=6.25, fallback_burst=5) is not one
    assert (one.fallback.rate, one.fallback.burst) == (6.25, 5)


def test_a_connection_budget_falls_back_to_the_static_division_unless_told(redis_server: Any) -> None:
    settings = RedisSettings(port=redis_server.port)
    default = budget_throttle(SharedBudget(settings), "https://acme.coupahost.com", 25, 20)
    assert default.key == budget_key("https://acme.coupahost.com")
    assert (default.fallback.rate, default.fallback.burst) == (6.25, 5)  # README: 3 pool slots + 1 triggerer
    assert budget_throttle(SharedBudget(settings), "https://ACME.coupahost.com/", 25, 20) is default
    told = budget_throttle(SharedBudget(settings, name="erp", fallback_rate=2), "https://acme.coupahost.com", 25, 20)
    assert told.key == f"{KEY_PREFIX}named:erp"
    assert (told.fallback.rate, told.fallback.burst) == (2, 1)
    with pytest.raises(CoupaConfigError, match="rate_limit_fallback"):
        SharedBudget(settings, fallback_rate=0)
    with pytest.raises(CoupaConfigError, match="budget name"):
        SharedBudget(settings, name="")


def test_settings_are_checked_and_the_password_is_never_shown() -> None:
    settings = RedisSettings(host="redis.internal", password="s3cret-pw", ssl=True)
    limiter = SharedThrottle(settings, new_key())
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in repr(limiter)
    assert settings.connection_kwargs()["ssl_cert_reqs"] == "required"
    for bad, match in (
        ({"port": 0}, "port"),
        ({"db": -1}, "db"),
        ({"timeout": 0}, "timeout"),
        ({"host": ""}, "no host"),
        ({"ssl_cert_reqs": "maybe"}, "ssl_cert_reqs"),
    ):
        with pytest.raises(CoupaConfigError, match=match):
            RedisSettings(**bad)
    with pytest.raises(ValueError, match="rate"):
        SharedThrottle(settings, "k", rate=0)
    with pytest.raises(ValueError, match="burst"):
        SharedThrottle(settings, "k", burst=0)


def test_without_the_redis_extra_the_error_says_how_to_install_it(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    limiter = throttle(redis_server)
    with pytest.raises(CoupaConfigError, match=r"airflow-provider-coupa-ihr\[redis\]"):
        limiter.reserve()
    with pytest.raises(CoupaConfigError, match=r"\[redis\]"):
        asyncio.run(limiter.areserve())


# ------------------------------------------------------------------------------------------------ a fleet
_FLEET_PROCESS = """
import json, sys, threading, time
import redis  # imported before the start, as a long-running worker would have it
from airflow_provider_coupa_ihr.client.shared_limiter import RedisSettings, SharedThrottle
port, key, rate, burst, start_at, seconds, threads = sys.argv[1:]
limiter = SharedThrottle(RedisSettings(port=int(port), timeout=5.0), key, rate=float(rate), burst=int(burst))
booked, lock = [], threading.Lock()
deadline = float(start_at) + float(seconds)
def work():
    while True:
        wait = limiter.reserve()
        at = time.time() + wait
        if at >= deadline:
            return
        with lock:
            booked.append(at)
        time.sleep(max(0.0, at - time.time()))
time.sleep(max(0.0, float(start_at) - time.time()))
workers = [threading.Thread(target=work) for _ in range(int(threads))]
[w.start() for w in workers]
[w.join() for w in workers]
print(json.dumps({"booked": booked, "stats": limiter.stats}))
"""


def test_processes_threads_and_asyncio_tasks_together_stay_within_one_bucket(redis_server: Any) -> None:
    """3 processes x 3 threads, 3 threads and 5 asyncio tasks here: at most rate x T + burst slots in T seconds,
    at most rate + burst in any second, and the budget fully used (one queue, no polling)."""
    rate, burst, seconds = 20.0, 10, 3.0
    key = new_key()
    start_at = time.time() + 5.0  # the subprocesses are imported and waiting by then
    args = [str(redis_server.port), key, str(rate), str(burst), str(start_at), str(seconds), "3"]
    processes = [
        subprocess.Popen([sys.executable, "-c", _FLEET_PROCESS, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    limiter = throttle(redis_server, key=key, rate=rate, burst=burst, timeout=5.0)
    limiter.reserve()  # the budget exists and is full again by start_at
    deadline = start_at + seconds
    booked: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            wait = limiter.reserve()  # first: the slot is decided when Redis answers, not when we asked
            at = time.time() + wait
            if at >= deadline:
                return
            with lock:
                booked.append(at)
            time.sleep(max(0.0, at - time.time()))

    async def tasks() -> None:
        async def one() -> None:
            while True:
                wait = await limiter.areserve()
                at = time.time() + wait
                if at >= deadline:
                    return
                booked.append(at)
                await asyncio.sleep(max(0.0, at - time.time()))

        await asyncio.gather(*(one() for _ in range(5)))
        await limiter.aclose()

    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=work) for _ in range(3)]
    threads.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    outputs = [json.loads(p.communicate(timeout=seconds + 30)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    for out in outputs:
        booked.extend(out["booked"])
        assert out["stats"]["failures"] == 0
    assert limiter.stats["failures"] == 0, limiter.stats
    allowed = rate * seconds + burst
    peak = peak_per_window(booked)
    assert len(booked) <= allowed, (len(booked), allowed, [out["stats"] for out in outputs])
    assert len(booked) >= 0.9 * allowed, (len(booked), allowed)  # 15 callers, one budget, fully used
    assert peak <= rate + burst + 1, peak  # +1: a booking is timed on this host, decided on Redis's clock
    assert all(len(out["booked"]) > 0 for out in outputs), "every process got slots"


# ------------------------------------------------------------------------------------------------ outages
@pytest.fixture
def caplog_info(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        yield caplog


def test_redis_stopped_then_restarted_sync(own_redis: Any, caplog_info: pytest.LogCaptureFixture) -> None:
    limiter = full(throttle(own_redis, rate=100, burst=50, fallback_rate=20, fallback_burst=2, probe_interval=0.3))
    assert [limiter.reserve() for _ in range(5)] == [0.0] * 5
    assert limiter.shared

    own_redis.stop()
    started = time.monotonic()
    waits = [limiter.reserve() for _ in range(6)]
    assert time.monotonic() - started < 0.5, "a refused connection falls back at once"
    assert not limiter.shared
    # The local share: 20/s, starting empty (the shared budget was in use: no burst on top of it).
    assert waits[0] == pytest.approx(0.05, abs=0.01)
    assert waits[1] == pytest.approx(0.1, abs=0.01)
    assert waits[5] == pytest.approx(0.3, abs=0.02)
    # Calls keep coming for a second; Redis is asked at most once per probe interval meanwhile.
    until = time.monotonic() + 1.0
    while time.monotonic() < until:
        limiter.reserve()
        time.sleep(0.005)
    stats = limiter.stats
    assert stats["failures"] <= 1 + 1.0 / 0.3 + 1, stats
    assert stats["local"] > 50, stats

    own_redis.start()
    time.sleep(0.35)
    assert limiter.reserve() == 0.0
    assert limiter.shared
    assert limiter.stats["fallbacks"] == 1
    # A second outage: local again, but the process has warned once already.
    own_redis.stop()
    limiter.reserve()
    assert not limiter.shared
    own_redis.start()
    time.sleep(0.35)
    limiter.reserve()
    assert limiter.shared
    assert limiter.stats["fallbacks"] == 2
    warned = warnings_from(caplog_info)
    assert len(warned) == 1, warned
    assert "local share of 20 requests/s" in warned[0]
    assert "Connection refused" in warned[0] or "Connection" in warned[0]
    back = [r.getMessage() for r in caplog_info.records if "back to the shared" in r.getMessage()]
    assert len(back) == 2
    limiter.close()


def test_redis_stopped_then_restarted_asyncio(own_redis: Any, caplog_info: pytest.LogCaptureFixture) -> None:
    limiter = throttle(own_redis, rate=100, burst=50, fallback_rate=20, fallback_burst=2, probe_interval=0.3)

    async def main() -> None:
        assert await limiter.areserve() == 0.0
        own_redis.stop()
        waits = [await limiter.areserve() for _ in range(3)]
        assert waits[0] == pytest.approx(0.05, abs=0.01)
        assert waits[2] == pytest.approx(0.15, abs=0.01)
        assert not limiter.shared
        await asyncio.sleep(0.4)
        await limiter.areserve()  # probes: Redis still away
        assert not limiter.shared
        own_redis.start()
        await asyncio.sleep(0.35)
        await limiter.areserve()
        assert limiter.shared
        await limiter.aclose()

    asyncio.run(main())
    assert len(warnings_from(caplog_info)) == 1
    assert limiter.stats["fallbacks"] == 1


def test_the_handovers_do_not_overlap_the_two_budgets(own_redis: Any) -> None:
    """Falling back, the local share starts after the slots this process booked in Redis (still to be sent);
    coming back, the local slots it booked and has not used yet are charged to the shared budget."""
    limiter = throttle(own_redis, rate=10, burst=1, fallback_rate=10, fallback_burst=1, probe_interval=0.2)
    booked = [limiter.reserve() for _ in range(5)]  # a fresh budget: one at once, then 0.1 s apart
    last_shared = time.monotonic() + booked[-1]
    assert booked[-1] == pytest.approx(0.4, abs=0.02)
    own_redis.stop()
    first_local = limiter.reserve()
    # Empty, one local interval after the last shared slot.
    assert first_local == pytest.approx(last_shared + 0.1 - time.monotonic(), abs=0.03), "after the shared ones"
    local = [limiter.reserve() for _ in range(4)]
    assert [round(b - a, 2) for a, b in itertools.pairwise([first_local, *local])] == [0.1] * 4
    own_redis.start()
    time.sleep(0.25)
    assert limiter.reserve() == 0.0  # back, on a budget Redis lost: its one token
    assert limiter.shared
    other = throttle(own_redis, key=limiter.key, rate=10, burst=1)
    # The ~5 local slots still ahead (0.25 s to 0.8 s from the fallback) were charged: others queue behind them.
    assert other.reserve() >= 0.4
    limiter.close()
    other.close()


def test_callers_failing_together_all_find_the_local_share_empty(own_redis: Any) -> None:
    """At an outage every thread's call fails at once: none may slip through to a full local bucket."""
    limiter = throttle(own_redis, rate=100, burst=50, fallback_rate=10, fallback_burst=5, probe_interval=60)
    limiter.reserve()
    own_redis.stop()
    barrier = threading.Barrier(16)
    waits: list[float] = []

    def call() -> None:
        barrier.wait()
        waits.append(limiter.reserve())

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(waits) == 16
    assert min(waits) > 0.05, sorted(waits)  # empty: the first local slot is one interval (0.1 s) away
    assert len({round(w, 2) for w in waits}) == 16, "each its own slot"
    limiter.close()


def test_a_restart_between_calls_is_no_outage(own_redis: Any, caplog_info: pytest.LogCaptureFixture) -> None:
    """The idle connection Redis closed on restart is replaced once, so the process stays on the shared budget."""
    limiter = throttle(own_redis)
    limiter.reserve()

    async def one() -> float:
        return await limiter.areserve()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(one())
        own_redis.stop()
        own_redis.start()
        assert limiter.reserve() == 0.0  # the budget Redis lost starts again with one token
        assert 0 < loop.run_until_complete(one()) <= 1 / 25 + 0.001  # then the rate
        loop.run_until_complete(limiter.aclose())
    finally:
        loop.close()
    assert limiter.shared
    assert limiter.stats["fallbacks"] == 0
    assert warnings_from(caplog_info) == []


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_hanging_redis_costs_one_timeout_then_the_local_share(
    silent_server: int, caplog_info: pytest.LogCaptureFixture
) -> None:
    limiter = SharedThrottle(
        RedisSettings(port=silent_server, timeout=0.2), new_key(), fallback_rate=10, fallback_burst=1, probe_interval=60
    )
    started = time.monotonic()
    assert limiter.reserve() == pytest.approx(0.1, abs=0.02)  # the local share's first slot: it starts empty
    assert 0.15 < time.monotonic() - started < 1.0
    started = time.monotonic()
    assert limiter.reserve() == pytest.approx(0.2, abs=0.02)
    assert time.monotonic() - started < 0.05, "no second wait on Redis within the probe interval"

    async def main() -> float:
        other = SharedThrottle(RedisSettings(port=silent_server, timeout=0.2), new_key(), probe_interval=60)
        began = time.monotonic()
        await other.areserve()
        return time.monotonic() - began

    assert asyncio.run(main()) < 1.0
    assert "TimeoutError" in warnings_from(caplog_info)[0]


def _reserve_in_child(limiter: SharedThrottle, out: Any) -> None:
    out.put((limiter.reserve(), limiter.shared))


def test_a_forked_child_uses_connections_of_its_own(redis_server: Any) -> None:
    """Celery's prefork workers fork: a child must not talk on its parent's socket."""
    limiter = throttle(redis_server, rate=1000, burst=1000)
    limiter.reserve()  # the parent now holds an idle connection
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_reserve_in_child, args=(limiter, out))
    child.start()
    assert out.get(timeout=20) == (0.0, True)
    child.join(20)
    assert child.exitcode == 0
    assert all(limiter.reserve() < 0.05 for _ in range(20))
    assert limiter.shared
    assert limiter.stats["failures"] == 0
    limiter.close()
