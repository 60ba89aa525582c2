"""A real Airflow 3 Celery fleet on loopback, for the fleet tests: every component its own process.

PostgreSQL holds the metadata, Redis is the Celery broker (db 0) and the store of the shared Coupa budget (db 1);
both come from ``scripts/services.py``. The components run as a deployment would run them: ``airflow scheduler``,
``airflow dag-processor``, ``airflow triggerer``, ``airflow api-server`` and two ``airflow celery worker``
processes under different Celery hostnames (concurrency 4 each), each in its own process group with a throwaway
``AIRFLOW_HOME``. :class:`Fleet` builds on the reliability suite's ``Deployment`` (``airflow standalone``):
the same home, environment, REST and cleanup helpers, with the components started one by one instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from test_reliability_deployment import Deployment  # tests/reliability is on sys.path (conftest.py)

from airflow_provider_coupa_ihr.testing import CoupaEmulator

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DAG_FILES = (HERE / "dags" / "coupa_fleet_bulk.py", HERE / "dags" / "coupa_fleet_waits.py")
DAG_ID, WAITS_DAG_ID = "coupa_fleet_bulk", "coupa_fleet_waits"
WORKERS = ("fleet-worker-1", "fleet-worker-2")
WORKER_CONCURRENCY = 4
#: Celery broker and the shared budget live in separate Redis databases, as a deployment would keep them.
BROKER_DB, BUDGET_DB = 0, 1
#: The Coupa connections the scenarios choose between (the DAG's ``conn_id`` param).
STATIC_CONN, SHARED_CONN, REDIS_CONN = "coupa_static", "coupa_shared", "fleet_redis"


@dataclass
class Timings:
    """Seconds each start-up step took, for the report."""

    steps: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.steps.items())


class Fleet(Deployment):
    """The components of a CeleryExecutor deployment, started one by one; :meth:`stop` always cleans up."""

    def __init__(
        self,
        coupa: CoupaEmulator,
        redis: Any,
        postgres: Any,
        *,
        static_share: tuple[float, int],
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.redis, self.postgres = redis, postgres
        self.static_share, self.shared = static_share, shared or {}
        super().__init__(coupa)
        for leftover in (self.home / "dags").iterdir():  # the reliability DAG the base class copied
            leftover.unlink()
        for dag_file in DAG_FILES:
            shutil.copy(dag_file, self.home / "dags" / dag_file.name)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.timings = Timings()

    def _environment(self, coupa: CoupaEmulator, dags: Path) -> dict[str, str]:
        env = super()._environment(coupa, dags)
        del env["AIRFLOW_CONN_COUPA_DEFAULT"]
        rate, burst = self.static_share
        broker = f"redis://127.0.0.1:{self.redis.port}/{BROKER_DB}"
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": "32",
                "AIRFLOW__CELERY__BROKER_URL": broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.url.replace("+psycopg2", ""),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # Today's advice: every process a static share of Coupa's 25/s (README, "capping the rate").
                f"AIRFLOW_CONN_{STATIC_CONN.upper()}": coupa.airflow_connection(
                    rate_limit=rate, burst=burst, read_timeout=10
                ),
                # The shared budget: the same instance, the budget kept in Redis (db 1).
                f"AIRFLOW_CONN_{SHARED_CONN.upper()}": coupa.airflow_connection(
                    read_timeout=10, rate_limit_redis_conn_id=REDIS_CONN, **self.shared
                ),
                f"AIRFLOW_CONN_{REDIS_CONN.upper()}": json.dumps(
                    {"conn_type": "redis", "host": "127.0.0.1", "port": self.redis.port, "extra": {"db": BUDGET_DB}}
                ),
            }
        )
        return env

    # ------------------------------------------------------------------------------------------ lifecycle
    def migrate(self) -> None:
        started = time.monotonic()
        result = subprocess.run(
            ["airflow", "db", "migrate"], env=self.env, cwd=self.home, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise AssertionError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        self.timings.steps["db migrate"] = time.monotonic() - started

    def components(self) -> dict[str, list[str]]:
        commands = {
            "api-server": ["airflow", "api-server"],
            "scheduler": ["airflow", "scheduler"],
            "dag-processor": ["airflow", "dag-processor"],
            "triggerer": ["airflow", "triggerer"],
        }
        for name in WORKERS:
            commands[name] = ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
            commands[name] += ["--concurrency", str(WORKER_CONCURRENCY), "--without-gossip", "--without-mingle"]
        return commands

    def start(self) -> None:
        self.migrate()
        started = time.monotonic()
        for name, command in self.components().items():
            with open(self.home / f"{name}.log", "wb") as log:
                self.processes[name] = subprocess.Popen(
                    command, env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        self._started = started

    def wait_until_ready(self, deadline: float) -> None:
        """The API server reports every component healthy, the DAG is registered and both workers are up."""
        super().wait_until_ready(deadline)
        self.timings.steps["components healthy"] = time.monotonic() - self._started
        while time.monotonic() < deadline:
            self._check_alive()
            if all("ready." in self.log_of(name) for name in WORKERS):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the Celery workers did not report ready:\n" + self.log_tail())
        self.timings.steps["workers ready"] = time.monotonic() - self._started
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(Exception):
                for dag_id in (DAG_ID, WAITS_DAG_ID):
                    self.api("GET", f"/dags/{dag_id}")
                self.timings.steps["DAGs registered"] = time.monotonic() - self._started
                return
            time.sleep(1)
        raise AssertionError(f"the dag-processor did not register the fleet's DAGs:\n{self.log_tail()}")

    def log_of(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.home / f"{name}.log").read_text(errors="replace")
        return ""

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = "\n".join(self.log_of(name).splitlines()[-40:])
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- {name}\n" + "\n".join(self.log_of(name).splitlines()[-lines:]) for name in self.processes
        )

    def stop(self) -> None:
        """SIGTERM to every process group, SIGKILL after 15 s; then any process still running from this home."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group's stragglers too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for pid in self._stragglers():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------------------------------ runs
    def set_pool(self, slots: int) -> None:
        """The ``coupa`` pool with ``slots`` slots (made on first use)."""
        try:
            body = {"pool": "coupa", "slots": slots, "include_deferred": False}  # the whole pool is checked
            self.api("PATCH", "/pools/coupa", json=body, params={"update_mask": "slots"})
        except requests.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 404:
                raise
            self.api("POST", "/pools", json={"name": "coupa", "slots": slots, "description": "Coupa API"})

    def trigger(self, run_id: str, conf: dict[str, Any], dag_id: str = DAG_ID) -> None:
        self.api("POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": conf})

    def task_states(self, dag_id: str, run_id: str) -> list[str]:
        found = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return [ti["state"] for ti in found["task_instances"]]

    def wait_for_runs(self, run_ids: list[str], deadline: float, dag_id: str = DAG_ID) -> dict[str, str]:
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(Exception):
                runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
                states = {r["dag_run_id"]: r["state"] for r in runs if r["dag_run_id"] in run_ids}
                if len(states) == len(run_ids) and all(s in ("success", "failed") for s in states.values()):
                    return states
            time.sleep(1)
        raise AssertionError(f"runs not finished in time: {states}\n{self.log_tail()}\n{self.task_log_errors()}")

    def task_logs(self, run_prefix: str) -> dict[str, str]:
        """The bulk task's logs of the runs whose id starts with ``run_prefix`` (run id -> text)."""
        found = {}
        for path in sorted((self.home / "logs").rglob("*.log")):
            run = next((p.split("=", 1)[1] for p in path.parts if p.startswith("run_id=")), "")
            if run.startswith(run_prefix) and "task_id=log_to_coupa" in str(path):
                found[run] = found.get(run, "") + path.read_text(errors="replace")
        return found
