"""The README's screenshots, taken from the demo: seed it, serve it, log in as each role, capture.

Run from the repository root after `make test` set up the tools (Playwright, Chromium):
    .venv/bin/python docs/screenshots.py          # writes docs/*.png
"""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.demo.seed import LOGINS  # noqa: E402

BIN = ROOT / ".venv" / "bin"
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
# (file, login, path, what to wait for): each picture of the README's tour.
SHOTS = [
    ("demo-dashboard.png", "admin", "/dashboard/", "canvas[data-drawn]"),
    ("create-customer.png", "admin", "/accounts/new", "form"),
    ("demo-calls.png", "admin", "/calls/", "table"),
    ("demo-reseller.png", "reseller", "/dashboard/", "canvas[data-drawn]"),
    ("demo-customer.png", "customer", "/my/", "main"),
]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def flask(env: dict, *args: str) -> None:
    """`flask --app app ARGS` on the demo's database."""
    subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def serve(env: dict, port: int) -> subprocess.Popen:
    """gunicorn as `make run` starts it, until its login page answers."""
    server = subprocess.Popen(  # noqa: S603
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "app:app"],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def capture(url: str) -> None:
    """Log in as each role the shots need and capture its pages into docs/."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        for role in dict.fromkeys(login for _file, login, _path, _wait in SHOTS):
            login = LOGINS[role]
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(f"{url}/login")
            page.get_by_label("Account number or e-mail").fill(login.identifier)
            page.get_by_label("Password", exact=True).fill(login.password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(lambda address: "/login" not in address)
            for file, shot_login, path, wait in SHOTS:
                if shot_login == role:
                    page.goto(url + path)
                    page.locator(wait).first.wait_for()
                    page.wait_for_timeout(500)  # the charts' drawing animation
                    page.screenshot(path=str(ROOT / "docs" / file))
                    print(f"docs/{file}: {login.role} at {path}")
            context.close()
        browser.close()


def main() -> None:
    """Seed a throwaway demo, serve it, capture, stop."""
    with tempfile.TemporaryDirectory(prefix="portal-shots-") as folder:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder}/demo.sqlite3",
            "JOBS_SQLITE_PATH": f"{folder}/jobs.sqlite3",
            "SECRET_KEY": secrets.token_hex(32),
        }
        env.pop("MAIL_SERVER", None)
        flask(env, "db", "upgrade")
        flask(env, "demo", "seed")
        port = free_port()
        server = serve(env, port)
        try:
            capture(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
