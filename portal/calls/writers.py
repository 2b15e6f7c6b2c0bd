"""One writer at a time per SQLite file, queued in the kernel, not in SQLite's busy handler."""

import os
import threading
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own busy handler is the only queue
    fcntl = None

from portal.extensions import db

_thread_lock = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}


def _lock_path() -> str | None:
    """The lock file beside the SQLite database, or None (another backend, in-memory SQLite)."""
    url = db.engine.url
    if fcntl is None or url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return url.database + "-writers.lock"


def _lock_file(path: str) -> int:
    """This process's descriptor of the lock file (a forked worker opens its own)."""
    key = (os.getpid(), path)
    if key not in _lock_files:
        _lock_files[key] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return _lock_files[key]


class Writer:
    """The right to write, taken when the first write is near and held to the end of the block."""

    def __init__(self, descriptor: int | None):
        self.descriptor = descriptor
        self.held = False

    def acquire(self) -> None:
        """Become the only writer now (again: no change; a no-op off SQLite)."""
        if self.held or self.descriptor is None:
            return
        # flock() locks belong to the open file, which this process's threads share: a thread
        # lock keeps them apart.
        _thread_lock.acquire()
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX)
        except BaseException:
            _thread_lock.release()
            raise
        self.held = True

    def release(self) -> None:
        """Let the next writer in."""
        if self.held:
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
            _thread_lock.release()
            self.held = False


@contextmanager
def one_writer():
    """A Writer whose acquire() makes the block the only writer of this SQLite file to its end."""
    # SQLite has one writer per file; a second one polls in its busy handler, sleeping 1, 2,
    # 5, 10, ... ms between tries, so it wakes long after the lock was freed. flock() wakes
    # the next writer the moment the first one releases it. Other writers (the web pages, the
    # CLI) do not take this lock and still queue in SQLite, which stays the real guard. Enter
    # this block outside the transaction, so the lock is released after the commit.
    path = _lock_path()
    writer = Writer(_lock_file(path) if path else None)
    try:
        yield writer
    finally:
        writer.release()
