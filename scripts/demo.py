"""The README's first command lands here: a real Airflow DAG run against the Coupa emulator.

It starts the emulator, points an Airflow connection at it, builds a throwaway Airflow home with a SQLite
database, runs the example DAG ``coupa_invoice_export`` with ``dag.test()`` (every task for real, in this
process) and prints what landed in Coupa: records, alerts and exported documents.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "example_dags" / "coupa_invoice_export.py"


def _prepare_airflow(home: Path) -> None:
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def main() -> int:
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="coupa-demo-airflow-"))
    _prepare_airflow(home)

    from airflow_provider_coupa_ihr.testing import CoupaEmulator

    with CoupaEmulator() as coupa:
        coupa.add_integration("ERP-INVOICES", name="Invoices to the ERP")
        os.environ["AIRFLOW_CONN_COUPA_DEFAULT"] = coupa.airflow_connection()
        print(f"Coupa emulator on {coupa.url}; Airflow home {home}", flush=True)

        from airflow.utils import db

        print("Creating the Airflow database (SQLite)...", flush=True)
        db.resetdb()

        try:
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:  # Airflow 2
            from airflow.models.dagbag import DagBag

        dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("coupa_invoice_export")
        print("Running the DAG coupa_invoice_export with dag.test()...\n", flush=True)
        run = dag.test()
        state = str(getattr(run.state, "value", run.state))
        tasks = sorted(
            (
                ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]",
                str(getattr(ti.state, "value", ti.state)),
            )
            for ti in run.get_task_instances()
        )
        print(f"\nDAG run {run.run_id}: {state}")
        print("Tasks: " + ", ".join(f"{t}={s}" for t, s in tasks))
        print("\nWhat landed in Coupa:\n")
        print(coupa.summary())
        print(f"\nDone in {time.monotonic() - started:.0f} s.")
        return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
