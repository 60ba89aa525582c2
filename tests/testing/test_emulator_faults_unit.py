"""``testing.faults`` without a server: fault settings, seeded verdicts, the token bucket on a fake clock."""

from __future__ import annotations

import pytest

from airflow_provider_coupa_ihr.client.limiter import TokenBucket
from airflow_provider_coupa_ihr.testing.faults import Fault, FaultPlan, Verdict, retry_after_header

PATH = "/api/integration_history_records"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------ Fault
@pytest.mark.parametrize(
    "settings",
    [
        {"kind": "meteor"},
        {"kind": "status", "rate": 1.5},
        {"kind": "status", "rate": -0.1},
        {"kind": "storm", "count": -1},
        {"kind": "storm", "count": "3"},
        {"kind": "status", "rate": "half"},
        {"kind": "status", "rate": float("nan")},
        {"kind": "status", "status": "teapot"},
        {"kind": "status", "status": 99},
        {"kind": "status", "status": True},
        {"kind": "latency", "seconds": -0.5},
        {"kind": "latency", "seconds": float("inf")},
        {"kind": "storm", "retry_after": -1},
        {"kind": "status", "methods": "GET"},
        {"kind": "status", "methods": (1, 2)},
        {"kind": "status", "path_contains": 7},
    ],
)
def test_fault_refuses_bad_settings(settings: dict) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Fault(**settings)


def test_fault_round_trips_through_a_dict() -> None:
    fault = Fault("status", rate=0.5, status=502, methods=("post",), path_contains="records", count=3)
    assert fault.methods == ("POST",)
    data = fault.as_dict()
    assert Fault.from_dict({**data, "methods": list(data["methods"])}) == fault
    with pytest.raises(ValueError, match="unknown fault settings"):
        Fault.from_dict({"kind": "status", "colour": "red"})


def test_fault_applies_to() -> None:
    fault = Fault("status", methods=("GET",), path_contains="/integration_runs")
    assert fault.applies_to("get", "/api/integration_runs/1")
    assert not fault.applies_to("POST", "/api/integration_runs")
    assert not fault.applies_to("GET", PATH)
    assert not Fault("status", count=0).applies_to("GET", PATH)


# ------------------------------------------------------------------------------------------ FaultPlan
def test_empty_plan_lets_everything_through() -> None:
    assert FaultPlan().verdict("GET", PATH) == Verdict()


def test_each_kind_gives_its_verdict() -> None:
    assert FaultPlan(faults=[Fault("status", status=504)]).verdict("GET", PATH) == Verdict(status=504)
    assert FaultPlan(faults=[Fault("storm", retry_after=3)]).verdict("GET", PATH) == Verdict(status=429, retry_after=3)
    assert FaultPlan(faults=[Fault("drop_before")]).verdict("GET", PATH).drop_before
    assert FaultPlan(faults=[Fault("drop_after")]).verdict("GET", PATH).drop_after
    assert FaultPlan(faults=[Fault("latency", seconds=0.5)]).verdict("GET", PATH) == Verdict(delay=0.5)


def test_latencies_add_up_and_the_first_answering_fault_wins() -> None:
    plan = FaultPlan()
    plan.latency(0.1)
    plan.latency(0.2)
    plan.error_rate(500, 1.0)
    plan.storm(count=5)
    verdict = plan.verdict("GET", PATH)
    assert verdict.delay == pytest.approx(0.3)
    assert verdict.status == 500
    assert plan.faults[3].count == 5  # the storm never drew


def test_count_is_used_up() -> None:
    plan = FaultPlan()
    fault = plan.storm(count=2)
    assert [plan.verdict("GET", PATH).status for _ in range(3)] == [429, 429, None]
    assert fault.count == 0


def test_seeded_rate_replays_and_differs_by_seed() -> None:
    def draw(seed: int) -> list[int | None]:
        plan = FaultPlan(seed=seed)
        plan.error_rate(503, 0.5)
        return [plan.verdict("GET", PATH).status for _ in range(64)]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    assert 10 < draw(1).count(503) < 54


def test_clear_with_seed_replays() -> None:
    plan = FaultPlan(seed=3)
    plan.error_rate(500, 0.3)
    first = [plan.verdict("GET", PATH).status for _ in range(30)]
    plan.clear(seed=3)
    assert plan.faults == []
    plan.error_rate(500, 0.3)
    assert [plan.verdict("GET", PATH).status for _ in range(30)] == first


def test_rate_zero_never_fires() -> None:
    plan = FaultPlan()
    plan.error_rate(500, 0.0)
    assert {plan.verdict("GET", PATH).status for _ in range(100)} == {None}


def test_narrowed_fault_does_not_draw_for_other_requests() -> None:
    plan_a, plan_b = FaultPlan(seed=5), FaultPlan(seed=5)
    for plan in (plan_a, plan_b):
        plan.error_rate(500, 0.5, methods=("POST",))
    for _ in range(10):
        plan_b.verdict("GET", PATH)  # not matching: must not consume random numbers
    assert [plan_a.verdict("POST", PATH).status for _ in range(20)] == [
        plan_b.verdict("POST", PATH).status for _ in range(20)
    ]


def test_replace() -> None:
    plan = FaultPlan()
    plan.error_rate(500, 1.0)
    plan.replace([Fault("drop_before")])
    assert plan.verdict("GET", PATH).drop_before


# ------------------------------------------------------------------------------ the bucket, as the emulator uses it
def test_bucket_bursts_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(25, 20, clock=clock)
    assert [bucket.try_acquire() for _ in range(20)] == [None] * 20
    wait = bucket.try_acquire()
    assert wait == pytest.approx(1 / 25)
    clock.now += 1 / 25
    assert bucket.try_acquire() is None
    assert bucket.try_acquire() is not None
    clock.now += 10  # a long pause refills to the burst, not beyond
    assert [bucket.try_acquire() for _ in range(21)].count(None) == 20


@pytest.mark.parametrize(
    ("rate", "burst", "problem"),
    [(0, 1, "rate must be a positive number"), (-1, 5, "rate must be a positive number"), (5, 0, "burst must be")],
)
def test_bucket_refuses_bad_settings(rate: float, burst: int, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TokenBucket(rate, burst)


@pytest.mark.parametrize(
    ("value", "header"),
    [(None, None), (0, "1"), (0.1, "1"), (1, "1"), (1.2, "2"), (30, "30"), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)
def test_retry_after_header(value: float | str | None, header: str | None) -> None:
    expected = value if isinstance(value, str) else header
    assert retry_after_header(value) == expected
