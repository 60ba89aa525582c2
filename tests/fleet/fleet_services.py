"""``scripts/services.py`` for the fleet tests, and how a missing server is reported.

Debian's Redis and PostgreSQL are installed by ``scripts/services.py`` when missing (as root, the way CI runs).
Where they cannot be, the tests fail saying why; ``COUPA_SKIP_FLEET=1`` skips them instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

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


services = sys.modules.get("coupa_services") or _load_services()


def unavailable(why: str) -> NoReturn:
    """Skip when asked to (``COUPA_SKIP_FLEET=1``), else fail: a missing server must not pass unnoticed."""
    if os.environ.get("COUPA_SKIP_FLEET") == "1":
        pytest.skip(f"COUPA_SKIP_FLEET=1: {why}")
    pytest.fail(f"{why} (set COUPA_SKIP_FLEET=1 to skip the fleet tests)")


def start_redis() -> Any:
    pytest.importorskip("redis", reason="the redis package (the [redis] extra) is not installed")
    try:
        return services.start_redis()
    except services.ServiceUnavailable as exc:
        unavailable(f"no Redis: {exc}")
