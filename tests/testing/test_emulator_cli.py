"""``coupa-emulator`` (console script) and ``python -m airflow_provider_coupa_ihr.testing`` as real processes:
start, answer health, serve a token, a create and a query, stop on SIGTERM with exit code 0."""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import requests
from emulator_helpers import IHR, TIMEOUT, Api, ihr

from airflow_provider_coupa_ihr.testing import DEFAULT_CLIENT
from airflow_provider_coupa_ihr.testing.cli import build_parser, connection_lines

CONSOLE_SCRIPT = Path(sys.executable).with_name("coupa-emulator")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[str], deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"emulator exited early with {process.returncode}:\n{out}\n{err}")
        try:
            if requests.get(url + "/_emulator/health", timeout=0.5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    pytest.fail(f"emulator did not answer {url}/_emulator/health within {deadline_s} s")


Start = Callable[..., tuple["subprocess.Popen[str]", str]]


@pytest.fixture
def run_emulator() -> Iterator[Start]:
    """Start an emulator command (waits for its health check); killed at the end if the test left it running."""
    started: list[subprocess.Popen[str]] = []

    def start(command: Sequence[str], *options: str) -> tuple[subprocess.Popen[str], str]:
        port = _free_port()
        process = subprocess.Popen(
            [*command, "--port", str(port), "--integration", "CLI-TEST", "--rate-limit", "0", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process)
        return process, url

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


@pytest.mark.parametrize(
    "command",
    [[str(CONSOLE_SCRIPT)], [sys.executable, "-m", "airflow_provider_coupa_ihr.testing"]],
    ids=["console-script", "python-m"],
)
def test_command_serves_and_stops_cleanly(run_emulator: Start, command: list[str]) -> None:
    if command[0] == str(CONSOLE_SCRIPT) and not CONSOLE_SCRIPT.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    process, url = run_emulator(command)

    token = requests.post(
        url + "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT.client_id,
            "client_secret": DEFAULT_CLIENT.client_secret,
        },
        timeout=TIMEOUT,
    )
    assert token.status_code == 200, token.text
    with Api(url) as api:
        api.headers.update({"Authorization": "Bearer " + token.json()["access_token"], "Accept": "application/json"})
        created = api.post(IHR, json=ihr(integration={"code": "CLI-TEST"}, **{"document-id": 31337}))
        assert created.status_code == 201, created.text
        found = api.get(IHR, params={"document-id": "31337", "integration[code]": "CLI-TEST"})
        assert [r["id"] for r in found.json()] == [created.json()["id"]]
    assert requests.get(url + "/_emulator/records", timeout=TIMEOUT).json()[0]["document-id"] == 31337

    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert f"Coupa emulator listening on {url}" in out
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_emulator/health", timeout=1)


def test_parser_defaults_match_coupa() -> None:
    args = build_parser().parse_args([])
    assert args.host == "127.0.0.1"
    assert args.port == 8765
    assert args.token_lifetime == 86399
    assert (args.rate_limit, args.burst) == (25.0, 20)
    assert args.no_retry_after is False
    assert args.api_key == []
    assert (args.client_id, args.client_secret) == (DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret)
    assert set(args.scopes.split()) == {"core.integration.read", "core.integration.write"}


def test_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_coupa_ihr.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--port" in result.stdout
    assert "--no-retry-after" in result.stdout


def test_command_options_reach_the_emulator(run_emulator: Start) -> None:
    key = "k" * 40
    process, url = run_emulator(
        [sys.executable, "-m", "airflow_provider_coupa_ihr.testing"],
        "--client-id", "my-client", "--client-secret", "my-secret", "--scopes", "core.integration.read",
        "--api-key", key, "--token-lifetime", "60", "--rate-limit", "1", "--burst", "1", "--no-retry-after",
    )  # fmt: skip
    form = {"grant_type": "client_credentials", "client_id": "my-client", "client_secret": "my-secret"}
    token = requests.post(url + "/oauth2/token", data=form, timeout=TIMEOUT).json()
    assert token["expires_in"] == 60
    assert token["scope"] == "core.integration.read"
    default = {**form, "client_id": DEFAULT_CLIENT.client_id, "client_secret": DEFAULT_CLIENT.client_secret}
    assert requests.post(url + "/oauth2/token", data=default, timeout=TIMEOUT).status_code == 401
    with Api(url) as api:
        api.headers.update({"X-COUPA-API-KEY": key, "Accept": "application/json"})
        assert api.get(IHR).status_code == 200  # empty list, through the legacy key
        throttled = api.get(IHR)
        assert throttled.status_code == 429
        assert "Retry-After" not in throttled.headers
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=15)
    assert process.returncode == 0


