"""Fixtures of the fleet tests: a real ``redis-server`` (and PostgreSQL) on loopback, from ``scripts/services.py``.

The servers are Debian's packages, installed by ``scripts/services.py`` when missing (as root, the way CI runs).
Where they cannot be installed the tests fail saying why; ``COUPA_SKIP_FLEET=1`` skips them instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_services() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coupa_services", REPO / "scripts" / "services.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["coupa_services"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


services = _load_services()


def unavailable(why: str) -> Any:
    """Skip when asked to (``COUPA_SKIP_FLEET=1``), else fail: a missing server must not pass unnoticed."""
    if os.environ.get("COUPA_SKIP_FLEET") == "1":
        pytest.skip(f"COUPA_SKIP_FLEET=1: {why}")
    pytest.fail(f"{why} (set COUPA_SKIP_FLEET=1 to skip the fleet tests)")


def start_redis() -> Any:
    pytest.importorskip("redis", reason="the redis package (the [redis] extra) is not installed")
    try:
        return services.start_redis()
    except services.ServiceUnavailable as exc:
        return unavailable(f"no Redis: {exc}")


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
