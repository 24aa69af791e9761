"""The SQLite file itself: created private, watched while open, and its errors explained.

- **Modes.** A new database file is created ``0600`` (owner only) before SQLite opens it;
  SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so the payloads and
  the generated HTTP keys stored inside are unreadable to other local users. An existing file
  that others can read is left as it is (it may be shared on purpose) and named in a warning.
- **Errors.** SQLite's result codes become the typed errors of :mod:`durable.errors`, each
  saying what the operator can do: full (free space), read-only (permissions, a read-only
  mount), damaged (restore a backup), or a plain :class:`StorageError`.
- **Deletion.** SQLite keeps writing to a database file that was deleted (or replaced) while
  it is open, and everything written after that is lost when the process exits.
  :class:`FileWatch` notices, and from then on every write fails, saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

from durable.errors import (
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
)

log = logging.getLogger("durable.storage.sqlite")

# SQLite primary result codes (the low byte of an extended code).
_CORRUPT, _FULL, _IOERR, _READONLY, _CANTOPEN, _NOTADB = 11, 13, 10, 8, 14, 26
FILE_MODE = 0o600
WATCH_INTERVAL = 1.0  # seconds between checks that the file is still there


def create_private(path: str) -> None:
    """Create the database file owner-only if it does not exist yet (race-free: O_EXCL)."""
    if path == ":memory:":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _warn_if_shared(path)
        return
    except OSError:
        return  # let SQLite report why it cannot open the file (read-only, missing folder)
    os.close(fd)


def _warn_if_shared(path: str) -> None:
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning(
                "%s is readable by other users (mode %s); it holds payloads and the HTTP "
                "access keys: chmod 600 it unless it is shared on purpose",
                path, stat.filemode(mode),
            )


def _folder(path: str) -> str:
    return str(Path(path).resolve().parent)


def _read_only_location(path: str) -> bool:
    folder = _folder(path)
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    target = path if os.path.exists(path) else folder
    return not os.access(target, os.W_OK)


def _no_space(path: str) -> bool:
    with contextlib.suppress(OSError):
        return os.statvfs(_folder(path)).f_bavail == 0
    return False


def storage_error(exc: sqlite3.Error, path: str) -> StorageError:
    """The typed error for a SQLite failure on ``path``, saying what to do about it."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    text = f"{exc} ({name})"
    if code == _FULL or (code == _IOERR and _no_space(path)):
        return StorageFullError(
            f"The SQLite database {path} is full: {text}. Free disk space; nothing of the "
            "failed operation was stored."
        )
    if code == _READONLY or (code in (_CANTOPEN, _IOERR) and _read_only_location(path)):
        return StorageReadOnlyError(
            f"The SQLite database {path} is read-only: {text}. durable needs write access "
            "to the file and to its folder (for the -wal and -shm files); check permissions "
            "and whether the file system is mounted read-only."
        )
    if code in (_CORRUPT, _NOTADB):
        return StorageCorruptError(
            f"The SQLite database {path} is damaged: {text}. Stop durable and restore the "
            "file from a backup (or move it away to start with an empty store)."
        )
    return StorageError(f"SQLite error on {path}: {text}")


class FileWatch:
    """Notices that the open database file was deleted or replaced (checked at most once a
    second, on the writer thread, before a write)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity = self._stat() if path != ":memory:" else None
        self._checked = time.monotonic()
        self.lost: str | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_dev, info.st_ino

    def check(self) -> None:
        """Raise :class:`StorageError` if the file is gone (and keep raising)."""
        if self.lost is None and self._identity is not None:
            now = time.monotonic()
            if now - self._checked >= WATCH_INTERVAL:
                self._checked = now
                current = self._stat()
                if current != self._identity:
                    what = "deleted" if current is None else "replaced by another file"
                    self.lost = (
                        f"The SQLite database {self.path} was {what} while durable had it "
                        "open; writes are refused, since they would go to a file nobody can "
                        "open again. Restore the file and restart durable (a restart on a "
                        "missing file starts an empty store)."
                    )
                    log.error("%s", self.lost)
        if self.lost is not None:
            raise StorageError(self.lost)
