"""The token bucket: the client books slots and sleeps, the emulator takes or refuses; one shared per instance."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.limiter import TokenBucket, shared_bucket


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_throttle_lets_a_burst_through_then_spaces_requests() -> None:
    clock = FakeClock()
    throttle = TokenBucket(clock=clock)
    assert repr(throttle) == "TokenBucket(rate=25, burst=20)"
    assert [throttle.reserve() for _ in range(20)] == [0.0] * 20
    assert throttle.reserve() == pytest.approx(0.04)
    assert throttle.reserve() == pytest.approx(0.08)
    clock.advance(0.08)
    assert throttle.reserve() == pytest.approx(0.04)


def test_throttle_refills_up_to_the_burst_only() -> None:
    clock = FakeClock()
    throttle = TokenBucket(rate=10, burst=2, clock=clock)
    assert throttle.reserve() == 0.0
    clock.advance(3600)
    assert [throttle.reserve() for _ in range(2)] == [0.0, 0.0]
    assert throttle.reserve() == pytest.approx(0.1)


def test_throttle_books_distinct_slots_across_threads() -> None:
    clock = FakeClock()
    throttle = TokenBucket(rate=100, burst=1, clock=clock)
    delays: list[float] = []
    lock = threading.Lock()

    def book() -> None:
        for _ in range(50):
            delay = throttle.reserve()
            with lock:
                delays.append(delay)

    threads = [threading.Thread(target=book) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [round(i / 100, 6) for i in range(400)]
    assert sorted(round(d, 6) for d in delays) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a positive number"),
        ({"rate": float("inf")}, "rate must be a positive number"),
        ({"rate": True}, "rate must be a positive number"),
        ({"burst": 0}, "burst must be a whole number of 1 or more"),
        ({"burst": 1.5}, "burst must be a whole number"),
    ],
)
def test_throttle_refuses_nonsense(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(**kwargs)


def test_try_acquire_takes_or_refuses_without_charging_a_refusal() -> None:
    clock = FakeClock()
    bucket = TokenBucket(25, 20, clock=clock)
    assert [bucket.try_acquire() for _ in range(20)] == [None] * 20
    wait = bucket.try_acquire()
    assert wait == pytest.approx(0.04)
    assert bucket.try_acquire() == pytest.approx(0.04)  # refusals are not charged: the wait does not grow
    clock.advance(0.05)
    assert bucket.try_acquire() is None
    assert bucket.try_acquire() is not None


def test_one_bucket_per_instance_and_client_in_a_process() -> None:
    config = ClientConfig("https://limiter.example.com", client_id="a", client_secret="s")
    assert shared_bucket(config) is shared_bucket(
        ClientConfig("https://limiter.example.com", client_id="a", client_secret="t")
    )
    assert shared_bucket(config) is not shared_bucket(
        ClientConfig("https://limiter.example.com", client_id="b", client_secret="s")
    )
    assert (
        shared_bucket(ClientConfig("https://limiter.example.com", client_id="a", client_secret="s", rate_limit=None))
        is None
    )
    slower = shared_bucket(ClientConfig("https://limiter.example.com", client_id="a", client_secret="s", rate_limit=5))
    assert slower is not None
    assert slower.rate == 5
