"""End-to-end fixtures: the portal started as `make run` starts it, driven by Chromium.

One server (gunicorn, 2 sync workers, on its own throwaway database) per test module; one
Chromium per session (tests/conftest.py). A test fails when the server logged a traceback or
answered a 5xx, when the page raised a JavaScript error or the browser reported a violation of
the Content-Security-Policy, and when a page it visited is wider than the viewport or has a
serious or critical axe-core violation at 390 or 1366 px.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import TIMEOUT_MS, free_port, throwaway_database
from tests.servers import Served, portal_env

ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "E2e-admin-passw0rd"
WIDTHS = (390, 1366)
HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-settling"
AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-4.14.1.min.js").read_text()
# Every document of a page reports each CSP violation on the console (an init script runs
# through the DevTools protocol, outside the page's CSP). Chromium logs most of them itself too.
CSP_REPORTER = """document.addEventListener('securitypolicyviolation', (event) => {
  console.error('CSP violation: ' + event.violatedDirective + ' blocked ' +
                (event.blockedURI || 'inline') + ' at ' + event.sourceFile + ':' +
                event.lineNumber);
});"""
CSP_MESSAGE = re.compile(r"CSP violation|Content Security Policy")
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
}"""


class Portal(Served):
    """The running portal: its URL, environment and logs, and what its pages checked."""

    def __init__(self, port: int, env: dict, logs: Path):
        super().__init__(port, env, logs)
        self.sessions: dict[str, dict] = {}  # storage_state by login
        self.accounts: dict[str, Login] = {}  # made through the UI, by kind
        self.checked: set[tuple] = set()  # (login, path, page name) already checked

    def __call__(self, path: str = "/") -> str:
        """The absolute URL of `path`."""
        return self.url + path


@pytest.fixture(scope="module")
def portal(tmp_path_factory, chromium_executable):
    """The portal set up and served as `make run` does, on a database of this module's own."""
    # chromium_executable first: without a browser the module is skipped before any start-up.
    directory = tmp_path_factory.mktemp("e2e")
    logs = directory / "logs"
    logs.mkdir()
    with throwaway_database(directory) as database_url:
        env = portal_env(database_url, ADMIN_EMAIL, ADMIN_PASSWORD)
        portal = Portal(free_port(), env, logs)
        portal.set_up()
        portal.start()
        try:
            yield portal
        finally:
            portal.stop()


LOG_SIZES = pytest.StashKey[tuple]()
SESSION = pytest.StashKey["Session"]()


