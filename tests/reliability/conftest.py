"""The reliability suite's numbers (fault counts, request rates, secrets searched) as a section of the test run's
summary, so they show in every run's output, not only with ``-s``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_REPORT: list[str] = []


@pytest.fixture
def reliability_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``reliability_report("...")`` adds a line, under the test's name, to the run's "reliability" section."""

    def add(line: str) -> None:
        _REPORT.append(f"{request.node.name}: {line}")

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORT:
        terminalreporter.section("reliability")
        for line in _REPORT:
            terminalreporter.write_line(line)
