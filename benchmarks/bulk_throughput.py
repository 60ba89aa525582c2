"""The bulk operator's throughput as a fraction of Coupa's rate limit, and the 429s that reached it.

    .venv/bin/python benchmarks/bulk_throughput.py [--items 250] [--rounds 3]

The emulator enforces Coupa's published limit (25 requests/s, bursts of 20) and answers 429 past it. Each
round runs the operator's ``execute`` (the same code a task runs) on a fresh emulator and batch. The fraction
reported is what was written over what the limit allows in that time (the burst of 20 plus 25 per second), so
100% means the operator used every request Coupa would have accepted; records per second are shown too (over a
short batch they exceed 25, thanks to the burst). "429s answered" counts
what the emulator refused (the client absorbs those by waiting); "429s that reached the task" counts items
that failed because of one (they would fail the task or show in its outcomes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from airflow_provider_coupa_ihr.testing import CoupaEmulator

RATE, BURST = 25.0, 20


class _TaskInstance:
    """The two things the operator asks of its task instance outside a DAG run."""

    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        return None


def one_round(items: int) -> dict[str, Any]:
    from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

    with CoupaEmulator(rate_limit=RATE, burst=BURST) as coupa:
        coupa.add_integration("ERP-INVOICES")
        os.environ["AIRFLOW_CONN_COUPA_BENCH_BULK"] = coupa.airflow_connection()
        operator = CoupaBulkCreateRecordsOperator(
            task_id="bulk",
            coupa_conn_id="coupa_bench_bulk",
            items=[{"document_id": i, "status": "Success"} for i in range(1, items + 1)],
            defaults={
                "document_type": "InvoiceHeader",
                "contact_alert_type": "Functional",
                "integration": "ERP-INVOICES",
            },
            progress_interval=3600,
        )
        started = time.monotonic()
        result = operator.execute({"ti": _TaskInstance(), "dag_run": None})
        seconds = time.monotonic() - started
        answered_429 = coupa.stats()["by_status"].get("429", 0)
        reached = sum(1 for o in result["outcomes"] if o["status"] == "failed" and "429" in str(o.get("error")))
        assert len(coupa.records()) == items, "every item must be written exactly once"
    allowed = BURST + RATE * seconds
    return {
        "seconds": seconds,
        "rate": items / seconds,
        "fraction": items / allowed,
        "answered_429": answered_429,
        "reached_429": reached,
    }


def measure(items: int, rounds: int) -> dict[str, Any]:
    samples = [one_round(items) for _ in range(rounds)]
    return {
        "items": items,
        "rounds": rounds,
        "limit_per_second": RATE,
        "records_per_second_median": statistics.median(s["rate"] for s in samples),
        "fraction_of_limit_median": statistics.median(s["fraction"] for s in samples),
        "answered_429_total": sum(s["answered_429"] for s in samples),
        "reached_task_429_total": sum(s["reached_429"] for s in samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    r = measure(args.items, args.rounds)
    print(
        f"bulk: {r['records_per_second_median']:.1f} records/s, {r['fraction_of_limit_median']:.1%} of what "
        f"{RATE:g}/s burst {BURST} allows "
        f"(median of {r['rounds']} x {r['items']}); 429s answered: {r['answered_429_total']}, "
        f"reached the task: {r['reached_task_429_total']}"
    )


if __name__ == "__main__":
    main()
