"""Two job consumers on one Redis queue and one PostgreSQL database, one of them killed with -9.

Each test serves the portal as `make run` does (gunicorn and the consumer, here two consumers)
on a PostgreSQL database and a Redis queue of its own. PostgreSQL only: SQLite's queue is one
machine's, and CI runs the suite once on PostgreSQL (.ci/run).
"""

import csv
import io
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, text

from portal.accounts.bulk import mass_create
from portal.background import records
from portal.billing.service import add_charge
from portal.extensions import db
from portal.models import (
    Account,
    Document,
    DocumentKind,
    Job,
    JobFile,
    JobStatus,
    RateGroup,
    Role,
    Status,
    utcnow,
)
from tests.conftest import ROOT, free_port, make_account, make_test_app, throwaway_database
from tests.served.conftest import ServedClient
from tests.servers import Served, portal_env, web_command, worker_command

ADMIN_EMAIL = "admin@jobs.example.com"
ADMIN_PASSWORD = "Jobs-admin-passw0rd"
CONSUMERS = ("worker-a", "worker-b")
# Two consumers of the same queue beside the web server (the Procfile starts one).
PROCESSES = {"web": web_command, **dict.fromkeys(CONSUMERS, worker_command)}
# A job whose heartbeat is this old is dead: small, so a test need not wait a minute.
STALE_SECONDS = 5
DUE_ACCOUNTS = 2000
BILLING_CHUNK_SIZE = 50  # 40 chunks: a consumer killed mid-run leaves some unbilled
IMPORTED = 200
WAIT_S = 600  # a bound on any wait, so that a stuck job fails the test instead of hanging it


@pytest.fixture
def cluster(tmp_path, redis_url):
    """The portal on its own database and queue: gunicorn and two consumers; the test's app
    context is on the same database. The test fails on a traceback or a 5xx in the logs."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres", "mysql", "mariadb")):
        pytest.skip("needs a database server (DATABASE_URL): two consumers, one database")
    queue = f"test{secrets.token_hex(6)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    with throwaway_database(tmp_path) as database_url:
        env = portal_env(database_url, ADMIN_EMAIL, ADMIN_PASSWORD)
        env.update(
            JOBS_REDIS_URL=redis_url,
            JOBS_QUEUE_NAME=queue,
            JOBS_STALE_SECONDS=str(STALE_SECONDS),
            BILLING_CHUNK_SIZE=str(BILLING_CHUNK_SIZE),
        )
        served = Served(free_port(), env, logs, PROCESSES)
        served.set_up()
        app = make_test_app(database_url)
        try:
            with app.app_context():
                served.start()
                yield served
                problems = served.problems_since({})
                assert not problems, "\n".join(problems)
        finally:
            served.stop()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(match=f"*{queue}*"):
                client.delete(key)
            client.close()


def enqueue(cluster: Served, *tasks: str) -> None:
    """Put the portal's `tasks` (of portal.jobs.tasks) on the cluster's queue at once, as the
    scheduler of a consumer does."""
    code = "from portal.jobs import tasks; " + "; ".join(f"tasks.{task}()" for task in tasks)
    subprocess.run(  # noqa: S603 (our own command)
        [sys.executable, "-c", code], cwd=ROOT, env=cluster.env, check=True, timeout=120
    )


def wait_for(condition, what: str):
    """Poll `condition` (on a fresh transaction each time) until it is true; its value."""
    deadline = time.monotonic() + WAIT_S
    while True:
        db.session.rollback()
        db.session.expire_all()
        if value := condition():
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def admin_client(cluster: Served) -> ServedClient:
    """A client logged in as the administrator `flask init` made."""
    client = ServedClient(cluster)
    client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    return client


def job_of(answer) -> Job:
    """The job whose page a form answered with (after its redirect)."""
    assert answer.status == 200, answer.body[:2000]
    match = re.search(r"/jobs/(\d+)$", answer.url)
    assert match, answer.url
    return db.session.get(Job, int(match.group(1)))


def running_consumer(cluster: Served, job: Job, sizes: dict) -> str:
    """The consumer running `job` (the only job running): it logged taking the task."""
    wait_for(
        lambda: db.session.scalar(select(Job.done).where(Job.id == job.id)) > 0,
        "the job to report progress",
    )
    taken = [
        name
        for name in CONSUMERS
        if "Executing portal.background.records.run_job"
        in (cluster.logs / f"{name}.log").read_text()[sizes.get(cluster.logs / f"{name}.log", 0) :]
    ]
    assert len(taken) == 1, taken
    return taken[0]


def kill(cluster: Served, name: str) -> None:
    """kill -9 the consumer `name`: no cleanup, its job's heartbeat simply stops."""
    cluster.processes[name].kill()
    cluster.processes[name].wait()