def _banner(process: subprocess.Popen[str], until: str, deadline_s: float = 20.0) -> list[str]:
    """The banner lines a running emulator printed, read up to the first line containing ``until``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()  # read the pipe itself: a buffered readline would hide lines from select()
    received = b""
    deadline = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline and not (until.encode() in received and received.endswith(b"\n")):
            if selector.select(timeout=0.2):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                received += chunk
    lines = received.decode().splitlines()
    if not any(until in line for line in lines):
        pytest.fail(f"no banner line with {until!r} within {deadline_s} s; got {lines}")
    return lines


def _pasted(lines: list[str], start: str) -> list[str]:
    """The shell words of the banner line that starts with ``start`` (as a shell would split it when pasted)."""
    [line] = [line.strip() for line in lines if line.strip().startswith(start)]
    return shlex.split(line)


def test_banner_prints_connection_lines_that_work(run_emulator: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    process, url = run_emulator([sys.executable, "-m", "airflow_provider_coupa_ihr.testing"])
    lines = _banner(process, "airflow connections add")

    [export, assignment] = _pasted(lines, "export ")
    assert export == "export"
    name, _, value = assignment.partition("=")
    assert name == "AIRFLOW_CONN_COUPA_DEFAULT"
    assert json.loads(value) == {
        "conn_type": "coupa",
        "host": url,
        "login": DEFAULT_CLIENT.client_id,
        "password": DEFAULT_CLIENT.client_secret,
        "extra": {},
    }

    words = _pasted(lines, "airflow connections add")
    assert words[:4] == ["airflow", "connections", "add", "coupa_default"]
    options = dict(zip(words[4::2], words[5::2], strict=True))
    assert options == {
        "--conn-type": "coupa",
        "--conn-host": url,
        "--conn-login": DEFAULT_CLIENT.client_id,
        "--conn-password": DEFAULT_CLIENT.client_secret,
        "--conn-extra": "{}",
    }

    # What the provider reads from each line reaches this emulator and logs in.
    from airflow_provider_coupa_ihr.client.sync import CoupaClient
    from airflow_provider_coupa_ihr.hooks.connection_fields import config_from_connection

    config = config_from_connection(
        conn_id="coupa_default",
        host=options["--conn-host"],
        login=options["--conn-login"],
        password=options["--conn-password"],
        extra=options["--conn-extra"],
    )
    with CoupaClient(config) as client:
        assert list(client.query_records(max_records=1)) == []
    from airflow_provider_coupa_ihr.hooks.coupa import CoupaHook

    monkeypatch.setenv(name, value)
    ok, message = CoupaHook("coupa_default").test_connection()
    assert ok, message


def test_banner_lines_carry_a_narrower_scope_and_another_conn_id(run_emulator: Start) -> None:
    process, url = run_emulator(
        [sys.executable, "-m", "airflow_provider_coupa_ihr.testing"],
        "--client-id", "it's mine", "--client-secret", "p@ss w0rd&$HOME", "--scopes", "core.integration.read",
        "--conn-id", "coupa_local",
    )  # fmt: skip
    lines = _banner(process, "airflow connections add")
    name, _, value = _pasted(lines, "export ")[1].partition("=")
    assert name == "AIRFLOW_CONN_COUPA_LOCAL"
    connection = json.loads(value)
    assert (connection["login"], connection["password"]) == ("it's mine", "p@ss w0rd&$HOME")  # quoted for the shell
    assert connection["extra"] == {"scopes": "core.integration.read"}
    words = _pasted(lines, "airflow connections add")
    assert words[3] == "coupa_local"
    options = dict(zip(words[4::2], words[5::2], strict=True))
    assert options["--conn-password"] == "p@ss w0rd&$HOME"
    assert json.loads(options["--conn-extra"]) == {"scopes": "core.integration.read"}
    form = {"grant_type": "client_credentials", "client_id": options["--conn-login"]}
    form |= {"client_secret": options["--conn-password"], "scope": "core.integration.read"}
    assert requests.post(url + "/oauth2/token", data=form, timeout=TIMEOUT).status_code == 200


def test_connection_lines_trust_a_tls_emulator() -> None:
    from airflow_provider_coupa_ihr.testing import CoupaEmulator

    coupa = CoupaEmulator(tls=True)
    export, add = connection_lines(coupa, "coupa_tls")
    assert coupa.ca_bundle is not None
    value = shlex.split(export)[1].partition("=")[2]
    assert json.loads(value)["extra"] == {"verify": coupa.ca_bundle}
    assert json.loads(value)["host"].startswith("https://")
    assert shlex.split(add)[-1] == json.dumps({"verify": coupa.ca_bundle})
