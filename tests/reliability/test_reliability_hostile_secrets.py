"""The client against echoing proxies: no secret in any encoding, whatever a hostile server sends back.

The client secret, API key and tokens appear in no exception text, ``repr``, traceback or log line, in any encoding
(raw, ``quote``, ``quote_plus``, JSON ``\\u`` escapes, base64, ``repr`` escapes), sync and async; each test reports
its secret hits per encoding in the run's "reliability" section. The servers are in :mod:`hostile_servers`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hostile_servers import HostileServer, echo_request, echo_token_form, gateway_escape, json_reply

from airflow_provider_coupa_ihr.client import (
    AsyncCoupaClient,
    ClientConfig,
    CoupaAuthError,
    CoupaClient,
    CoupaConfigError,
    CoupaError,
    RetryPolicy,
)
from airflow_provider_coupa_ihr.client.tokens import TokenCache

HERE = Path(__file__).resolve().parent
#: A secret with every character that encodings treat specially.
SECRET = "Sec+ret/@=&%é-" + "x7Q"
#: An API key goes into a header, which carries visible ASCII only: every character encodings treat specially
#: but ``é`` (a key holding it is refused before anything is sent: see the test of that).
API_KEY = "Key+with/@=&%-" + "z9Q"
#: A bearer token with the characters base64 and URL encodings treat specially.
TOKEN = "tok+en/with==&%@-" + "J4w"
NO_RETRY = RetryPolicy(max_attempts=1)
#: One attempt, and a 401 believed at once (no settling wait for a seconds-old token) so the tests stay fast.
ONE_TRY = RetryPolicy(max_attempts=1, token_settle=0.0)
STATUSES = [400, 401, 500, 502]
KINDS = ["text", "json", "html"]


def encodings(secret: str) -> dict[str, str]:
    """Every spelling of ``secret`` a leak could take."""
    return {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "quote_keep_slash": quote(secret),
        "json": json.dumps(secret)[1:-1],
        "json_ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "repr": repr(secret)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic": base64.b64encode(f"client-id:{secret}".encode()).decode(),
        "latin1_utf8": secret.encode().decode("latin-1"),
    }


def hits(text: str, secrets: Iterable[str]) -> dict[str, int]:
    """Encoding name -> occurrences of any secret in ``text`` spelt that way."""
    found: dict[str, int] = {}
    for secret in secrets:
        for name, spelt in encodings(secret).items():
            count = text.count(spelt)
            if count:
                found[name] = found.get(name, 0) + count
    return found


def describe(error: BaseException) -> str:
    """Every text an error shows: str, repr, args, the formatted traceback with its chain."""
    return "\n".join([str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))])


# ------------------------------------------------------------------------------------------------ secrets
@pytest.mark.parametrize("status", [400, 401, 500, 502])
@pytest.mark.parametrize("kind", ["text", "json", "html"])
def test_token_endpoint_echo_leaks_no_secret_sync_or_async(
    status: int, kind: str, caplog: pytest.LogCaptureFixture, reliability_report: Callable[[str], None]
) -> None:
    config_kw = {
        "client_id": "client-id",
        "client_secret": SECRET,
        "retry": RetryPolicy(max_attempts=2, backoff_base=0.0, backoff_cap=0.0),
    }
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    with HostileServer(echo_token_form(status, kind)) as server:
        config = ClientConfig(server.url, rate_limit=None, **config_kw)
        with CoupaClient(config) as client, pytest.raises(CoupaError) as sync_error:
            client.token()
        texts.append(describe(sync_error.value))

        async def run_async() -> None:
            async with AsyncCoupaClient(config) as aclient:
                await aclient.get_record(1)

        with pytest.raises(CoupaError) as async_error:
            asyncio.run(run_async())
        texts.append(describe(async_error.value))
        assert server.requests, "the hostile server was never reached"
    texts.append(caplog.text)
    found = hits("\n".join(texts), [SECRET])
    reliability_report(f"token endpoint {status} echoing {kind}: secret hits per encoding {found or 0}")
    assert not found, f"the client secret leaked: {found}"


def unique(secret: str) -> str:
    """``secret`` made unique to one test, so what Airflow's masker learnt in an earlier test cannot hide a leak."""
    return f"{secret}{secrets.token_hex(3)}"


