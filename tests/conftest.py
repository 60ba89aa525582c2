"""Test-wide setup: a throwaway Airflow home with a file-based SQLite database, made before Airflow is imported.

``dag.test()`` needs a migrated file-based SQLite DB and the DAG's file inside ``[core] dags_folder`` (it
re-parses that folder on every run). So the dags folder is a temporary directory holding two links:
``example_dags`` (the DAGs we ship) and ``test_dags`` (``tests/dag_files``: module-level DAGs for the tests).
Tests load a DAG from there with :func:`load_dag` and run it with ``dag.test()``.
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
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# Unit test mode makes LocalExecutor the default executor; Airflow 2.11 then refuses SQLite wherever it loads the
# executor (dag.test() does, for sensors: "cannot use SQLite with the LocalExecutor"). Airflow's own tests skip
# that check with this variable; Airflow 3 has no such check.
os.environ["_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK"] = "1"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database for ``dag.test()`` runs (about 1.5 s, once per session)."""
    from airflow.utils import db

    db.resetdb()
    return _HOME / "airflow.db"
