#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3.10+.

    python3 scripts/dev.py demo    set up, start the Coupa emulator and run the demo
    python3 scripts/dev.py test    set up, then lint, type-check and run the whole test suite
    python3 scripts/dev.py bench   set up, then run every benchmark and print the table (not part of test)

Setting up makes virtual environments under the checkout (``.venv`` for the newest Airflow), installs uv into a
small bootstrap venv and uses it to install the package in editable mode with its test tools. A stamp file skips
the install when nothing it depends on changed, so repeated runs start at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".venv-tools"
#: The Airflow line each environment runs: the newest 3.x (the default everywhere) and the newest 2.11.
ENVIRONMENTS = {"af3": (".venv", "apache-airflow==3.3.2"), "af2": (".venv-af2", "apache-airflow==2.11.2")}
#: Debian's Chromium, which the browser test (tests/browser, Airflow 3 leg) drives through Playwright.
CHROMIUM = Path("/usr/bin/chromium")


def _run(cmd: list[str | Path], **kw: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def _uv() -> Path:
    uv = _bin(TOOLS, "uv")
    if not uv.exists():
        _run([sys.executable, "-m", "venv", TOOLS])
        _run([_bin(TOOLS, "python"), "-m", "pip", "install", "--quiet", "uv"])
    return uv


def setup(leg: str = "af3") -> Path:
    """Make (or reuse) the environment for ``leg`` and return its python."""
    venv_name, airflow_req = ENVIRONMENTS[leg]
    venv = ROOT / venv_name
    stamp_src = (ROOT / "pyproject.toml").read_bytes() + airflow_req.encode() + sys.version.encode()
    digest = hashlib.sha256(stamp_src).hexdigest()
    stamp = venv / ".coupa-stamp"
    python = _bin(venv, "python")
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    started = time.monotonic()
    uv = _uv()
    if not python.exists():
        _run([uv, "venv", "--quiet", "--python", sys.executable, venv])
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    _run([uv, "pip", "install", "--quiet", "--compile-bytecode", airflow_req, "-e", ".[dev]"], env=env)
    stamp.write_text(digest)
    print(f"environment {venv_name} ready in {time.monotonic() - started:.0f}s", flush=True)
    return python


def demo() -> int:
    python = setup()
    return subprocess.call([str(python), str(ROOT / "scripts" / "demo.py")], cwd=ROOT)


def ensure_chromium() -> str | None:
    """Install Debian's Chromium for the browser test when it is missing; return why it is unavailable, if it is.

    Needs root and apt-get (CI runs as root on Debian). Without it the browser test fails, saying why: it is
    skipped only when ``COUPA_SKIP_BROWSER=1`` asks for that.
    """
    if os.environ.get("COUPA_SKIP_BROWSER") == "1" or CHROMIUM.exists() or os.environ.get("COUPA_CHROMIUM"):
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium package"
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing; install it as root: apt-get install --no-install-recommends chromium"
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run([apt, "update", "-qq"], env=env)
        _run([apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"installing Debian's chromium failed: {exc}"
    if not CHROMIUM.exists():
        return f"apt-get installed chromium, yet {CHROMIUM} is missing"
    print(f"chromium installed in {time.monotonic() - started:.0f}s", flush=True)
    return None


def ensure_services() -> str | None:
    """Debian's redis-server and postgresql for the fleet tests (tests/fleet); why they are unavailable, if so.

    Like Chromium: CI machines start without them, so the test command installs them (as root, with apt-get);
    the fleet fixtures call the same function, which costs nothing once they are there.
    """
    if os.environ.get("COUPA_SKIP_FLEET") == "1":
        return None
    sys.path.insert(0, str(ROOT / "scripts"))
    import services

    try:
        seconds = services.ensure_installed()
    except services.ServiceUnavailable as exc:
        return str(exc)
    if seconds:
        print(f"redis-server and postgresql ready in {seconds:.0f}s", flush=True)
    return None


def test(extra: list[str]) -> int:
    """Lint and type-check once, then run the whole suite on each Airflow line; report each step's time."""
    pythons = {leg: setup(leg) for leg in ENVIRONMENTS}
    browser_problem = ensure_chromium()
    services_problem = ensure_services()
    env = dict(os.environ)
    if services_problem:
        print(f"WARNING: the fleet tests will fail: {services_problem}", flush=True)
    if browser_problem:
        print(f"WARNING: the browser test will fail: {browser_problem}", flush=True)
        env["COUPA_BROWSER_UNAVAILABLE"] = browser_problem
    venv_bin = pythons["af3"].parent
    steps: list[tuple[str, list[str]]] = [
        ("ruff", [str(venv_bin / "ruff"), "check", "."]),
        ("mypy", [str(venv_bin / "mypy")]),
    ]
    for leg, python in pythons.items():
        steps.append((f"pytest on {ENVIRONMENTS[leg][1]}", [str(python), "-m", "pytest", *extra]))
    failed, timings = [], []
    for name, cmd in steps:
        started = time.monotonic()
        print(f"\n=== {name}", flush=True)
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        seconds = time.monotonic() - started
        timings.append(f"{name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f}s")
        print(f"=== {timings[-1]}", flush=True)
        if code != 0:
            failed.append(name)
    print("\n" + "\n".join(timings), flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
        return 1
    return 0


def bench(extra: list[str]) -> int:
    python = setup()
    return subprocess.call([str(python), str(ROOT / "benchmarks" / "run.py"), *extra], cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "setup", "bench"):
        print(__doc__)
        return 2
    if argv[0] == "demo":
        return demo()
    if argv[0] == "bench":
        return bench(argv[1:])
    if argv[0] == "setup":
        print(setup())
        return 0
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
