"""Run the Python examples of one docs page the way a user would, and say loudly when one does not work.

``python run_python_example.py FILE``: runs FILE, then ``dag.test()`` on every DAG it defined; exits non-zero
unless every run succeeded.

``python run_python_example.py --serve``: the same for many files in one process, so a page with several
examples pays for importing Airflow once. It reads one JSON request a line on stdin::

    {"path": "/tmp/.../dags/example_12.py", "env": {...}, "expect": "success"}

sets ``os.environ`` to ``env`` (what the page's shell blocks exported so far), runs the file and its DAGs, and
ends its answer with one line ``RESULT_MARKER {"ok": bool, "message": str}`` on stdout. ``expect`` is
``success`` (every DAG run must succeed) or ``failed`` (every DAG run must fail: an example that shows what a
failure leaves behind).

A file runs as the module ``__doc_example__`` (so an ``if __name__ == "__main__": dag.test()`` stanza does not run
it twice), registered in ``sys.modules`` the way Airflow's DAG parser registers DAG files, so DAGs made with a
bare ``with DAG(...):`` are found as well as those bound to a name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from typing import Any

RESULT_MARKER = "@@doc-example-result@@"


def _dag_context() -> Any:
    """Airflow's ``DagContext``, which collects the DAGs a module makes with ``with DAG(...)``."""
    try:
        from airflow.sdk.definitions._internal.contextmanager import DagContext
    except ImportError:  # Airflow 2
        from airflow.models.dag import DagContext
    return DagContext


def _defined_dags(path: str) -> list[Any]:
    """Run ``path`` as a module; the DAGs it defined, in the order first seen."""
    with open(path, encoding="utf-8") as source:
        text = source.read()
    mentions_dags = "DAG" in text or "@dag" in text
    name = "__doc_example__"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    context = _dag_context() if mentions_dags else None
    if context is not None:
        context.autoregistered_dags.clear()
        context.current_autoregister_module_name = name
    try:
        spec.loader.exec_module(module)
    finally:
        if context is not None:
            context.current_autoregister_module_name = None
    dags: dict[str, Any] = {}
    for value in vars(module).values():
        if type(value).__name__ == "DAG":
            dags.setdefault(value.dag_id, value)
    if context is not None:
        for dag, _ in sorted(context.autoregistered_dags, key=lambda pair: pair[0].dag_id):
            dags.setdefault(dag.dag_id, dag)
        context.autoregistered_dags.clear()
    return list(dags.values())


def run_file(path: str, expect: str = "success") -> tuple[bool, str]:
    """Run ``path`` and ``dag.test()`` on each DAG it defines: whether all ended as ``expect``, and why not."""
    states = {}
    for dag in _defined_dags(path):
        run = dag.test()
        state = getattr(run, "state", None)
        states[dag.dag_id] = str(getattr(state, "value", state))
        print(f"dag {dag.dag_id}: {states[dag.dag_id]}", flush=True)
    wrong = {dag_id: state for dag_id, state in states.items() if state != expect}
    if wrong:
        return False, f"DAG runs that did not end {expect}: {wrong}"
    if expect != "success" and not states:
        return False, f"expected DAG runs to end {expect}, but the example defines no DAG"
    return True, f"{len(states)} DAG run(s) ended {expect}" if states else "ran"


def _set_environment(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    os.environ.update(env)


def serve() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        _set_environment(request["env"])
        try:
            ok, message = run_file(request["path"], request.get("expect", "success"))
        except BaseException as exc:  # the example's own error, SystemExit included: report it, keep serving
            traceback.print_exc()
            ok, message = False, f"{type(exc).__name__}: {exc}"
        finally:
            sys.modules.pop("__doc_example__", None)
        sys.stderr.flush()
        print(RESULT_MARKER, json.dumps({"ok": ok, "message": message}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--serve"]:
        return serve()
    ok, message = run_file(argv[0])
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
