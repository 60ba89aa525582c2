"""The release artefacts: wheel and sdist build cleanly, pass ``twine check``, and the wheel alone runs the demo.

Runs on the Airflow 3 leg only (building and installing once is enough; the 2.11 leg tests the same code).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging_helpers import REPO, UV, needs_uv, only_on_airflow_3

import airflow_provider_coupa_ihr

pytestmark = [needs_uv]


def test_wheel_and_sdist_build_and_pass_twine_check(dist: Path) -> None:
    version = airflow_provider_coupa_ihr.__version__
    wheel = dist / f"airflow_provider_coupa_ihr-{version}-py3-none-any.whl"
    sdist = dist / f"airflow_provider_coupa_ihr-{version}.tar.gz"
    assert wheel.exists(), sorted(p.name for p in dist.iterdir())
    assert sdist.exists(), sorted(p.name for p in dist.iterdir())
    twine = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert twine.returncode == 0, twine.stdout + twine.stderr
    names = zipfile.ZipFile(wheel).namelist()
    assert "airflow_provider_coupa_ihr/py.typed" in names
    assert not any(n.startswith(("tests/", "example_dags/", "benchmarks/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"airflow_provider_coupa_ihr-{version}.dist-info/METADATA").decode()
    assert f"Version: {version}" in metadata
    assert "Requires-Dist: apache-airflow!=3.0.0,!=3.0.1,>=2.11.0" in metadata
    assert "Provides-Extra: emulator" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"airflow_provider_coupa_ihr-{version}.dist-info/entry_points.txt")
    assert b"[apache_airflow_provider]" in entry_points
    assert b"coupa-emulator" in entry_points
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("/README.md") for m in members)
    assert any(m.endswith("/CHANGELOG.md") for m in members)


@only_on_airflow_3
@pytest.mark.dag
def test_the_wheel_alone_runs_the_demo(dist: Path, tmp_path: Path) -> None:
    version = airflow_provider_coupa_ihr.__version__
    wheel = dist / f"airflow_provider_coupa_ihr-{version}-py3-none-any.whl"
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    from importlib.metadata import version as installed

    subprocess.run(
        [str(UV), "pip", "install", "--quiet", f"{wheel}[emulator]", f"apache-airflow=={installed('apache-airflow')}"],
        check=True,
        env=env,
        timeout=600,
    )
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import airflow_provider_coupa_ihr as p; print(p.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert str(venv) in where, where
    demo = subprocess.run(
        [str(python), str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Integration history records (12)" in demo.stdout
    assert "Alerts raised (3)" in demo.stdout