def run_async_call(config: ClientConfig, call: Callable[[AsyncCoupaClient], Any]) -> BaseException:
    """The error an async client's ``call`` raises (it must raise a CoupaError)."""

    async def go() -> None:
        async with AsyncCoupaClient(config, token_cache=TokenCache()) as aclient:
            await call(aclient)

    with pytest.raises(CoupaError) as caught:
        asyncio.run(go())
    return caught.value


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", KINDS)
def test_an_api_key_echoed_by_a_gateway_leaks_nowhere_sync_or_async(
    status: int, kind: str, caplog: pytest.LogCaptureFixture, reliability_report: Callable[[str], None]
) -> None:
    key = unique(API_KEY)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with HostileServer(echo_request(status, kind)) as server:
        config = ClientConfig(server.url, api_key=key, rate_limit=None, retry=NO_RETRY)
        with CoupaClient(config) as client, pytest.raises(CoupaError) as caught:
            client.get_record(1)
        texts.append(describe(caught.value))
        texts.append(describe(run_async_call(config, lambda c: c.get_record(1))))
        assert len(server.api_requests()) == 2, "the gateway was not reached by both clients"
        assert all(r.headers.get("x-coupa-api-key") == key for r in server.api_requests())
    texts.append(caplog.text)
    found = hits("\n".join(texts), [key])
    reliability_report(
        f"API key through a gateway answering {status} echoing {kind}: secret hits per encoding {found or 0}"
    )
    assert not found, f"the API key leaked: {found}"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_bearer_token_echoed_by_a_gateway_leaks_nowhere_sync_or_async(
    status: int, kind: str, caplog: pytest.LogCaptureFixture, reliability_report: Callable[[str], None]
) -> None:
    token, secret = unique(TOKEN), unique(SECRET)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with HostileServer(echo_request(status, kind, token=token)) as server:
        config = ClientConfig(server.url, "client-id", secret, rate_limit=None, retry=ONE_TRY)
        with CoupaClient(config, token_cache=TokenCache()) as client, pytest.raises(CoupaError) as caught:
            client.get_record(1)
        texts.append(describe(caught.value))
        texts.append(describe(run_async_call(config, lambda c: c.get_record(1))))
        assert all(r.headers.get("authorization") == f"Bearer {token}" for r in server.api_requests())
    texts.append(caplog.text)
    found = hits("\n".join(texts), [token, secret])
    reliability_report(
        f"bearer token through a gateway answering {status} echoing {kind}: secret hits per encoding {found or 0}"
    )
    assert not found, f"the token leaked: {found}"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("abc\r\nX-Evil: injected", id="crlf"),
        pytest.param("abc\nX-Evil: injected", id="lf"),
        pytest.param("abc\x00def", id="nul"),
        pytest.param("tökén-ünicode-ȷ", id="non-latin-1"),
        pytest.param("tok en", id="space"),
    ],
)
def test_a_token_no_header_can_carry_is_refused_not_sent_and_not_quoted(
    token: str, reliability_report: Callable[[str], None]
) -> None:
    texts: list[str] = []
    with HostileServer(lambda request: json_reply({"access_token": token, "token_type": "bearer"})) as server:
        config = ClientConfig(server.url, "client-id", unique(SECRET), rate_limit=None, retry=NO_RETRY)
        with CoupaClient(config, token_cache=TokenCache()) as client, pytest.raises(CoupaAuthError) as caught:
            client.get_record(1)
        texts.append(describe(caught.value))
        async_error = run_async_call(config, lambda c: c.get_record(1))
        assert isinstance(async_error, CoupaAuthError)
        texts.append(describe(async_error))
        sent = server.api_requests()
    assert "access_token" in str(caught.value)
    assert "cannot carry" in str(caught.value)
    found = hits("\n".join(texts), [token])
    reliability_report(f"token {token!r} refused: API requests sent with it {len(sent)}, hits {found or 0}")
    assert sent == []
    assert not found


