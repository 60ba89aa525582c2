"""A real Airflow deployment on this machine: ten DAG runs at once against the emulator at Coupa's rate limit.

``airflow standalone`` (scheduler, dag-processor, triggerer and API server; LocalExecutor on SQLite, which
Airflow 3 allows) runs in its own process group with a throwaway home. The Coupa emulator runs in this
process with Coupa's published limit (25 requests per second, bursts of 20, answered 429 beyond). Ten runs of
``tests/reliability/dags/coupa_parallel_runs.py`` are triggered together through the REST API; each writes nine
records (a bulk of eight records and an alert) and waits deferrably until they are resolved. A background thread plays
the Coupa user: as soon as a run's sensor has deferred, it resolves that run's records through the emulator.

Afterwards: every run succeeded (so no 429 or other failure reached a task), Coupa holds exactly the 90
intended records, each once and resolved, and the requests Coupa saw never exceeded its limit in any one-second
window. Everything is torn down (the whole process group, then any straggler from this home) even on failure.

Capping the request rate across workers
---------------------------------------
The client's throttle (the connection's ``rate_limit``, default 25 requests/s, and ``burst``, default 20) is
per process: every task process, and the triggerer, has its own. Coupa's limit is per instance. So with several
workers, cap the total in two steps:

1. Put every Coupa task in one Airflow pool (``airflow pools set coupa 3 "Coupa API"``; ``pool="coupa"`` on the
   operators and sensors, or in ``default_args``). The pool's slots bound how many task processes talk to
   Coupa at once, across all workers and DAGs. Deferred sensors give their slot back while they wait.
2. Give the connection ``rate_limit`` = 25 / (pool slots + 1) and ``burst`` = 20 / (pool slots + 1), where the
   1 is the triggerer (all deferred waits in one triggerer share its single throttle; count each triggerer if
   you run several). With 3 slots: ``{"rate_limit": 6.25, "burst": 5}``. Without a pool, divide by the number
   of worker processes that may run Coupa tasks at once (``[core] parallelism`` for the LocalExecutor, worker
   concurrency times workers for Celery) plus the triggerers.

The client also rides out the 429s that remain (Retry-After honoured, backoff without it), so a rough cap only
costs retries; a missing cap costs many, and under a sustained overload the tasks fail after their retries.

This test runs that configuration (a 3-slot pool, 4 processes in all, ``rate_limit`` 6.25 and ``burst`` 5),
with ``[core] parallelism`` 3 on a 2-core machine. Airflow 2.11 allows SQLite only with the SequentialExecutor
(one task at a time), so parallel runs would need PostgreSQL there: the test runs on the 3.x line only.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import requests
from reliability_helpers import api_requests, peak_per_window, per_second

from airflow_provider_coupa_ihr.testing import CoupaEmulator, OAuthClient
from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

AIRFLOW_VERSION = version("apache-airflow")

pytestmark = pytest.mark.dag
needs_airflow_3 = pytest.mark.skipif(
    int(AIRFLOW_VERSION.split(".")[0]) < 3,
    reason="Airflow 2.11 allows SQLite only with the SequentialExecutor (one task at a time); parallel runs "
    "would need PostgreSQL, so the deployment test runs on the Airflow 3 line",
)

HERE = Path(__file__).resolve().parent
DAG_FILE = HERE / "dags" / "coupa_parallel_runs.py"
DAG_ID = "coupa_reliability_parallel"
INTEGRATION = "RELIABILITY"
RUNS = 10
BULK_SIZE = 9  # per run: eight records and an alert
POOL_SLOTS = 3
#: Processes that talk to Coupa at once: the pool's slots plus the triggerer.
COUPA_PROCESSES = POOL_SLOTS + 1
RATE_LIMIT = 25 / COUPA_PROCESSES
BURST = 20 // COUPA_PROCESSES
CORES_PARALLELISM = 3
STARTUP_SECONDS = 120
RUNS_SECONDS = 180
#: Seconds a Coupa user takes to resolve a run's records after its sensor deferred.
USER_DELAY = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Deployment:
    """``airflow standalone`` in a throwaway home, in its own process group; :meth:`stop` always cleans up."""

    def __init__(self, coupa: CoupaEmulator) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="coupa-deployment-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dags = self.home / "dags"
        dags.mkdir()
        shutil.copy(DAG_FILE, dags / DAG_FILE.name)
        self.log_path = self.home / "standalone.log"
        self.env = self._environment(coupa, dags)
        self.process: subprocess.Popen[bytes] | None = None

    def _environment(self, coupa: CoupaEmulator, dags: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "PYTEST"))}
        venv_bin = str(Path(sys.executable).parent)
        env.update(
            {
                "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(CORES_PARALLELISM),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                # The log servers too, off their fixed default ports (8793, 8794), which another run may hold.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # DEBUG everywhere, so the secrets check below reads the chattiest logs a deployment writes.
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
                "AIRFLOW_CONN_COUPA_DEFAULT": connection_json(
                    coupa, rate_limit=RATE_LIMIT, burst=BURST, read_timeout=10
                ),
            }
        )
        return env

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["airflow", "standalone"],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 15 s; then any process still running from this home."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # children left in the group
        for pid in self._stragglers():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def _stragglers(self) -> list[int]:
        """Processes started from this deployment's home (they carry its unique AIRFLOW_HOME) that left the group."""
        marker = f"AIRFLOW_HOME={self.home}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
        return found

    def cleanup(self) -> None:
        if os.environ.get("COUPA_KEEP_DEPLOYMENT"):  # to read the logs of a failed run
            print(f"deployment home kept: {self.home}")
            return
        shutil.rmtree(self.home, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ REST
    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def wait_until_ready(self, deadline: float) -> None:
        """The API server answers health with scheduler, triggerer and dag-processor healthy."""
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(requests.RequestException, ValueError):
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((health.get(p) or {}).get("status") == "healthy" for p in parts):
                    return
            time.sleep(1)
        raise AssertionError(f"Airflow was not healthy within {STARTUP_SECONDS} s:\n{self.log_tail()}")

    def wait_for_dag(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/api/v2/dags/{DAG_ID}", timeout=5).status_code == 200:
                    return
            time.sleep(1)
        raise AssertionError(f"the dag-processor did not register {DAG_ID}:\n{self.log_tail()}")

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"airflow standalone exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def task_log_errors(self) -> str:
        """Error lines from the task logs, to explain a failed run."""
        out = []
        for path in sorted((self.home / "logs").rglob("*.log*")):
            errors = [
                line[:1500] for line in path.read_text(errors="replace").splitlines() if '"level":"error"' in line
            ]
            if errors:
                out.append(f"--- {path.relative_to(self.home)}\n" + "\n".join(errors[-5:]))
        return "\n".join(out[:8])


class CoupaUser(threading.Thread):
    """Resolves a run's records a few seconds after that run's sensor has deferred (asked Coupa once, found them
    open, handed the wait to the triggerer), as a person in Coupa would."""

    def __init__(self, deployment: Deployment, coupa: CoupaEmulator, delay: float = USER_DELAY) -> None:
        super().__init__(name="coupa-user", daemon=True)
        self.deployment, self.coupa, self.delay = deployment, coupa, delay
        self.deferred_at: dict[int, float] = {}
        self.resolved_batches: set[int] = set()
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            with contextlib.suppress(requests.RequestException):
                deferred = self.deployment.api(
                    "GET", f"/dags/{DAG_ID}/dagRuns/~/taskInstances", params={"task_id": "wait", "state": "deferred"}
                )["task_instances"]
                for ti in deferred:
                    self.deferred_at.setdefault(int(ti["dag_run_id"].rsplit("-", 1)[1]), time.monotonic())
            for batch, seen in list(self.deferred_at.items()):
                if batch not in self.resolved_batches and time.monotonic() - seen >= self.delay:
                    self._resolve(batch)

    def _resolve(self, batch: int) -> None:
        prefix = f"RUN-{batch}-"
        for record in self.coupa.records(resolved=False):
            if str(record.get("external-id") or "").startswith(prefix):
                self.coupa.resolve(record["id"])
        self.resolved_batches.add(batch)


@pytest.fixture
def coupa() -> Iterator[CoupaEmulator]:
    """The emulator at Coupa's published limit: 25 requests/s, bursts of 20 (its defaults), with a client secret
    of its own (searched for in the deployment's logs afterwards)."""
    client = OAuthClient("deployment-client", "deployment-secret-" + secrets.token_hex(16))
    with CoupaEmulator(clients=[client]) as emulator:
        emulator.add_integration(INTEGRATION)
        yield emulator


@pytest.fixture
def deployment(coupa: CoupaEmulator) -> Iterator[Deployment]:
    deployment = Deployment(coupa)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        deployment.cleanup()


@needs_airflow_3
@pytest.mark.timeout(STARTUP_SECONDS + RUNS_SECONDS + 120)
def test_ten_parallel_runs_write_every_record_once_under_the_rate_limit(
    deployment: Deployment, coupa: CoupaEmulator, reliability_report: Callable[[str], None]
) -> None:
    started = time.monotonic()
    deployment.wait_until_ready(started + STARTUP_SECONDS)
    deployment.api("POST", "/pools", json={"name": "coupa", "slots": POOL_SLOTS, "description": "Coupa API"})
    deployment.wait_for_dag(started + STARTUP_SECONDS)
    ready = time.monotonic()

    user = CoupaUser(deployment, coupa)
    user.start()
    try:
        # One request after another (about 50 ms each): SQLite takes one writer at a time, and concurrent
        # triggers would only meet "database is locked" in the API server. The runs then all run at once.
        for batch in range(RUNS):
            body = {"dag_run_id": f"parallel-{batch}", "logical_date": None, "conf": {"batch": batch}}
            deployment.api("POST", f"/dags/{DAG_ID}/dagRuns", json=body)
        triggered = time.monotonic()
        states = _wait_for_runs(deployment, triggered + RUNS_SECONDS)
    finally:
        user.stop_event.set()
        user.join(5)
    finished = time.monotonic()

    stored = coupa.records()
    calls = api_requests(coupa)
    times = [r.at for r in calls]
    peak = peak_per_window(times)
    statuses = collections.Counter("dropped" if r.status is None else str(r.status) for r in calls)
    busiest = max(per_second(times).values(), default=0)
    tokens = len(coupa.requests(path_contains="/oauth2/"))
    reliability_report(
        f"Airflow {AIRFLOW_VERSION} standalone (LocalExecutor, SQLite, parallelism "
        f"{CORES_PARALLELISM}, pool coupa {POOL_SLOTS} slots, rate_limit {RATE_LIMIT:g}/s burst {BURST} per "
        f"process); ready in {ready - started:.0f}s; {RUNS} runs in parallel finished in {finished - triggered:.0f}s; "
        f"{len(stored)} records; {len(calls)} API requests ({dict(sorted(statuses.items()))}) + {tokens} token "
        f"requests; peak {peak} requests in any 1-s window (busiest clock second {busiest}); limit 25/s + burst 20"
    )
    failed = {run: state for run, state in states.items() if state != "success"}
    assert not failed, f"runs not successful: {failed}\n{deployment.task_log_errors()}"
    assert len(states) == RUNS
    # Every task succeeded at its first try, but for Airflow's own defer race (a "state mismatch" in the audit log).
    tries = {
        (ti["dag_run_id"], ti["task_id"]): ti["try_number"]
        for ti in deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/~/taskInstances", params={"limit": 100})[
            "task_instances"
        ]
    }
    raced = {
        (e["run_id"], e["task_id"])
        for e in deployment.api("GET", "/eventLogs", params={"dag_id": DAG_ID, "event": "state mismatch"})["event_logs"]
    }
    reliability_report(f"tasks retried after Airflow's defer race (apache/airflow#72716): {sorted(raced) or 'none'}")
    assert len(tries) == RUNS * 2
    assert {k: n for k, n in tries.items() if n > 1 and k not in raced} == {}, "a task needed a retry"

    by_external = collections.Counter(r["external-id"] for r in stored)
    expected = {f"RUN-{b}-{i}" for b in range(RUNS) for i in range(BULK_SIZE - 1)} | {
        f"RUN-{b}-alert" for b in range(RUNS)
    }
    assert set(by_external) == expected, (
        f"lost: {expected - set(by_external)}, unexpected: {set(by_external) - expected}"
    )
    assert [k for k, n in by_external.items() if n > 1] == [], "records written more than once"
    assert all(r["resolved"] for r in stored)
    assert user.resolved_batches == set(range(RUNS)), "every run's sensor deferred before its records were resolved"
    assert peak <= 25 + 20, f"{peak} requests reached Coupa within one second"

    # Secrets: the real supervisor, triggerer and task logs at DEBUG hold neither the secret nor any token.
    needles = [coupa.credentials.client_secret, *coupa.issued_tokens()]
    logs = [p for p in deployment.home.rglob("*") if p.is_file() and p.suffix != ".db"]
    hits = [f"{p.relative_to(deployment.home)}" for p in logs for n in needles if n.encode() in p.read_bytes()]
    task_logs = [p for p in logs if "dag_id=" in str(p)]
    reliability_report(
        f"secrets: {len(logs)} files at DEBUG ({len(task_logs)} task and trigger logs, "
        f"{sum(p.stat().st_size for p in logs) // 1024} KiB) searched for the client secret and "
        f"{len(needles) - 1} tokens: {len(hits)} hits"
    )
    assert len(task_logs) >= RUNS * 2
    assert hits == []


def _wait_for_runs(deployment: Deployment, deadline: float) -> dict[str, str]:
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            runs = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]
            states = {r["dag_run_id"]: r["state"] for r in runs}
            if len(states) >= RUNS and all(s in ("success", "failed") for s in states.values()):
                return states
        time.sleep(2)
    raise AssertionError(
        f"runs not finished within {RUNS_SECONDS} s: {states}\n{deployment.log_tail()}\n{deployment.task_log_errors()}"
    )


def test_the_deployment_dag_parses_on_both_airflow_lines() -> None:
    """The DAG parses on its own (the deployment's dag-processor would otherwise report an import error)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("coupa_parallel_runs", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dag.dag_id == DAG_ID
    items = module.batch_items(3)
    assert json.loads(json.dumps(items)) == items
    assert [i["external_id"] for i in items] == [*(f"RUN-3-{i}" for i in range(BULK_SIZE - 1)), "RUN-3-alert"]