@pytest.fixture(autouse=True)
def _server_log_mark(request):
    """Note where the server logs stand when a test on the portal starts."""
    if "portal" in request.fixturenames:
        portal = request.getfixturevalue("portal")
        request.node.stash[LOG_SIZES] = (portal, portal.log_sizes())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail the test (not its teardown) on what the server logged and the pages saw go wrong."""
    try:
        return (yield)
    finally:
        report = []
        if LOG_SIZES in item.stash:
            time.sleep(0.3)  # gunicorn logs a request just after answering it
            portal, sizes = item.stash[LOG_SIZES]
            report += portal.problems_since(sizes)
        if SESSION in item.stash:
            report += item.stash[SESSION].report()
        if report:
            raise AssertionError("\n".join(report))


@dataclass
class Login:
    """A login: who, and how."""

    label: str
    identifier: str
    password: str


ADMIN = Login("admin", ADMIN_EMAIL, ADMIN_PASSWORD)


def _path(url: str) -> str:
    """The path of `url` (query strings are the same page)."""
    return urlsplit(url).path


class Session:
    """The browser side of a test: pages (one context each), their problems and checks."""

    def __init__(self, browser: Browser, portal: Portal):
        self.browser = browser
        self.portal = portal
        self.contexts = []
        self.errors: list[str] = []  # 5xx answers and JavaScript errors
        self.findings: list[str] = []  # layout and accessibility
        self.navigated: dict[str, str] = {}  # path -> URL, every page a page was shown
        self.checked: set[str] = set()
        self.dialogs: list[str] = []  # the confirmations asked (and accepted)
        self.logins: dict[Page, str] = {}

    def page(self, role: Login | None = None, width: int = 1366) -> Page:
        """A new page, logged in as `role` (logged in once per module, then its cookies)."""
        state = self._storage_state(role) if role else None
        context = self.browser.new_context(
            viewport={"width": width, "height": 900}, storage_state=state, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(CSP_REPORTER)
        self.contexts.append(context)
        page = context.new_page()
        self.logins[page] = role.identifier if role else ""
        page.on("pageerror", lambda error: self.errors.append(f"JavaScript error: {error}"))
        page.on("console", lambda message: self._on_console(page, message))
        page.on("response", self._on_response)
        page.on("dialog", self._on_dialog)
        page.on(
            "framenavigated",
            lambda frame: (
                self.navigated.setdefault(_path(frame.url), frame.url)
                if frame == page.main_frame and frame.url.startswith(self.portal.url)
                else None
            ),
        )
        return page

    def _on_response(self, response) -> None:
        if response.status >= 500:
            self.errors.append(
                f"HTTP {response.status} for {response.request.method} {response.url}"
            )

    def _on_console(self, page: Page, message) -> None:
        # Only the portal's own pages: a test page of another origin framing the portal is
        # refused by the portal's policy, and reports that in its own console.
        if CSP_MESSAGE.search(message.text) and page.url.startswith(self.portal.url):
            self.errors.append(f"CSP violation on {_path(page.url)}: {message.text}")

    def _on_dialog(self, dialog) -> None:
        # hx-confirm asks with window.confirm: the user says yes.
        self.dialogs.append(dialog.message)
        dialog.accept()

    def _storage_state(self, role: Login) -> dict:
        if role.identifier not in self.portal.sessions:
            page = self.page()
            page.goto(self.portal("/login"))
            self.check(page, "Log in")
            page.get_by_label("Account number or e-mail").fill(role.identifier)
            page.get_by_label("Password", exact=True).fill(role.password)
            page.get_by_role("button", name="Log in").click()
            expect(page).not_to_have_url(re.compile(r"/login"))
            self.portal.sessions[role.identifier] = page.context.storage_state()
            page.context.close()
            self.contexts.remove(page.context)
        return self.portal.sessions[role.identifier]

    def check(self, page: Page, name: str) -> None:
        """No horizontal scrolling and no serious axe violation at each width, on this page.

        The same page (login, path, name) is checked once per module: another test passing
        through the dashboard again sees the page already checked.
        """
        page.wait_for_load_state()
        # A boosted link or form swaps the page in with htmx: check the page it brings.
        page.wait_for_function(f"() => !document.querySelector('{HTMX_BUSY}')")
        self.checked.add(_path(page.url))
        key = (self.logins.get(page, ""), _path(page.url), name)
        if key in self.portal.checked:
            return
        self.portal.checked.add(key)
        original = page.viewport_size
        if page.evaluate("typeof window.axe") == "undefined":
            # Evaluated through the DevTools protocol: the page's CSP (no inline script) does
            # not apply to it, and stays in force for everything the page itself runs.
            page.evaluate(AXE_SOURCE)
        seen = set()
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": original["height"]})
            scroll_width, inner_width = page.evaluate(
                "() => new Promise(done => requestAnimationFrame(() => done("
                "[document.documentElement.scrollWidth, window.innerWidth])))"
            )
            if scroll_width > inner_width:
                self.findings.append(
                    f"{name} ({_path(page.url)}) at {width} px: the page is {scroll_width} px "
                    f"wide, wider than the viewport ({inner_width} px)"
                )
            for violation in page.evaluate(AXE_RUN):
                if violation["id"] in seen:
                    continue
                seen.add(violation["id"])
                self.findings.append(
                    f"{name} ({_path(page.url)}) at {width} px: axe {violation['impact']} "
                    f"{violation['id']}: {violation['help']} ({'; '.join(violation['nodes'])})"
                )
        page.set_viewport_size(original)

    def report(self) -> list[str]:
        """What went wrong: 5xx answers, JavaScript errors, layout, axe, unchecked pages."""
        unchecked = [url for path, url in self.navigated.items() if path not in self.checked]
        report = list(self.errors)
        report += self.findings
        report += [f"visited but never checked (layout, axe): {url}" for url in unchecked]
        return report


@pytest.fixture
def browse(request, chromium, portal):
    """Pages on the module's portal; the test fails on what they saw go wrong."""
    session = Session(chromium, portal)
    request.node.stash[SESSION] = session
    yield session
    for context in session.contexts:
        context.close()


def in_menu(page: Page, control):
    """`control` of the top bar, opening its menu first when a narrow screen folds it away."""
    menu = page.locator("header details")
    if not control.is_visible() and menu.count() and not menu.first.evaluate("d => d.open"):
        menu.first.locator("summary").click()
    return control


def nav(page: Page, name: str) -> None:
    """Follow a link of the navigation bar (through the menu on a narrow screen)."""
    in_menu(page, page.locator("header").get_by_role("link", name=name, exact=True)).click()