def finished(job_id: int) -> Job | None:
    """The job once it ended (done or failed), else None."""
    job = db.session.get(Job, job_id)
    return job if job.is_final else None


def recover(cluster: Served, job: Job) -> Job:
    """Let a live consumer's recovery find the dead job's stopped heartbeat; the job once it
    ended (failed, or run again to its end)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        enqueue(cluster, "recover_jobs")  # instead of waiting for the minute it runs by itself
        db.session.rollback()
        db.session.expire_all()
        if found := finished(job.id):
            return found
        assert time.monotonic() < deadline, f"job {job.id} never ended"
        time.sleep(1)


def due_accounts(admin: Account, count: int) -> list[int]:
    """`count` postpaid customers billed daily, half the admins' and half a reseller's (two
    numberings), each with a charge from two days ago: all due today. Their ids."""
    reseller = make_account(Role.RESELLER, "2000000001", first_name="Reseller")
    group = RateGroup(name="Reseller plan", status=Status.ACTIVE, reseller_id=reseller.id)
    db.session.add(group)
    db.session.commit()
    default = db.session.scalar(select(RateGroup).where(RateGroup.name == "Default"))
    ids = []
    half = count // 2
    for actor, rate_group, part in ((admin, default, half), (reseller, group, count - half)):
        data = {
            "count": part,
            "rate_group_id": rate_group.id,
            "account_type": "postpaid",
            "credit_limit": "100",
            "billing_schedule": "daily",
            "timezone": "UTC",
            "create_sip_device": False,
        }
        ids += mass_create(actor, data).account_ids
    for account in db.session.scalars(select(Account).where(Account.id.in_(ids))):
        add_charge(None, account, "2.50", "Line rental")
    two_days_ago = utcnow() - timedelta(days=2)
    db.session.execute(text("UPDATE ledger_entries SET created_at = :at"), {"at": two_days_ago})
    db.session.commit()
    return ids


def invoices() -> list:
    """(account_id, issuer_key, number) of every invoice."""
    return db.session.execute(
        select(Document.account_id, Document.issuer_key, Document.number).where(
            Document.kind == DocumentKind.INVOICE
        )
    ).all()


def assert_billed_once(account_ids: list[int]) -> None:
    """Every account has exactly one invoice; each issuer's numbers are 1..N."""
    found = invoices()
    per_account = Counter(invoice.account_id for invoice in found)
    assert set(per_account) == set(account_ids)
    assert set(per_account.values()) == {1}, per_account.most_common(3)
    numbers = defaultdict(list)
    for invoice in found:
        numbers[invoice.issuer_key].append(invoice.number)
    assert len(numbers) == 2
    for issuer, taken in numbers.items():
        assert sorted(taken) == list(range(1, len(taken) + 1)), f"issuer {issuer}"


def admin() -> Account:
    """The administrator `flask init` made."""
    return db.session.scalar(select(Account).where(Account.email == ADMIN_EMAIL))


