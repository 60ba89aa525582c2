"""The declared dependency floors are true: the package works with exactly its minimum dependencies.

For each supported Airflow line, at the lowest release our requirement allows there (2.11.0; 3.0.2 on 3.x), a
fresh venv gets the built wheel with ``uv pip install --resolution lowest-direct``. The wheel's own requirements,
with every extra a user installs (``emulator``...), are named on the command line too, so they count as direct
and uv picks the lowest version each allows; installing only the wheel would leave them transitive and newest.
Every other package takes its newest release published before that Airflow release (``--exclude-newer``), the
world Airflow's own constraints file pinned: an old Airflow with today's libraries is something nobody runs, and
it breaks (3.0.x with today's FastAPI, 3.1.0 with today's structlog). Only our direct requirements and pytest are
exempt from that date. ``floor_smoke.py`` then imports every module, checks the provider registration and runs
the smoke DAG against the emulator over TLS; on the 2.11 line, where httpx sits at our floor, the Airflow-free
client tests run as well.

Finally each declared floor must have been installed, exactly, on at least one line: a floor no supported Airflow
lets anyone install is untested, and the test names what to raise it to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging_helpers import REPO, UV, needs_uv, only_on_airflow_3

import airflow_provider_coupa_ihr

# dag: each line runs a DAG, in a subprocess with a database of its own.
pytestmark = [needs_uv, only_on_airflow_3, pytest.mark.dag]

#: Extras that are the project's own tooling, not something a user installs: their requirements are not floors.
TOOLING_EXTRAS = ("dev", "docs")


@dataclass(frozen=True)
class AirflowLine:
    name: str
    #: Confines resolution to the line; with lowest-direct, uv picks its lowest release our requirement allows.
    requirement: str
    #: The day after that release: the rest of the tree is what was published by then (see the module docstring).
    #: Raise the floor and uv fails, naming when the new lowest release was published: move this date past it.
    published_before: str
    run_client_tests: bool


LINES = (
    AirflowLine("2.11", "apache-airflow>=2.11,<2.12", "2025-05-21T00:00:00Z", run_client_tests=True),
    AirflowLine("3.x", "apache-airflow>=3,<4", "2025-06-11T00:00:00Z", run_client_tests=False),
)


@dataclass
class LineResult:
    line: AirflowLine
    installed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


def _declared(wheel: Path) -> tuple[list[str], list[Requirement]]:
    """The wheel's user-facing extras, and its Requires-Dist with theirs (without the ``extra`` markers)."""
    version = airflow_provider_coupa_ihr.__version__
    metadata = zipfile.ZipFile(wheel).read(f"airflow_provider_coupa_ihr-{version}.dist-info/METADATA").decode()
    lines = metadata.splitlines()
    extras = [e for line in lines if (e := line.removeprefix("Provides-Extra: ")) != line and e not in TOOLING_EXTRAS]
    requirements = []
    for line in lines:
        if not line.startswith("Requires-Dist: "):
            continue
        requirement = Requirement(line.removeprefix("Requires-Dist: "))
        marker = str(requirement.marker) if requirement.marker else ""
        if marker and not any(marker == f'extra == "{extra}"' for extra in extras):
            continue
        requirement.marker = None
        requirements.append(requirement)
    return extras, requirements


def _floor(requirement: Requirement) -> str:
    floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    assert len(floors) == 1, f"{requirement} should state one floor (>=), as every requirement of ours does"
    return floors[0]


def _run(
    cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env)


