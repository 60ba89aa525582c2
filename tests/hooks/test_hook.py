"""CoupaHook against the emulator: the connection read from Airflow, test_connection, the delegating calls, the
shared token, the async client, the connection form, the provider info, and the ``airflow`` CLI seeing it all."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_coupa_ihr.client.aio import AsyncCoupaClient
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.get_provider_info import get_provider_info
from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook
from airflow_provider_coupa_ihr.testing import CoupaEmulator
from airflow_provider_coupa_ihr.testing.pytest_plugin import DEFAULT_INTEGRATION_CODE, connection_json

CODE = DEFAULT_INTEGRATION_CODE
AIRFLOW_PACKAGE = Path(__import__("airflow").__file__).parent
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"


def set_connection(
    monkeypatch: pytest.MonkeyPatch, coupa: CoupaEmulator, conn_id: str = "coupa_default", **kw: Any
) -> None:
    """Point ``conn_id`` at ``coupa``; ``kw`` may replace login/password/host or add extras."""
    data = json.loads(connection_json(coupa))
    for part in ("host", "login", "password"):
        if part in kw:
            data[part] = kw.pop(part)
    data["extra"] = kw
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data))


def record(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "document_type": "InvoiceHeader",
        "document_id": 1001,
        "contact_alert_type": "Functional",
        "status": "Success",
        "integration": CODE,
    }
    fields.update(overrides)
    return fields


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------ the connection
def test_hook_identity() -> None:
    assert CoupaHook.conn_type == "coupa"
    assert CoupaHook.default_conn_name == "coupa_default"
    assert CoupaHook.conn_name_attr == "coupa_conn_id"
    assert CoupaHook.hook_name == "Coupa"
    assert CoupaHook().coupa_conn_id == "coupa_default"
    assert CoupaHook("other").coupa_conn_id == "other"


def test_config_comes_from_the_airflow_conn_env_var(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        monkeypatch,
        coupa_emulator,
        "coupa_erp",
        read_timeout="12",
        extra__coupa__max_attempts=2,
        extra_document_types="Payables::New",
    )
    config = CoupaHook("coupa_erp").config
    assert config.base_url == coupa_emulator.url
    assert config.client_id == coupa_emulator.credentials.client_id
    assert config.client_secret == coupa_emulator.credentials.client_secret
    assert config.read_timeout == 12.0
    assert config.retry.max_attempts == 2
    assert config.extra_document_types == ("Payables::New",)


def test_the_client_is_made_once_from_the_config(coupa_connection: Any) -> None:
    hook = CoupaHook()
    assert isinstance(hook.client, CoupaClient)
    assert hook.get_conn() is hook.client
    assert hook.client.config is hook.config


def test_the_hook_masks_the_secret_and_every_token(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_provider_coupa_ihr.hooks.coupa.mask_secret", masked.append)
    set_connection(monkeypatch, coupa_emulator)
    hook = CoupaHook()
    hook.client.get_integration(CODE)
    assert coupa_emulator.credentials.client_secret in masked
    assert coupa_emulator.issued_tokens()[0] in masked


# ------------------------------------------------------------------------------------------------ test_connection
def test_test_connection_succeeds_against_the_emulator(coupa_emulator: CoupaEmulator, coupa_connection: Any) -> None:
    ok, message = CoupaHook().test_connection()
    assert ok, message
    assert coupa_emulator.url in message
    assert coupa_emulator.tokens_issued == 1
    assert [(r.method, r.status) for r in coupa_emulator.requests(path_contains="/api/")] == [("GET", 200)]


def test_test_connection_fails_with_a_bad_secret(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, coupa_emulator, password="definitely-wrong-secret")
    ok, message = CoupaHook().test_connection()
    assert not ok
    assert "401" in message
    assert "invalid_client" in message
    assert "definitely-wrong-secret" not in message
    assert coupa_emulator.requests(path_contains="/api/") == []


def test_test_connection_fails_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_COUPA_DEFAULT",
        json.dumps(
            {
                "conn_type": "coupa",
                "host": f"http://127.0.0.1:{closed_port()}",
                "login": "cid",
                "password": "secret",
                "extra": {"max_attempts": 1},
            }
        ),
    )
    ok, message = CoupaHook().test_connection()
    assert not ok
    assert message.startswith("No answer from Coupa")


def test_test_connection_fails_on_bad_settings(coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, coupa_emulator, timeout=5)
    ok, message = CoupaHook().test_connection()
    assert not ok
    assert "unknown key(s) ['timeout']" in message
    assert coupa_emulator.requests() == []


def test_test_connection_with_a_legacy_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "k" * 40
    with CoupaEmulator(api_keys=[key]) as coupa:
        set_connection(monkeypatch, coupa, login="", password="", api_key=key)
        ok, message = CoupaHook().test_connection()
        assert ok, message
        assert coupa.tokens_issued == 0
        assert coupa.requests(path_contains="/oauth2") == []


# ------------------------------------------------------------------------------------------------ the calls
def test_the_hooks_calls_reach_coupa(coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, coupa_emulator, rate_limit=0)
    hook = CoupaHook()
    created = hook.create_record(**record(external_id="ERP-1"))
    alerted = hook.create_record(action="create_alert", **record(status="Error", document_id=2))
    assert [r["id"] for r in coupa_emulator.records()] == [created["id"], alerted["id"]]
    assert [a["record_id"] for a in coupa_emulator.alerts] == [alerted["id"]]

    assert hook.get_record(created["id"], fields=["id", "external_id"]) == {"id": created["id"], "external_id": "ERP-1"}
    assert hook.update_record(created["id"], status="Error")["status"] == "Error"
    assert coupa_emulator.record(created["id"])["status"] == "Error"
    assert hook.resolve(created["id"])["resolved"] is True
    assert coupa_emulator.record(created["id"])["resolved"] is True
    assert hook.unresolve(created["id"])["resolved"] is False
    assert coupa_emulator.record(created["id"])["resolved"] is False

    assert [r["id"] for r in hook.query_records({"status": "Error"}, fields=["status"])] == [
        created["id"],
        alerted["id"],
    ]
    assert [r["id"] for r in hook.query_records(direction="desc", max_records=1)] == [alerted["id"]]
    assert [r["document_id"] for r in hook.query_records(order_by="document_id", direction="desc")] == [1001, 2]

    run = hook.create_run(CODE, total_records=2)
    assert run["status"] == "pending"
    assert hook.run_transition(run["id"], "run")["status"] == "running"
    assert hook.run_transition(run["id"], "success", records_processed=2)["status"] == "successful"
    assert coupa_emulator.integration_runs(id=run["id"])[0]["status"] == "successful"
    assert coupa_emulator.tokens_issued == 1


def test_the_hook_has_a_verb_for_each_thing_a_dag_author_does(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_coupa_ihr.client.resolution import ResolutionTarget

    set_connection(monkeypatch, coupa_emulator, rate_limit=0)
    hook = CoupaHook()
    alert = hook.create_alert(**record(status="Error", document_id=11))
    exported = hook.mark_exported(**record(document_id=12))
    both = hook.create_alert_and_mark_exported(**record(status="Error", document_id=13))
    hook.acknowledge(**record(document_id=14))
    assert [a["record_id"] for a in coupa_emulator.alerts] == [alert["id"], both["id"]]
    assert sorted(e["document_id"] for e in coupa_emulator.exported) == [12, 13]
    assert [a["document_id"] for a in coupa_emulator.acknowledged] == [14]

    assert hook.validate_record(**record(document_id="15"))["document-id"] == 15
    assert hook.find_existing_record(time.time() - 60, **record(status="Error", document_id=11))["id"] == alert["id"]
    assert [r["id"] for r in hook.resolve_records(f"{alert['id']}, {both['id']}", exclude=[both["id"]])] == [
        alert["id"]
    ]
    assert [r["id"] for r in hook.unresolve_records([alert["id"]])] == [alert["id"]]
    assert [r["id"] for r in hook.resolve_matching({"status": "Error"}, exclude=[alert["id"]])] == [both["id"]]
    assert [r["id"] for r in hook.unresolve_matching({"status": "Error"})] == [both["id"]]

    target = ResolutionTarget.of(record_ids=[exported["id"]])
    assert not hook.check_resolution(target).done
    coupa_emulator.resolve(exported["id"])
    assert hook.check_resolution(target).done

    async def check_async() -> bool:
        try:
            return (await hook.acheck_resolution(target)).done
        finally:
            await hook.aclose()
            await hook.aclose()  # safe twice

    assert asyncio.run(check_async())

    planned = hook.plan_records([{"document_id": 21}, {"document_id": 22}], defaults=record(), action="create")
    assert hook.find_existing_records([fields for _, fields in planned], time.time() - 60) == {}
    outcomes = hook.create_records(planned, max_workers=2, skip=[1])
    assert [(o["index"], o["status"]) for o in outcomes] == [(0, "created")]
    assert hook.find_existing_records([fields for _, fields in planned], time.time() - 60) == {0: outcomes[0]["id"]}

    bounded = hook.create_record_within(5.0, action="create_alert", **record(document_id=23))
    assert coupa_emulator.record(bounded["id"])["document-id"] == 23

    run = hook.start_run(CODE, total_records=3)
    assert run["status"] == "running"
    assert hook.get_run(run["id"])["total_records"] == 3
    assert hook.finish_run(run["id"], records_processed=3)["status"] == "successful"
    assert hook.finish_run(run["id"])["status"] == "successful"  # already so: left as it is
    failed = hook.start_run(CODE)
    assert hook.fail_run(failed["id"])["status"] == "failed"
    hook.close()


def test_close_closes_the_client_once_made_and_is_safe_twice(coupa_connection: Any) -> None:
    hook = CoupaHook()
    hook.close()  # nothing made yet: nothing to close
    first = hook.client
    closed: list[CoupaClient] = []
    original = CoupaClient.close

    def counting_close(self: CoupaClient) -> None:
        closed.append(self)
        original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CoupaClient, "close", counting_close)
        with hook:
            pass
        hook.close()
    assert closed == [first]
    assert hook.client is not first  # a call after close makes a new client


def test_nothing_is_sent_for_a_run_verb_given_a_bad_count(coupa_emulator: CoupaEmulator, coupa_connection: Any) -> None:
    from airflow_provider_coupa_ihr.client.errors import CoupaValidationError

    hook = CoupaHook()
    for call in (
        lambda: hook.start_run(CODE, total_records="many"),
        lambda: hook.start_run(CODE, total_records=-1),
        lambda: hook.finish_run(5, records_processed="many"),
        lambda: hook.fail_run("latest"),
    ):
        with pytest.raises(CoupaValidationError):
            call()
    assert coupa_emulator.requests() == []


def test_two_hooks_share_one_token(coupa_emulator: CoupaEmulator, coupa_connection: Any) -> None:
    first, second = CoupaHook(), CoupaHook()
    assert first.client is not second.client
    first.create_record(**record())
    list(second.query_records())
    assert coupa_emulator.tokens_issued == 1


def test_aget_client_works_inside_an_event_loop(coupa_emulator: CoupaEmulator, coupa_connection: Any) -> None:
    coupa_emulator.state.create(
        coupa_emulator.state.records,
        {"document-type": "InvoiceHeader", "document-id": 5, "contact-alert-type": "Both"},
        user=None,
    )

    async def main() -> list[dict[str, Any]]:
        client = await CoupaHook().aget_client()
        assert isinstance(client, AsyncCoupaClient)
        assert client.config.base_url == coupa_emulator.url
        try:
            return [r async for r in client.query_records()]
        finally:
            await client.aclose()

    assert [r["document_id"] for r in asyncio.run(main())] == [5]


# ------------------------------------------------------------------------------------------------ the form
def test_ui_field_behaviour() -> None:
    behaviour = CoupaHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["port", "schema"]
    assert behaviour["relabeling"] == {
        "host": "Coupa instance URL",
        "login": "OAuth client ID",
        "password": "OAuth client secret",
    }
    assert behaviour["placeholders"]["host"] == "https://acme.coupahost.com"


def test_connection_form_widgets() -> None:
    pytest.importorskip("wtforms", reason="Airflow 3.3 no longer installs wtforms (2.11 to 3.1 use these widgets)")
    pytest.importorskip("flask_appbuilder", reason="Airflow 3.3 no longer installs Flask-AppBuilder")
    widgets = CoupaHook.get_connection_form_widgets()
    info = get_provider_info()["connection-types"][0]["conn-fields"]
    assert list(widgets) == list(info)
    assert widgets["api_key"].field_class.__name__ == "PasswordField"
    assert widgets["scopes"].field_class.__name__ == "StringField"


# ------------------------------------------------------------------------------------------------ provider info
def test_provider_info_names_the_distribution_and_the_hook() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-coupa-ihr"
    (connection_type,) = info["connection-types"]
    assert connection_type["connection-type"] == CoupaHook.conn_type
    assert connection_type["hook-name"] == CoupaHook.hook_name
    module, _, name = connection_type["hook-class-name"].rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is CoupaHook
    points = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_coupa")]
    assert [e.load() for e in points] == [get_provider_info]


def _schema(name: str) -> dict[str, Any]:
    path = AIRFLOW_PACKAGE / name
    if not path.exists():
        pytest.skip(f"this Airflow ships no {name}")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_provider_info_fits_airflows_runtime_schema() -> None:
    import jsonschema

    jsonschema.validate(get_provider_info(), _schema("provider_info.schema.json"))


def test_conn_fields_and_ui_behaviour_fit_airflows_provider_yaml_schema() -> None:
    import jsonschema

    item_schema = _schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    if "conn-fields" not in item_schema["properties"]:
        pytest.skip("this Airflow predates conn-fields (3.2+ reads them; older lines use the hook's widgets)")
    validator = jsonschema.Draft7Validator(item_schema)
    (connection_type,) = get_provider_info()["connection-types"]
    assert list(validator.iter_errors(connection_type)) == []
    # The schema does constrain conn-fields: a field without a type, or with an unknown format, is refused.
    broken = copy.deepcopy(connection_type)
    broken["conn-fields"]["scopes"]["schema"] = {"format": "secret"}
    assert len(list(validator.iter_errors(broken))) >= 1


# ------------------------------------------------------------------------------------------------ the airflow CLI
def _airflow_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__DATABASE__", "AIRFLOW__CORE__"))
    }
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False", **extra)
    return env


def test_airflow_providers_hooks_lists_the_coupa_connection_type(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(AIRFLOW_BIN), "providers", "hooks", "--output", "json"],
        env=_airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    hooks = json.loads(result.stdout[result.stdout.index("[") :])
    (coupa,) = [h for h in hooks if h["connection_type"] == "coupa"]
    assert coupa["class"] == "airflow_provider_coupa_ihr.hooks.coupa.CoupaHook"
    assert coupa["package_name"] == "airflow-provider-coupa-ihr"
    assert coupa["hook_name"] == "Coupa"
    assert coupa["conn_id_attribute_name"] == "coupa_conn_id"


def test_airflow_connections_test_succeeds_against_the_emulator(coupa_emulator: CoupaEmulator, tmp_path: Path) -> None:
    env = _airflow_env(
        tmp_path, AIRFLOW__CORE__TEST_CONNECTION="Enabled", AIRFLOW_CONN_COUPA_DEFAULT=connection_json(coupa_emulator)
    )
    result = subprocess.run(
        [str(AIRFLOW_BIN), "connections", "test", "coupa_default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    assert coupa_emulator.tokens_issued == 1
    assert coupa_emulator.credentials.client_secret not in result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------ every spelling
def test_the_hook_masks_every_spelling_of_the_secret_and_of_each_token(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_coupa_ihr.client.responses import secret_spellings

    masked: set[str] = set()

    def collect(value: Any, name: str | None = None) -> None:
        masked.update([value] if isinstance(value, str) else value)

    monkeypatch.setattr("airflow_provider_coupa_ihr.hooks.coupa.mask_secret", collect)
    set_connection(monkeypatch, coupa_emulator)
    hook = CoupaHook()
    hook.client.get_integration(CODE)
    secret, login = coupa_emulator.credentials.client_secret, coupa_emulator.credentials.client_id
    assert secret_spellings(secret, user=login) <= masked
    assert secret_spellings(coupa_emulator.issued_tokens()[0]) <= masked


def test_without_secrets_redacts_every_text_of_a_record() -> None:
    from urllib.parse import quote_plus

    from airflow_provider_coupa_ihr.hooks.coupa import without_secrets

    secret = "Sec+ret/@=&%"
    fields = {
        "document_id": 7,
        "status": f"x {secret}",
        "responses": [{"response_code": "E", "response_message": f"form client_secret={quote_plus(secret)}"}],
        "integration_run": ("a", secret),
    }
    assert without_secrets(fields, [secret]) == {
        "document_id": 7,
        "status": "x ***",
        "responses": [{"response_code": "E", "response_message": "form client_secret=***"}],
        "integration_run": ("a", "***"),
    }


def test_the_record_the_notifier_and_listener_write_carries_no_secret_of_the_connection(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from urllib.parse import quote_plus

    set_connection(monkeypatch, coupa_emulator)
    secret = coupa_emulator.credentials.client_secret
    leaky = f"task failed: client_secret={quote_plus(secret)} or {json.dumps(secret)}"
    hook = CoupaHook()
    written = [
        hook.create_record_within(10, **record(responses=[("E1", leaky)])),
        asyncio.run(CoupaHook().acreate_record_within(10, **record(responses=[("E2", leaky)]))),
    ]
    for stored in written:
        message = stored["responses"][0]["response_message"]
        assert message.startswith("task failed: client_secret=***")
        assert secret not in message


def test_test_connection_never_quotes_the_secret_whatever_fails(
    coupa_emulator: CoupaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import quote

    set_connection(monkeypatch, coupa_emulator)
    secret = coupa_emulator.credentials.client_secret
    hook = CoupaHook()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"a library quoting {quote(secret, safe='')}")

    monkeypatch.setattr(type(hook.client), "query_records", broken)
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith("RuntimeError: a library quoting ***")
