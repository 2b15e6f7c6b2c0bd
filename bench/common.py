"""Shared helpers for the benchmarks: throwaway databases, app, login and timing."""

import contextlib
import json
import logging
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# load_config() would otherwise write instance/secret_key; the benchmarks touch nothing there.
os.environ.setdefault("SECRET_KEY", "bench-secret")

import psycopg  # noqa: E402
import pymysql  # noqa: E402
from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from portal import MIGRATIONS_DIR, create_app  # noqa: E402
from portal.extensions import db  # noqa: E402

ADMIN_PASSWORD = "Bench-passw0rd"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
FAST_HASH = "pbkdf2:sha256:1000"


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    """A SQLAlchemy URL of a new SQLite file in a temporary folder, removed after."""
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as folder:
        yield "sqlite:///" + str(Path(folder) / "bench.sqlite3")


@contextlib.contextmanager
def postgres_database(server_url: str = POSTGRES_URL) -> Iterator[str]:
    """A SQLAlchemy URL of a new PostgreSQL database `bench_<random>`, dropped after."""
    name = f"bench_{secrets.token_hex(4)}"
    server = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(server_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mariadb_server(url: str) -> dict:
    """PyMySQL's connect() arguments for the server of a mysql+pymysql:// URL (autocommit)."""
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "root",
        "password": parsed.password or "",
        "autocommit": True,
    }


@contextlib.contextmanager
def mariadb_database(server_url: str = MARIADB_URL) -> Iterator[str]:
    """A SQLAlchemy URL of a new MariaDB database `bench_<random>` (utf8mb4), dropped after."""
    name = f"bench_{secrets.token_hex(4)}"
    server = mariadb_server(server_url)
    with pymysql.connect(**server) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with pymysql.connect(**server) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def backends(postgres: bool) -> Iterator[tuple[str, str]]:
    """("sqlite", URL), then with `postgres` ("postgresql", URL): each database dropped after."""
    for name, database in (("sqlite", sqlite_database), ("postgresql", postgres_database)):
        if name == "sqlite" or postgres:
            with database() as url:
                yield name, url


def write_json(path: Path | None, results) -> None:
    """Write the results to `path` (--json), if given."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))


def make_app(database_url: str, hash_method: str = "scrypt") -> Flask:
    """An app on `database_url` configured like production except for the hash method."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": "bench-secret",
            "PASSWORD_HASH_METHOD": hash_method,
        }
    )


def migrate(app: Flask) -> None:
    """Apply the real migrations to the app's database."""
    logging.disable(logging.INFO)  # alembic's progress lines
    try:
        with app.app_context():
            upgrade(directory=MIGRATIONS_DIR)
    finally:
        logging.disable(logging.NOTSET)


def csrf_from(html: str) -> str:
    """The CSRF token rendered in a page (same patterns as tests/conftest.py)."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    if match is None:
        raise RuntimeError("page has no CSRF token")
    return match.group(1)


def login(client, identifier: str, password: str = ADMIN_PASSWORD) -> None:
    """Log in through the login form with the page's CSRF token, like a browser."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"identifier": identifier, "password": password, "csrf_token": token}
    )
    if response.status_code not in (302, 303):
        raise RuntimeError(f"login failed: {response.status_code}")


def timed(call: Callable[[], object], repeat: int, warmup: int = 3) -> list[float]:
    """Run `call` `warmup` times untimed, then `repeat` times; return each duration in ms."""
    for _ in range(warmup):
        call()
    durations = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        durations.append((time.perf_counter() - start) * 1000)
    return durations


def timed_round_robin(
    calls: dict[str, Callable[[], object]], repeat: int, warmup: int = 5
) -> dict[str, list[float]]:
    """Time several calls taking turns (so background noise hits them alike); ms per call."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    durations: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(repeat):
        for label, call in calls.items():
            start = time.perf_counter()
            call()
            durations[label].append((time.perf_counter() - start) * 1000)
    return durations


def summary(durations_ms: list[float]) -> dict:
    """Median, p90 and mean of durations in ms."""
    ordered = sorted(durations_ms)
    return {
        "n": len(ordered),
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "mean_ms": statistics.fmean(ordered),
    }


@contextlib.contextmanager
def captured_sql(app: Flask) -> Iterator[list[tuple[str, object]]]:
    """Record (statement, parameters) of every query the app's engine runs inside the block."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany):
        seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app_spec: str, env: dict, workers: int) -> Iterator[tuple[int, subprocess.Popen]]:
    """Serve `app_spec` with gunicorn (sync workers) on a free loopback port: (port, master)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--no-control-socket"]
    command += ["--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), app_spec]
    # gunicorn's log goes to a file, not a pipe nobody reads (a full pipe would stall workers).
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 (our own command line)
            command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            _wait_for(port, process, log)
            yield port, process
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_for(port: int, process: subprocess.Popen, log) -> None:
    """Return once the server accepts connections; raise with its log if it died first."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(log.read().decode(errors="replace")) from None
            time.sleep(0.1)