def test_the_hourly_billing_started_on_both_consumers_bills_each_account_once(cluster):
    account_ids = due_accounts(admin(), DUE_ACCOUNTS)
    queue = redis.Redis.from_url(cluster.env["JOBS_REDIS_URL"])
    enqueue(cluster, "hourly_billing", "hourly_billing")
    wait_for(lambda: len(invoices()) >= DUE_ACCOUNTS, "every due account to be invoiced")
    # Both deliveries of the task taken, and the run's lock let go: nothing is left to run.
    wait_for(
        lambda: (
            not any(queue.scan_iter(match=f"*{cluster.env['JOBS_QUEUE_NAME']}*billing-run*"))
            and not queue.llen(f"huey.redis.{cluster.env['JOBS_QUEUE_NAME']}")
        ),
        "both billing tasks to end",
    )
    queue.close()
    assert_billed_once(account_ids)
    consumers_log = "".join((cluster.logs / f"{name}.log").read_text() for name in CONSUMERS)
    # Both started it; the second found the first holding the run's lock and did not run.
    # (At least: a consumer's scheduler adds its own when the test runs across the hour.)
    assert consumers_log.count("Executing portal.jobs.tasks.hourly_billing") >= 2
    assert consumers_log.count("not run, unable to acquire lock billing-run") >= 1


def chosen_csv(group_id: int, lines: int) -> bytes:
    """An import file whose every line has a chosen password (the slow hash)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["first_name", "email", "password", "rate_group_id"])
    for n in range(lines):
        writer.writerow([f"Person{n}", f"person{n}@example.com", f"Chosen-pass{n}", group_id])
    return buffer.getvalue().encode()


def customers() -> int:
    """How many customer accounts exist."""
    return db.session.scalar(
        select(func.count()).select_from(Account).where(Account.role == Role.CUSTOMER)
    )


def test_an_import_whose_consumer_is_killed_fails_saves_nothing_and_runs_again(cluster):
    group_id = db.session.scalar(select(RateGroup.id).where(RateGroup.name == "Default"))
    content = chosen_csv(group_id, IMPORTED)
    client = admin_client(cluster)
    sizes = cluster.log_sizes()
    job = job_of(
        client.post("/accounts/import", "/accounts/import", {"file": ("people.csv", content)})
    )
    victim = running_consumer(cluster, job, sizes)
    kill(cluster, victim)

    failed = recover(cluster, job)
    assert failed.status == JobStatus.FAILED and "restarted or killed" in failed.error
    assert failed.done < IMPORTED
    assert customers() == 0
    assert db.session.scalar(select(func.count()).select_from(JobFile)) == 0
    page = client.get(f"/jobs/{job.id}").body.decode()
    assert "restarted or killed" in page

    # Started again, the import runs on the consumer left.
    again = job_of(
        client.post("/accounts/import", "/accounts/import", {"file": ("people.csv", content)})
    )
    done = wait_for(lambda: finished(again.id), "the second import")
    assert done.status == JobStatus.DONE, done.error
    assert customers() == IMPORTED and done.outcome == {"created": IMPORTED}
    assert db.session.scalar(select(JobFile.name).where(JobFile.job_id == again.id)) == (
        records.CREDENTIALS
    )


def test_a_billing_run_whose_consumer_is_killed_completes_on_the_other(cluster):
    account_ids = due_accounts(admin(), DUE_ACCOUNTS)
    client = admin_client(cluster)
    job = job_of(client.post("/jobs/billing-run", "/jobs/"))
    wait_for(lambda: invoices(), "the first chunks to be billed")
    kill(cluster, CONSUMERS[0])  # the run's consumer, or one running its chunks
    killed_at = len(invoices())
    assert killed_at < DUE_ACCOUNTS, "the run was not killed in the middle"

    # What the killed consumer ran (the run itself, or a chunk) is queued again by the
    # recovery and ends on the other: every account billed once, the numbers without gaps.
    done = recover(cluster, job)
    assert done.status == JobStatus.DONE, done.error
    wait_for(lambda: len(invoices()) == DUE_ACCOUNTS, "every chunk to end")
    assert_billed_once(account_ids)

    # Run again, it finds nothing left to bill.
    again = job_of(client.post("/jobs/billing-run", "/jobs/"))
    rerun = wait_for(lambda: finished(again.id), "the second billing run")
    assert rerun.status == JobStatus.DONE and rerun.outcome["invoiced"] == 0
    assert_billed_once(account_ids)
