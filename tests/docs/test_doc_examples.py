"""Every example in the README and the docs runs, top to bottom, the way a reader would run it.

One test per page. The page's code blocks run in order in one scratch directory that is also the page's
``AIRFLOW_HOME`` (with a migrated metadata database and ``dags/`` as its dags folder), so a page that starts the
emulator, adds a connection, saves a DAG and runs ``airflow dags test`` is tested exactly as written:

- a ``python`` block is saved as a file (in ``dags/`` when it defines a DAG, as Airflow's ``dag.test()`` wants)
  and run (``tests/docs/run_python_example.py``, one process per page): any DAG it defines is run with
  ``dag.test()`` and must succeed;
- a ``bash`` / ``shell`` / ``sh`` block runs under ``bash -euo pipefail``; what it exports stays set for the
  next blocks, shell and Python alike; a ``console`` block runs its ``$ `` lines;
- other blocks (``json``, ``text``, ``ini``, ...) are shown, not run, unless a directive says otherwise.

HTML comments in the page source steer a block (on the line just before its opening fence):

- ``<!-- example: skip REASON -->``: not run, and the reason is required (the test fails without one);
- ``<!-- example: file PATH -->``: the block is saved to ``PATH`` in the scratch directory (``dags/x.py`` is
  ``$AIRFLOW_HOME/dags/x.py``), not run;
- ``<!-- example: background -->``: a shell block that serves (the emulator): started, left running until the
  page ends; the next block runs once it has printed its first line;
- ``<!-- example: output -->``: a block showing what the block before it prints: each of its non-blank lines
  (stripped) must occur in what that block printed, each after the one before (for a background block: within
  30 s);
- ``<!-- example: fails REASON -->``: a Python block whose DAG runs must all *fail* (a page showing what a
  failure leaves in Coupa); the reason is required.

And once per page, anywhere: ``<!-- examples: emulator INTEGRATION[,INTEGRATION...] -->`` starts a Coupa emulator
for the page, with those integrations registered, and exports ``AIRFLOW_CONN_COUPA_DEFAULT`` pointing at it.

The emulator's default port, ``8765``, is replaced by a free port in every block of a page (and in what an
``output`` block expects), so a page's test never meets another emulator serving on this machine.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from airflow_provider_coupa_ihr.testing.emulator import CoupaEmulator

REPO = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK_SECONDS = 240
BACKGROUND_OUTPUT_SECONDS = 30
EMULATOR_PORT = "8765"
RESULT_MARKER = "@@doc-example-result@@"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_DIRECTIVE = re.compile(r"<!--\s*example:\s*(?P<kind>skip|file|background|output|fails)\b\s*(?P<arg>.*?)\s*-->")
_PAGE_EMULATOR = re.compile(r"<!--\s*examples:\s*emulator\s*(?P<codes>[^>]*?)\s*-->")
PYTHON = {"python", "py"}
SHELL = {"bash", "shell", "sh", "console"}
RUNNABLE = PYTHON | SHELL
#: What bash sets for itself; not carried from one block to the next.
_BASH_OWN = {"_", "SHLVL", "PWD", "OLDPWD"}


def _airflow_major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


ONLY_ON_AIRFLOW_3 = pytest.mark.skipif(
    _airflow_major() < 3,
    reason="the docs pages' examples run on the Airflow 3 leg only: running every page twice would double the "
    "suite's slowest part, and the 2.11 leg tests the same code paths; the README's first hour runs on both",
)
pytestmark = [pytest.mark.dag]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    directive: str | None
    arg: str

    @property
    def where(self) -> str:
        shown = self.page.relative_to(REPO) if self.page.is_relative_to(REPO) else self.page.name
        return f"{shown}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.directive not in ("skip", "output") and (self.lang in RUNNABLE or self.directive == "file")


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        directive = _DIRECTIVE.search(before)
        indent = match.group("indent")
        body = "\n".join(
            row[len(indent) :] if row.startswith(indent) else row for row in match.group("body").splitlines()
        )
        found.append(
            Block(
                page,
                line,
                match.group("lang").lower(),
                body + "\n",
                directive.group("kind") if directive else None,
                directive.group("arg") if directive else "",
            )
        )
    return found


def _has_examples(page: Path) -> bool:
    return page.exists() and any(b.lang in RUNNABLE or b.directive for b in blocks_of(page))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines_in_order(expected: str, output: str) -> str | None:
    """None when every non-blank line of ``expected`` (stripped) occurs in ``output``, each after the one
    before; else the first expected line that is missing."""
    at = 0
    for want in (row.strip() for row in expected.splitlines()):
        if not want:
            continue
        found = output.find(want, at)
        if found < 0:
            return want
        at = found + len(want)
    return None


@pytest.fixture(scope="session")
def migrated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``AIRFLOW_HOME`` with a migrated SQLite database, copied into every page's directory."""
    home = tmp_path_factory.mktemp("doc-airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "_AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home


class PythonWorker:
    """One ``run_python_example.py --serve`` process for a page: Airflow is imported once per page."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "run_python_example.py"), "--serve"],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, path: Path, env: dict[str, str], expect: str) -> tuple[bool, str, str]:
        """Run one file: (ok, the runner's verdict, everything it printed)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"path": str(path), "env": env, "expect": expect}) + "\n")
        self.process.stdin.flush()
        printed: list[str] = []
        deadline = time.monotonic() + BLOCK_SECONDS
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                return False, f"no answer within {BLOCK_SECONDS}s", "".join(printed)
            if line is None:
                return False, f"the example runner exited ({self.process.poll()})", "".join(printed)
            if line.startswith(RESULT_MARKER):
                verdict = json.loads(line[len(RESULT_MARKER) :])
                return bool(verdict["ok"]), str(verdict["message"]), "".join(printed)
            printed.append(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Background:
    """A serving shell block: its output is collected as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.output: list[str] = []
        self.first_line = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.first_line.set()
        self.first_line.set()

    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PageRun:
    """One page's scratch directory, environment, Python worker and background processes."""

    def __init__(self, page: Path, workdir: Path, template_home: Path) -> None:
        self.page = page
        self.workdir = workdir
        (workdir / "dags").mkdir()
        shutil.copy(template_home / "airflow.db", workdir / "airflow.db")
        venv_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "_AIRFLOW"))}
        env.update(
            {
                "AIRFLOW_HOME": str(workdir),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"),
                "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        self.env = env
        self.port = str(_free_port())
        self.worker: PythonWorker | None = None
        self.background: list[Background] = []
        self.log: list[str] = []
        #: What the last block that ran printed, for an ``output`` block; a Background while it serves.
        self.last_output: str | Background = ""
        self.last_block: Block | None = None

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        for process in self.background:
            process.stop()

    def run(self, block: Block) -> None:
        block = replace(block, body=block.body.replace(EMULATOR_PORT, self.port))
        if block.directive == "skip":
            assert block.arg, f"{block.where}: 'example: skip' needs a reason"
            self.log.append(f"{block.where}: skipped: {block.arg}")
            return
        if block.directive == "output":
            self._check_output(block)
            return
        if block.directive == "fails":
            assert block.arg, f"{block.where}: 'example: fails' needs a reason"
        if block.directive == "file":
            target = self.workdir / block.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
            self.log.append(f"{block.where}: saved as {block.arg}")
            return
        started = time.monotonic()
        if block.lang in PYTHON:
            self._python(block)
        elif block.directive == "background":
            self._start(self._commands(block), block)
        else:
            self._shell(self._commands(block), block)
        self.last_block = block
        self.log.append(f"{block.where}: {block.lang} ok in {time.monotonic() - started:.1f}s")

    @staticmethod
    def _commands(block: Block) -> str:
        if block.lang != "console":
            return block.body
        return "\n".join(row[2:] for row in block.body.splitlines() if row.startswith("$ ")) + "\n"

    def _python(self, block: Block) -> None:
        defines_dag = "DAG(" in block.body or "@dag" in block.body
        script = (self.workdir / "dags" if defines_dag else self.workdir) / f"example_{block.line}.py"
        script.write_text(block.body, encoding="utf-8")
        if self.worker is None:
            self.worker = PythonWorker(self.workdir, self.env)
        expect = "failed" if block.directive == "fails" else "success"
        ok, verdict, printed = self.worker.run(script, self.env, expect)
        self.last_output = printed
        self.log.append(f"{block.where}: {verdict}")
        assert ok, f"the example at {block.where} failed: {verdict}\n{block.body}\n--- output ---\n{printed[-6000:]}"

    def _shell(self, commands: str, block: Block) -> None:
        env_file = self.workdir / ".example-env"
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{commands}\nenv -0 > {env_file}\n"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_SECONDS,
            check=False,
        )
        self.last_output = done.stdout + done.stderr
        assert done.returncode == 0, (
            f"the example at {block.where} failed (exit {done.returncode}):\n{block.body}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )
        exported = dict(item.split("=", 1) for item in env_file.read_text(encoding="utf-8").split("\0") if "=" in item)
        self.env = {k: v for k, v in exported.items() if k not in _BASH_OWN}

    def _start(self, commands: str, block: Block) -> None:
        process = subprocess.Popen(
            ["bash", "-c", f"set -euo pipefail\nexec {commands.strip()}\n"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        serving = Background(process)
        self.background.append(serving)
        serving.first_line.wait(BLOCK_SECONDS)
        assert process.poll() is None, (
            f"the background example at {block.where} exited ({process.returncode}):\n{serving.text()}"
        )
        self.last_output = serving

    def _check_output(self, block: Block) -> None:
        assert self.last_block is not None, f"{block.where}: an 'output' block needs a block before it that ran"
        shown = self.last_output
        missing = _lines_in_order(block.body, shown if isinstance(shown, str) else shown.text())
        if isinstance(shown, Background):
            deadline = time.monotonic() + BACKGROUND_OUTPUT_SECONDS
            while missing is not None and time.monotonic() < deadline and shown.process.poll() is None:
                time.sleep(0.2)
                missing = _lines_in_order(block.body, shown.text())
        printed = shown if isinstance(shown, str) else shown.text()
        assert missing is None, (
            f"{block.where}: the page says {self.last_block.where} prints {missing!r}, but it printed:\n"
            f"{printed[-4000:]}"
        )
        self.log.append(f"{block.where}: output as shown")


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, id=str(p.relative_to(REPO)), marks=() if p.name == "README.md" else ONLY_ON_AIRFLOW_3)
        for p in PAGES
        if _has_examples(p)
    ],
)
def test_every_example_on_the_page_runs(page: Path, tmp_path: Path, migrated_home: Path) -> None:
    run = PageRun(page, tmp_path, migrated_home)
    emulator = None
    try:
        wanted = _PAGE_EMULATOR.search(page.read_text(encoding="utf-8"))
        if wanted:
            emulator = CoupaEmulator().__enter__()
            for code in filter(None, (c.strip() for c in wanted.group("codes").split(","))):
                emulator.add_integration(code)
            run.env["AIRFLOW_CONN_COUPA_DEFAULT"] = emulator.airflow_connection()
        for block in blocks_of(page):
            if block.runs or block.directive in ("skip", "output"):
                run.run(block)
    finally:
        run.close()
        if emulator is not None:
            emulator.__exit__(None, None, None)
    print("\n".join(run.log))


@ONLY_ON_AIRFLOW_3
def test_a_failing_example_fails_its_page(tmp_path: Path, migrated_home: Path) -> None:
    """The runner itself: a wrong output, a failing shell line and a DAG that fails are each caught."""
    page = tmp_path / "page.md"
    page.write_text("```bash\necho one\n```\n\n<!-- example: output -->\n```text\ntwo\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="prints 'two'"):
        _run_page(page, tmp_path / "a", migrated_home)
    page.write_text("```bash\nfalse\necho never\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="exit 1"):
        _run_page(page, tmp_path / "b", migrated_home)
    page.write_text("<!-- example: skip -->\n```bash\ntrue\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="needs a reason"):
        _run_page(page, tmp_path / "c", migrated_home)


def _run_page(page: Path, workdir: Path, home: Path) -> None:
    workdir.mkdir()
    run = PageRun(page, workdir, home)
    try:
        for block in blocks_of(page):
            if block.runs or block.directive in ("skip", "output"):
                run.run(block)
    finally:
        run.close()
