"""1,000 records written through CoupaClient under a seeded mix of every fault the emulator knows; afterwards
Coupa holds each intended record exactly once, and the same seed replays the same faults.

The mix, per API request (each fault draws from the emulator's seeded generator, in this order):

- latency beyond the client's read timeout (the server still acts after the client gave up: "did it land?"; the
  client gives a lost create as long again as it waited before looking for it, so a stall under twice the read
  timeout must end in exactly one record; beyond that nothing can tell, as Coupa has no idempotency key),
- 500, 502, 503 and 504 answers,
- 429 without Retry-After at random, plus 429 storms armed at fixed points, with and without Retry-After,
- connections dropped before the server acts and after it has acted (the answer to a create is lost),
- every token expired at fixed points (the next call gets 401 and the client fetches a new token once).

The emulator's own rate limit is off: here throttling comes as faults (storms), so the run is bounded by the
faults alone. Writes are made one after another, in a fixed order, so a seed fixes every fault decision.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from reliability_helpers import FAST_RETRY, api_requests, fast_client

from airflow_provider_coupa_ihr.testing import CoupaEmulator, Fault
from airflow_provider_coupa_ihr.testing.faults import Verdict

SEED = 20_261_125
INTEGRATION = "RELIABILITY"
#: The client gives up on an answer after this long; the latency fault stalls well past it.
READ_TIMEOUT = 0.3
STALL = 0.4

ACTIONS = ("create", "create_alert", "mark_exported", "acknowledge", "create_alert_and_mark_exported")
DOCUMENT_TYPES = ("InvoiceHeader", "OrderHeader", "Supplier", "ExpenseReport", "Payment")
CONTACTS = ("Functional", "Technical", "Both")


def fault_mix() -> list[Fault]:
    """The background faults, by request (the storms and token expiries come at fixed points, see WRITE_EVENTS)."""
    return [
        Fault("latency", rate=0.01, seconds=STALL),
        Fault("status", rate=0.02, status=500),
        Fault("status", rate=0.01, status=502),
        Fault("status", rate=0.02, status=503),
        Fault("status", rate=0.01, status=504),
        Fault("storm", rate=0.02, status=429),  # a lone 429 without Retry-After
        Fault("drop_before", rate=0.01),
        Fault("drop_after", rate=0.02),
    ]


#: What happens just before write number N (of any run long enough to reach it).
WRITE_EVENTS: dict[int, tuple[str, Any]] = {
    40: ("storm", {"count": 5, "retry_after": None}),  # a storm with no Retry-After: the client backs off by itself
    75: ("expire_tokens", None),
    120: ("storm", {"count": 2, "retry_after": 1}),  # a storm with Retry-After: 1
    200: ("expire_tokens", None),
    300: ("storm", {"count": 5, "retry_after": None}),
    450: ("expire_tokens", None),
    500: ("storm", {"count": 2, "retry_after": 1}),
    650: ("expire_tokens", None),
    800: ("storm", {"count": 5, "retry_after": None}),
    900: ("expire_tokens", None),
}


def intended(i: int) -> dict[str, Any]:
    """Write number ``i``: unique by document id and external id, so "exactly once" can be checked exactly."""
    error = i % 3 == 0
    fields: dict[str, Any] = {
        "action": ACTIONS[i % len(ACTIONS)],
        "document_type": DOCUMENT_TYPES[i % len(DOCUMENT_TYPES)],
        "document_id": 500_000 + i,
        "external_id": f"RELI-{i:05d}",
        "contact_alert_type": CONTACTS[i % len(CONTACTS)],
        "status": "Error" if error else "Success",
        "integration": INTEGRATION,
    }
    if error:
        fields["responses"] = [("ERP-409", f"Document {500_000 + i} is blocked in the ERP")]
    return fields


@dataclass
class MixRun:
    returned: list[dict[str, Any]]
    seconds: float
    stats: dict[str, Any]
    #: The emulator's answers to /api requests, by status ("dropped": closed unanswered).
    api_statuses: collections.Counter[str]
    #: The emulator's fault decisions, in the order requests arrived: (method, path, fault or "none").
    decisions: list[tuple[str, str, str]]

    @property
    def fault_counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(d[2] for d in self.decisions if d[2] != "none").items()))


def _verdict_kind(verdict: Verdict) -> str:
    kind = "drop_before" if verdict.drop_before else "drop_after" if verdict.drop_after else None
    if verdict.status is not None:
        kind = f"{verdict.status}" + (" Retry-After" if verdict.retry_after is not None else "")
    if verdict.delay:
        kind = "latency" + (f"+{kind}" if kind else "")
    return kind or "none"


def _record_decisions(coupa: CoupaEmulator) -> list[tuple[str, str, str]]:
    """Spy on the fault plan: every decision it makes, in order (a stalled request's status can depend on timing,
    e.g. a token expired while it slept; the decisions cannot)."""
    decisions: list[tuple[str, str, str]] = []
    decide = coupa.faults.verdict

    def recorded(method: str, path: str) -> Verdict:
        verdict = decide(method, path)
        decisions.append((method, path, _verdict_kind(verdict)))
        return verdict

    coupa.faults.verdict = recorded  # type: ignore[method-assign]
    return decisions


def run_mix(coupa: CoupaEmulator, count: int) -> MixRun:
    coupa.add_integration(INTEGRATION)
    coupa.faults.replace(fault_mix())
    decisions = _record_decisions(coupa)
    returned: list[dict[str, Any]] = []
    started = time.monotonic()
    with fast_client(coupa, read_timeout=READ_TIMEOUT, connect_timeout=2.0) as client:
        for i in range(count):
            event = WRITE_EVENTS.get(i)
            if event is not None and event[0] == "storm":
                coupa.faults.add(Fault("storm", status=429, **event[1]))
            elif event is not None:
                coupa.expire_tokens()
            fields = intended(i)
            action = fields.pop("action")
            returned.append(client.create_record(action=action, **fields))
    seconds = time.monotonic() - started
    _settle(coupa)
    statuses = collections.Counter("dropped" if r.status is None else str(r.status) for r in api_requests(coupa))
    return MixRun(returned, seconds, coupa.stats(), statuses, decisions)


def _settle(coupa: CoupaEmulator) -> None:
    """Let requests the client gave up on (stalled by the latency fault) finish on the server."""
    time.sleep(STALL + 0.2)


@pytest.fixture
def seeded_emulator() -> Iterator[CoupaEmulator]:
    with CoupaEmulator(seed=SEED, rate_limit=None) as coupa:
        yield coupa


def test_a_thousand_records_under_the_fault_mix_land_exactly_once(
    seeded_emulator: CoupaEmulator, reliability_report: Callable[[str], None]
) -> None:
    count = 1000
    run = run_mix(seeded_emulator, count)
    stored = seeded_emulator.records()
    by_external: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in stored:
        by_external[record["external-id"]].append(record)
    doubled = {k: [r["id"] for r in v] for k, v in by_external.items() if len(v) > 1}
    reliability_report(
        f"seed {SEED}: {count} records in {run.seconds:.1f}s; {len(run.decisions)} API requests; "
        f"faults injected {run.fault_counts}; API answers {dict(sorted(run.api_statuses.items()))}; "
        f"tokens issued {run.stats['tokens_issued']}"
    )
    assert doubled == {}, f"records written more than once: {doubled}"
    assert set(by_external) == {f"RELI-{i:05d}" for i in range(count)}, "records lost"
    assert len(stored) == count
    # Each stored record is the one intended (no field lost or mixed up on a re-send) ...
    for i in range(count):
        want = intended(i)
        (got,) = by_external[want["external_id"]]
        assert (got["document-type"], got["document-id"], got["status"], got["contact-alert-type"]) == (
            want["document_type"],
            want["document_id"],
            want["status"],
            want["contact_alert_type"],
        )
        assert got["integration"]["code"] == INTEGRATION
        assert len(got["responses"]) == (1 if want["status"] == "Error" else 0)
    # ... and each call returned that stored record, even when it had to find it after a lost answer.
    assert [r["id"] for r in run.returned] == [by_external[f"RELI-{i:05d}"][0]["id"] for i in range(count)]
    # The actions' side effects happened once per record too.
    alerts = collections.Counter(a["document_id"] for a in seeded_emulator.alerts)
    assert max(alerts.values()) == 1
    assert len(alerts) == sum(1 for i in range(count) if "alert" in ACTIONS[i % len(ACTIONS)])
    # Every kind of trouble actually happened.
    seen = run.api_statuses
    for kind in ("429", "500", "502", "503", "504", "401", "dropped"):
        assert seen[kind] > 0, f"the mix produced no {kind}: {dict(seen)}"
    faults = run.fault_counts
    for kind in ("latency", "drop_before", "drop_after", "429", "429 Retry-After"):
        assert faults.get(kind, 0) > 0, f"the mix injected no {kind}: {faults}"
    # Some stalled creates landed after the client gave up on them, and were found instead of sent again.
    stalled_posts = [d for d in run.decisions if d[0] == "POST" and d[2] == "latency"]
    assert stalled_posts
    assert run.stats["tokens_issued"] >= 1 + sum(1 for e in WRITE_EVENTS.values() if e[0] == "expire_tokens")
    assert run.seconds < 90


def test_the_same_seed_replays_the_same_faults(reliability_report: Callable[[str], None]) -> None:
    count = 200
    runs = []
    for _ in range(2):
        with CoupaEmulator(seed=SEED, rate_limit=None) as coupa:
            runs.append(run_mix(coupa, count))
            assert len(coupa.records()) == count
    first, second = runs
    reliability_report(f"seed {SEED}, {count} records, twice: faults injected {first.fault_counts} both times")
    assert first.decisions == second.decisions  # the same requests, in the same order, met the same faults
    assert first.fault_counts == second.fault_counts
    assert sum(first.fault_counts.values()) > 10


@pytest.mark.parametrize(
    ("outcome", "idempotent", "waits_in_flight"),
    [
        ({"transport_error": True, "sent": True}, False, True),  # a create timed out: it may still land
        ({"transport_error": True, "sent": None}, False, True),  # dropped: cannot tell
        ({"status": 504}, False, True),  # a gateway gave up on Coupa, which may still be at work
        ({"transport_error": True, "sent": False}, False, False),  # never arrived: re-send at once
        ({"status": 503}, False, False),  # refused before acting
        ({"transport_error": True, "sent": True}, True, False),  # a GET: nothing to look for, just ask again
    ],
)
def test_a_lost_create_is_given_as_long_again_to_land_before_the_lookup(
    outcome: dict[str, Any], idempotent: bool, waits_in_flight: bool
) -> None:
    import random

    from airflow_provider_coupa_ihr.client.retry import decide_retry

    step = decide_retry(
        FAST_RETRY, attempts=1, elapsed=0.3, rng=random.Random(1), idempotent=idempotent, in_flight=0.3, **outcome
    )
    assert step.delay >= 0.3 if waits_in_flight else step.delay <= FAST_RETRY.backoff_base
    if waits_in_flight:
        assert "as long again as it was in flight" in step.reason


class _TI:
    task_id = "bulk"
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def test_the_bulk_operator_under_the_fault_mix_writes_each_record_once(
    seeded_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch, reliability_report: Callable[[str], None]
) -> None:
    """The same mix through the bulk operator's code path: eight threads sharing one token and one connection's
    settings, the shared token expiring half-way. Concurrent, so not replayable; exactly once all the same."""
    import threading

    from airflow_provider_coupa_ihr.operators.bulk import CoupaBulkCreateRecordsOperator
    from airflow_provider_coupa_ihr.testing.pytest_plugin import connection_json

    coupa = seeded_emulator
    count = 200
    coupa.add_integration(INTEGRATION)
    coupa.faults.replace(
        [*fault_mix(), Fault("storm", status=429, count=5), Fault("storm", status=429, count=2, retry_after=1)]
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_COUPA_DEFAULT",
        connection_json(coupa, read_timeout=READ_TIMEOUT, max_attempts=16, rate_limit=0),
    )
    items = []
    for i in range(count):
        fields = intended(1000 + i)
        if fields.get("responses"):
            fields["responses"] = [{"response_code": c, "response_message": m} for c, m in fields["responses"]]
        items.append(fields)
    operator = CoupaBulkCreateRecordsOperator(task_id="bulk", items=items, max_workers=8)
    done = threading.Event()

    def expire_tokens() -> None:
        # Once, half-way: the token every thread shares dies, and each thread's next call gets a 401 and refreshes.
        # (Expiring tokens again and again within a second would also kill the refreshed ones mid-call, which
        # the client rightly reports as a credential problem rather than refreshing forever.)
        while not done.wait(0.05):
            if len(coupa.state.records.rows) >= count // 2:
                coupa.expire_tokens()
                return

    expirer = threading.Thread(target=expire_tokens, daemon=True)
    expirer.start()
    started = time.monotonic()
    try:
        result = operator.execute({"ti": _TI()})
    finally:
        done.set()
        expirer.join(5)
    seconds = time.monotonic() - started
    _settle(coupa)
    statuses = collections.Counter("dropped" if r.status is None else str(r.status) for r in api_requests(coupa))
    reliability_report(
        f"bulk operator, 8 threads: {count} records in {seconds:.1f}s; API answers {dict(sorted(statuses.items()))}; "
        f"tokens issued {coupa.tokens_issued}"
    )
    assert (result["created"], result["failed"]) == (count, 0)
    assert (result["unknown"], result["not_looked_up"]) == (0, 0)
    stored = collections.Counter(r["external-id"] for r in coupa.records())
    assert stored == collections.Counter(f"RELI-{1000 + i:05d}" for i in range(count))  # each exactly once
    ids = {r["external-id"]: r["id"] for r in coupa.records()}
    assert [o["id"] for o in result["outcomes"]] == [ids[f"RELI-{1000 + i:05d}"] for i in range(count)]
    assert statuses["dropped"] > 0
    assert statuses["401"] > 0
