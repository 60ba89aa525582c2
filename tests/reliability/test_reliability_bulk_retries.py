"""Bulk retries make progress under any fault budget (issue 12 item 8): 1,000 records through a 35% fault mix, in
a real ``dag.test()`` run whose bulk task Airflow retries, end in Coupa exactly once each.

The client is given two attempts per call (``max_attempts=2``), so under this mix about one call in eight fails
for good: some creates fail, some end with their outcome unknown (an answer lost after sending, a 500/502/504
after Coupa may have acted), and on every retry some of the lookups of what earlier tries wrote fail. Each try
still writes every chunk it could look up, asks again for the chunks it could not, leaves what it cannot know
to the next try, and fails retryably until nothing is left: the run ends with each record once.

The emulator's rate limit is off and the client's backoffs are tiny, so the run is bounded by the faults alone.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dag_helpers import load_dag, run_state, task_states, try_numbers, xcom_value

from airflow_provider_coupa_ihr.testing import CoupaEmulator, Fault
from airflow_provider_coupa_ihr.testing.faults import Verdict
from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

pytestmark = pytest.mark.usefixtures("airflow_db")

SEED = 20_261_126
ITEMS = 1000
#: Airflow retries allowed (with ``retry_delay=0``, ``dag.test()`` runs each at once); the run uses what it needs.
RETRIES = 12
READ_TIMEOUT = 0.3
#: The latency fault stalls past the read timeout: the client gives up, the server still acts.
STALL = 0.4
TASK = "log_to_coupa"
DAG_FILE = "test_dags/operators_bulk.py"  # items 1..N, InvoiceHeader, mark_exported (tests/dag_files)
INTEGRATION = "AIRFLOW-TEST"


def fault_mix() -> list[Fault]:
    """Every fault the emulator knows, drawn per API request: about 35% of requests meet one (see the test)."""
    return [
        Fault("latency", rate=0.05, seconds=STALL),
        Fault("status", rate=0.06, status=500),
        Fault("status", rate=0.03, status=502),
        Fault("status", rate=0.06, status=503),
        Fault("status", rate=0.03, status=504),
        Fault("storm", rate=0.06, status=429),  # a lone 429 without Retry-After
        Fault("storm", rate=0.02, status=429, retry_after=1, count=40),  # a 429 storm with Retry-After, spread out
        Fault("drop_before", rate=0.04),
        Fault("drop_after", rate=0.07),
    ]


def planned_fault_rate(faults: list[Fault]) -> float:
    """The chance that a request meets at least one fault of the mix (each draws on its own)."""
    miss = 1.0
    for fault in faults:
        miss *= 1.0 - fault.rate
    return 1.0 - miss


def _kind(verdict: Verdict) -> str:
    kind = "drop_before" if verdict.drop_before else "drop_after" if verdict.drop_after else None
    if verdict.status is not None:
        kind = f"{verdict.status}" + (" Retry-After" if verdict.retry_after is not None else "")
    if verdict.delay:
        kind = "stall" + (f"+{kind}" if kind else "")
    return kind or "none"


def record_fault_decisions(coupa: CoupaEmulator) -> list[str]:
    """Spy on the emulator's fault plan: the kind of fault each API request met ("none" for none)."""
    kinds: list[str] = []
    decide = coupa.faults.verdict

    def recorded(method: str, path: str) -> Verdict:
        verdict = decide(method, path)
        kinds.append(_kind(verdict))
        return verdict

    coupa.faults.verdict = recorded  # type: ignore[method-assign]
    return kinds


def tiny_backoffs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection's own settings (``max_attempts=2`` included), with backoffs of a few milliseconds and no
    wait for new tokens to settle, so the run takes seconds, not minutes."""
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    read = CoupaHook._config_from

    def fast(self: CoupaHook, conn: Any, extra: Any, *rest: Any) -> Any:
        config = read(self, conn, extra, *rest)
        retry = dataclasses.replace(config.retry, backoff_base=0.01, backoff_cap=0.05, token_settle=0.0)
        return dataclasses.replace(config, retry=retry)

    monkeypatch.setattr(CoupaHook, "_config_from", fast)


def record_tries(monkeypatch: pytest.MonkeyPatch) -> list[dict[int, str]]:
    """Spy on the bulk operator: each try's status per item."""
    from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator

    tries: list[dict[int, str]] = []
    finish = CoupaBulkCreateRecordsOperator._finish

    def recorded(self: Any, context: Any, outcomes: list[dict[str, Any]]) -> Any:
        tries.append({int(o["index"]): str(o["status"]) for o in outcomes})
        return finish(self, context, outcomes)

    monkeypatch.setattr(CoupaBulkCreateRecordsOperator, "_finish", recorded)
    return tries


