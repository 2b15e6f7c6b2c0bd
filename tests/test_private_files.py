"""A fresh instance is private: instance/ 0700, the SQLite database and job queue 0600."""

import os
import stat
import subprocess

from portal.config import load_config
from portal.private import private_file
from tests.conftest import ROOT
from tests.servers import BIN


def mode(path) -> int:
    """The permission bits of `path`."""
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_fresh_instance_folder_and_its_secret_key_are_private(tmp_path, monkeypatch):
    """instance/ (made now, or left 0755 by git) is 0700; the secret key file 0600."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    old_umask = os.umask(0o022)
    try:
        load_config(str(tmp_path / "instance"))
        existing = tmp_path / "checked-out"
        existing.mkdir(mode=0o755)
        load_config(str(existing))
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "instance") == 0o700
    assert mode(tmp_path / "instance" / "secret_key") == 0o600
    assert mode(existing) == 0o700


def test_make_db_creates_the_database_and_the_job_queue_0600(tmp_path):
    """`flask db upgrade` (make run's db step) under umask 022: no file readable by others."""
    database = tmp_path / "data" / "portal.sqlite3"
    queue = tmp_path / "jobs" / "jobs.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "JOBS_SQLITE_PATH": str(queue),
        "SECRET_KEY": "x" * 32,
    }
    for name in ("REDIS_URL", "JOBS_REDIS_URL"):
        env.pop(name, None)
    subprocess.run(
        ["sh", "-c", f"umask 022 && exec {BIN / 'flask'} --app app db upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert mode(database) == 0o600
    assert mode(queue) == 0o600
    for sidecar in tmp_path.glob("*/*.sqlite3-*"):  # -wal, -shm: SQLite copies the mode
        assert mode(sidecar) == 0o600, sidecar


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    """A database made before this rule (0644) loses its group and other bits."""
    database = tmp_path / "portal.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)
    private_file(database)
    assert mode(database) == 0o600
