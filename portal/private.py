"""Files only the portal's user may read: the instance folder, SQLite databases, the job queue."""

import os
from pathlib import Path

# They hold password hashes, SIP passwords, API key hashes and mail bodies: other local users
# (a shared host, a web server's account) must not read them, whatever the umask.
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> None:
    """Make `path` (and missing parents) and keep it 0700 when this user owns it."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    _restrict(path, DIRECTORY_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists; an existing one loses group/other."""
    # An empty file is a valid SQLite database: SQLite opens it as new, and its -wal and -shm
    # files take this file's mode.
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _restrict(path, FILE_MODE)


def _restrict(path: Path, mode: int) -> None:
    """chmod `path` to `mode` if it grants group or others anything (and it is ours to change)."""
    status = path.stat()
    if status.st_mode & 0o077 and status.st_uid == os.geteuid():
        os.chmod(path, mode)