# ------------------------------------------------------------------------------------------------ the Airflow side
def airflow_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, url: str, **fields: Any) -> None:
    """An Airflow connection ``conn_id`` to ``url`` (one attempt per call: the hostile answer is final)."""
    conn: dict[str, Any] = {"conn_type": "coupa", "host": url, "extra": {"max_attempts": 1, "rate_limit": 0}}
    for key, value in fields.items():
        if key == "extra":
            conn["extra"].update(value)
        else:
            conn[key] = value
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", KINDS)
def test_test_connection_quotes_no_secret_of_an_echoing_token_endpoint(
    status: int,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Callable[[str], None],
) -> None:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    secret = unique(SECRET)
    caplog.set_level(logging.DEBUG)
    with HostileServer(echo_token_form(status, kind)) as server:
        airflow_connection(monkeypatch, "coupa_hostile", server.url, login="client-id", password=secret)
        ok, message = CoupaHook("coupa_hostile").test_connection()
        assert server.requests, "the hostile token endpoint was never reached"
    assert not ok
    found = hits(f"{message}\n{caplog.text}", [secret])
    reliability_report(
        f"test_connection, token endpoint {status} echoing {kind}: secret hits per encoding {found or 0}"
    )
    assert not found, f"test_connection's message leaked the secret: {found}"


def leaky_error(secret: str) -> RuntimeError:
    """A task's exception quoting the connection's secret as an HTTP library or a proxy would: URL-encoded, in a
    form, JSON-escaped (HTML-safe), in a repr, and in a Basic header."""
    basic = base64.b64encode(f"client-id:{secret}".encode()).decode()
    return RuntimeError(
        f"POST /oauth2/token failed: client_secret={quote_plus(secret)} ({quote(secret, safe='')}); "
        f'proxy said {{"form": "{gateway_escape(secret)}"}}; args={(secret,)!r}; Authorization: Basic {basic}'
    )


def failed_task_instance(task: Any = None) -> Any:
    return SimpleNamespace(
        dag_id="invoices", task_id="export", run_id="manual__1", try_number=1, map_index=-1, state="failed", task=task
    )


def sent_records(server: HostileServer) -> str:
    """Every body the server received for a record, as text."""
    return "\n".join(r.body.decode("utf-8", "replace") for r in server.api_requests())


@pytest.mark.parametrize("status", [400, 502])
@pytest.mark.parametrize("kind", KINDS)
def test_the_notifiers_alert_carries_no_secret_and_logs_none(
    status: int,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Callable[[str], None],
) -> None:
    """A failed task's error quotes the secret; the alert the notifier writes must not, nor its warning when the
    gateway before Coupa refuses the alert with an echo of it (the bearer token included)."""
    from airflow_provider_coupa_ihr.notifications.coupa import CoupaNotifier

    secret, token = unique(SECRET), unique(TOKEN)
    caplog.set_level(logging.DEBUG)
    with HostileServer(echo_request(status, kind, token=token)) as server:
        airflow_connection(monkeypatch, "coupa_hostile", server.url, login="client-id", password=secret)
        notifier = CoupaNotifier(
            document_type="InvoiceHeader", document_id=42, coupa_conn_id="coupa_hostile", timeout=20
        )
        notifier.notify({"ti": failed_task_instance(), "exception": leaky_error(secret)})
        assert server.api_requests(), "the notifier sent no alert"
        sent = sent_records(server)
    assert "RuntimeError" in sent  # the alert went out, with the error's type
    in_alert = hits(sent, [secret])
    in_logs = hits(caplog.text, [secret, token])
    reliability_report(
        f"notifier alert through a gateway answering {status} echoing {kind}: secret hits per encoding "
        f"in the record sent {in_alert or 0}, in logs {in_logs or 0}"
    )
    assert not in_alert, f"the alert carried the secret to Coupa: {in_alert}"
    assert not in_logs, f"the notifier logged a secret: {in_logs}"


