"""Keys stay secret (defect 6): the SQLite files are owner-only, and no log line shows a key,
however it was sent."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from durable.http.keys import RedactKeysFilter
from tests.http.conftest import MGMT, REPO, wait_until
from tests.reliability.conftest import serve


def keys_of(storage: str) -> dict[str, str]:
    printed = subprocess.run(
        [sys.executable, "-m", "durable.cli", "keys", "--storage", storage],
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"}, check=True,
    ).stdout
    return {name: rest.split()[0] for name, rest in
            (line.split(": ", 1) for line in printed.splitlines())}


def test_the_sqlite_files_are_owner_only_and_keys_never_logged(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    storage = f"sqlite:///{path}"
    old_umask = os.umask(0o022)  # the usual umask: files would be 0644 without care
    try:
        server = serve(storage, "--host", "0.0.0.0", "--verbose")
    finally:
        os.umask(old_umask)
    try:
        files = sorted(tmp_path.glob("keys.db*"))
        assert {f.name for f in files} >= {"keys.db", "keys.db-wal", "keys.db-shm"}
        for file in files:
            mode = stat.S_IMODE(file.stat().st_mode)
            assert mode & 0o077 == 0, f"{file.name} is {oct(mode)}"
        keys = keys_of(storage)
        instances = f"{server.mgmt}/instances"
        # However the key's name is spelled, the server reads "code": it works ...
        for spelling in ("code", "%63ode", "c%6Fde", "%63%6f%64%65"):
            answer = httpx.get(f"{instances}?{spelling}={keys['system']}", timeout=10)
            assert answer.status_code == 200, (spelling, answer.text)
        assert httpx.get(f"{instances}?code={keys['master']}&top=1").status_code == 200
        assert httpx.get(instances, headers={"x-functions-key": keys["master"]}
                         ).status_code == 200
        assert httpx.post(f"{server.base}/api/start-with/NaN?code={keys['function']}"
                          ).status_code == 400
        # ... and is masked in the access log.
        wait_until(lambda: server.log().count("%63ode=***") >= 1, what="the access log")
        server.run.stop()
        log = server.log()
        for name, key in keys.items():
            assert key not in log, f"the {name} key is in the log"
        assert "c%6Fde=***" in log and "%63%6f%64%65=***" in log
    finally:
        server.close()


def test_the_log_filter_masks_keys_in_messages_arguments_and_tracebacks() -> None:
    key = "k3y-" + "x" * 40
    redacting = RedactKeysFilter([key])

    def record(msg: str, args: tuple, exc: BaseException | None = None) -> logging.LogRecord:
        info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        return logging.LogRecord("durable.worker", logging.ERROR, __file__, 1, msg, args, info)

    plain = record("calling %s", (f"http://h/x?a=1&%63ode={key}",))
    assert redacting.filter(plain) and key not in plain.getMessage()
    assert "%63ode=***" in plain.getMessage()
    try:
        raise RuntimeError(f"request to http://h/?code=zzz failed with key {key}")
    except RuntimeError as exc:
        failed = record("oops", (), exc)
    assert redacting.filter(failed)
    assert failed.exc_text is not None and key not in failed.exc_text
    assert "code=***" in failed.exc_text and "zzz" not in failed.exc_text
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4", "GET", f"{MGMT}/instances?c%6fde={key}", "1.1", 200),
                               None)
    assert redacting.filter(access)
    assert isinstance(access.args, tuple) and key not in access.getMessage()
