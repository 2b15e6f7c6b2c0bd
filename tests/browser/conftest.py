"""Browser fixtures: the app on a werkzeug thread (Chromium: tests/conftest.py)."""

import threading
from dataclasses import dataclass

import pytest
from flask import Flask
from werkzeug.serving import make_server

from portal.extensions import db
from portal.models import RateGroup, Role, Status
from tests.conftest import TIMEOUT_MS, _empty_all_tables, make_account, make_test_app

ADMIN_NUMBER = "1000000001"


@dataclass
class LiveServer:
    """A running portal: its base URL, the app behind it and the administrator's login."""

    url: str
    app: Flask
    admin_number: str

    def __call__(self, path: str = "/") -> str:
        """The absolute URL of `path` on this server."""
        return self.url + path


@pytest.fixture
def live_server(database_url, _migrated):
    """The app on a real port, with an admin and a "Default" rate group; all rows deleted after."""
    app = make_test_app(database_url)
    try:
        with app.app_context():
            make_account(Role.ADMIN, ADMIN_NUMBER, email="admin@example.com")
            db.session.add(RateGroup(name="Default", status=Status.ACTIVE, reseller_id=None))
            db.session.commit()
            db.session.remove()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
        thread.start()
        try:
            yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, ADMIN_NUMBER)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
    finally:
        with app.app_context():
            db.session.rollback()
            _empty_all_tables()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def page(chromium, live_server):
    """A page in a fresh browser context; fails the test on JavaScript errors or server errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    page.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status} for {response.request.method} {response.url}")
            if response.status >= 500
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not problems, "\n".join(problems)
