"""The portal served as `make run` serves it (gunicorn, 2 sync workers) on the test database.

The test client and werkzeug's thread read a response while the request's app context is
still open; gunicorn sends the body after Flask's teardown, as users get it. A test fails when
the server's log shows a traceback or its access log a 5xx.
"""

import http.client
import http.cookiejar
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, csrf_from, free_port
from tests.servers import Served


@dataclass
class Answer:
    """One HTTP answer, its body read to the end (raw: not decompressed)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str = ""  # where the answer came from, after redirects


class Gunicorn(Served):
    """The portal's processes as `make run` starts them, on the session's test database."""

    def __init__(self, database_url: str, logs: Path):
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env.update(DATABASE_URL=database_url, SECRET_KEY="served-test-secret")
        super().__init__(free_port(), env, logs)
        self.start()


class ServedClient:
    """A cookie-keeping HTTP client of the served portal that logs in like a browser."""

    def __init__(self, server: Served):
        self.server = server
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str, headers: dict | None = None) -> Answer:
        """GET `path`, reading the whole body (an answer cut short raises IncompleteRead)."""
        request = urllib.request.Request(self.server.url + path, headers=headers or {})  # noqa: S310
        return self._open(request)

    def _open(self, request: urllib.request.Request) -> Answer:
        """Send `request`, following redirects, and read the whole answer."""
        try:
            with self.opener.open(request, timeout=120) as response:
                return Answer(response.status, response.headers, response.read(), response.url)
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read(), error.url)

    def post(self, path: str, token_from: str, files: dict | None = None) -> Answer:
        """POST a form with the CSRF token of the page `token_from` and `files` (name:
        (filename, bytes)) as multipart parts, as a browser submits it; redirects followed."""
        token = csrf_from(self.get(token_from).body.decode())
        boundary = secrets.token_hex(16)
        parts = [('name="csrf_token"', token.encode())]
        for name, (filename, content) in (files or {}).items():
            parts.append((f'name="{name}"; filename="{filename}"', content))
        body = b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode()
            + content
            + b"\r\n"
            for disposition, content in parts
        )
        body += f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        request = urllib.request.Request(self.server.url + path, body, headers)  # noqa: S310
        return self._open(request)

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
    server = Gunicorn(database_url, tmp_path_factory.mktemp("gunicorn"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(app, _gunicorn):
    """A client of the served portal; the test fails on a traceback or a 5xx in the logs."""
    sizes = _gunicorn.log_sizes()
    yield ServedClient(_gunicorn)
    problems = _gunicorn.problems_since(sizes)
    assert not problems, "\n".join(problems)
