"""How the listener gets into Airflow (the ``airflow.plugins`` entry point), its settings, and its decisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_coupa_ihr.plugins.coupa import PLUGIN_NAME, CoupaListenerPlugin
from airflow_provider_coupa_ihr.plugins.listener import CoupaListener, ListenerSettings, coupa_listener

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"


def _airflow_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False", **extra)
    return env


# ------------------------------------------------------------------------------------------------ registration
def test_the_airflow_plugins_command_lists_the_listener_from_the_entry_point(tmp_path: Path) -> None:
    # Run outside the checkout, so only the installed distribution's entry points are seen.
    result = subprocess.run(
        [str(AIRFLOW_BIN), "plugins", "--output", "json"],
        env=_airflow_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    (ours,) = [p for p in plugins if p["name"] == PLUGIN_NAME]
    assert ours["listeners"] == ["airflow_provider_coupa_ihr.plugins.listener.CoupaListener"]
    assert "group='airflow.plugins'" in ours["source"]
    assert ours["source"].startswith("airflow-provider-coupa-ihr==")


def test_the_plugin_is_an_entry_point_and_the_task_listener_manager_holds_its_listener() -> None:
    from importlib.metadata import entry_points

    from airflow.providers.common.compat.sdk import get_listener_manager

    (point,) = [e for e in entry_points(group="airflow.plugins") if e.name == PLUGIN_NAME]
    assert point.load() is CoupaListenerPlugin
    assert CoupaListenerPlugin.listeners == [coupa_listener]
    # The manager tasks call (Task SDK on Airflow 3, core on 2) built itself from plugins: nobody here added it.
    assert get_listener_manager().pm.is_registered(coupa_listener)


def test_the_provider_info_documents_every_option_the_listener_reads() -> None:
    from airflow_provider_coupa_ihr.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["coupa"]["options"]
    assert options["listener_enabled"]["default"] == "False"
    assert options["listener_timeout"]["default"] == "5"
    assert options["listener_dag_tag"]["default"] == "coupa-log"
    read = {f"listener_{name}" for name in ListenerSettings.__dataclass_fields__}
    assert read - {"listener_dag_ids"} <= set(options) | {"listener_log_success"}
    assert set(options) >= {"listener_dag_ids", "listener_log_success"}


# ------------------------------------------------------------------------------------------------ settings
def test_settings_are_off_by_default_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__COUPA__LISTENER_ENABLED", raising=False)
    assert ListenerSettings.read().enabled is False
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "True")
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_DAG_IDS", " a, b ,,")
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_TIMEOUT", "-3")
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_CONN_ID", "coupa_prod")
    settings = ListenerSettings.read()
    assert settings.enabled
    assert settings.dag_ids == {"a", "b"}
    assert settings.timeout == 5.0  # a nonsensical bound falls back to the default, never to "no bound"
    assert settings.conn_id == "coupa_prod"
    assert settings.dag_tag == "coupa-log"


# ------------------------------------------------------------------------------------------------ decisions
def _task(tags: list[str], dag_params: dict[str, Any], task_params: dict[str, Any] | None = None) -> Any:
    with DAG("decide", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), tags=tags, params=dag_params):

        @task(params=task_params or {})
        def step() -> None:
            pass

        return step().operator


def _ti(op: Any, state: str = "success") -> Any:
    return SimpleNamespace(
        dag_id="decide", task_id="step", run_id="r", try_number=1, map_index=-1, state=state, task=op
    )


ON = ListenerSettings(enabled=True)
DOC = {"coupa_document_type": "Supplier", "coupa_document_id": 9}


@pytest.mark.parametrize(
    ("tags", "dag_params", "task_params", "settings", "logged"),
    [
        (["coupa-log"], DOC, None, ON, True),
        ([], DOC, None, ON, False),
        ([], DOC, None, ListenerSettings(enabled=True, dag_ids=frozenset({"decide"})), True),
        ([], DOC, {"coupa_log": True}, ON, True),  # a task opts in on its own
        (["coupa-log"], DOC, {"coupa_log": False}, ON, False),  # ... or out
        (["coupa-log"], {}, None, ON, False),  # no document: warned and skipped
        (["coupa-log"], {}, None, ListenerSettings(enabled=True, document_type="Supplier", document_id="1"), True),
        (["other"], DOC, None, ListenerSettings(enabled=True, dag_tag="other"), True),
    ],
)
def test_who_is_logged(tags, dag_params, task_params, settings, logged) -> None:
    request = CoupaListener().record_request(
        _ti(_task(tags, dag_params, task_params)), settings, failed=False, error=None
    )
    assert (request is not None) == logged


def test_a_failure_that_will_be_retried_is_not_logged_and_the_final_one_is() -> None:
    op = _task(["coupa-log"], DOC)
    listener = CoupaListener()
    assert listener.record_request(_ti(op, "up_for_retry"), ON, failed=True, error=ValueError("x")) is None
    action, fields = listener.record_request(_ti(op, "failed"), ON, failed=True, error=ValueError("x"))
    assert action == "create_alert"
    assert (fields["status"], fields["document_id"], fields["contact_alert_type"]) == ("Error", 9, "Functional")
    assert fields["responses"][0]["response_code"] == "ValueError"


def test_the_listener_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> ListenerSettings:
        raise RuntimeError("config backend down")

    monkeypatch.setattr(ListenerSettings, "read", staticmethod(broken))
    coupa_listener.on_task_instance_failed(previous_state=None, task_instance=_ti(None, "failed"), error="x")
    coupa_listener.on_task_instance_success(previous_state=None, task_instance=SimpleNamespace())


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({**DOC, "coupa_contact_alert_type": "Everyone"}, id="contact-alert-type"),
        pytest.param({**DOC, "coupa_document_id": "INV-9"}, id="document-id-text"),
        pytest.param({**DOC, "coupa_document_type": "Spaceship"}, id="document-type"),
    ],
)
def test_bad_input_is_warned_about_and_nothing_reaches_coupa(
    params: dict[str, Any], coupa_connection: Any, coupa_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "True")
    ti = _ti(_task(["coupa-log"], params), "failed")
    coupa_listener.on_task_instance_failed(previous_state=None, task_instance=ti, error=ValueError("x"))
    coupa_listener.on_task_instance_success(previous_state=None, task_instance=_ti(ti.task))
    assert coupa_emulator.requests() == []


def test_the_triggering_runs_conf_wins_over_the_params_defaults() -> None:
    op = _task(["coupa-log"], DOC)
    ti = _ti(op)
    ti.dag_run = SimpleNamespace(conf={"coupa_document_id": 77, "coupa_integration": "FROM-CONF", "other": 1})
    _action, fields = CoupaListener().record_request(ti, ON, failed=False, error=None)
    assert (fields["document_type"], fields["document_id"], fields["integration"]) == ("Supplier", 77, "FROM-CONF")


def test_a_run_conf_that_cannot_be_read_leaves_the_params() -> None:
    class Unreadable:
        @property
        def conf(self) -> Any:
            raise RuntimeError("detached")

    ti = _ti(_task(["coupa-log"], DOC))
    ti.dag_run = Unreadable()
    _action, fields = CoupaListener().record_request(ti, ON, failed=False, error=None)
    assert fields["document_id"] == 9
