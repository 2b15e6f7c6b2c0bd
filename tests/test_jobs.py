"""Background jobs: imports and mass creates through the Jobs page, tenancy, dead workers, locks."""

import csv
import io
import json
import re
import threading
from datetime import timedelta

import pytest
from huey.exceptions import TaskLockedException
from sqlalchemy import event, func, select, text

from portal.accounts import bulk
from portal.background import records
from portal.background.engine import lock
from portal.extensions import db
from portal.jobs import tasks
from portal.models import Account, Job, JobFile, JobStatus, Role, utcnow
from tests.conftest import Browser

IMPORT = "/accounts/import"
MASS = "/accounts/mass-create"


def customers() -> int:
    """How many customer accounts exist."""
    return db.session.scalar(
        select(func.count()).select_from(Account).where(Account.role == Role.CUSTOMER)
    )


def chosen_csv(group_id: int, lines: int, start: int = 0, override: dict | None = None) -> bytes:
    """An import file whose every line has a chosen password (the slow hash: a job)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["first_name", "email", "password", "rate_group_id"])
    for n in range(start, start + lines):
        row = {
            "first_name": f"Person{n}",
            "email": f"person{n}@example.com",
            "password": f"Chosen-pass{n}",
            "rate_group_id": str(group_id),
        }
        row.update((override or {}).get(n, {}))
        writer.writerow(row.values())
    return buffer.getvalue().encode()


def upload(browser: Browser, content: bytes):
    """Post a file to the import page, following nothing."""
    data = {"file": (io.BytesIO(content), "people.csv")}
    return browser.post(IMPORT, data, token_from=IMPORT, content_type="multipart/form-data")


def job_of(response) -> Job:
    """The job a 303 to its page names."""
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    match = re.search(r"/jobs/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return db.session.get(Job, int(match.group(1)))


def test_an_import_with_many_chosen_passwords_runs_as_a_job(as_admin, default_rate_group):
    lines = bulk.INLINE_CHOSEN_PASSWORDS + 5
    job = job_of(upload(as_admin, chosen_csv(default_rate_group.id, lines)))
    assert (job.kind, job.status, job.done, job.total) == (
        "customer_import",
        JobStatus.DONE,
        lines,
        lines,
    )
    assert customers() == lines
    page = as_admin.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert f"{lines} customers created." in page and "Show the credentials" in page
    assert 'value="100"' in page  # the bar is full
    assert "hx-trigger" not in page.split('id="job-progress"')[1].split(">")[0]  # no polling
    # The upload (it held passwords) is gone; the credentials wait for one reading.
    names = set(db.session.scalars(select(JobFile.name).where(JobFile.job_id == job.id)))
    assert names == {records.CREDENTIALS}
    shown = as_admin.post(f"/jobs/{job.id}/credentials", {}, token_from=f"/jobs/{job.id}")
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "Chosen-pass3" in text
    assert shown.headers["Cache-Control"] == "no-store"
    again = as_admin.post(f"/jobs/{job.id}/credentials", {}, token_from=f"/jobs/{job.id}")
    assert again.status_code == 404
    assert "were shown once" in as_admin.get(f"/jobs/{job.id}").get_data(as_text=True)
    new = db.session.scalar(select(Account).where(Account.email == "person3@example.com"))
    assert (
        Browser(as_admin.client.application.test_client())
        .login(new.account_number, "Chosen-pass3")
        .status_code
        == 303
    )


def test_a_small_import_still_answers_at_once(as_admin, default_rate_group):
    response = upload(as_admin, chosen_csv(default_rate_group.id, 2))
    assert response.status_code == 200 and "Chosen-pass1" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_bad_file_fails_its_job_with_every_line_and_saves_nothing(as_admin, default_rate_group):
    lines = bulk.INLINE_CHOSEN_PASSWORDS + 5
    content = chosen_csv(
        default_rate_group.id,
        lines,
        override={4: {"email": "nope"}, 9: {"rate_group_id": "999999"}},
    )
    job = job_of(upload(as_admin, content))
    assert job.status == JobStatus.FAILED and "nothing was imported" in job.error
    assert customers() == 0
    page = as_admin.get(f"/jobs/{job.id}").get_data(as_text=True)
    report = re.findall(r"<tr><td>(\d+)</td><td>([\w—]+)</td>", page)
    assert ("6", "email") in report and ("11", "rate_group_id") in report
    assert db.session.scalar(select(func.count()).select_from(JobFile)) == 0


def test_a_large_mass_create_runs_as_a_job(as_admin, default_rate_group):
    count = bulk.INLINE_COUNT + 1
    data = {
        "count": count,
        "rate_group_id": default_rate_group.id,
        "account_type": "prepaid",
        "currency": "USD",
        "billing_schedule": "monthly",
        "billing_day": 1,
        "credit_limit": "0",
        "valid_days": "30",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": 0,
    }
    job = job_of(as_admin.post(MASS, data, token_from=MASS))
    assert job.status == JobStatus.DONE, job.error
    assert customers() == count and job.outcome == {"created": count}
    shown = as_admin.post(f"/jobs/{job.id}/credentials", {}, token_from=f"/jobs/{job.id}")
    assert shown.get_data(as_text=True).count("<tr><td><a href=") == count


def test_a_mass_create_refused_by_the_rules_answers_on_the_form(as_admin, default_rate_group):
    data = {"count": bulk.INLINE_COUNT + 1, "rate_group_id": 999999, "account_type": "prepaid"}
    response = as_admin.post(MASS, data, token_from=MASS)
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_jobs_and_their_secrets_stay_with_their_tenant_and_starter(
    app, as_admin, default_rate_group, tenants, subadmin
):
    job = job_of(
        upload(as_admin, chosen_csv(default_rate_group.id, bulk.INLINE_CHOSEN_PASSWORDS + 1))
    )
    reseller = Browser(app.test_client())
    reseller.login(tenants["a"].account_number)
    assert reseller.get(f"/jobs/{job.id}").status_code == 404
    assert reseller.get(f"/jobs/{job.id}/progress").status_code == 404
    assert reseller.post(f"/jobs/{job.id}/credentials", {}, token_from="/jobs/").status_code == 404
    assert job.label not in reseller.get("/jobs/").get_data(as_text=True)
    # Another staff member sees the job (same tenant) but never the passwords.
    other = Browser(app.test_client())
    other.login(subadmin.account_number)
    page = other.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert other.get("/jobs/").get_data(as_text=True).count(job.label) == 1
    assert "Show the credentials" not in page
    assert other.post(f"/jobs/{job.id}/credentials", {}, token_from="/jobs/").status_code == 404
    customer = Browser(app.test_client())
    customer.login(tenants["a_customer"].account_number)
    assert customer.get("/jobs/").status_code == 403


def test_a_resellers_job_is_its_own(app, tenants):
    browser = Browser(app.test_client())
    browser.login(tenants["a"].account_number)
    job = job_of(
        upload(browser, chosen_csv(tenants["a_group"].id, bulk.INLINE_CHOSEN_PASSWORDS + 1))
    )
    assert job.status == JobStatus.DONE and job.owner_id == tenants["a"].id
    made = db.session.scalars(select(Account).where(Account.email.like("person%"))).all()
    assert {account.reseller_id for account in made} == {tenants["a"].id}
    other = Browser(app.test_client())
    other.login(tenants["b"].account_number)
    assert other.get(f"/jobs/{job.id}").status_code == 404


def test_credentials_expire_after_an_hour(as_admin, default_rate_group):
    job = job_of(
        upload(as_admin, chosen_csv(default_rate_group.id, bulk.INLINE_CHOSEN_PASSWORDS + 1))
    )
    assert records.purge_files(utcnow() + timedelta(minutes=59)) == 0
    assert records.purge_files(utcnow() + timedelta(minutes=61)) == 1
    assert as_admin.post(f"/jobs/{job.id}/credentials", {}, token_from="/jobs/").status_code == 404


def _running_job(kind: str, age_seconds: int) -> Job:
    """A job a worker claimed and then stopped beating for."""
    job = Job(
        kind=kind,
        label="stuck",
        status=JobStatus.RUNNING,
        attempts=1,
        heartbeat_at=utcnow() - timedelta(seconds=age_seconds),
    )
    db.session.add(job)
    db.session.commit()
    db.session.add(JobFile(job_id=job.id, name=records.INPUT, content=b"secret passwords"))
    db.session.commit()
    return job


def test_a_job_whose_worker_died_fails_with_the_reason(app):
    alive = _running_job("customer_import", 5)
    dead = _running_job("customer_import", records.STALE_SECONDS + 5)
    assert records.recover_stale() == (0, 1)
    db.session.expire_all()
    assert alive.status == JobStatus.RUNNING
    assert dead.status == JobStatus.FAILED and "restarted or killed" in dead.error
    assert db.session.scalar(select(JobFile).where(JobFile.job_id == dead.id)) is None


def test_a_resumable_job_whose_worker_died_runs_again(app):
    ran = []
    records.register(
        "test_resumable",
        lambda job, actor, progress: ran.append(job.id) or {"ok": 1},
        resumable=True,
    )
    job = _running_job("test_resumable", records.STALE_SECONDS + 5)
    assert records.recover_stale() == (1, 0)
    db.session.expire_all()
    assert ran == [job.id] and job.status == JobStatus.DONE and job.attempts == 2


def test_a_job_of_a_deactivated_account_does_not_run(app, admin, default_rate_group):
    admin.status = "inactive"
    db.session.commit()
    job = Job(kind="customer_import", label="x", started_by_id=admin.id)
    db.session.add(job)
    db.session.commit()
    records.execute(job.id)
    db.session.expire_all()
    assert job.status == JobStatus.FAILED and "not active" in job.error


def test_an_unexpected_error_fails_the_job_and_keeps_nothing(
    app, admin, default_rate_group, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk, "search_tokens", broken)
    content = chosen_csv(default_rate_group.id, 3)
    job = records.start(
        admin, "customer_import", "x", total=3, files={records.INPUT: ("a.csv", content)}
    )
    assert job.status == JobStatus.FAILED and "internal error" in job.error
    assert customers() == 0 and "disk full" not in json.dumps(job.outcome)


def test_a_periodic_task_does_not_run_while_another_consumer_holds_its_lock(app):
    held = lock("call-reaper", 300)
    held.acquire()
    try:
        with pytest.raises(TaskLockedException):
            tasks.reap_calls.call_local()
    finally:
        held.release()
    tasks.reap_calls.call_local()  # free again: it runs
    assert not held.is_locked()


def test_an_admin_starts_a_billing_run_that_bills_once(app, as_admin, postpaid_customer):
    from portal.billing.service import add_charge
    from portal.models import Document

    add_charge(None, postpaid_customer, "12.50", "Port-in fee")
    entry_at = utcnow() - timedelta(days=40)  # billed on the last billing day before today
    db.session.execute(text("UPDATE ledger_entries SET created_at = :at"), {"at": entry_at})
    db.session.commit()
    job = job_of(as_admin.post("/jobs/billing-run", {}, token_from="/jobs/"))
    assert job.status == JobStatus.DONE, job.error
    assert job.outcome["invoiced"] == 1 and job.outcome["examined"] == 1
    page = as_admin.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "1 accounts examined: 1 invoiced, 0 statements, 0 failed." in page
    again = job_of(as_admin.post("/jobs/billing-run", {}, token_from="/jobs/"))
    assert again.outcome["invoiced"] == 0
    assert db.session.scalar(select(func.count()).select_from(Document)) == 1


def test_only_admins_start_a_billing_run(app, tenants, subadmin):
    for account in (subadmin, tenants["a"]):
        browser = Browser(app.test_client())
        browser.login(account.account_number)
        assert browser.post("/jobs/billing-run", {}, token_from="/jobs/").status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_job_no_worker_takes_says_so(app, as_admin, admin):
    job = Job(kind="billing_run", label="Billing run", started_by_id=admin.id)
    db.session.add(job)
    db.session.commit()
    fresh = as_admin.get(f"/jobs/{job.id}/progress").get_data(as_text=True)
    assert "Waiting for a job worker" in fresh and "no-worker" not in fresh
    assert 'hx-trigger="every 1s"' in fresh  # polled while it waits
    job.created_at = utcnow() - timedelta(minutes=2)
    db.session.commit()
    late = as_admin.get(f"/jobs/{job.id}/progress").get_data(as_text=True)
    assert "none is running" in late


def test_the_hourly_billing_leaves_a_row_only_when_it_billed(app, as_admin, postpaid_customer):
    from portal.billing.service import add_charge

    tasks.hourly_billing.call_local()
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0
    add_charge(None, postpaid_customer, "12.50", "Port-in fee")
    db.session.execute(
        text("UPDATE ledger_entries SET created_at = :at"), {"at": utcnow() - timedelta(days=40)}
    )
    db.session.commit()
    tasks.hourly_billing.call_local()
    job = db.session.scalar(select(Job).where(Job.kind == "billing_run"))  # not its chunks
    assert (job.label, job.status, job.started_by_id) == (
        "Hourly billing run",
        JobStatus.DONE,
        None,
    )
    page = as_admin.get("/jobs/").get_data(as_text=True)
    assert "Hourly billing run" in page and "Scheduler" in page
    assert "1 invoiced" in as_admin.get(f"/jobs/{job.id}").get_data(as_text=True)


def test_a_heartbeat_waiting_behind_the_jobs_own_write_does_not_hold_up_its_end(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL locks rows: a beat never waits for the job's other writes")
    job_id = _running_job("customer_import", 0).id
    beating = f"job-{job_id}"  # the heartbeat thread's name
    sent, ended = threading.Event(), threading.Event()

    def beat_sent(*_args):
        if threading.current_thread().name == beating:
            sent.set()

    def beat_ended(*_args):
        if threading.current_thread().name == beating:
            ended.set()

    hooks = (("before_cursor_execute", beat_sent), ("after_cursor_execute", beat_ended))
    hooks += (("handle_error", beat_ended),)
    for name, hook in hooks:
        event.listen(db.engine, name, hook)
    try:
        # The job writes its rows (SQLite: one writer at a time) while a beat comes due.
        db.session.execute(text("UPDATE jobs SET label = 'saving' WHERE id = :id"), {"id": job_id})
        progress = records.Progress(job_id, 10)
        progress.start()
        assert sent.wait(30), "no heartbeat was sent"
        progress.stop()
        # The job goes on to its commit; it does not wait for the beat it blocks (which would
        # hold every writer of the database, call authorizations included, for busy_timeout).
        assert not ended.is_set()
        db.session.commit()
        assert ended.wait(30)
    finally:
        for name, hook in hooks:
            event.remove(db.engine, name, hook)
