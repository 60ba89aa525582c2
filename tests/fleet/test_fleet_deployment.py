"""One Coupa budget for a whole Celery fleet, judged by what Coupa (the emulator) saw.

A real CeleryExecutor deployment on loopback (tests/fleet/fleet_deployment.py): PostgreSQL, Redis, scheduler,
dag-processor, triggerer, API server and two Celery workers (concurrency 4 each), and the emulator at Coupa's
25 requests/s, bursts of 20. Each scenario triggers bulk runs of 600 records at once and reads, from the
emulator: every record exactly once, the requests in any one-second window (Coupa allows 25 + 20), the 429s,
and the throughput while the bulk ran.

- **Static division** (today's advice, the README): a ``coupa`` pool of 3 slots and every process a share of
  25 / (3 slots + 1 triggerer) = 6.25/s, burst 5. Safe, and it leaves a quarter of Coupa's budget unused.
- **Shared budget**: the connection's ``rate_limit_redis_conn_id`` names the Redis connection; every process
  books in one budget of 25/s, burst 20 (client/shared_limiter.py), the pool is out of the way (8 slots). Three
  bulks on the workers and 40 deferred waits in the triggerer, resolved mid-run, draw from it together.
- **A lone bulk** on the shared budget gets all of it (the static division would give it a quarter).
- **Redis stopped for 15 s** mid-run (broker and budget): every process falls back to its local share with one
  warning, returns when Redis does, and every task succeeds with every record written once.

The fleet starts once per module (about 20 s on 2 cores after the first install) and the scenarios share it
(about 5 minutes in all); the figures go to the run's summary. Airflow 2.11 is not run: its CeleryExecutor works
differently (no task SDK, no API server), and the fleet proves a property of the client that does not depend on
the Airflow line (tests/fleet/test_shared_limiter.py runs on both).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version

import pytest
from fleet_deployment import SHARED_CONN, STATIC_CONN, WAITS_DAG_ID, WORKER_CONCURRENCY, WORKERS, Fleet
from fleet_services import services, unavailable
from reliability_helpers import api_requests, peak_per_window

from airflow_provider_coupa_ihr.testing import CoupaEmulator

AIRFLOW_VERSION = version("apache-airflow")
pytestmark = [
    pytest.mark.dag,
    pytest.mark.skipif(
        int(AIRFLOW_VERSION.split(".")[0]) < 3,
        reason="the Celery fleet runs on the Airflow 3 line only: 2.11's CeleryExecutor has no task SDK or API "
        "server to exercise, and the shared budget is a property of the client, the same on both lines",
    ),
]

RATE, BURST = 25, 20
RECORDS_PER_RUN = 600
RUNS = 3
#: Deferred waits beside the bulks in the shared scenario, resolved mid-run.
WAITS = 40
STATIC_POOL = 3
#: The README's static division: the pool's slots plus the triggerer share Coupa's 25/s and burst of 20.
STATIC_SHARE = (RATE / (STATIC_POOL + 1), BURST // (STATIC_POOL + 1))
STARTUP_SECONDS = 300
OUTAGE_SECONDS = 15
#: How soon a process asks Redis again while on its local share (client/shared_limiter.py's default).
PROBE_SECONDS = 0.5
SCENARIO_SECONDS = 300
INTEGRATION = "FLEET"


@pytest.fixture(scope="module")
def coupa() -> Iterator[CoupaEmulator]:
    with CoupaEmulator(rate_limit=RATE, burst=BURST) as emulator:
        emulator.add_integration(INTEGRATION)
        yield emulator


@pytest.fixture(scope="module")
def fleet(coupa: CoupaEmulator) -> Iterator[Fleet]:
    if int(AIRFLOW_VERSION.split(".")[0]) < 3:
        pytest.skip("Airflow 3 only")
    for module in ("celery", "psycopg2", "redis", "airflow.providers.celery"):
        pytest.importorskip(module, reason=f"{module} missing: the fleet needs the dev extra (celery, postgres, redis)")
    started = time.monotonic()
    try:
        install = services.ensure_installed()
        redis = services.RedisServer().start()
        postgres = services.PostgresServer().start()
    except services.ServiceUnavailable as exc:
        unavailable(f"no Redis or PostgreSQL: {exc}")
    fleet = Fleet(coupa, redis, postgres, static_share=STATIC_SHARE)
    fleet.timings.steps["install"] = install
    fleet.timings.steps["redis+postgres"] = time.monotonic() - started - install
    try:
        fleet.start()
        fleet.wait_until_ready(time.monotonic() + STARTUP_SECONDS)
        fleet.timings.steps["fleet total"] = time.monotonic() - started
        yield fleet
    finally:
        fleet.stop()
        fleet.cleanup()
        postgres.cleanup()
        redis.cleanup()


class Figures:
    """What Coupa saw of one scenario's runs (requests since it started, records with its batch prefix)."""

    def __init__(self, coupa: CoupaEmulator, since: float, seconds: float, prefix: str, expected: set[str]) -> None:
        self.seconds, self.expected = seconds, expected
        calls = [r for r in api_requests(coupa) if r.at >= since]
        self.calls = calls
        self.statuses = collections.Counter("dropped" if r.status is None else str(r.status) for r in calls)
        self.peak = peak_per_window([r.at for r in calls])
        writes = self.writes = sorted(r.at for r in calls if r.method == "POST")
        self.span = (max(writes) - min(writes)) if len(writes) > 1 else 0.0
        self.write_rate = len(writes) / self.span if self.span else 0.0
        #: Every API request (writes, and any polls beside them) per second while the writes ran.
        busy = sum(writes[0] <= r.at <= writes[-1] for r in calls) if writes else 0
        self.api_rate = busy / self.span if self.span else 0.0
        stored = [r for r in coupa.records() if str(r.get("external-id") or "").startswith(prefix)]
        self.by_external = collections.Counter(str(r["external-id"]) for r in stored)
        self.lost = expected - set(self.by_external)
        self.doubled = sorted(k for k, n in self.by_external.items() if n > 1)
        self.throttled = self.statuses.get("429", 0)

    def timeline(self, around: float, before: int = 3, after: int = 8) -> str:
        """Requests (and 429s) per second around a moment, to explain a failure."""
        cells = []
        for second in range(-before, after):
            at = [r for r in self.calls if around + second <= r.at < around + second + 1]
            cells.append(f"{second:+d}s:{len(at)}/{sum(r.status == 429 for r in at)}")
        return " ".join(cells)

    def write_rate_between(self, start: float, end: float) -> float:
        """Records written per second between two ``time.time()`` moments."""
        return sum(start <= at < end for at in self.writes) / max(1e-9, end - start)

    def line(self, name: str) -> str:
        statuses = dict(sorted(self.statuses.items()))
        return (
            f"{name}: {len(self.expected)} records in {self.seconds:.0f}s; {len(self.calls)} API requests {statuses}; "
            f"writes {self.write_rate:.1f}/s over {self.span:.0f}s ({self.write_rate / RATE:.0%} of {RATE}/s); "
            f"peak {self.peak} in any 1-s window (limit {RATE}+{BURST}); "
            f"429s {self.throttled / max(1, len(self.calls)):.1%}; {len(self.by_external)} records stored, "
            f"{len(self.lost)} lost, {len(self.doubled)} doubled"
        )


