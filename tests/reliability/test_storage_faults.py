"""Storage in trouble says what the trouble is, and loses nothing (defects 4 and 5).

SQLite: a full disk, a read-only location, a damaged file and a file deleted under a running
server, each on a real file system (a small tmpfs mounted for the test, skipped with the reason
where mounting is not allowed). PostgreSQL: connections the server ends
(``pg_terminate_backend``) and a restart of a private server, with requests right after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from durable.errors import StorageError
from durable.storage.sqlite.backend import SQLiteBackend
from tests.http.conftest import wait_until
from tests.reliability.conftest import APP, Server, serve
from tests.scaleout.harness import DurableProcess

SMALL_DISK = "4m"


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A fresh 4 MiB tmpfs, or skip saying why one cannot be mounted here."""
    folder = Path(tempfile.mkdtemp(prefix="durable-disk-"))
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small or read-only file system")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        folder.rmdir()


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_answers_503_saying_so_and_loses_nothing(small_disk: Path) -> None:
    server = serve(f"sqlite:///{small_disk / 'app.db'}")
    try:
        assert server.start("wait_for_go", "before").status_code == 202
        server.wait_for("before", "Running")
        filler = fill(small_disk)
        answers: list[httpx.Response] = []
        for number in range(200):  # until the WAL must grow and cannot
            answer = server.start("echo_input", f"big-{number}", json="y" * 100_000)
            answers.append(answer)
            if answer.status_code != 202:
                break
        refused = answers[-1]
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        body = refused.json()
        assert body["ExceptionType"] == "StorageFullError"
        assert "is full" in body["ExceptionMessage"] and "nothing" in body["Message"]
        assert wait_until(lambda: "is full" in server.log(), what="a log line about it")
        filler.unlink()
        # Space again: the refused start can simply be sent again; nothing was lost.
        again = server.start("echo_input", refused.url.path.rsplit("/", 1)[1], json="again")
        assert again.status_code == 202, again.text
        for number, answer in enumerate(answers[:-1]):
            assert answer.status_code == 202
            server.wait_for(f"big-{number}", "Completed", timeout=60)
        assert server.raise_event("before", "go", json=1).status_code == 202
        assert server.wait_for("before", "Completed", timeout=60)["output"] == {"got": 1}
        assert "Traceback" not in server.log(), server.log()[-3000:]
    finally:
        server.close()


def test_a_read_only_location_says_read_only_and_starts_once_writable(
    small_disk: Path, tmp_path: Path
) -> None:
    storage = f"sqlite:///{small_disk / 'app.db'}"
    first = serve(storage)
    assert first.start("chain", "made-before", json=1).status_code == 202
    first.wait_for("made-before", "Completed")
    first.run.stop()
    first.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    process = DurableProcess(["run", APP, "--storage", storage, "--port", "0"], tmp_path,
                             "read-only", tmp_path / "activities.log")
    try:
        process.wait_for_log(r"storage is unavailable: The SQLite database \S+ is read-only")
        assert "Listening on" not in process.log()
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        base = process.wait_for_log(r"Listening on (http://\S+)", timeout=60).group(1)
        status = httpx.get(f"{base.replace('localhost', '127.0.0.1')}/runtime/webhooks/"
                           "durabletask/instances/made-before", timeout=10)
        assert status.status_code == 200 and status.json()["output"] == [0]
    finally:
        process.close()


async def test_a_read_only_database_left_with_its_wal_files_is_refused_at_open(
    small_disk: Path,
) -> None:
    """A process that exits without closing its connections leaves -wal and -shm behind; on
    a read-only mount such a database still opens and reads, so only a write says it is
    read-only. The backend must say so when it opens, not at the host's first write."""
    path = small_disk / "app.db"
    backend = SQLiteBackend(path)
    await backend.open()
    await backend.close()
    leave_wal = ("import os, sqlite3, sys\n"
                 "conn = sqlite3.connect(sys.argv[1])\n"
                 "conn.execute(\"INSERT INTO durable_settings VALUES ('left', '1')\")\n"
                 "conn.commit()\n"
                 "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", leave_wal, str(path)], check=True)
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    reopened = SQLiteBackend(path)
    with pytest.raises(StorageError, match="is read-only"):
        await reopened.open()
    await reopened.close()


