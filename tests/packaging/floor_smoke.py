"""Run by ``test_dependency_floors.py`` with the python of a venv that holds the declared minimum dependencies.

It must prove that the installed package works there, not the checkout: it imports every module of the installed
package (failing with each module's error), checks that Airflow's provider manager registers the provider and
its ``coupa`` connection type, runs the smoke DAG (``tests/dag_files/smoke.py``, copied into a throwaway dags
folder) with ``dag.test()`` against the Coupa emulator over TLS, and reads the record back with the async client.
It prints one JSON line of facts on success and exits non-zero, saying why, otherwise.

Usage: ``python floor_smoke.py <smoke DAG file>``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import shutil
import sys
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_coupa_ihr.testing import CoupaEmulator


def _prepare_airflow(smoke_dag: Path) -> None:
    """A throwaway Airflow home with a SQLite database and a dags folder holding only the smoke DAG."""
    home = Path(tempfile.mkdtemp(prefix="coupa-floor-airflow-"))
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(smoke_dag, dags / smoke_dag.name)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def _import_every_module() -> list[str]:
    import airflow_provider_coupa_ihr as package

    # A ``__main__`` module is a program: importing it runs it.
    names = sorted(
        m.name
        for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if not m.name.endswith(".__main__")
    )
    failures = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            failures.append(f"{name}:\n{traceback.format_exc()}")
    if failures:
        raise SystemExit("these modules fail to import:\n" + "\n".join(failures))
    return names


def _check_provider_registration() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    providers = manager.providers
    if "airflow-provider-coupa-ihr" not in providers:
        raise SystemExit(f"Airflow does not list the provider; it lists {sorted(providers)}")
    hook = manager.hooks.get("coupa")
    if hook is None or "CoupaHook" not in hook.hook_class_name:
        raise SystemExit(f"Airflow does not map conn_type 'coupa' to CoupaHook: {hook!r}")


def _run_smoke_dag(coupa: CoupaEmulator) -> None:
    from airflow.utils import db

    db.resetdb()
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2 and 3.0
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
    if bag.import_errors:
        raise SystemExit(f"the smoke DAG does not parse: {bag.import_errors}")
    run = bag.get_dag("coupa_smoke").test()
    state = str(getattr(run.state, "value", run.state))
    if state != "success":
        tasks = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
        raise SystemExit(f"the smoke DAG run ended {state}: {tasks}")
    if len(coupa.records()) != 1:
        raise SystemExit(f"the smoke DAG should write one record to the emulator; it holds {coupa.records()}")


def _read_back_asynchronously(coupa: CoupaEmulator) -> None:
    """The async client (httpx), built through the front door, reads the DAG's record back over TLS."""
    from airflow_provider_coupa_ihr.client import AsyncCoupaClient, ClientConfig

    connection = json.loads(os.environ["AIRFLOW_CONN_COUPA_DEFAULT"])
    config = ClientConfig(
        base_url=connection["host"],
        client_id=connection["login"],
        client_secret=connection["password"],
        verify=connection["extra"]["verify"],
    )
    record_id = int(coupa.records()[0]["id"])

    async def read() -> dict[str, Any]:
        async with AsyncCoupaClient(config) as client:
            return await client.get_record(record_id)

    record = asyncio.run(read())
    if int(record["id"]) != record_id:
        raise SystemExit(f"the async client read record {record_id} back as {record}")


def main(argv: list[str]) -> int:
    smoke_dag = Path(argv[0]).resolve()
    _prepare_airflow(smoke_dag)
    started = time.monotonic()
    modules = _import_every_module()
    imported = time.monotonic()
    _check_provider_registration()
    from airflow_provider_coupa_ihr.testing import CoupaEmulator

    # Over TLS, so the emulator's certificate (cryptography) and both clients' certificate checks run too.
    with CoupaEmulator(tls=True) as coupa:
        os.environ["AIRFLOW_CONN_COUPA_DEFAULT"] = coupa.airflow_connection()
        _run_smoke_dag(coupa)
        _read_back_asynchronously(coupa)
    import airflow_provider_coupa_ihr

    facts = {
        "package_file": airflow_provider_coupa_ihr.__file__,
        "modules": len(modules),
        "import_seconds": round(imported - started, 1),
        "dag_seconds": round(time.monotonic() - imported, 1),
        "airflow": version("apache-airflow"),
    }
    print(json.dumps(facts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
