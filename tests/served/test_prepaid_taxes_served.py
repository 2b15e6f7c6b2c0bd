"""A prepaid customer's taxed call through the served API, the billing run on the job consumer,
and the statement receipt the customer then reads in the portal."""

import json
import re
import time
import urllib.request
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from portal.apikeys.service import create_key
from portal.extensions import db
from portal.models import (
    Account,
    BillingSchedule,
    Call,
    Document,
    DocumentKind,
    Job,
    JobStatus,
    LedgerEntry,
    Tax,
)
from tests.conftest import make_caller

MOBILE = "447911123456"  # call_rates: 0.60 a minute, whole minutes


def _api(served, key: str, path: str, body: dict) -> dict:
    """POST JSON to the served softswitch API with the key; the answer's JSON."""
    request = urllib.request.Request(  # noqa: S310 (the test's own server)
        served.server.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    answer = served._open(request)
    assert answer.status == 200, answer.body
    return json.loads(answer.body)


def _wait_for_job(kind: str, seconds: float = 60) -> Job:
    """The job of `kind` once the consumer has finished it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()  # see the consumer's commits
        job = db.session.scalar(select(Job).where(Job.kind == kind))
        if job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED):
            return job
        time.sleep(0.3)
    raise AssertionError(f"the {kind} job did not finish within {seconds} s")


def test_a_prepaid_customer_reads_the_taxes_of_its_calls_on_its_statement(
    served, admin, call_rates
):
    vat = Tax(name="VAT", rate=Decimal(20), fixed_amount=Decimal(0), priority=1)
    stamp = Tax(name="Stamp", rate=Decimal(0), fixed_amount=Decimal("0.3"), priority=2)
    db.session.add_all([vat, stamp])
    db.session.commit()
    customer = make_caller("5000000801", call_rates, "5", billing_schedule=BillingSchedule.DAILY)
    customer.taxes = [vat, stamp]
    db.session.commit()
    _row, key = create_key(admin, "fs-served", "")

    granted = _api(
        served,
        key,
        "/api/v1/calls/authorize",
        {"call_id": "served-1", "account": customer.account_number, "destination": MOBILE},
    )
    # 5.00 of funds: 8 untaxed minutes, 6 taxed ones (6 x 0.72 = 4.32; 7 x 0.72 = 5.04).
    assert granted["allowed"] is True and granted["max_duration_seconds"] == 360
    ended = _api(served, key, "/api/v1/calls/served-1/end", {"duration_seconds": 60})
    assert ended["cost"] == "0.60000"
    db.session.expire_all()
    assert db.session.get(Account, customer.id).balance == Decimal("4.28")  # 0.60 + 0.12

    # The call was yesterday: today's run (the customer is billed daily) states it.
    yesterday = timedelta(days=1)
    for entry in db.session.scalars(select(LedgerEntry)):
        entry.created_at -= yesterday  # in Python: SQLite has no datetime arithmetic
    for call in db.session.scalars(select(Call)):
        call.started_at -= yesterday
    db.session.commit()
    served.login(admin.account_number)
    started = served.post("/jobs/billing-run", token_from="/jobs/")
    assert started.status == 200
    job = _wait_for_job("billing_run")
    assert job.status == JobStatus.DONE, job.error
    assert job.outcome["statements"] == 1 and job.outcome["failed"] == 0

    statement = db.session.scalar(
        select(Document).where(
            Document.account_id == customer.id,
            Document.kind == DocumentKind.RECEIPT,
            Document.billing_date.is_not(None),
        )
    )
    assert statement is not None and statement.total == Decimal("1.02")

    reader = type(served)(served.server)  # a new session: the customer's own
    reader.login(customer.account_number)
    dashboard = reader.get("/my/")
    assert dashboard.status == 200
    assert statement.display_number in dashboard.body.decode()
    page = reader.get(f"/documents/{statement.id}")
    assert page.status == 200
    text = re.sub(r"\s+", " ", page.body.decode().replace("\xa0", " "))
    for line in ("Calls (1)", "USD 0.60", "VAT (20%)", "USD 0.12", "Stamp (fixed 0.3)"):
        assert line in text
    assert "USD 1.02" in text
    db.session.expire_all()
    assert db.session.get(Account, customer.id).balance == Decimal("3.98")
