"""Test-wide setup: a throwaway Airflow home with a file-based SQLite database, made before Airflow is imported.

``dag.test()`` needs a migrated file-based SQLite DB and the DAG's file inside ``[core] dags_folder`` (it
re-parses that folder on every run). So the dags folder is a temporary directory holding two links:
``example_dags`` (the DAGs we ship) and ``test_dags`` (``tests/dag_files``: module-level DAGs for the tests).
Tests load a DAG from there with :func:`load_dag` and run it with ``dag.test()``.

Tests that need an Airflow metadata database carry the ``db`` marker, so ``pytest -m "not db"`` runs without one.
Nobody writes it by hand: it is added here to every test that uses the ``airflow_db`` fixture or is marked ``dag``
(a real DAG run, in process or in a subprocess, always has a database). ``COUPA_TESTS_WITHOUT_DB=1`` proves the
split: Airflow is pointed at a database that cannot exist and ``airflow_db`` fails, so
``COUPA_TESTS_WITHOUT_DB=1 pytest -m "not db"`` passes only if no unmarked test touches a database.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="coupa-airflow-home-"))
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()
(DAGS_FOLDER / "example_dags").symlink_to(REPO / "example_dags", target_is_directory=True)
(DAGS_FOLDER / "test_dags").symlink_to(REPO / "tests" / "dag_files", target_is_directory=True)

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
#: Set to 1 to run without a metadata database (see the module docstring).
WITHOUT_DB = os.environ.get("COUPA_TESTS_WITHOUT_DB") == "1"
_DB_FILE = (_HOME / "no-such-directory" / "airflow.db") if WITHOUT_DB else (_HOME / "airflow.db")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_DB_FILE}"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# Unit test mode makes LocalExecutor the default executor; Airflow 2.11 then refuses SQLite wherever it loads the
# executor (dag.test() does, for sensors: "cannot use SQLite with the LocalExecutor"). Airflow's own tests skip
# that check with this variable; Airflow 3 has no such check.
os.environ["_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the metadata database ``db`` (see the module docstring)."""
    for item in items:
        if "airflow_db" in getattr(item, "fixturenames", ()) or item.get_closest_marker("dag") is not None:
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database for ``dag.test()`` runs (about 1.5 s, once per session)."""
    if WITHOUT_DB:
        pytest.fail("COUPA_TESTS_WITHOUT_DB=1, yet this test asked for the metadata database (is it marked db?)")
    from airflow.utils import db

    db.resetdb()
    return _DB_FILE