def _install_and_smoke(
    line: AirflowLine, wheel: Path, extras: list[str], requirements: list[Requirement], where: Path
) -> LineResult:
    result = LineResult(line)
    venv = where / f"venv-{line.name}"
    python = venv / "bin" / "python"
    started = time.monotonic()
    made = _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], timeout=120)
    if made.returncode != 0:
        result.problem = f"uv venv failed: {made.stderr}"
        return result
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    exempt = [f"{r.name}={tomorrow}" for r in requirements if r.name != "apache-airflow"] + [f"pytest={tomorrow}"]
    install = [
        str(UV), "pip", "install", "--python", str(python), "--resolution", "lowest-direct",
        "--exclude-newer", line.published_before,
        *(arg for package in exempt for arg in ("--exclude-newer-package", package)),
        f"{wheel}[{','.join(extras)}]", *(str(r) for r in requirements), line.requirement,
        # pytest for the client tests, and because the shipped pytest plugin imports it: the newest of the day,
        # pinned so that resolving it lowest-direct does not pick an ancient one.
        f"pytest=={_pytest_version()}",
    ]  # fmt: skip
    installed = _run(install, timeout=900)
    result.seconds["install"] = time.monotonic() - started
    if installed.returncode != 0:
        result.problem = f"uv could not install the declared minimums:\n{installed.stderr[-4000:]}"
        return result
    listing = _run([str(UV), "pip", "list", "--python", str(python), "--format", "json"], timeout=120)
    result.installed = {row["name"].lower(): row["version"] for row in json.loads(listing.stdout)}

    # Neither the checkout (cwd, PYTHONPATH) nor the test session's Airflow settings may leak into the venv.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONSAFEPATH"] = "1"
    started = time.monotonic()
    smoke = _run(
        [str(python), str(Path(__file__).with_name("floor_smoke.py")), str(REPO / "tests/dag_files/smoke.py")],
        timeout=600,
        cwd=where,
        env=env,
    )
    result.seconds["smoke"] = time.monotonic() - started
    if smoke.returncode != 0:
        result.problem = f"the smoke run failed:\n{smoke.stdout[-3000:]}\n{smoke.stderr[-6000:]}"
        return result
    facts = json.loads(smoke.stdout.strip().splitlines()[-1])
    if not facts["package_file"].startswith(str(venv)):
        result.problem = f"the smoke run imported the package from {facts['package_file']}, not the venv"
        return result

    if line.run_client_tests:
        started = time.monotonic()
        client_tests = _run(
            [str(python), "-m", "pytest", str(REPO / "tests" / "client"), "-q", "-x", "-p", "no:cacheprovider"],
            timeout=600,
            cwd=where,
            env=env,
        )
        result.seconds["client tests"] = time.monotonic() - started
        if client_tests.returncode != 0:
            result.problem = f"the client tests failed on the minimums:\n{client_tests.stdout[-6000:]}"
    return result


def _pytest_version() -> str:
    from importlib.metadata import version

    return version("pytest")


def test_the_declared_minimum_dependencies_work_on_each_airflow_line(
    dist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = dist / f"airflow_provider_coupa_ihr-{airflow_provider_coupa_ihr.__version__}-py3-none-any.whl"
    extras, requirements = _declared(wheel)
    floors = {r.name.lower(): _floor(r) for r in requirements}
    results = [_install_and_smoke(line, wheel, extras, requirements, tmp_path) for line in LINES]

    report = ["", "dependency floors (declared -> installed on each Airflow line):"]
    for name, floor in floors.items():
        on_lines = ", ".join(f"{r.line.name}: {r.installed.get(name, '-')}" for r in results)
        report.append(f"  {name}>={floor} -> {on_lines}")
    for r in results:
        timing = ", ".join(f"{step} {seconds:.0f}s" for step, seconds in r.seconds.items())
        report.append(f"  Airflow {r.line.name} line: {timing}{'' if r.problem is None else ' (FAILED)'}")
    with capsys.disabled():
        print("\n".join(report), flush=True)

    problems = [f"Airflow {r.line.name} line: {r.problem}" for r in results if r.problem]
    assert not problems, "\n\n".join(problems)
    for name, floor in floors.items():
        seen = {r.line.name: r.installed.get(name) for r in results}
        assert floor in seen.values(), (
            f"{name}>={floor} is declared, but no supported Airflow line installed {floor} ({seen}): the floor is "
            f"untested; raise it to the lowest version installed"
        )
