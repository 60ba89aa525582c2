"""The packaging tests' one build of the wheel and sdist, shared by every test that installs or inspects them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from packaging_helpers import REPO, UV


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, as a release would be (the checkout's tree stays clean)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(UV), "build", "--quiet", "--out-dir", str(out), str(REPO)], check=True, timeout=300)
    return out
