"""Logging 1,000 records to Coupa three ways on one Celery fleet, judged by what Coupa (the emulator) saw.

    .venv/bin/python benchmarks/fleet_comparison.py [--records 1000] [--mapped-records 1000]

The fleet is the fleet tests' (tests/fleet/fleet_deployment.py): PostgreSQL, Redis (Celery broker and the shared
Coupa budget), scheduler, dag-processor, triggerer, API server and two Celery workers of concurrency 4, all on
loopback, with the emulator at Coupa's 25 requests/s, bursts of 20. Redis and PostgreSQL come from Debian
(scripts/services.py installs them when missing). One after another, on that fleet, one DAG run of each of
benchmarks/fleet_dags:

- ``coupa_bench_bulk``: our ``CoupaBulkCreateRecordsOperator``, one task, the connection's budget shared in Redis;
- ``coupa_bench_http_loop``: one ``PythonOperator`` fetching a token and looping over ``HttpHook.run`` (with its
  documented tenacity retry on 429);
- ``coupa_bench_http_mapped``: a token task, then ``HttpOperator`` mapped once per record (what teams write
  without us), with task retries.

For each: the time from the first to the last request Coupa saw (the token request included), the DAG run's
duration as Airflow recorded it, the Airflow task instances (and tries), the API requests and the 429s Coupa
answered, the most requests in any one-second window, and whether Coupa holds every record exactly once (one per
document). Figures are printed, not asserted. ``--mapped-records`` runs the mapped DAG on fewer records when one
task per record is too slow to wait for; the table then says so and compares per record.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAGS = Path(__file__).resolve().parent / "fleet_dags"
for folder in (ROOT / "scripts", ROOT / "tests" / "reliability", ROOT / "tests" / "fleet"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import services  # noqa: E402
from fleet_deployment import SHARED_CONN, WORKER_CONCURRENCY, WORKERS, Fleet  # noqa: E402
from reliability_helpers import peak_per_window  # noqa: E402

from airflow_provider_coupa_ihr.testing import CoupaEmulator  # noqa: E402

RATE, BURST = 25, 20
INTEGRATION = "BENCH"
STARTUP_SECONDS = 300
#: Generous: the mapped run's pace is what is being measured, so only a stuck run should hit this.
SECONDS_PER_RECORD_AT_MOST = 5.0


@dataclass(frozen=True)
class Way:
    """One way of logging the records: its DAG and the external-id prefix of the records it writes."""

    key: str
    label: str
    dag_id: str
    prefix: str
    #: The document id of record 0 (each way writes its own documents: ``first_document + n``).
    first_document: int


BULK = Way("bulk", "CoupaBulkCreateRecordsOperator", "coupa_bench_bulk", "BENCH-bulk-", 2_000_000)
LOOP = Way("loop", "PythonOperator looping HttpHook.run", "coupa_bench_http_loop", "BENCH-loop-", 4_000_000)
MAPPED = Way("mapped", "HttpOperator mapped per record", "coupa_bench_http_mapped", "BENCH-mapped-", 3_000_000)
WAYS = (BULK, LOOP, MAPPED)


class BenchFleet(Fleet):
    """The fleet tests' deployment with the benchmark's DAGs and the plain HTTP connections teams would use."""

    def __init__(self, coupa: CoupaEmulator, redis: Any, postgres: Any, *, records: int, mapped_records: int) -> None:
        self.records, self.mapped_records = records, mapped_records  # read by _environment, during __init__
        super().__init__(coupa, redis, postgres, static_share=(RATE / 4, BURST // 4))
        for dag_file in sorted(DAGS.glob("*.py")):
            shutil.copy(dag_file, self.home / "dags" / dag_file.name)

    def _environment(self, coupa: CoupaEmulator, dags: Path) -> dict[str, str]:
        env = super()._environment(coupa, dags)
        api = {"conn_type": "http", "host": coupa.url}
        credentials = {"login": coupa.credentials.client_id, "password": coupa.credentials.client_secret}
        env.update(
            {
                "AIRFLOW_CONN_COUPA_BENCH_API": json.dumps(api),
                "AIRFLOW_CONN_COUPA_BENCH_OAUTH": json.dumps({**api, **credentials}),
                "COUPA_BENCH_RECORDS": str(self.records),
                "COUPA_BENCH_MAPPED_RECORDS": str(self.mapped_records),
            }
        )
        return env

    def wait_for_bench_dags(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(Exception):
                for way in WAYS:
                    self.api("GET", f"/dags/{way.dag_id}")
                return
            time.sleep(1)
        raise AssertionError(f"the dag-processor did not register the benchmark's DAGs:\n{self.log_tail()}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, mapped ones one by one."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_way(fleet: BenchFleet, coupa: CoupaEmulator, way: Way, records: int) -> dict[str, Any]:
    """One DAG run of ``way``, and what Coupa and Airflow saw of it."""
    run_id = f"bench-{way.key}"
    since, started = time.time(), time.monotonic()
    fleet.trigger(run_id, {}, dag_id=way.dag_id)
    state = fleet.wait_for_runs([run_id], started + 60 + SECONDS_PER_RECORD_AT_MOST * records, dag_id=way.dag_id)
    waited = time.monotonic() - started
    run = fleet.api("GET", f"/dags/{way.dag_id}/dagRuns/{run_id}")
    tis = fleet.task_instances(way.dag_id, run_id)
    seen = [r for r in coupa.requests() if r.at >= since]
    api = [r for r in seen if r.path.startswith("/api")]
    moments = [r.at for r in seen]
    statuses = collections.Counter("dropped" if r.status is None else str(r.status) for r in seen)
    stored = [r for r in coupa.records() if str(r.get("external-id") or "").startswith(way.prefix)]
    per_document = collections.Counter(int(r["document-id"]) for r in stored)
    expected = {way.first_document + n for n in range(records)}
    span = max(moments) - min(moments) if len(moments) > 1 else 0.0
    return {
        "label": way.label,
        "records": records,
        "state": state[run_id],
        "first_to_last_request_s": round(span, 1),
        "run_duration_s": round(_moment(run["end_date"]) - _moment(run["start_date"]), 1),
        "trigger_to_done_s": round(waited, 1),
        "seconds_per_record": span / records,
        "task_instances": len(tis),
        "task_tries": sum(int(ti.get("try_number") or 0) for ti in tis),
        "task_states": dict(collections.Counter(str(ti["state"]) for ti in tis)),
        "token_requests": sum(r.path.startswith("/oauth2") for r in seen),
        "api_requests": len(api),
        "statuses": dict(sorted(statuses.items())),
        "answered_429": statuses.get("429", 0),
        "peak_per_second": peak_per_window(r.at for r in api),
        "stored": len(stored),
        "lost": len(expected - set(per_document)),
        "doubled": sum(1 for n in per_document.values() if n > 1),
        "exactly_once": set(per_document) == expected and all(n == 1 for n in per_document.values()),
    }


def measure(records: int = 1000, mapped_records: int | None = None) -> dict[str, Any]:
    """Start the fleet, run the three ways one after another, stop everything; the figures of each and the ratios."""
    mapped_records = mapped_records or records
    started = time.monotonic()
    install = services.ensure_installed()
    redis = services.RedisServer().start()
    try:
        postgres = services.PostgresServer().start()
        try:
            with CoupaEmulator(rate_limit=RATE, burst=BURST) as coupa:
                coupa.add_integration(INTEGRATION)
                fleet = BenchFleet(coupa, redis, postgres, records=records, mapped_records=mapped_records)
                try:
                    fleet.start()
                    fleet.wait_until_ready(time.monotonic() + STARTUP_SECONDS)
                    fleet.wait_for_bench_dags(time.monotonic() + STARTUP_SECONDS)
                    ready = time.monotonic() - started
                    ways = {
                        way.key: run_way(fleet, coupa, way, mapped_records if way is MAPPED else records)
                        for way in WAYS
                    }
                finally:
                    fleet.stop()
                    fleet.cleanup()
        finally:
            postgres.cleanup()
    finally:
        redis.cleanup()
    bulk, loop, mapped = ways["bulk"], ways["loop"], ways["mapped"]
    # Per record, so a mapped run on fewer records still compares; equal to the plain ratio when N is the same.
    over_mapped = mapped["seconds_per_record"] / bulk["seconds_per_record"]
    return {
        "records": records,
        "mapped_records": mapped_records,
        "fleet": f"CeleryExecutor, {len(WORKERS)} workers x {WORKER_CONCURRENCY}, PostgreSQL, Redis",
        "coupa_limit": f"{RATE}/s burst {BURST}",
        "bulk_connection": SHARED_CONN,
        "install_s": round(install, 1),
        "fleet_ready_s": round(ready, 1),
        "total_s": round(time.monotonic() - started, 1),
        "ways": ways,
        "bulk_speedup_over_mapped": over_mapped,
        "bulk_speedup_over_mapped_run_duration": (mapped["run_duration_s"] / mapped_records)
        / (bulk["run_duration_s"] / records),
        "bulk_speedup_over_loop": loop["seconds_per_record"] / bulk["seconds_per_record"],
        "target_met": over_mapped >= 5 and bulk["answered_429"] == 0 and bulk["exactly_once"],
    }


def table(result: dict[str, Any]) -> str:
    header = (
        f"{'way':36} {'records':>7} {'once':>5} {'tasks (tries)':>14} {'requests':>8} {'429s':>5} "
        f"{'peak/1s':>7} {'first->last req':>15} {'run':>8} {'s/record':>8}"
    )
    lines = [header]
    for way in result["ways"].values():
        tasks = f"{way['task_instances']} ({way['task_tries']})"
        lines.append(
            f"{way['label']:36} {way['records']:>7} {'yes' if way['exactly_once'] else 'NO':>5} "
            f"{tasks:>14} {way['api_requests']:>8} "
            f"{way['answered_429']:>5} {way['peak_per_second']:>7} {way['first_to_last_request_s']:>13.1f} s "
            f"{way['run_duration_s']:>6.1f} s {way['seconds_per_record']:>8.3f}"
        )
    per = " per record" if result["mapped_records"] != result["records"] else ""
    note = (
        f" (the mapped HttpOperator ran {result['mapped_records']} records, the others {result['records']})"
        if per
        else ""
    )
    lines.append(
        f"ours vs mapped HttpOperator{per}: {result['bulk_speedup_over_mapped']:.1f}x faster from first to last "
        f"request ({result['bulk_speedup_over_mapped_run_duration']:.1f}x by run duration); ours vs the HttpHook "
        f"loop: {result['bulk_speedup_over_loop']:.1f}x; target >= 5x with 0 429s: "
        f"{'met' if result['target_met'] else 'NOT met'}{note}"
    )
    lines.append(
        f"fleet: {result['fleet']}; Coupa {result['coupa_limit']}; ready in {result['fleet_ready_s']:.0f} s; "
        f"whole benchmark {result['total_s']:.0f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--mapped-records", type=int, default=None, help="records for the mapped HttpOperator run")
    args = parser.parse_args()
    print(table(measure(args.records, args.mapped_records)))


if __name__ == "__main__":
    main()
