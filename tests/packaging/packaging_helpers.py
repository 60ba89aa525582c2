"""Names the packaging tests share (a module of its own: test modules do not import from conftest)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".venv-tools" / "bin" / "uv"

__all__ = ["REPO", "UV", "needs_uv", "only_on_airflow_3"]


def _airflow_major() -> int:
    return int(version("apache-airflow").split(".")[0])


#: Installing into fresh venvs is done once, on the Airflow 3 leg: the 2.11 leg tests the same code.
only_on_airflow_3 = pytest.mark.skipif(_airflow_major() < 3, reason="installed once, on the Airflow 3 leg")
needs_uv = pytest.mark.skipif(not UV.exists(), reason="needs .venv-tools/bin/uv, which scripts/dev.py installs")
