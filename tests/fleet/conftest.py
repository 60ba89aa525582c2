"""Fixtures of the fleet tests: a real ``redis-server`` on loopback (``fleet_services.py``), and the figures the
fleet scenarios report, printed in a section of the run's summary like the reliability suite's."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The reliability suite's helpers (request-rate figures, the deployment harness) are reused, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from fleet_services import start_redis

_REPORT: list[str] = []


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Any]:
    """One ``redis-server`` for a test module; tests use keys of their own."""
    server = start_redis()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_redis() -> Iterator[Any]:
    """A ``redis-server`` of the test's own, for tests that stop and restart it."""
    server = start_redis()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fleet_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``fleet_report("...")`` adds a line, under the test's name, to the run's "reliability: fleet" section."""

    def add(line: str) -> None:
        _REPORT.append(f"{request.node.name}: {line}")

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORT:
        terminalreporter.section("reliability: fleet")
        for line in _REPORT:
            terminalreporter.write_line(line)
