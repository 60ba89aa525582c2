"""The Coupa connection form and the "Coupa records" link in Airflow 3's real UI, driven in Debian's Chromium.

One Airflow home for the module: a migrated SQLite DB, a DAG file in its dags folder that ran once with
``airflow dags test`` (a finished CoupaCreateRecordOperator task instance with its link), and ``airflow
api-server`` on a free loopback port with the simple auth manager letting everyone in as admin. The Coupa
emulator runs in this process. Each browser check leaves a screenshot in ``<repo>/.artifacts/browser/`` (and,
when it fails, the page's HTML beside a ``-FAILED`` screenshot).

Airflow 3 only: 2.11's UI is a different application (Flask AppBuilder). On the 3.x leg this must run:
a missing Chromium or Playwright fails it. ``COUPA_SKIP_BROWSER=1`` turns it off on purpose (CI never sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow import __version__ as AIRFLOW_VERSION

from airflow_provider_coupa_ihr.hooks.connection_fields import CONN_FIELDS, CONN_TYPE, UI_BEHAVIOUR

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from airflow_provider_coupa_ihr.testing import CoupaEmulator

if int(AIRFLOW_VERSION.split(".")[0]) < 3:
    pytest.skip(
        f"Airflow {AIRFLOW_VERSION}: the 2.x UI is a different app (Flask AppBuilder); this checks Airflow 3's "
        "React connection form",
        allow_module_level=True,
    )
if os.environ.get("COUPA_SKIP_BROWSER") == "1":
    pytest.skip("COUPA_SKIP_BROWSER=1: browser checks turned off on purpose", allow_module_level=True)

#: It runs its own `airflow db migrate` and api-server: a test that needs a metadata database.
pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts" / "browser"
VENV_BIN = Path(sys.executable).parent
AIRFLOW_BIN = VENV_BIN / "airflow"
#: Flags that work on these machines (no GPU, no sandbox as root, a closed network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAG_ID = "coupa_browser_link"
TASK_ID = "log_invoice"
RUN_CONN_ID = "coupa_dag_run"  # the DAG's connection (an env var of the `dags test` process only)
UI_CONN_ID = "coupa_from_ui"  # the connection the test adds through the form
INTEGRATION = "AIRFLOW-UI"
DAG_FILE = textwrap.dedent(
    f"""
    from __future__ import annotations

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_coupa_ihr.operators.records import CoupaCreateRecordOperator

    with DAG({DAG_ID!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        CoupaCreateRecordOperator(
            task_id={TASK_ID!r},
            coupa_conn_id={RUN_CONN_ID!r},
            document_type="InvoiceHeader",
            document_id=1001,
            status="Success",
            integration={INTEGRATION!r},
        )
    """
)
#: Generous but bounded waits (seconds).
SERVER_START_TIMEOUT = 150
COMMAND_TIMEOUT = 180
UI_TIMEOUT_MS = 30_000


def chromium_path() -> str:
    """Debian's Chromium (``COUPA_CHROMIUM`` may name another build); fails, never skips, when it is missing."""
    path = os.environ.get("COUPA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        why = os.environ.get("COUPA_BROWSER_UNAVAILABLE", "")
        pytest.fail(
            f"no Chromium at {path}: the browser test needs Debian's chromium (apt-get install chromium; "
            f"`python3 scripts/dev.py test` installs it when run as root){f' - {why}' if why else ''}. "
            "Set COUPA_SKIP_BROWSER=1 to run the suite without the browser checks."
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"({path} not written)"


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class AirflowUI:
    url: str
    home: Path
    env: dict[str, str]
    server: subprocess.Popen[bytes]
    dag_run: dict[str, Any]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )


def airflow_env(home: Path) -> dict[str, str]:
    """The environment of every Airflow process of this module: its own home and DB, nothing of the suite's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__PARALLELISM="2",
        PYTHONWARNINGS="ignore",
    )
    return env


@pytest.fixture(scope="module")
def coupa() -> Iterator[CoupaEmulator]:
    from airflow_provider_coupa_ihr.testing import CoupaEmulator

    with CoupaEmulator(rate_limit=None) as emulator:
        emulator.add_integration(INTEGRATION)
        yield emulator


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory, coupa: CoupaEmulator) -> Iterator[AirflowUI]:
    """A migrated home, one finished run of the DAG, and the API server answering health checks."""
    started = time.monotonic()
    home = tmp_path_factory.mktemp("airflow-ui-home")
    (home / "dags").mkdir()
    (home / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    env = airflow_env(home)
    migrate = subprocess.run(
        [str(AIRFLOW_BIN), "db", "migrate"], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = home / "api-server.log"
    with server_log.open("wb") as log:
        server = subprocess.Popen(
            [str(AIRFLOW_BIN), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the teardown stops uvicorn's workers too
        )
    try:
        # While the server starts (about 20 s), run the DAG once against the same DB.
        run_env = {
            **env,
            f"AIRFLOW_CONN_{RUN_CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": CONN_TYPE,
                    "host": coupa.url,
                    "login": coupa.credentials.client_id,
                    "password": coupa.credentials.client_secret,
                }
            ),
        }
        dag_test = subprocess.run(
            [str(AIRFLOW_BIN), "dags", "test", DAG_ID],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert dag_test.returncode == 0, (
            f"airflow dags test {DAG_ID} failed:\n{dag_test.stdout[-4000:]}{dag_test.stderr[-4000:]}"
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"airflow api-server exited with {server.returncode}:\n{tail(server_log)}")
            try:
                health = get_json(f"{url}/api/v2/monitor/health", timeout=5)
                if health["metadatabase"]["status"] == "healthy":
                    break
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"airflow api-server not healthy after {SERVER_START_TIMEOUT}s:\n{tail(server_log)}")
            time.sleep(0.5)
        runs = get_json(f"{url}/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
        assert [r["state"] for r in runs] == ["success"], f"runs of {DAG_ID}: {runs}"
        print(f"\nAirflow UI at {url} ready in {time.monotonic() - started:.0f}s (home {home})")
        yield AirflowUI(url=url, home=home, env=env, server=server, dag_run=runs[0])
    finally:
        stop(server)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh profile (``--user-data-dir``), driven by Playwright."""
    executable = chromium_path()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        pytest.fail(f"the browser test needs Playwright (the dev extra: pip install -e '.[dev]'): {exc}")
    expect.set_options(timeout=UI_TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 2000},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


@contextmanager
def browser_check(page: Page, name: str, capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Run one browser check; leave ``<name>.png`` when it passes, ``<name>-FAILED.png`` and ``.html`` if not."""

    def report(line: str) -> None:
        with capsys.disabled():
            print(f"\n  {line}", flush=True)

    try:
        yield
    except BaseException:
        shot, html = ARTIFACTS / f"{name}-FAILED.png", ARTIFACTS / f"{name}-FAILED.html"
        try:
            page.screenshot(path=str(shot), full_page=True)
            html.write_text(page.content())
            report(f"browser check {name!r} failed at {page.url}; screenshot {shot}, page HTML {html}")
        except Exception as exc:  # the page may be gone; the original error matters more
            report(f"browser check {name!r} failed; no screenshot ({exc})")
        raise
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    report(f"screenshot: {shot}")


def open_add_connection_form(page: Page, ui: AirflowUI) -> Any:
    """Home -> Admin -> Connections -> Add Connection, type Coupa; returns the dialog."""
    page.goto(f"{ui.url}/")
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(UI_CONN_ID)
    dialog.get_by_role("combobox").fill("Coupa")
    options = page.get_by_role("option", name="Coupa", exact=True)
    try:
        options.click()
    except Exception:
        shown = [o.inner_text() for o in page.get_by_role("option").all()]
        raise AssertionError(f"connection type 'Coupa' not offered; typing 'Coupa' offers {shown}") from None
    dialog.get_by_label(UI_BEHAVIOUR["relabeling"]["host"], exact=True).wait_for()
    return dialog


def field_group(dialog: Any, input_name: str) -> Any:
    """The form field (label, input, helper text) holding the input named ``input_name``."""
    return dialog.locator('[data-scope="field"][data-part="root"]').filter(
        has=dialog.page.locator(f'input[name="{input_name}"]')
    )


def expand(dialog: Any, section: str) -> None:
    trigger = dialog.get_by_role("button", name=section, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()


# ------------------------------------------------------------------------------------------------ the checks
def test_the_coupa_form_shows_every_field_with_its_label_and_masks_the_secrets(
    page: Page, airflow_ui: AirflowUI, capsys: pytest.CaptureFixture[str]
) -> None:
    with browser_check(page, "connection-form", capsys):
        dialog = open_add_connection_form(page, airflow_ui)
        # Standard fields, relabelled; port and schema hidden.
        for name, label in UI_BEHAVIOUR["relabeling"].items():
            box = dialog.get_by_label(label, exact=True)
            assert box.count() == 1, f"standard field {name}: no input labelled {label!r}"
            assert box.get_attribute("name") == name, f"the input labelled {label!r} is not {name}"
            assert box.get_attribute("placeholder") == UI_BEHAVIOUR["placeholders"][name]
        assert dialog.get_by_label("OAuth client secret", exact=True).get_attribute("type") == "password"
        assert dialog.get_by_label("Coupa instance URL", exact=True).get_attribute("type") != "password"
        for hidden in UI_BEHAVIOUR["hidden-fields"]:
            assert dialog.locator(f'input[name="{hidden}"]').count() == 0, f"{hidden} should be hidden"

        expand(dialog, "Extra Fields")
        dialog.locator(f'input[name="element_{CONN_FIELDS[0].name}"]').wait_for()
        problems = []
        for f in CONN_FIELDS:
            box = dialog.locator(f'input[name="element_{f.name}"]')
            if box.count() != 1:
                problems.append(f"{f.name}: no input named element_{f.name} under Extra Fields")
                continue
            group = field_group(dialog, f"element_{f.name}")
            label = group.locator("label").inner_text().strip() if group.count() == 1 else None
            if label != f.label:
                problems.append(f"{f.name}: labelled {label!r}, expected {f.label!r}")
            if f.description not in (group.inner_text() if group.count() == 1 else ""):
                problems.append(f"{f.name}: its description is not shown")
            kind = box.get_attribute("type")
            if f.secret and kind != "password":
                problems.append(f"{f.name}: a secret shown as type={kind!r}, not masked (password)")
            if not f.secret and kind == "password":
                problems.append(f"{f.name}: masked, though it is not a secret")
            value = box.input_value()
            expected = "" if f.default is None else str(f.default)
            if value != expected:
                problems.append(f"{f.name}: the form starts with {value!r}, expected {expected!r}")
        assert not problems, "the Coupa connection form in Airflow's UI:\n  " + "\n  ".join(problems)


def test_saving_the_form_stores_a_coupa_connection_that_works(
    page: Page, airflow_ui: AirflowUI, coupa: CoupaEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    with browser_check(page, "connection-saved", capsys):
        dialog = open_add_connection_form(page, airflow_ui)
        dialog.get_by_label("Coupa instance URL", exact=True).fill(coupa.url)
        dialog.get_by_label("OAuth client ID", exact=True).fill(coupa.credentials.client_id)
        dialog.get_by_label("OAuth client secret", exact=True).fill(coupa.credentials.client_secret)
        dialog.get_by_role("button", name="Save").click()  # the extra fields keep the form's defaults
        dialog.wait_for(state="hidden")
        row = page.get_by_role("row").filter(has_text=UI_CONN_ID)
        row.wait_for()
        assert CONN_TYPE in row.inner_text()

    tokens_before = coupa.tokens_issued
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = pool.submit(airflow_ui.run, AIRFLOW_BIN, "connections", "get", UI_CONN_ID, "--output", "json")
        # CoupaHook(UI_CONN_ID).test_connection(), as Airflow runs it: on 3.x a hook outside a task reads the
        # metadata DB only in a "server" process such as this command.
        tested = pool.submit(airflow_ui.run, AIRFLOW_BIN, "connections", "test", UI_CONN_ID)
    get_result, test_result = got.result(), tested.result()
    assert get_result.returncode == 0, get_result.stderr[-3000:]
    (conn,) = json.loads(get_result.stdout[get_result.stdout.index("[") :])
    assert (conn["conn_id"], conn["conn_type"], conn["host"], conn["login"]) == (
        UI_CONN_ID,
        CONN_TYPE,
        coupa.url,
        coupa.credentials.client_id,
    )
    masked = {k: v for k, v in conn["extra_dejson"].items() if v == "***"}
    assert not masked, f"the form saved masked placeholders as values: {masked}"
    said = test_result.stdout[-3000:] + test_result.stderr[-3000:]
    assert test_result.returncode == 0, f"airflow connections test {UI_CONN_ID} failed:\n{said}"
    assert "Connection success!" in test_result.stdout, said
    assert coupa.tokens_issued == tokens_before + 1


def test_a_finished_coupa_task_links_to_its_coupa_records_page(
    page: Page, airflow_ui: AirflowUI, coupa: CoupaEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = airflow_ui.dag_run["dag_run_id"]
    with browser_check(page, "task-extra-link", capsys):
        page.goto(f"{airflow_ui.url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/{TASK_ID}")
        page.get_by_role("link", name="Details", exact=True).click()
        link = page.get_by_role("link", name="Coupa records", exact=True)
        try:
            link.wait_for()
        except Exception:
            shown = [a.inner_text() for a in page.get_by_role("link").all()]
            raise AssertionError(f"no 'Coupa records' extra link on the task instance page; links: {shown}") from None
        assert link.get_attribute("href") == f"{coupa.url}/integration_history_records/invoices"
    assert len(coupa.records(document_type="InvoiceHeader", document_id=1001)) == 1  # the run really wrote it