def run_scenario(
    fleet: Fleet,
    coupa: CoupaEmulator,
    name: str,
    conn_id: str,
    pool: int,
    *,
    runs: int = RUNS,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[Figures, dict[str, str]]:
    """Trigger ``runs`` bulk runs at once, do ``meanwhile`` (if given) while they run, and read what Coupa saw."""
    fleet.set_pool(pool)
    since = time.time()
    started = time.monotonic()
    run_ids = [f"{name}-{i}" for i in range(runs)]
    for i, run_id in enumerate(run_ids):
        fleet.trigger(run_id, {"batch": f"{name}{i}", "count": RECORDS_PER_RUN, "conn_id": conn_id})
    if meanwhile is not None:
        meanwhile()
    states = fleet.wait_for_runs(run_ids, time.monotonic() + SCENARIO_SECONDS)
    seconds = time.monotonic() - started
    expected = {f"FLEET-{name}{i}-{n:05d}" for i in range(runs) for n in range(RECORDS_PER_RUN)}
    return Figures(coupa, since, seconds, f"FLEET-{name}", expected), states


def test_static_division_stays_under_the_limit_and_leaves_budget_unused(
    fleet: Fleet, coupa: CoupaEmulator, fleet_report: Callable[[str], None]
) -> None:
    figures, states = run_scenario(fleet, coupa, "static", STATIC_CONN, STATIC_POOL)
    fleet_report(
        f"fleet (CeleryExecutor, {len(WORKERS)} workers x {WORKER_CONCURRENCY}, PostgreSQL, Redis; Airflow "
        f"{AIRFLOW_VERSION}) ready in {fleet.timings.steps.get('fleet total', 0):.0f}s ({fleet.timings.line()})"
    )
    fleet_report(
        figures.line(f"static division (pool {STATIC_POOL}, {STATIC_SHARE[0]:g}/s burst {STATIC_SHARE[1]} per process)")
    )
    assert states == dict.fromkeys(states, "success"), f"{states}\n{fleet.task_log_errors()}"
    assert not figures.lost, f"{len(figures.lost)} records lost, e.g. {sorted(figures.lost)[:5]}"
    assert figures.doubled == []
    assert figures.peak <= RATE + BURST
    assert figures.throttled == 0, "the static division never meets Coupa's limit"
    # Three processes at a quarter each: the budget is three quarters used at best.
    assert figures.write_rate <= RATE * RUNS / (STATIC_POOL + 1) * 1.1


class CoupaUser(threading.Thread):
    """Resolves the waited-on records once every wait has deferred (mid-run: the bulks are still writing)."""

    def __init__(self, fleet: Fleet, coupa: CoupaEmulator, ids: list[int], run_id: str) -> None:
        super().__init__(name="coupa-user", daemon=True)
        self.fleet, self.coupa, self.ids, self.run_id = fleet, coupa, ids, run_id
        self.deferred = 0
        self.resolved_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                states = self.fleet.task_states(WAITS_DAG_ID, self.run_id)
                self.deferred = states.count("deferred")
                if self.deferred >= len(self.ids):
                    break
            time.sleep(1)
        time.sleep(2)  # a poll or two of every trigger first
        for record_id in self.ids:
            self.coupa.resolve(record_id)
        self.resolved_at = time.time()


def seed_waits(coupa: CoupaEmulator) -> list[int]:
    """Error records for the waits, stored straight into the emulator (no API request, no budget spent)."""
    last = coupa.seed_records(WAITS, document_id=9_000_000, status="Error", contact_alert_type="Technical")
    ids = list(range(last - WAITS + 1, last + 1))
    assert [coupa.record(i)["document-id"] for i in (ids[0], ids[-1])] == [9_000_000, 9_000_000 + WAITS - 1]
    return ids


def test_shared_budget_uses_the_whole_budget_and_never_exceeds_it(
    fleet: Fleet, coupa: CoupaEmulator, fleet_report: Callable[[str], None]
) -> None:
    """Three bulks on the workers and 40 deferred waits in the triggerer, all on one budget."""
    ids = seed_waits(coupa)
    user = CoupaUser(fleet, coupa, ids, "waits-0")

    def start_the_waits() -> None:
        fleet.trigger("waits-0", {"ids": ids, "conn_id": SHARED_CONN}, dag_id=WAITS_DAG_ID)
        user.start()

    pool = WORKER_CONCURRENCY * len(WORKERS)
    figures, states = run_scenario(fleet, coupa, "shared", SHARED_CONN, pool, meanwhile=start_the_waits)
    waits = fleet.wait_for_runs(["waits-0"], time.monotonic() + SCENARIO_SECONDS, dag_id=WAITS_DAG_ID)
    user.join(5)
    polls = sum(r.method == "GET" for r in figures.calls)
    fleet_report(
        figures.line(f"shared budget (Redis, {RATE}/s burst {BURST} for the fleet) with {WAITS} deferred waits")
        + f"; all requests {figures.api_rate:.1f}/s while the bulks ran ({figures.api_rate / RATE:.0%}); "
        f"{polls} polls; waits resolved {figures.writes[-1] - (user.resolved_at or 0):.0f}s before the last write"
    )
    assert states == dict.fromkeys(states, "success"), f"{states}\n{fleet.task_log_errors()}"
    assert waits == {"waits-0": "success"}, f"{waits}\n{fleet.task_log_errors()}"
    assert user.deferred == WAITS, "every wait deferred to the triggerer"
    assert user.resolved_at is not None
    assert user.resolved_at < figures.writes[-1], "resolved while the bulks still ran"
    assert not figures.lost
    assert figures.doubled == []
    assert figures.peak <= RATE + BURST
    assert figures.throttled <= 0.01 * len(figures.calls)
    assert figures.api_rate >= 0.9 * RATE


def test_a_lone_bulk_gets_the_whole_budget(
    fleet: Fleet, coupa: CoupaEmulator, fleet_report: Callable[[str], None]
) -> None:
    """What the static division cannot give: one job alone runs at Coupa's full rate, not at its share."""
    figures, states = run_scenario(fleet, coupa, "lone", SHARED_CONN, WORKER_CONCURRENCY * len(WORKERS), runs=1)
    fleet_report(figures.line("lone bulk on the shared budget"))
    assert states == dict.fromkeys(states, "success"), f"{states}\n{fleet.task_log_errors()}"
    assert not figures.lost
    assert figures.doubled == []
    assert figures.throttled <= 0.01 * len(figures.calls)
    assert figures.write_rate >= 0.9 * RATE


def test_redis_away_for_15_seconds_mid_run_costs_nothing_but_pace(
    fleet: Fleet, coupa: CoupaEmulator, fleet_report: Callable[[str], None]
) -> None:
    """Redis (broker and budget) stops while three bulks run and comes back 15 s later: each task process falls
    back to its local share (a quarter of the budget) with one warning, returns to the shared budget within the
    probe interval, and every task succeeds with every record written once."""
    outage: dict[str, float] = {}

    seen = len(coupa.request_log)

    def stop_redis_for_a_while() -> None:
        # Counted off the request log's length: scanning the records would hold the emulator's GIL (its event
        # loop shares this process) and bunch its answers, which reads as a rate spike.
        deadline = time.monotonic() + 120
        while len(coupa.request_log) - seen < 150 and time.monotonic() < deadline:  # all three well under way
            time.sleep(0.2)
        outage["stopped"] = time.time()
        fleet.redis.stop()
        time.sleep(OUTAGE_SECONDS)
        fleet.redis.start()
        outage["restarted"] = time.time()

    pool = WORKER_CONCURRENCY * len(WORKERS)
    figures, states = run_scenario(fleet, coupa, "outage", SHARED_CONN, pool, meanwhile=stop_redis_for_a_while)
    stopped, restarted = outage["stopped"], outage["restarted"]
    before = figures.write_rate_between(figures.writes[0], stopped)
    during = figures.write_rate_between(stopped + 1, restarted)
    after = figures.write_rate_between(restarted + PROBE_SECONDS + 1, figures.writes[-1])
    logs = fleet.task_logs("outage")
    warned = [log.count("is unavailable") for log in logs.values()]
    back = [log.count("back to the shared Coupa rate budget") for log in logs.values()]
    fleet_report(
        figures.line(f"Redis stopped {OUTAGE_SECONDS}s mid-run")
        + f"; writes/s before {before:.1f}, during (local shares) {during:.1f}, after {after:.1f}; "
        f"fallback warnings per task {warned}, returns to shared per task {back}; requests/429s per second "
        f"from 2 s before the stop: {figures.timeline(stopped, 2, 4)}; from 2 s before the restart: "
        f"{figures.timeline(restarted, 2, 5)}"
    )
    assert states == dict.fromkeys(states, "success"), f"{states}\n{fleet.task_log_errors()}"
    assert not figures.lost
    assert figures.doubled == []
    assert figures.throttled <= 0.01 * len(figures.calls)
    assert 0 < during <= RUNS * RATE / 4 * 1.15, "three processes, each at a quarter of the budget"
    assert after >= 0.8 * RATE, "back on the shared budget"
    assert len(logs) == RUNS
    assert warned == [1] * RUNS, "one warning per process"
    assert all(n >= 1 for n in back), back
