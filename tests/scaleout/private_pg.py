"""A private PostgreSQL server for tests that stop and restart the database.

The shared server on 127.0.0.1:5432 must never be restarted by a test, so this one is created
with ``initdb`` in a temporary directory and driven with ``pg_ctl`` on a free port. PostgreSQL
refuses to run as root; as root the binaries run as the ``postgres`` user through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian layout, then PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
        if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def unavailable_reason() -> str | None:
    """Why a private server cannot be run here, or None if it can."""
    if find_bin_dir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing (PostgreSQL refuses root)"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def private_server(*, started: bool = False) -> Iterator[PrivateServer]:
    """A fixture's body: a private server (started, if asked) for the test, destroyed after;
    the test is skipped, saying why, where none can run."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"cannot run a private PostgreSQL server: {reason}")
    server = PrivateServer()
    try:
        if started:
            server.start()
        yield server
    finally:
        server.destroy()


class PrivateServer:
    """initdb on creation; start/stop/restart with pg_ctl; ``destroy`` removes everything."""

    def __init__(self) -> None:
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        # Not under pytest's tmp_path: its parents are private to root, and the server may
        # have to run as the postgres user.
        self.folder = Path(tempfile.mkdtemp(prefix="durable-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    def _run(self, program: str, *args: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def url(self, dbname: str = "postgres", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}" + (
            f"?{query}" if query else "")

    def start(self) -> None:
        settings = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                    "-c shared_buffers=16MB -c max_connections=60")
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o",
                           settings, "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            raise AssertionError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n"
                                 f"{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started, as a crash of the server
        (or of its machine, for the clients: their connections end without a goodbye)."""
        postmaster = self.postmaster_pid()
        if postmaster is None or not _alive(postmaster):
            return
        os.kill(postmaster, signal.SIGSTOP)  # no new backend from here on
        doomed = [postmaster, *_children(postmaster)]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in doomed):
            if time.monotonic() > deadline:
                raise AssertionError("the killed PostgreSQL server's processes lingered")
            time.sleep(0.01)

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def execute(self, statement: str, dbname: str = "postgres") -> None:
        """Run one statement as the superuser (``ALTER SYSTEM ...``, ``pg_reload_conf()``)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement.encode())

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-4000:]
        return ""

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(parent: int) -> list[int]:
    """Live processes whose parent is ``parent`` (from /proc, so only ours by construction)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry.name))
    return found
