"""The portal served as `make run` serves it (gunicorn, 2 sync workers) on the test database.

The test client and werkzeug's thread read a response while the request's app context is
still open; gunicorn sends the body after Flask's teardown, as users get it. A test fails when
the server's log shows a traceback.
"""

import http.client
import http.cookiejar
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, ROOT, csrf_from, free_port


@dataclass
class Answer:
    """One HTTP answer, its body read to the end (raw: not decompressed)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


class Gunicorn:
    """A gunicorn process serving app:app, and the log it writes."""

    def __init__(self, database_url: str, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env.update(DATABASE_URL=database_url, SECRET_KEY="served-test-secret")
        command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--no-control-socket"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--chdir", str(ROOT)]
        command += ["--access-logfile", "-", "app:app"]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (our own command line)
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Return once /login answers; fail with the log if the server died or never answered."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                login_page = self.url + "/login"  # our own http:// address, as below
                with urllib.request.urlopen(login_page, timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"gunicorn did not start:\n{self.log()}", pytrace=False)

    def log(self, start: int = 0) -> str:
        """The server's log from byte `start`."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        """How many bytes the log holds now."""
        return self.log_path.stat().st_size

    def stop(self) -> None:
        """Stop the server (gracefully, then for good)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class ServedClient:
    """A cookie-keeping HTTP client of the served portal that logs in like a browser."""

    def __init__(self, server: Gunicorn):
        self.server = server
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str, headers: dict | None = None) -> Answer:
        """GET `path`, reading the whole body (an answer cut short raises IncompleteRead)."""
        request = urllib.request.Request(self.server.url + path, headers=headers or {})  # noqa: S310
        try:
            with self.opener.open(request, timeout=120) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read())

    def login(self, identifier: str, password: str = PASSWORD) -> None:
        """Log in through the login form with its CSRF token."""
        token = csrf_from(self.get("/login").body.decode())
        form = {"identifier": identifier, "password": password, "csrf_token": token}
        body = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.server.url + "/login", data=body)  # noqa: S310
        with self.opener.open(request, timeout=30) as response:
            assert "/login" not in response.url, "login failed"


@pytest.fixture(scope="module")
def _gunicorn(database_url, _migrated, tmp_path_factory):
    """One gunicorn per test module on the session's test database."""
    server = Gunicorn(database_url, tmp_path_factory.mktemp("gunicorn") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(app, _gunicorn):
    """A client of the served portal; the test fails if the server logged a traceback."""
    start = _gunicorn.log_size()
    yield ServedClient(_gunicorn)
    log = _gunicorn.log(start)
    assert "Traceback" not in log, log
