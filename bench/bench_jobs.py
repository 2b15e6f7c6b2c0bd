"""Customer import of 10,000 chosen passwords (scrypt) through the Jobs path, beside call traffic.

The portal is served as `make run` serves it: gunicorn (2 sync workers) and job consumers
(`flask --app app jobs worker`), all on one throwaway database and one queue. For 1 and for 2
consumers (processes, one job at a time each): call authorizations at a steady pace with no
import running (the baseline), then the import file posted to the import page as the admin,
and the same authorizations while it runs; the import is timed from the POST to the job's
finish. With --split the same lines also go in as two files posted at once.
"""

import argparse
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.bench_authorize import DESTINATION, seed  # noqa: E402
from bench.bench_export import Client  # noqa: E402
from bench.common import (  # noqa: E402
    FAST_HASH,
    ROOT,
    backends,
    csrf_from,
    gunicorn,
    make_app,
    write_json,
)
from portal.extensions import db  # noqa: E402
from portal.models import Account, Job, JobStatus, RateGroup, Role  # noqa: E402

FLASK = Path(sys.executable).parent / "flask"
IMPORT_PAGE = "/accounts/import"
AUTHORIZE = "/api/v1/calls/authorize"
REDIS_URL = "redis://127.0.0.1:6379/0"
SLOW_MS = 1000  # answers slower than this are listed with when they were sent


