"""Failed logins are counted once for the whole server, whichever gunicorn worker answers.

The portal runs as `make run` runs it (2 sync workers, no Redis). A sync worker serves one
connection at a time, so a connection left half-sent keeps that worker busy: the test uses this
to send some attempts to one worker and the rest to the other. Counted per worker (the old
in-memory counters), the documented limit of 5 would have allowed 8.
"""

import http.client
import socket
import time
from urllib.parse import urlencode

from tests.conftest import csrf_from

IDENTIFIER = "nobody-e2e@example.com"
WRONG = "Wrong-passw0rd"
LIMIT = 5  # LOGIN_LIMIT_PER_ACCOUNT's default: "5 per 15 minutes"
THROTTLED = "Too many failed attempts. Try again in 15 minutes."


def _request(portal, method: str, path: str, body: str = "", headers: dict | None = None):
    """One request on a fresh connection: (status, headers, text)."""
    connection = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def _failed_login(portal) -> tuple[int, str, str | None]:
    """A login with a wrong password, as a new browser makes it: (status, page, Retry-After)."""
    _status, headers, page = _request(portal, "GET", "/login")
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    form = {"csrf_token": csrf_from(page), "identifier": IDENTIFIER, "password": WRONG}
    status, headers, page = _request(
        portal,
        "POST",
        "/login",
        urlencode(form),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    return status, page, headers.get("Retry-After")


def _busy_worker(portal) -> socket.socket:
    """Keep one idle worker busy with a request that never ends (until the socket closes)."""
    blocker = socket.create_connection(("127.0.0.1", portal.port), timeout=30)
    blocker.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: unfinished
    time.sleep(0.5)  # the worker accepts it and waits for the rest
    return blocker


def test_the_login_limit_holds_across_both_workers(portal):
    statuses = []
    first = _busy_worker(portal)  # worker A busy: attempts 1-3 go to worker B
    for _ in range(3):
        statuses.append(_failed_login(portal)[0])
    second = _busy_worker(portal)  # worker B busy too
    first.close()  # worker A free: attempts 4-6 go to worker A
    try:
        for _ in range(2):
            statuses.append(_failed_login(portal)[0])
        status, page, retry_after = _failed_login(portal)
    finally:
        second.close()
    assert statuses == [422] * LIMIT
    assert status == 429 and THROTTLED in page
    assert 840 < int(retry_after) <= 900
    # Whichever worker answers from now on refuses the identifier.
    for _ in range(4):
        assert _failed_login(portal)[0] == 429
