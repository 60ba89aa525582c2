"""The docs site builds with warnings as errors, exactly as CONTRIBUTING.md says to build it.

A warning is a broken page: a link to a page or heading that does not exist, a page in no table of contents, a
module autodoc cannot import, a docstring whose reStructuredText does not parse. So ``-W`` makes each of them
fail the test command, and ``--keep-going`` lists them all at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.skipif(
    int(version("apache-airflow").split(".")[0]) < 3,
    reason="the site is built once, on the Airflow 3 leg: its pages and docstrings do not depend on the Airflow "
    "line, and the 2.11 leg imports every documented module in its own tests",
)


def test_the_docs_build_without_a_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "_AIRFLOW"))}
    # autodoc imports the package, which imports Airflow: give it a home of its own, not ~/airflow.
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"sphinx failed:\n{done.stderr[-6000:]}\n{done.stdout[-2000:]}"
    pages = {p.stem for p in (REPO / "docs").glob("*.md")}
    built = {p.stem for p in out.glob("*.html")}
    assert pages <= built, f"pages not built: {sorted(pages - built)}"
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in (
        "hooks.coupa.CoupaHook",
        "operators.records.CoupaMarkExportedOperator",
        "operators.bulk.CoupaBulkCreateRecordsOperator",
        "sensors.coupa.CoupaRecordsResolvedSensor",
        "triggers.coupa.CoupaRecordsResolvedTrigger",
        "notifications.coupa.CoupaNotifier",
        "plugins.listener.CoupaListener",
        "client.sync.CoupaClient",
        "client.aio.AsyncCoupaClient",
        "client.config.ClientConfig",
        "client.errors.CoupaError",
        "testing.emulator.CoupaEmulator",
    ):
        assert f'id="airflow_provider_coupa_ihr.{name}"' in api, f"the API reference misses {name}"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "coupa_invoice_export" in index, "the README's first hour is not included in the docs' front page"
