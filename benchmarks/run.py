"""The benchmark command: every figure, measured in one run against the same emulator build, as one table.

    python3 scripts/dev.py bench            # sets up, then runs this
    .venv/bin/python benchmarks/run.py [--quick]

Each figure is a ratio or a count measured in this run (machines here are shared and noisy, so nothing is
compared with a number from another day), with several repetitions and the median reported. Results are
written to ``benchmarks/results/latest.json``. ``--quick`` shrinks every workload for a smoke run.

| figure | module |
|---|---|
| per-call cost vs bare requests and vs Airflow's HttpHook; token fetches per 1,000 calls | client_overhead.py |
| paging 100,000 records: time vs a bare loop, peak memory growth | paging.py |
| bulk operator throughput vs the rate limit, 429s that reached it | bulk_throughput.py |
| 1,000 concurrent deferred waits: memory per wait, CPU per poll | deferred_waits.py |
| import cost of the modules a DAG file imports, over ``import airflow.sdk`` | import_cost.py |
| shared budget per call vs the local bucket | limiter_cost.py |
| 1,000 records on a Celery fleet: bulk operator vs mapped HttpOperator vs HttpHook loop | fleet_comparison.py |
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="coupa-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")

import bulk_throughput  # noqa: E402
import client_overhead  # noqa: E402
import deferred_waits  # noqa: E402
import fleet_comparison  # noqa: E402
import import_cost  # noqa: E402
import limiter_cost  # noqa: E402
import paging  # noqa: E402


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, for a smoke run")
    quick = parser.parse_args().quick
    started = time.monotonic()
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}

    print("per-call cost...", flush=True)
    results["per_call"] = calls = client_overhead.measure(100 if quick else 300, 3 if quick else 5)
    print("paging...", flush=True)
    results["paging"] = pages = paging.measure(5_000 if quick else 100_000, 1 if quick else 3)
    print("bulk throughput...", flush=True)
    results["bulk"] = bulk = bulk_throughput.measure(60 if quick else 250, 1 if quick else 3)
    print("deferred waits...", flush=True)
    waits_result = deferred_waits.run(triggers=50 if quick else 1000, seconds=3 if quick else 10)
    results["deferred_waits"] = waits = dataclasses.asdict(waits_result)
    print("import cost...", flush=True)
    results["imports"] = imports = import_cost.measure(3 if quick else 7)
    print("shared limiter cost...", flush=True)
    results["limiter"] = limiter = limiter_cost.measure(100 if quick else 300, 3 if quick else 5)
    print("three ways on a Celery fleet (minutes: the mapped HttpOperator runs a task per record)...", flush=True)
    results["fleet_comparison"] = fleet = fleet_comparison.measure(100 if quick else 1000)
    print(fleet_comparison.table(fleet), flush=True)
    ways = fleet["ways"]

    worst_import = max(v.get("import_ms_median", float("inf")) for v in imports.values())
    http_at_parse = sorted({lib for v in imports.values() for lib in v.get("http_libraries_added", [])})
    rows = [
        (
            "per call: CoupaClient / bare requests (client CPU; wall)",
            f"{calls['client_over_bare_cpu']:.2f}x; {calls['client_over_bare_wall']:.2f}x",
            "<= 1.10x",
            _verdict(calls["client_over_bare_cpu"] <= 1.10),
        ),
        (
            "per call: HttpHook / CoupaClient (client CPU; wall)",
            f"{calls['http_hook_over_client_cpu']:.2f}x; {calls['http_hook_over_client_wall']:.2f}x",
            ">= 3x",
            _verdict(calls["http_hook_over_client_cpu"] >= 3),
        ),
        (
            "token fetches per 1,000 calls",
            str(calls["token_fetches_per_1000_calls"]),
            "1",
            _verdict(calls["token_fetches_per_1000_calls"] <= 1),
        ),
        (
            f"paging {pages['records']:,} records: CoupaClient / bare loop",
            f"{pages['client_over_bare']:.2f}x ({pages['client_seconds_median']:.1f} s)",
            "-",
            "-",
        ),
        (
            "paging: peak memory growth",
            f"{pages['peak_memory_growth_mb']:.2f} MB",
            "< 25 MB",
            _verdict(pages["peak_memory_growth_mb"] < 25),
        ),
        (
            "bulk: throughput / rate limit (429s reaching the task)",
            f"{bulk['fraction_of_limit_median']:.1%} ({bulk['reached_task_429_total']})",
            ">= 90% (0)",
            _verdict(bulk["fraction_of_limit_median"] >= 0.9 and bulk["reached_task_429_total"] == 0),
        ),
        (
            f"{waits['triggers']} deferred waits: memory per wait; CPU per poll",
            f"{waits['rss_kb_per_wait']:.1f} KB; {waits['cpu_ms_per_poll']:.3f} ms",
            "-",
            "-",
        ),
        (
            "import over airflow.sdk (worst module); HTTP libraries at parse",
            f"{worst_import:.1f} ms; {', '.join(http_at_parse) or 'none'}",
            "< 30 ms; none",
            _verdict(worst_import < 30 and not http_at_parse),
        ),
        (
            "per call: shared budget (Redis) / local bucket (client CPU; wall)",
            f"{limiter['shared_over_local_cpu']:.2f}x; {limiter['shared_over_local_wall']:.2f}x",
            "<= 1.2x",
            _verdict(limiter["shared_over_local_cpu"] <= 1.2),
        ),
        (
            f"fleet, {fleet['records']:,} records: mapped HttpOperator / bulk operator (time)",
            f"{fleet['bulk_speedup_over_mapped']:.1f}x ({ways['mapped']['first_to_last_request_s']:.0f} s vs "
            f"{ways['bulk']['first_to_last_request_s']:.0f} s)",
            ">= 5x",
            _verdict(fleet["bulk_speedup_over_mapped"] >= 5),
        ),
        (
            "fleet: bulk operator's 429s received; records exactly once",
            f"{ways['bulk']['answered_429']}; {'yes' if ways['bulk']['exactly_once'] else 'no'}",
            "0; yes",
            _verdict(ways["bulk"]["answered_429"] == 0 and ways["bulk"]["exactly_once"]),
        ),
        (
            "fleet: HttpHook loop / bulk operator (time); the loop's 429s",
            f"{fleet['bulk_speedup_over_loop']:.2f}x; {ways['loop']['answered_429']}",
            "-",
            "-",
        ),
        (
            "fleet: Airflow task instances (bulk / loop / mapped)",
            " / ".join(str(ways[k]["task_instances"]) for k in ("bulk", "loop", "mapped")),
            "-",
            "-",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':{width}}  {'measured':>26}  {'target':>12}  verdict")
    for name, value, target, verdict in rows:
        print(f"{name:{width}}  {value:>26}  {target:>12}  {verdict}")
    results["table"] = [dict(zip(("figure", "measured", "target", "verdict"), r, strict=True)) for r in rows]
    results["seconds"] = round(time.monotonic() - started, 1)
    out = HERE / "results" / ("quick.json" if quick else "latest.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\n{results['seconds']:.0f} s; results written to {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
