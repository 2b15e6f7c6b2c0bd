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


@contextmanager
def one_writer():
    """Run the block as the only writer of this SQLite file among processes that use this lock."""
    # SQLite has one writer per file; a second one polls in its busy handler, sleeping 1, 2,
    # 5, 10, ... ms between tries, so it wakes long after the lock was freed. flock() wakes
    # the next writer the moment the first one releases it. Other writers (the web pages, the
    # CLI) do not take this lock and still queue in SQLite, which stays the real guard.
    path = _lock_path()
    if path is None:
        yield
        return
    # flock() locks belong to the open file, which this process's threads share: a thread lock
    # keeps them apart.
    with _thread_lock:
        descriptor = _lock_file(path)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
