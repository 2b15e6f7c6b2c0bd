"""`make demo` from a fresh clone to the login page, next to `make run` in the same run."""

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def login_answers(port: int) -> bool:
    """True once GET /login answers 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/login")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def time_target(target: str, timeout: float) -> float:
    """Seconds from `make <target>` in a fresh clone to its login page answering."""
    with tempfile.TemporaryDirectory(prefix="portal-demo-bench-") as folder:
        clone = Path(folder) / "portal"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)  # noqa: S603, S607
        # The clone shares this checkout's virtualenv: the benchmark times the portal's own
        # set-up (migrations, first admin or the demo's seed, start-up), not pip's downloads.
        (clone / ".venv").symlink_to(ROOT / ".venv")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["PORT"] = str(port)
        env["SECRET_KEY"] = "bench-secret"
        log_path = Path(folder) / f"{target}.log"
        with open(log_path, "w") as log:
            return _serve(clone, target, port, env, log, log_path, timeout)


def _serve(clone, target, port, env, log, log_path, timeout) -> float:
    """Start `make <target>` and time it until its login page answers; then stop it."""
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603
        ["make", "-s", target, f"PORT={port}"],  # noqa: S607
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not login_answers(port):
            if process.poll() is not None:
                log.flush()
                sys.exit(f"make {target} ended: {log_path.read_text()}")
            if time.perf_counter() - started > timeout:
                sys.exit(f"make {target} did not serve within {timeout} s")
            time.sleep(0.2)
        return time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    """Time both targets in turns and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"run": [], "demo": []}
    for round_number in range(args.rounds):
        order = ("run", "demo") if round_number % 2 == 0 else ("demo", "run")
        for target in order:
            seconds = time_target(target, args.timeout)
            times[target].append(seconds)
            load = os.getloadavg()[0]
            print(f"round {round_number + 1}: make {target}: {seconds:.1f} s (load {load:.1f})")
    run, demo = statistics.median(times["run"]), statistics.median(times["demo"])
    print(f"median: make run {run:.1f} s, make demo {demo:.1f} s, demo/run {demo / run:.1f}x")


if __name__ == "__main__":
    main()
