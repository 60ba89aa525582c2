#!/usr/bin/env python3
"""Redis and PostgreSQL for the fleet tests: installed from Debian's packages when missing, started on loopback.

The fleet tests (tests/fleet) run a real CeleryExecutor deployment: PostgreSQL holds Airflow's metadata and Redis
is both the Celery broker and the store of the shared Coupa budget. CI machines start with neither, so this module
installs them (``apt-get update`` once, then ``apt-get install --no-install-recommends``; needs root, as CI runs)
and starts throwaway servers on free ports under a temporary directory, stopped by the caller. It needs nothing
but the standard library, so ``scripts/dev.py`` can call it before any virtual environment exists, and pytest
fixtures can import it (``tests/fleet/services_fixtures.py``).

    python3 scripts/services.py install        install what is missing; print how long it took
    python3 scripts/services.py check          start and stop each server once; print the times

PostgreSQL refuses to run as root. As root the data directory is handed to Debian's ``postgres`` user and the
server runs through ``runuser``; as any other user it runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServiceUnavailable",
    "ensure_installed",
    "free_port",
    "postgres_bin",
    "redis_server_bin",
    "start_postgres",
    "start_redis",
]

#: Debian package -> what proves it is installed.
PACKAGES = {"redis-server": "redis", "postgresql": "postgres"}
_APT_UPDATED = False
#: Seconds each step took in this process (install, start), for the callers' reports.
TIMINGS: dict[str, float] = {}


class ServiceUnavailable(RuntimeError):
    """A server could not be installed or started; the message says why and what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_bin() -> str | None:
    return shutil.which("redis-server") or next(iter(glob.glob("/usr/bin/redis-server")), None)


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl (Debian keeps them off PATH)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _missing(which: tuple[str, ...]) -> list[str]:
    probes = {"redis": redis_server_bin, "postgres": postgres_bin}
    return [pkg for pkg, what in PACKAGES.items() if what in which and probes[what]() is None]


def ensure_installed(which: tuple[str, ...] = ("redis", "postgres")) -> float:
    """Install Debian's packages for ``which`` that are missing; return the seconds spent (0.0 if none were)."""
    global _APT_UPDATED
    missing = _missing(which)
    if not missing:
        return 0.0
    apt = shutil.which("apt-get")
    if apt is None:
        raise ServiceUnavailable(f"{', '.join(missing)} missing and there is no apt-get to install them")
    if os.geteuid() != 0:
        raise ServiceUnavailable(
            f"{', '.join(missing)} missing; install as root: apt-get install --no-install-recommends "
            + " ".join(missing)
        )
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not _APT_UPDATED:
            subprocess.run([apt, "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
            _APT_UPDATED = True
        subprocess.run(
            [apt, "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ServiceUnavailable(f"apt-get could not install {', '.join(missing)}: {exc}") from exc
    still = _missing(which)
    if still:
        raise ServiceUnavailable(f"apt-get installed {', '.join(missing)}, yet {', '.join(still)} is missing")
    seconds = time.monotonic() - started
    TIMINGS["install " + " ".join(missing)] = seconds
    print(f"services: installed {' '.join(missing)} in {seconds:.1f}s", flush=True)
    return seconds


def _wait_for_port(port: int, deadline: float, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceUnavailable(f"server exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceUnavailable(f"nothing listened on 127.0.0.1:{port} in time:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@dataclass
class RedisServer:
    """``redis-server`` on 127.0.0.1:``port`` without persistence; :meth:`stop` and :meth:`start` keep the port,
    so a test can take Redis away and bring it back where its clients look for it."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="coupa-redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 15.0) -> RedisServer:
        binary = redis_server_bin()
        if binary is None:
            raise ServiceUnavailable("redis-server is not installed (scripts/services.py install)")
        started = time.monotonic()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--daemonize", "no", "--dir", str(self.workdir), "--logfile", str(self.log)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(self.port, started + timeout, self.process, self.log)
            self._wait_for_pong(started + timeout)
        except BaseException:
            self.stop()
            raise
        TIMINGS.setdefault("start redis", time.monotonic() - started)
        return self

    def _wait_for_pong(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise ServiceUnavailable(f"redis on port {self.port} did not answer PING:\n{_tail(self.log)}")

    def stop(self) -> None:
        """Stop the server now (SIGKILL after 5 s); the port and directory stay for :meth:`start`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:``port`` (trust authentication, no fsync: test data only),
    with a database ``airflow`` owned by the superuser ``airflow``."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="coupa-postgres-")))
    user: str = "airflow"
    database: str = "airflow"
    run_as: str | None = None
    _bin: Path | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL for psycopg2 (Airflow's ``[database] sql_alchemy_conn``)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def log(self) -> Path:
        return self.workdir / "postgres.log"

    def _cmd(self, *args: str | Path) -> list[str]:
        cmd = [str(a) for a in args]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def start(self, timeout: float = 60.0) -> PostgresServer:
        self._bin = postgres_bin()
        if self._bin is None:
            raise ServiceUnavailable("PostgreSQL is not installed (scripts/services.py install)")
        started = time.monotonic()
        if os.geteuid() == 0 and self.run_as is None:
            self.run_as = "postgres"  # Debian's package creates it; initdb and postgres refuse root
        if self.run_as:
            shutil.chown(self.workdir, self.run_as)  # mkdtemp made it 0700: now the server's own
        try:
            if not self.data.exists():
                self._run(
                    self._bin / "initdb", "-D", self.data, "-U", self.user, "-A", "trust", "-E", "UTF8",
                    "--no-sync", "--no-instructions",
                )  # fmt: skip
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            wait = str(int(timeout))
            self._run(self._bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", wait, "start")
            self._run(self._bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        except BaseException:
            self.stop()
            raise
        TIMINGS.setdefault("start postgres", time.monotonic() - started)
        return self

    def _run(self, *args: str | Path) -> None:
        result = subprocess.run(self._cmd(*args), capture_output=True, text=True, cwd=self.workdir)
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"{Path(str(args[0])).name} failed ({result.returncode}): {result.stderr.strip()}\n{_tail(self.log)}"
            )

    def stop(self) -> None:
        if self._bin is None or not (self.data / "postmaster.pid").exists():
            return
        subprocess.run(self._cmd(self._bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"),
                       capture_output=True, cwd=self.workdir)  # fmt: skip
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)  # pg_ctl failed: do not leave it running

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(port: int | None = None) -> RedisServer:
    """Install Redis if needed and start one on a free loopback port (or ``port``)."""
    ensure_installed(("redis",))
    return (RedisServer(port) if port else RedisServer()).start()


def start_postgres() -> PostgresServer:
    """Install PostgreSQL if needed and start a throwaway cluster on a free loopback port."""
    ensure_installed(("postgres",))
    return PostgresServer().start()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("install", "check"):
        print(__doc__)
        return 2
    try:
        seconds = ensure_installed()
        print(f"services: redis-server and postgresql present (install took {seconds:.1f}s)", flush=True)
        if argv[0] == "check":
            for start in (start_redis, start_postgres):
                began = time.monotonic()
                server = start()
                up = time.monotonic() - began
                server.cleanup()
                print(f"services: {type(server).__name__} on port {server.port} up in {up:.2f}s", flush=True)
    except ServiceUnavailable as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
