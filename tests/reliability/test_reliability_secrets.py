"""No secret leaks: a full DAG run at DEBUG, redirects, and plain http.

1. ``airflow dags test`` runs ``tests/reliability/dags/coupa_secrets_dag.py`` in a subprocess with
   ``AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG`` and a throwaway home, against the emulator, through an OAuth
   connection and a legacy API-key connection. Then the client secret, the API key and every token the emulator
   issued are searched for in the run's stdout and stderr, every file under the Airflow home (task logs
   included), the metadata database file byte for byte, and explicitly in every XCom value and every rendered
   template field: zero hits.
2. A redirect to another host never carries the ``Authorization`` or ``X-COUPA-API-KEY`` header: the client
   follows no redirect at all, says so, and the second host sees nothing.
3. Plain http to a host that is not loopback is refused before any connection is attempted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import FAST_RETRY

from airflow_provider_coupa_ihr.client.config import ClientConfig
from airflow_provider_coupa_ihr.client.errors import CoupaConfigError, CoupaError
from airflow_provider_coupa_ihr.client.sync import CoupaClient
from airflow_provider_coupa_ihr.client.tokens import TokenCache
from airflow_provider_coupa_ihr.testing import CoupaEmulator, OAuthClient

HERE = Path(__file__).resolve().parent
DAG_FILE = HERE / "dags" / "coupa_secrets_dag.py"
DAG_ID = "coupa_reliability_secrets"
INTEGRATION = "SECRETS-TEST"
#: ``airflow db migrate`` plus ``airflow dags test``: each an Airflow process start (3-10 s) plus the run itself.
SUBPROCESS_SECONDS = 240


def _secret(prefix: str, length: int) -> str:
    """A distinctive secret of URL-safe characters (so form and URL encodings leave it unchanged)."""
    body = secrets.token_hex(length)
    return (prefix + body)[:length]


class DagRunEvidence:
    """Everything one ``airflow dags test`` run left behind, as text to search."""

    def __init__(self, home: Path, stdout: str, stderr: str, returncode: int) -> None:
        self.home, self.stdout, self.stderr, self.returncode = home, stdout, stderr, returncode
        self.db_path = home / "airflow.db"

    def files(self) -> dict[str, bytes]:
        """Every file under the Airflow home (task logs, the database, config), by path."""
        return {str(p.relative_to(self.home)): p.read_bytes() for p in sorted(self.home.rglob("*")) if p.is_file()}

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            return list(db.execute(sql))

    def task_states(self) -> dict[str, str]:
        return dict(self.query(f"SELECT task_id, state FROM task_instance WHERE dag_id = '{DAG_ID}'"))  # noqa: S608

    def xcom_values(self) -> list[tuple[str, str, str]]:
        rows = self.query(f"SELECT task_id, key, value FROM xcom WHERE dag_id = '{DAG_ID}'")  # noqa: S608
        return [(t, k, v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for t, k, v in rows]

    def rendered_fields(self) -> list[tuple[str, str]]:
        rows = self.query(
            f"SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = '{DAG_ID}'"  # noqa: S608
        )
        return [(t, v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for t, v in rows]


class CoupaUser(threading.Thread):
    """Resolves the record the DAG's sensor waits on, a moment after the sensor first found it open, and expires
    every token at the same time."""

    def __init__(self, coupa: CoupaEmulator) -> None:
        super().__init__(name="coupa-user", daemon=True)
        self.coupa = coupa
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.2):
            waiting = self.coupa.records(external_id="SECRETS-WAIT", resolved=False)
            checks = self.coupa.requests(method="GET", path_contains="/api/integration_history_records")
            # The query task reads once; the sensor's first check is the read after it.
            if waiting and len(checks) >= 2:
                time.sleep(1.0)
                # Every token dies too: the trigger's next poll gets a 401 and fetches a new one, which must not
                # leak either.
                self.coupa.expire_tokens()
                self.coupa.resolve(waiting[0]["id"])
                return


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DagRunEvidence, CoupaEmulator, list[str]]]:
    """One full run of the secrets DAG at DEBUG in a subprocess; the evidence, the emulator and the secrets."""
    client_secret = _secret("oauth-secret-", 48)
    api_key = _secret("legacykey", 40)
    oauth = OAuthClient("secrets-test-client", client_secret)
    home = Path(tempfile.mkdtemp(prefix="coupa-secrets-home-"))
    try:
        with CoupaEmulator(clients=[oauth], api_keys=[api_key], rate_limit=None) as coupa:
            coupa.add_integration(INTEGRATION)
            evidence = _run_dag(home, coupa, client_secret, api_key)
            yield evidence, coupa, [client_secret, api_key]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run_dag(home: Path, coupa: CoupaEmulator, client_secret: str, api_key: str) -> DagRunEvidence:
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "PYTEST"))}
    env.update(
        {
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
            "AIRFLOW_CONN_COUPA_DEFAULT": json.dumps(
                {
                    "conn_type": "coupa",
                    "host": coupa.url,
                    "login": "secrets-test-client",
                    "password": client_secret,
                    "extra": {"read_timeout": 10},
                }
            ),
            "AIRFLOW_CONN_COUPA_LEGACY": json.dumps(
                {"conn_type": "coupa", "host": coupa.url, "extra": {"api_key": api_key, "read_timeout": 10}}
            ),
        }
    )
    user = CoupaUser(coupa)
    user.start()
    try:
        started = time.monotonic()
        migrate = subprocess.run(
            ["airflow", "db", "migrate"], env=env, cwd=home, capture_output=True, text=True, timeout=120, check=False
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        left = SUBPROCESS_SECONDS - (time.monotonic() - started)
        run = subprocess.run(
            ["airflow", "dags", "test", DAG_ID],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=max(30.0, left),
            check=False,
        )
    finally:
        user.stop_event.set()
        user.join(5)
    return DagRunEvidence(home, migrate.stdout + run.stdout, migrate.stderr + run.stderr, run.returncode)


def _without_airflow_mask_echo(text: str) -> tuple[str, int]:
    """``text`` without the lines where Airflow 3's in-process supervisor comms (``dag.test()``, ``airflow dags
    test``) echo a ``MaskSecret`` message at DEBUG, value included: "Sending request ... msg=MaskSecret(value=...".

    That echo is Airflow's (``InProcessSupervisorComms.send`` logs every message it sends; the real supervisor
    logs MaskSecret messages "body omitted"), and it shows every value anyone asks Airflow to mask: the connection
    password and extra Airflow masks itself, and the tokens this provider masks. Only these exact lines are
    dropped; a secret anywhere else is still a hit.
    """
    kept, dropped = [], 0
    for line in text.splitlines(keepends=True):
        if "Sending request" in line and "msg=MaskSecret(" in line:
            dropped += 1
        else:
            kept.append(line)
    return "".join(kept), dropped


def _hits(haystacks: dict[str, str | bytes], needles: list[str]) -> list[str]:
    found = []
    for where, text in haystacks.items():
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        for needle in needles:
            if needle.encode() in data:
                found.append(f"{needle[:6]}... in {where}")
    return found


@pytest.mark.dag
@pytest.mark.timeout(SUBPROCESS_SECONDS + 60)
def test_a_full_debug_run_leaves_no_secret_in_logs_xcom_or_rendered_fields(
    debug_run: tuple[DagRunEvidence, CoupaEmulator, list[str]], reliability_report: Callable[[str], None]
) -> None:
    evidence, coupa, credentials = debug_run
    states = evidence.task_states()
    expected = {t: "success" for t in ("start_run", "create", "legacy_alert", "bulk", "query", "wait", "update")}
    assert {t: states.get(t) for t in expected} == expected, f"{states}\n{evidence.stdout[-4000:]}"
    assert states.get("resolve") == "success"
    assert states.get("finish_run") == "success"
    assert states.get("rejected") == "failed"  # Coupa's 400: no such integration

    # The run really used both credentials, tokens, the trigger and the notifier.
    tokens = coupa.issued_tokens()
    assert len(tokens) >= 2, "the expired token was not replaced"
    clients = {r.client_id for r in coupa.requests() if r.path.startswith("/api")}
    assert {"secrets-test-client", "api-key"} <= clients
    (notified,) = coupa.records(external_id="SECRETS-NOTIFIED")
    assert notified["status"] == "Error"
    assert "400" in json.dumps(notified["responses"])  # the refused task's error, as the notifier logged it
    output = evidence.stdout + evidence.stderr
    assert any(m in output for m in ("[debug", "DEBUG", '"level":"debug"')), "the run did not log at DEBUG"
    # The sensor found the record open, deferred, and the trigger saw it resolved.
    assert "Waiting for 1 of 1 record to be resolved" in output
    assert "All resolved: records" in output
    xcoms, rendered = evidence.xcom_values(), evidence.rendered_fields()
    assert {t for t, _, _ in xcoms} >= {"start_run", "create", "legacy_alert", "bulk", "query", "wait"}
    assert {t for t, _ in rendered} >= {"create", "legacy_alert", "update", "wait"}

    needles = [*credentials, *tokens]
    stdout, echoes = _without_airflow_mask_echo(evidence.stdout)
    stderr, more_echoes = _without_airflow_mask_echo(evidence.stderr)
    echoes += more_echoes
    haystacks: dict[str, str | bytes] = {"stdout": stdout, "stderr": stderr}
    haystacks.update({f"file {name}": data for name, data in evidence.files().items()})
    haystacks.update({f"xcom {t}.{k}": v for t, k, v in xcoms})
    haystacks.update({f"rendered fields of {t}": v for t, v in rendered})
    log_files = [name for name in evidence.files() if "log" in name.lower()]
    reliability_report(
        f"searched stdout ({len(evidence.stdout)} chars), stderr ({len(evidence.stderr)} chars), "
        f"{len(haystacks) - 2} files/values ({len(log_files)} log files, {len(xcoms)} XComs, {len(rendered)} "
        f"rendered-field rows, the metadata DB byte for byte) for {len(needles)} secrets "
        f"(client secret, API key, {len(tokens)} tokens): {len(_hits(haystacks, needles))} hits"
    )
    if echoes:
        reliability_report(
            f"excluded {echoes} lines of Airflow's own in-process DEBUG echo of MaskSecret messages (dag.test / "
            "airflow dags test only; a real supervisor omits their body): they show every value anything masks"
        )
    if os.environ.get("COUPA_SHOW_HITS"):
        for line in (stdout + stderr).splitlines():
            for i, needle in enumerate(needles):
                if needle in line:
                    print(f"HIT[{i}]:", line.replace(needle, "<<SECRET>>")[:1500])
    assert _hits(haystacks, needles) == []


# ================================================================================================ redirects
class _Recorder(BaseHTTPRequestHandler):
    """The other host: records every request and the credential headers it carried."""

    seen: list[dict[str, Any]]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {
                "request": f"{self.command} {self.path}",
                "authorization": self.headers.get("Authorization"),
                "api_key": self.headers.get("X-COUPA-API-KEY"),
                "body": body.decode("utf-8", "replace"),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"access_token": "stolen", "expires_in": 3600}')

    do_GET = do_POST = do_PUT = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Redirector(BaseHTTPRequestHandler):
    """The Coupa host: issues tokens when asked to, and answers every API call (or the token request) with 302."""

    target: str
    redirect_token: bool
    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(
            {
                "request": f"{self.command} {self.path}",
                "authorization": self.headers.get("Authorization"),
                "api_key": self.headers.get("X-COUPA-API-KEY"),
            }
        )
        if self.path.startswith("/oauth2/") and not self.redirect_token:
            body = json.dumps({"access_token": "token-of-the-first-host", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(302)
        self.send_header("Location", f"{self.target}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _redirecting(redirect_token: bool) -> Iterator[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    first_seen: list[dict[str, Any]] = []
    other_seen: list[dict[str, Any]] = []
    other = ThreadingHTTPServer(("127.0.0.1", 0), type("Other", (_Recorder,), {"seen": other_seen}))
    other_url = f"http://127.0.0.1:{other.server_address[1]}"
    first = ThreadingHTTPServer(
        ("127.0.0.1", 0),
        type("First", (_Redirector,), {"seen": first_seen, "target": other_url, "redirect_token": redirect_token}),
    )
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in (first, other)]
    for t in threads:
        t.start()
    try:
        yield f"http://127.0.0.1:{first.server_address[1]}", first_seen, other_seen
    finally:
        for s in (first, other):
            s.shutdown()
            s.server_close()


REDIRECT_CASES = [
    pytest.param({"client_id": "cid", "client_secret": "redirect-secret-1"}, True, "/oauth2/token", id="token-request"),
    pytest.param({"client_id": "cid", "client_secret": "redirect-secret-2"}, False, "/api/", id="oauth-api-call"),
    pytest.param({"api_key": "k" * 40}, False, "/api/", id="api-key-call"),
]


@pytest.mark.parametrize(("credentials", "redirect_token", "redirected_path"), REDIRECT_CASES)
def test_a_redirect_to_another_host_is_not_followed_and_carries_no_credential(
    credentials: dict[str, str], redirect_token: bool, redirected_path: str
) -> None:
    with _redirecting(redirect_token) as (url, first_seen, other_seen):
        config = ClientConfig(url, rate_limit=None, retry=FAST_RETRY, **credentials)
        with CoupaClient(config, token_cache=TokenCache()) as client, pytest.raises(CoupaError) as caught:
            client.get_record(5)
    message = str(caught.value)
    assert "302" in message
    assert "redirects are not followed" in message
    assert "connection's host" in message  # what to fix: the final instance URL
    assert other_seen == [], f"the other host was reached: {other_seen}"
    redirected = [r for r in first_seen if r["request"].split(" ")[1].startswith(redirected_path)]
    assert len(redirected) == 1  # asked once, not retried, not followed
    # The credential went to the instance's host only, and never into the message.
    if "api_key" in credentials:
        assert redirected[0]["api_key"] == credentials["api_key"]
    elif not redirect_token:
        assert redirected[0]["authorization"] == "Bearer token-of-the-first-host"
    for value in (*credentials.values(), "token-of-the-first-host"):
        if value != "cid":
            assert value not in message


# ================================================================================================ plain http
@pytest.mark.parametrize(
    "host", ["http://acme.coupahost.com", "http://10.1.2.3:8080", "http://coupa.internal.example/api"]
)
def test_plain_http_to_a_remote_host_is_refused_before_any_connection(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv(
        "AIRFLOW_CONN_COUPA_PLAIN",
        json.dumps({"conn_type": "coupa", "host": host, "login": "cid", "password": "plain-http-secret"}),
    )
    with pytest.raises(CoupaConfigError) as caught:
        CoupaHook("coupa_plain").create_record(document_type="InvoiceHeader", document_id=1, contact_alert_type="Both")
    message = str(caught.value)
    assert "https only" in message
    assert "plain http is allowed for loopback hosts" in message
    assert "plain-http-secret" not in message
