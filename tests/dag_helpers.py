"""Helpers for tests that run DAGs: load a module-level DAG from the dags folder, read a run's results.

The Airflow environment itself (home, SQLite, dags folder) is set up by ``tests/conftest.py``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: Set up by tests/conftest.py before any test module is imported.
DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

__all__ = ["DAGS_FOLDER", "REPO", "load_dag", "run_state", "task_states", "try_numbers", "xcom_value"]


def load_dag(relative_path: str, dag_id: str | None = None) -> Any:
    """The DAG defined at module level in ``<dags folder>/<relative_path>`` (e.g. ``test_dags/operators.py``)."""
    path = DAGS_FOLDER / relative_path
    module_name = "coupa_dag_" + relative_path.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = {obj.dag_id: obj for obj in vars(module).values() if type(obj).__name__ == "DAG"}
    if dag_id is None:
        assert len(dags) == 1, f"{relative_path} defines {sorted(dags)}; name the one to load"
        return next(iter(dags.values()))
    return dags[dag_id]


def run_state(dag_run: Any) -> str:
    """A DagRun's state as plain text on both Airflow lines (``success``, ``failed``)."""
    state = getattr(dag_run, "state", dag_run)
    return str(getattr(state, "value", state))


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """What a task of a finished ``dag.test()`` run pushed, read from the metadata DB (both Airflow lines)."""
    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2
        from airflow.models.xcom import XCom

        return XCom.get_one(run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key, map_index=map_index)
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=dag_run.run_id, key=key, task_ids=task_id, dag_ids=dag_run.dag_id, map_indexes=map_index
        )
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_states(dag_run: Any) -> dict[str, str]:
    """``task_id`` (with ``[map_index]`` for mapped ones) -> final state, as text."""
    out = {}
    for ti in dag_run.get_task_instances():
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        out[name] = run_state(ti)
    return out


def try_numbers(dag_run: Any) -> dict[str, int]:
    return {ti.task_id: int(ti.try_number) for ti in dag_run.get_task_instances()}
