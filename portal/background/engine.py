"""The one Huey instance: SQLite in instance/ by default, Redis when JOBS_REDIS_URL is set."""

import os
from contextlib import nullcontext
from pathlib import Path

from flask import Flask, has_app_context
from huey import RedisExpireHuey, SqliteHuey
from huey.api import TaskLock

from portal.private import private_file

INSTANCE = Path(__file__).resolve().parents[2] / "instance"
# Tests and a second portal on the same Redis use a name of their own.
NAME = os.environ.get("JOBS_QUEUE_NAME", "portal")
# How long a task's result waits in Redis: the jobs table keeps what a person needs to see.
REDIS_RESULT_SECONDS = 3600


def redis_url() -> str:
    """Where the shared queue lives (empty: the embedded SQLite queue of one machine)."""
    return os.environ.get("JOBS_REDIS_URL") or os.environ.get("REDIS_URL") or ""


def sqlite_path() -> Path:
    """The embedded queue's file: JOBS_SQLITE_PATH, else instance/jobs.sqlite3."""
    return Path(os.environ.get("JOBS_SQLITE_PATH") or INSTANCE / "jobs.sqlite3")


def _create_huey():
    """The engine the environment asks for, made once at import (tasks register on it)."""
    url = redis_url()
    if url:
        # The expiring variant: results expire on their own, and its locks take a TTL
        # (SET NX EX), so a lock of a consumer killed with -9 frees itself.
        return RedisExpireHuey(NAME, url=url, results=False, expire_time=REDIS_RESULT_SECONDS)
    path = sqlite_path()
    private_file(path)
    return SqliteHuey(NAME, filename=str(path), results=False)


huey = _create_huey()
_bound: dict[str, Flask] = {}


def bind(app: Flask) -> None:
    """Remember the app tasks run in; JOBS_IMMEDIATE runs each task as it is enqueued."""
    _bound["app"] = app
    if app.config.get("JOBS_IMMEDIATE"):
        huey.immediate = True


def app_context():
    """The bound app's context, unless one is already pushed (immediate mode inside a request)."""
    if has_app_context():
        return nullcontext()
    return _bound["app"].app_context()


def shared() -> bool:
    """Whether several machines share this queue (Redis) rather than one SQLite file."""
    return isinstance(huey, RedisExpireHuey) and not huey.immediate


def lock(name: str, ttl_seconds: int) -> TaskLock:
    """huey.lock_task: one holder at a time across every consumer of the queue."""
    # Only Redis expires a lock; the SQLite queue serves one machine, whose consumer clears
    # stale locks when it starts (a lock left by a killed consumer would block the task forever).
    return huey.lock_task(name, ttl=ttl_seconds if shared() else None)