class Uploader(Client):
    """The admin's browser: posts a CSV file to the import page with the page's CSRF token."""

    def upload(self, content: bytes, filename: str) -> str:
        """Post the file; the URL of the job page the answer redirected to."""
        with self.open(IMPORT_PAGE) as page:
            token = csrf_from(page.read().decode())
        boundary = secrets.token_hex(16)
        head = f"--{boundary}\r\nContent-Disposition: form-data; name="
        body = (
            f'{head}"csrf_token"\r\n\r\n{token}\r\n'
            f'{head}"file"; filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        body += content + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        with self.open(IMPORT_PAGE, body, headers) as answer:
            if "/jobs/" not in answer.url:
                raise RuntimeError(f"the import did not start a job: {answer.url}")
            return answer.url


def import_file(lines: int, group_id: int, tag: str) -> bytes:
    """`lines` new customers of the rate group, each with a chosen password."""
    rows = ["first_name,last_name,email,password,rate_group_id"]
    rows += [
        f"Bench,Person {n},{tag}.{n}@bench.example,Chosen-{tag}-{n}x,{group_id}"
        for n in range(lines)
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


class Calls(threading.Thread):
    """Call authorizations at a steady pace (`rate` per second over `connections` threads)."""

    def __init__(self, port: int, key: str, numbers: list[str], rate: float, connections: int):
        super().__init__(daemon=True)
        self.port, self.numbers = port, numbers
        self.interval = connections / rate
        self.connections = connections
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.latencies: list[float] = []
        self.failures = 0
        # (when it was sent, UTC; ms; allowed) of each answer slower than SLOW_MS.
        self.slow: list[tuple[datetime, float, bool]] = []
        self.stopped = threading.Event()
        self.serial = iter(range(10**9))
        self.run_id = secrets.token_hex(3)

    def _client(self) -> None:
        next_at = time.perf_counter()
        while not self.stopped.is_set():
            serial = next(self.serial)
            body = json.dumps(
                {
                    "call_id": f"{self.run_id}-{serial}",
                    "account": self.numbers[serial % len(self.numbers)],
                    "destination": DESTINATION,
                }
            )
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request("POST", AUTHORIZE, body, self.headers)
                response = connection.getresponse()
                allowed = response.status == 200 and json.loads(response.read())["allowed"]
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                allowed = False
            finally:
                connection.close()
            latency = (time.perf_counter() - started) * 1000
            self.latencies.append(latency)
            self.failures += not allowed
            if latency > SLOW_MS or not allowed:
                sent = datetime.now(UTC).replace(tzinfo=None) - timedelta(milliseconds=latency)
                self.slow.append((sent, latency, allowed))
            # The next one at its slot; one late answer does not bring a burst after it.
            next_at = max(next_at + self.interval, time.perf_counter())
            self.stopped.wait(next_at - time.perf_counter())

    def run(self) -> None:
        threads = [threading.Thread(target=self._client) for _ in range(self.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stop(self) -> dict:
        """Stop and summarize: answers, failures, p50 and p99 in ms."""
        self.stopped.set()
        self.join()
        ordered = sorted(self.latencies)
        count = len(ordered)
        return {
            "answers": count,
            "failures": self.failures,
            "p50_ms": ordered[count // 2],
            "p99_ms": ordered[min(count - 1, int(count * 0.99))],
            "max_ms": ordered[-1],
        }


@contextmanager
def consumers(count: int, env: dict, logs: Path):
    """`count` job consumers (`flask jobs worker --workers 1`), stopped (SIGTERM) after."""
    processes = []
    try:
        for index in range(count):
            log = open(logs / f"worker-{index}.log", "w")  # noqa: SIM115 (closed below)
            command = [str(FLASK), "--app", "app", "jobs", "worker", "--workers", "1"]
            processes.append(
                (
                    subprocess.Popen(  # noqa: S603 (our own command)
                        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                    ),
                    log,
                )
            )
        time.sleep(3)  # the consumers import the app and connect to the queue
        yield [process for process, _log in processes]
    finally:
        for process, log in processes:
            process.terminate()
            process.wait(timeout=30)
            log.close()


def wait_for_jobs(app, job_ids: list[int]) -> list[Job]:
    """Poll the jobs table until every job ended; the jobs."""
    with app.app_context():
        while True:
            db.session.rollback()
            jobs = db.session.scalars(
                select(Job).where(Job.id.in_(job_ids)).execution_options(populate_existing=True)
            ).all()
            if all(job.is_final for job in jobs):
                db.session.expunge_all()
                return jobs
            time.sleep(0.2)


def run_once(setup: dict, workers: int, files: int, args) -> dict:
    """Baseline calls, then the import of args.count lines in `files` files with `workers`
    consumers, with the same calls during it."""
    app, env, port = setup["app"], setup["env"], setup["port"]
    per_file = args.count // files
    uploads = [
        import_file(per_file, setup["group_id"], f"w{workers}f{files}n{part}")
        for part in range(files)
    ]
    with consumers(workers, env, setup["logs"]):
        idle = Calls(port, setup["key"], setup["numbers"], args.rate, args.connections)
        idle.start()
        time.sleep(args.idle_seconds)
        idle_calls = idle.stop()
        busy = Calls(port, setup["key"], setup["numbers"], args.rate, args.connections)
        busy.start()
        posted_at = datetime.now(UTC).replace(tzinfo=None)
        started = time.perf_counter()
        job_urls = [None] * files
        posters = [
            threading.Thread(
                target=lambda i=i: job_urls.__setitem__(
                    i, setup["uploader"].upload(uploads[i], f"people-{i}.csv")
                )
            )
            for i in range(files)
        ]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        answered = time.perf_counter() - started
        jobs = wait_for_jobs(app, [int(url.rsplit("/", 1)[1]) for url in job_urls])
        busy_calls = busy.stop()
    for job in jobs:
        if job.status != JobStatus.DONE:
            raise RuntimeError(f"job {job.id} {job.status.value}: {job.error}")
    finished = max(job.finished_at for job in jobs)
    # When the slow answers were sent, in seconds after the job's start (one file) and before
    # its end: the end of an import is its one write transaction.
    slow = [
        {
            "after_start_s": (sent - min(job.started_at for job in jobs)).total_seconds(),
            "before_finish_s": (finished - sent).total_seconds(),
            "ms": latency,
            "allowed": allowed,
        }
        for sent, latency, allowed in busy.slow
    ]
    seconds = (finished - posted_at).total_seconds()
    return {
        "consumers": workers,
        "files": files,
        "lines": per_file * files,
        "post_answer_s": answered,
        "queued_s": max((job.started_at - job.created_at).total_seconds() for job in jobs),
        "seconds": seconds,
        "lines_per_second": per_file * files / seconds,
        "idle": idle_calls,
        "busy": busy_calls,
        "slow": slow,
        "p50_ratio": busy_calls["p50_ms"] / idle_calls["p50_ms"],
        "p99_ratio": busy_calls["p99_ms"] / idle_calls["p99_ms"],
        "load_average": os.getloadavg()[0],
    }


def measure(backend: str, database_url: str, args) -> list[dict]:
    """Seed, serve, and run each configuration on the same server and database."""
    key, numbers, _chained = seed(database_url, args.accounts, args.rates)
    app = make_app(database_url, FAST_HASH)
    with app.app_context():
        group_id = db.session.scalar(select(RateGroup.id).where(RateGroup.name == "Bench"))
        admin = db.session.scalar(select(Account.account_number).where(Account.role == Role.ADMIN))
    results = []
    with tempfile.TemporaryDirectory(prefix="portal-bench-jobs-") as folder:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "bench-secret",
            "JOBS_SQLITE_PATH": str(Path(folder) / "jobs.sqlite3"),
        }
        env.pop("REDIS_URL", None)
        if args.redis:
            env.update(JOBS_REDIS_URL=REDIS_URL, JOBS_QUEUE_NAME=f"bench{secrets.token_hex(4)}")
        with gunicorn("app:app", env, 2) as (port, _master):
            setup = {
                "app": app,
                "env": env,
                "port": port,
                "logs": Path(folder),
                "key": key,
                "numbers": numbers,
                "group_id": group_id,
                "uploader": Uploader(port, admin),
            }
            plan = [(workers, 1) for workers in (1, 2)]
            if args.split:
                plan += [(workers, 2) for workers in (1, 2)]
            for workers, files in plan:
                result = {"backend": backend, **run_once(setup, workers, files, args)}
                report(result)
                results.append(result)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return results


def report(result: dict) -> None:
    """Print one configuration's figures."""
    idle, busy = result["idle"], result["busy"]
    print(
        f"{result['backend']}: {result['lines']:,} lines in {result['files']} file(s), "
        f"{result['consumers']} consumer(s): {result['seconds']:.1f} s end to end "
        f"({result['lines_per_second']:.0f} lines/s; the page answered in "
        f"{result['post_answer_s']:.2f} s, queued {result['queued_s']:.1f} s); load average "
        f"{result['load_average']:.1f}\n"
        f"  authorizations idle: p50 {idle['p50_ms']:.1f} ms  p99 {idle['p99_ms']:.1f} ms "
        f"({idle['answers']} answers, {idle['failures']} failed)\n"
        f"  during the import:   p50 {busy['p50_ms']:.1f} ms  p99 {busy['p99_ms']:.1f} ms  "
        f"max {busy['max_ms']:.0f} ms ({busy['answers']} answers, {busy['failures']} failed)\n"
        f"  busy / idle: p50 {result['p50_ratio']:.1f}x  p99 {result['p99_ratio']:.1f}x"
    )
    for answer in result["slow"]:
        print(
            f"  slow: {answer['ms']:.0f} ms{'' if answer['allowed'] else ', failed'}, sent "
            f"{answer['after_start_s']:.1f} s after the job started and "
            f"{answer['before_finish_s']:.1f} s before it finished"
        )


def main(argv: list[str] | None = None) -> list[dict]:
    """Run on SQLite (and PostgreSQL with --postgres); print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=10_000, help="lines to import")
    parser.add_argument("--rate", type=float, default=20, help="authorizations per second")
    parser.add_argument("--connections", type=int, default=2, help="authorizing threads")
    parser.add_argument("--idle-seconds", type=float, default=20, help="baseline length")
    parser.add_argument("--accounts", type=int, default=1000, help="funded callers")
    parser.add_argument("--rates", type=int, default=10_000, help="rates in the group")
    parser.add_argument("--split", action="store_true", help="also as two files at once")
    parser.add_argument("--redis", action="store_true", help=f"the queue on {REDIS_URL}")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="with --postgres: only there")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    for backend, database_url in backends(args.postgres):
        if backend != "sqlite" or not args.no_sqlite:
            results += measure(backend, database_url, args)
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
