"""The browser enforces the portal's headers: no framing by another origin, no CSP violation."""

import http.server
import threading

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.e2e.conftest import ADMIN


@pytest.fixture
def other_origin(portal):
    """A page on another port of the same host that frames the logged-in dashboard."""
    page = (
        '<!doctype html><html lang="en"><head><title>Other site</title></head><body>'
        f'<h1>Other site</h1><iframe id="victim" title="victim" src="{portal("/dashboard/")}">'
        "</iframe></body></html>"
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_another_origin_cannot_frame_the_logged_in_dashboard(browse, portal, other_origin):
    """The same browser, logged in: the dashboard opens on its own, but never inside a frame."""
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dashboard")
    browse.check(page, "Dashboard")

    refused = []
    page.on("console", lambda message: refused.append(message.text))
    page.goto(other_origin)
    expect(page.get_by_role("heading", name="Other site")).to_be_visible()
    page.wait_for_timeout(500)  # the frame's answer arrived and was refused
    (frame,) = [f for f in page.frames if f != page.main_frame]
    texts = []
    try:
        texts.append(frame.evaluate("() => document.body ? document.body.innerText : ''"))
    except Exception:  # noqa: BLE001  the error page of a refused frame may not be scriptable
        texts.append("")
    assert not any("Dashboard" in text for text in texts), texts
    assert any("frame-ancestors" in text for text in refused), refused


def test_a_csp_violation_on_a_portal_page_is_reported(browse, portal):
    """The suite's CSP watch works: an inline script run on a page is a reported violation."""
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.injected = true'; document.body.append(s); }"""
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.injected === undefined")  # the policy blocked it
    found = [e for e in browse.errors if e.startswith("CSP violation on /dashboard/")]
    assert found, browse.errors
    for error in found:  # expected here: the rest of the report must stay clean
        browse.errors.remove(error)