def test_a_damaged_database_answers_500_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    server = serve(f"sqlite:///{path}")
    try:
        for number in range(40):
            assert server.start("chain", f"c-{number}", json=2).status_code == 202
        server.wait_for("c-39", "Completed")
        with path.open("r+b") as handle:  # everything past the header page
            handle.seek(4096)
            handle.write(os.urandom(max(4096, path.stat().st_size - 4096)))
        wal = Path(f"{path}-wal")
        with wal.open("r+b") as handle:
            handle.seek(32)
            handle.write(os.urandom(max(0, wal.stat().st_size - 32)))
        listing = server.http.get(f"{server.mgmt}/instances")
        assert listing.status_code == 500, listing.text
        assert listing.json()["ExceptionType"] == "StorageCorruptError"
        assert "is damaged" in listing.json()["ExceptionMessage"]
        assert wait_until(lambda: "is damaged" in server.log(), what="a log line about it")
    finally:
        server.close()


def test_a_damaged_file_at_start_up_is_named(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.write_bytes(b"this is not a database" * 200)
    process = DurableProcess(["run", APP, "--storage", f"sqlite:///{path}", "--port", "0"],
                             tmp_path, "damaged", tmp_path / "activities.log")
    try:
        process.wait_for_log(r"storage is unavailable: The SQLite database \S+ is damaged")
    finally:
        process.close()


def test_a_database_deleted_under_a_running_server_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    server = serve(f"sqlite:///{path}")
    try:
        assert server.start("chain", "kept", json=1).status_code == 202
        server.wait_for("kept", "Completed")
        for file in tmp_path.glob("app.db*"):
            file.unlink()

        def refused() -> httpx.Response | None:
            answer = server.start("chain", f"after-{time.monotonic_ns()}", json=1)
            return answer if answer.status_code != 202 else None

        answer = wait_until(refused, timeout=10, what="writes to be refused")
        assert answer.status_code == 503, answer.text
        assert "was deleted while durable had it open" in answer.json()["ExceptionMessage"]
        # The server's output is read by a thread of the test: the line may arrive after
        # the response that quotes it.
        wait_until(lambda: any(
            " ERROR " in line and "was deleted while durable had it open" in line
            for line in server.log().splitlines()), what="an ERROR line about it")
    finally:
        server.close()


# -- PostgreSQL -----------------------------------------------------------------------------


def terminate_sessions(storage: str, pid: int) -> int:
    """End every server session of process ``pid`` (found by its application_name)."""
    import psycopg

    from durable.storage.postgres.settings import PostgresSettings

    name = f"durable:{socket.gethostname()}:{pid}"[:63]
    with psycopg.connect(PostgresSettings(storage).conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s", [name]).fetchall()
    return len(rows)


def test_requests_right_after_connections_drop_succeed(postgres_server: Server) -> None:
    server = postgres_server
    assert server.start("wait_for_go", "waiting").status_code == 202
    server.wait_for("waiting", "Running")
    pid = server.run.process.pid
    for round_number in range(5):
        # Warm the pool: several connections in use, then idle.
        for number in range(5):
            assert server.start("chain", f"warm-{round_number}-{number}", json=1
                                ).status_code == 202
        assert terminate_sessions(server.storage, pid) >= 1
        # At once, before the pool could notice on its own: none of these may fail.
        answers = [
            server.status("waiting"),
            server.start("chain", f"after-{round_number}", json=2),
            server.http.get(f"{server.mgmt}/instances"),
            server.raise_event("waiting", f"noise-{round_number}", json=round_number),
        ]
        assert [a.status_code for a in answers] == [202, 202, 200, 202], [
            (a.status_code, a.text[:300]) for a in answers]
        server.wait_for(f"after-{round_number}", "Completed")
    assert server.raise_event("waiting", "go", json="done").status_code == 202
    assert server.wait_for("waiting", "Completed")["output"] == {"got": "done"}
    assert " 500 " not in server.log()


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[Server]:
    from tests.conftest import postgres_url

    running = serve(postgres_url(tmp_path))
    try:
        yield running
    finally:
        running.close()


def test_requests_right_after_a_database_restart_succeed(tmp_path: Path) -> None:
    from tests.scaleout.private_pg import PrivateServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"cannot run a private PostgreSQL server: {reason}")
    database = PrivateServer()
    try:
        database.start()
        server = serve(database.url(hub="restart"))
        try:
            assert server.start("wait_for_go", "waiting").status_code == 202
            server.wait_for("waiting", "Running")
            for number in range(3):
                database.stop()
                database.start()
                answers = [
                    server.status("waiting"),
                    server.start("chain", f"after-restart-{number}", json=2),
                    server.raise_event("waiting", f"noise-{number}", json=number),
                ]
                assert [a.status_code for a in answers] == [202, 202, 202], [
                    (a.status_code, a.text[:300]) for a in answers]
                server.wait_for(f"after-restart-{number}", "Completed", timeout=60)
            assert server.raise_event("waiting", "go", json="done").status_code == 202
            assert server.wait_for("waiting", "Completed", timeout=60)["output"] == {
                "got": "done"}
        finally:
            server.close()
    finally:
        database.destroy()
