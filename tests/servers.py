"""The portal's processes as `make run` starts them (gunicorn and the job consumer), for tests.

Shared by tests/e2e (the browser suite) and tests/served (downloads without a browser): each
starts the same command lines, waits the same way and reads the logs for the same problems.
"""

import http.client
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent  # the virtualenv's executables, as `make run` uses them
WORKERS = 2
START_TIMEOUT_S = 60

# What `make db` runs before serving.
SETUP_COMMANDS = (("db", "upgrade"), ("init",))


def web_command(port: int, logs: Path) -> list[str]:
    """gunicorn as `make run` starts it, its access log in a file the tests read."""
    return [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--access-logfile",
        str(logs / "web-access.log"),
        # Its own control socket: the default (~/.gunicorn/gunicorn.ctl) is shared by every
        # gunicorn of the user, and a stopping test server would remove another's.
        "--control-socket",
        str(logs / "gunicorn.ctl"),
        "app:app",
    ]


def worker_command(_port: int, _logs: Path) -> list[str]:
    """The job consumer as the Procfile starts it."""
    return [str(BIN / "flask"), "--app", "app", "jobs", "worker"]


def portal_env(database_url: str, admin_email: str, admin_password: str) -> dict:
    """The environment of a portal served on `database_url`; `flask init` makes its admin."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        # From the environment, so nothing is written to instance/.
        "SECRET_KEY": secrets.token_hex(32),
        "PORTAL_ADMIN_EMAIL": admin_email,
        "PORTAL_ADMIN_PASSWORD": admin_password,
        "PYTHONUNBUFFERED": "1",
    }
    # Failed logins counted in the server's memory; mail waits in the outbox.
    for name in ("REDIS_URL", "MAIL_SERVER", "PORTAL_URL", "FLASK_APP"):
        env.pop(name, None)
    return env


# The long-running processes `make run` starts (the Procfile's), by name.
PROCESSES = {"web": web_command, "worker": worker_command}

TRACEBACK = "Traceback (most recent call last)"
ACCESS_5XX = re.compile(r'"(?P<request>[A-Z]+ [^"]*)" (?P<status>5\d\d) ')


def log_problems(name: str, text: str) -> list[str]:
    """Tracebacks in a process log, or 5xx answers in an access log (gunicorn's format)."""
    problems = []
    if name.endswith("-access.log"):
        for match in ACCESS_5XX.finditer(text):
            problems.append(f"{name}: HTTP {match['status']} for {match['request']}")
        return problems
    start = text.find(TRACEBACK)
    while start != -1:
        problems.append(f"{name}: traceback in the server log:\n" + text[start : start + 3000])
        start = text.find(TRACEBACK, start + 1)
    return problems


class Served:
    """The processes of one running portal, their logs, and what the logs have shown."""

    def __init__(self, port: int, env: dict, logs: Path, processes: dict | None = None):
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        # The job queue of this portal only: its own SQLite file unless a test names Redis.
        env = {**env, "JOBS_SQLITE_PATH": str(logs / "jobs.sqlite3")}
        if "JOBS_REDIS_URL" not in env:
            env.pop("REDIS_URL", None)
        self.env = env
        self.logs = logs
        # What to start, by name: the Procfile's processes unless a test wants more consumers.
        self.commands = processes or PROCESSES
        self.processes: dict[str, subprocess.Popen] = {}

    def set_up(self) -> None:
        """What `make db` runs before serving: migrations, then the first admin."""
        for command in SETUP_COMMANDS:
            self.flask(*command)

    def start(self) -> None:
        """Start every process of `commands` and wait until the portal answers."""
        try:
            for name, command in self.commands.items():
                with open(self.logs / f"{name}.log", "w") as log:
                    self.processes[name] = subprocess.Popen(  # noqa: S603 (our own command)
                        command(self.port, self.logs),
                        cwd=ROOT,
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self) -> None:
        """Poll the login page until it answers; fail with the log when a process died."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    log = (self.logs / f"{name}.log").read_text()
                    pytest.fail(f"{name} exited with {process.returncode}:\n{log}", pytrace=False)
            connection = http.client.HTTPConnection(f"127.0.0.1:{self.port}", timeout=5)
            try:
                connection.request("GET", "/login")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
            finally:
                connection.close()
        pytest.fail(f"the portal did not answer within {START_TIMEOUT_S} s", pytrace=False)

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL after 10 s."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def flask(self, *args: str) -> str:
        """Run `flask --app app ARGS` against the same database; its output goes to the log."""
        completed = subprocess.run(
            [str(BIN / "flask"), "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with open(self.logs / "cli.log", "a") as log:
            log.write(f"$ flask {' '.join(args)}\n{completed.stdout}{completed.stderr}")
        assert completed.returncode == 0, f"flask {' '.join(args)} failed:\n{completed.stderr}"
        return completed.stdout

    def log_sizes(self) -> dict[Path, int]:
        """How far each log has been read."""
        return {path: path.stat().st_size for path in self.logs.glob("*.log")}

    def problems_since(self, sizes: dict[Path, int]) -> list[str]:
        """Tracebacks and 5xx answers logged after `sizes` was taken."""
        problems = []
        for path in sorted(self.logs.glob("*.log")):
            with open(path, errors="replace") as log:
                log.seek(sizes.get(path, 0))
                problems += log_problems(path.name, log.read())
        return problems