def opted_in_task() -> Any:
    import pendulum
    from airflow.providers.common.compat.sdk import DAG, task

    params = {"coupa_document_type": "Supplier", "coupa_document_id": 9}
    with DAG(
        "invoices", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), tags=["coupa-log"], params=params
    ):

        @task
        def export() -> None:
            pass

        return export().operator


@pytest.mark.parametrize("status", [400, 502])
@pytest.mark.parametrize("kind", KINDS)
def test_the_listeners_record_carries_no_secret_and_logs_none(
    status: int,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: Callable[[str], None],
) -> None:
    from airflow_provider_coupa_ihr.plugins.listener import coupa_listener

    secret, token = unique(SECRET), unique(TOKEN)
    caplog.set_level(logging.DEBUG)
    with HostileServer(echo_request(status, kind, token=token)) as server:
        airflow_connection(monkeypatch, "coupa_hostile", server.url, login="client-id", password=secret)
        monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_ENABLED", "True")
        monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_CONN_ID", "coupa_hostile")
        monkeypatch.setenv("AIRFLOW__COUPA__LISTENER_TIMEOUT", "20")
        coupa_listener.on_task_instance_failed(
            previous_state=None, task_instance=failed_task_instance(opted_in_task()), error=leaky_error(secret)
        )
        assert server.api_requests(), "the listener sent no record"
        sent = sent_records(server)
    assert "RuntimeError" in sent
    in_record = hits(sent, [secret])
    in_logs = hits(caplog.text, [secret, token])
    reliability_report(
        f"listener record through a gateway answering {status} echoing {kind}: secret hits per encoding "
        f"in the record sent {in_record or 0}, in logs {in_logs or 0}"
    )
    assert not in_record, f"the listener's record carried the secret to Coupa: {in_record}"
    assert not in_logs, f"the listener logged a secret: {in_logs}"


@pytest.mark.parametrize("api_key", [123456789012345678, 1234.5678, ["k3y-in-a-list-0042"], {"k": "k3y-0042"}])
def test_an_api_key_of_the_wrong_type_is_refused_unquoted(
    api_key: Any, monkeypatch: pytest.MonkeyPatch, reliability_report: Callable[[str], None]
) -> None:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    airflow_connection(monkeypatch, "coupa_typed", "https://acme.coupahost.com", extra={"api_key": api_key})
    with pytest.raises(CoupaConfigError) as from_extra:
        CoupaHook("coupa_typed").config  # noqa: B018 - reading the connection is the act under test
    with pytest.raises(CoupaConfigError) as from_config:
        ClientConfig("https://acme.coupahost.com", api_key=api_key)
    texts = describe(from_extra.value) + describe(from_config.value)
    shown = json.dumps(api_key).strip('"[]{}')
    spelt = {str(api_key), shown, *(str(v) for v in (api_key.values() if isinstance(api_key, dict) else []))}
    leaked = [s for s in spelt if s and s in texts]
    reliability_report(f"api_key given as {type(api_key).__name__}: echoed {len(leaked)} time(s)")
    assert "api_key must be text" in str(from_extra.value)
    assert not leaked, f"the API key was echoed: {leaked}"


@pytest.mark.parametrize(
    "api_key", ["Kéy-with-latin-1-0042", "Key\r\nX-Evil: 1", "Key-ȷ-not-latin-1", "Key with space"]
)
def test_an_api_key_no_header_can_carry_is_refused_before_sending_unquoted(api_key: str) -> None:
    with pytest.raises(CoupaConfigError) as caught:
        ClientConfig("https://acme.coupahost.com", api_key=api_key)
    assert "API key" in str(caught.value)
    assert not hits(describe(caught.value), [api_key])