def record_lookups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Spy on the client: (chunks asked, chunks whose lookup failed) for each lookup a retry made."""
    from airflow_provider_coupa_ihr.client.sync import CoupaClient

    lookups: list[tuple[int, int]] = []
    look_up = CoupaClient.look_up_earlier_writes

    def recorded(self: CoupaClient, *args: Any, **kwargs: Any) -> Any:
        earlier = look_up(self, *args, **kwargs)
        lookups.append((earlier.chunks, earlier.chunks_failed))
        return earlier

    monkeypatch.setattr(CoupaClient, "look_up_earlier_writes", recorded)
    return lookups


@pytest.fixture
def seeded_emulator() -> Iterator[CoupaEmulator]:
    with CoupaEmulator(seed=SEED, rate_limit=None) as coupa:
        coupa.add_integration(INTEGRATION)
        yield coupa


def test_a_thousand_records_through_a_35_percent_fault_mix_land_once_across_airflow_retries(
    seeded_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch, reliability_report: Callable[[str], None]
) -> None:
    coupa = seeded_emulator
    mix = fault_mix()
    assert planned_fault_rate(mix) >= 0.35
    monkeypatch.setenv("COUPA_TEST_BULK_ITEMS", str(ITEMS))
    monkeypatch.setenv(
        "AIRFLOW_CONN_COUPA_BULK", connection_json(coupa, read_timeout=READ_TIMEOUT, max_attempts=2, rate_limit=0)
    )
    tiny_backoffs(monkeypatch)
    tries = record_tries(monkeypatch)
    lookups = record_lookups(monkeypatch)
    dag = load_dag(DAG_FILE)
    dag.get_task(TASK).retries = RETRIES
    coupa.faults.replace(mix)
    kinds = record_fault_decisions(coupa)

    started = time.monotonic()
    run = dag.test()
    seconds = time.monotonic() - started
    time.sleep(STALL + 0.2)  # let any request the client gave up on finish on the server before counting
    coupa.faults.replace([])

    stored = collections.Counter(int(r["document-id"]) for r in coupa.records())
    duplicates = {document: n for document, n in stored.items() if n > 1}
    faults = collections.Counter(k for k in kinds if k != "none")
    used = try_numbers(run)[TASK]
    by_try = [dict(sorted(collections.Counter(statuses.values()).items())) for statuses in tries]
    # What the next try's lookup found of the items a try could not write for sure (already_present: it had
    # landed; anything else but not_looked_up: the lookup found nothing).
    next_found: collections.Counter[tuple[str, bool]] = collections.Counter()
    for this, after in itertools.pairwise(tries):
        for index, status in this.items():
            if status in ("failed", "unknown") and after[index] != "not_looked_up":
                next_found[(status, after[index] == "already_present")] += 1
    reliability_report(
        f"seed {SEED}: {ITEMS} records intended, {len(coupa.records())} in the emulator "
        f"({len(stored)} distinct documents), {sum(n - 1 for n in duplicates.values())} duplicates; "
        f"Airflow tries used {used} of {RETRIES + 1} (max_attempts=2); "
        f"faults injected {sum(faults.values())} of {len(kinds)} API requests "
        f"({sum(faults.values()) / max(1, len(kinds)):.0%}): {dict(sorted(faults.items()))}; "
        f"outcomes by try {by_try}; of the items reported unknown, {next_found[('unknown', True)]} had landed "
        f"and {next_found[('unknown', False)]} had not; of those reported failed, {next_found[('failed', True)]} "
        f"had landed; lookups (chunks, failed) {lookups}; wall time {seconds:.1f}s"
    )
    assert run_state(run) == "success", (task_states(run), tries)
    assert duplicates == {}, f"records written more than once: {duplicates}"
    assert sorted(stored) == list(range(1, ITEMS + 1)), "records lost"
    exported = collections.Counter(int(e["document_id"]) for e in coupa.exported)
    assert exported == collections.Counter(range(1, ITEMS + 1))  # each document marked exported once
    result = xcom_value(run, TASK)
    assert result["created"] + result["already_present"] == ITEMS
    assert (result["failed"], result["unknown"], result["not_looked_up"]) == (0, 0, 0)
    # The mix did what it is for: the first try left creates failed and unknown, retries met failing lookups.
    assert used == len(tries) >= 2
    assert by_try[0].get("unknown", 0) > 0
    assert by_try[0].get("failed", 0) > 0
    # "failed" means not in Coupa: the next try never finds one of them written. "unknown" means it cannot be
    # told yet: the next try finds some written and some not.
    assert next_found[("failed", True)] == 0
    assert next_found[("unknown", True)] > 0
    assert any(failed for _, failed in lookups), lookups
    assert sum(faults.values()) / len(kinds) >= 0.30
    for kind in ("stall", "500", "502", "503", "504", "429", "429 Retry-After", "drop_before", "drop_after"):
        assert any(k.removeprefix("stall+") == kind for k in faults), f"the mix injected no {kind}: {faults}"
    assert seconds < 240
