"""The billing run in chunks: parallel chunks, gapless numbers, crashes, final invoices, dry run."""

import threading
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import mail
from portal.background import records
from portal.billing import invoice_mail
from portal.billing import run as billing_run
from portal.billing.run import run_billing
from portal.billing.service import add_charge, add_payment
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentSequence,
    DocumentStatus,
    Job,
    JobStatus,
    LedgerEntry,
    OutboxMessage,
    Role,
    Status,
    utcnow,
)
from tests.conftest import make_account

MARCH_1 = datetime(2026, 3, 1, 12, 0)
BILLING_DAY = date(2026, 3, 5)


class Crash(BaseException):
    """A worker killed mid-chunk: nothing catches it on the way out."""


def count(model, *where) -> int:
    """How many rows of `model` match."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def numbers_by_issuer() -> dict[int, list[int]]:
    """Every invoice number, sorted, per issuer."""
    found: dict[int, list[int]] = {}
    for issuer, number in db.session.execute(
        select(Document.issuer_key, Document.number).where(Document.kind == DocumentKind.INVOICE)
    ):
        found.setdefault(issuer, []).append(number)
    return {issuer: sorted(numbers) for issuer, numbers in found.items()}


def assert_balances_match_the_ledger() -> None:
    """Each account's balance is the sum of its ledger, and each invoice its entries' sum."""
    db.session.expire_all()
    for account in db.session.scalars(select(Account)):
        total = db.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account.id
            )
        )
        assert account.balance == Decimal(total), account.account_number
    for invoice in db.session.scalars(
        select(Document).where(Document.kind == DocumentKind.INVOICE)
    ):
        moved = db.session.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.document_id == invoice.id)
        )
        assert Decimal(moved) == invoice.total


@pytest.fixture
def many(admin, reseller, default_rate_group, vat):
    """40 postpaid customers with charges before 5 March: 30 of the admins', 10 of a reseller."""
    accounts = []
    for index in range(40):
        account = make_account(
            Role.CUSTOMER,
            f"20000000{index:02d}",
            reseller=reseller if index % 4 == 0 else None,
            email=f"c{index}@example.com",
            account_type=AccountType.POSTPAID,
            credit_limit=Decimal(100),
            billing_day=5,
            rate_group_id=default_rate_group.id,
        )
        account.taxes.append(vat)
        accounts.append(account)
    db.session.commit()
    for index, account in enumerate(accounts):
        for amount in ("1.25", f"{index}.10"):
            for entry in add_charge(admin, account, amount, f"Fee {amount}").entries:
                entry.created_at = MARCH_1
    db.session.commit()
    return [account.id for account in accounts]


def test_four_chunks_in_parallel_threads_number_without_gaps(app, many):
    report = run_billing(day=BILLING_DAY, chunk_size=10, threads=4)
    assert (report.chunks, report.invoiced, report.failed) == (4, 40, [])
    assert numbers_by_issuer() == {0: list(range(1, 31)), many_reseller(many): list(range(1, 11))}
    assert count(Document) == 40 and count(OutboxMessage, OutboxMessage.kind == "invoice") == 40
    assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 0
    assert_balances_match_the_ledger()
    again = run_billing(day=BILLING_DAY, chunk_size=10, threads=4)
    assert (again.invoiced, again.failed) == (0, [])


def many_reseller(account_ids: list[int]) -> int:
    """The reseller that issues the invoices of every fourth account."""
    return db.session.get(Account, account_ids[0]).reseller_id


def test_two_runs_at_once_bill_nothing_twice(app, many):
    reports = []

    def work():
        with app.app_context():
            reports.append(run_billing(day=BILLING_DAY, chunk_size=10, threads=2))

    start = threading.Barrier(2)
    threads = [threading.Thread(target=lambda: (start.wait(), work())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(reports) == 2
    # A chunk that lost the race to the other run rolled back (its numbers with it).
    assert sum(report.invoiced for report in reports) == 40
    assert count(Document) == 40
    assert numbers_by_issuer() == {0: list(range(1, 31)), many_reseller(many): list(range(1, 11))}
    assert_balances_match_the_ledger()
    assert run_billing(day=BILLING_DAY, chunk_size=10).failed == []


@pytest.mark.parametrize("crash", [Crash, RuntimeError])
def test_a_chunk_failing_midway_is_billed_whole_by_the_next_run(app, many, monkeypatch, crash):
    victim = many[15]  # in the second chunk of ten
    real = invoice_mail.queue_mail

    def queue_mail(made, now, result):
        # After its invoices, entries, balances and numbers were written: only mail is left.
        if any(draft.account.id == victim for draft in made):
            raise crash("worker lost")
        return real(made, now, result)

    monkeypatch.setattr(invoice_mail, "queue_mail", queue_mail)
    if crash is Crash:
        with pytest.raises(Crash):
            run_billing(day=BILLING_DAY, chunk_size=10, threads=4)
    else:
        report = run_billing(day=BILLING_DAY, chunk_size=10, threads=4)
        assert report.invoiced == 30 and report.failed == [("chunk 2", "RuntimeError: worker lost")]
    unbilled = many[10:20]
    assert count(Document) == 30
    assert count(Document, Document.account_id.in_(unbilled)) == 0
    assert count(LedgerEntry, LedgerEntry.account_id.in_(unbilled)) == 20  # no tax, no rounding
    assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 20
    assert count(OutboxMessage, OutboxMessage.account_id.in_(unbilled)) == 0
    assert_balances_match_the_ledger()
    issued = numbers_by_issuer()
    for numbers in issued.values():
        assert numbers == list(range(1, len(numbers) + 1))  # the lost chunk gave its numbers back

    monkeypatch.undo()
    report = run_billing(day=BILLING_DAY, chunk_size=10, threads=4)
    assert (report.invoiced, report.failed) == (10, [])
    assert numbers_by_issuer() == {0: list(range(1, 31)), many_reseller(many): list(range(1, 11))}
    assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 0
    assert_balances_match_the_ledger()


def test_an_advance_payment_settles_the_invoice_of_its_chunk(app, admin, many):
    account = db.session.get(Account, many[3])
    add_payment(admin, account, "2")
    run_billing(day=BILLING_DAY, chunk_size=10)
    (invoice,) = db.session.scalars(
        select(Document).where(
            Document.account_id == many[3], Document.kind == DocumentKind.INVOICE
        )
    )
    assert invoice.amount_paid == Decimal(2) and invoice.status == DocumentStatus.PARTIAL
    message = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.account_id == many[3], OutboxMessage.kind == "invoice"
        )
    )
    assert "Already paid: USD\xa02.00" in mail.text_of(message)[1]
    assert_balances_match_the_ledger()


def test_the_invoice_mail_reads_as_the_one_mail_queue_renders(app, many):
    run_billing(day=BILLING_DAY, chunk_size=10)
    account = db.session.get(Account, many[2])
    invoice = db.session.scalar(select(Document).where(Document.account_id == account.id))
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.account_id == account.id))
    assert message.document_id == invoice.id and message.body == ""  # written when sent
    expected = mail.queue("invoice", account.email, "invoice", account, document=invoice)
    assert mail.text_of(message) == (expected.subject, expected.body)
    db.session.rollback()


def test_a_deactivated_and_a_deleted_account_get_their_final_invoice(app, admin, many):
    inactive, deleted = db.session.get(Account, many[1]), db.session.get(Account, many[2])
    inactive.status = Status.INACTIVE
    deleted.deleted_at = utcnow()
    db.session.commit()
    report = run_billing(day=BILLING_DAY, chunk_size=10)
    assert report.invoiced == 40
    for account_id in (many[1], many[2]):
        assert count(Document, Document.account_id == account_id) == 1
        assert (
            count(
                LedgerEntry, LedgerEntry.account_id == account_id, LedgerEntry.document_id.is_(None)
            )
            == 0
        )


def test_a_dry_run_writes_nothing_and_foretells_the_run(app, many):
    tables = (Document, DocumentLine, DocumentSequence, LedgerEntry, OutboxMessage, Job)

    def snapshot():
        return [count(table) for table in tables], sum(
            db.session.scalars(select(Account.balance)), Decimal(0)
        )

    before = snapshot()
    result = app.test_cli_runner().invoke(
        args=["billing", "run", "--dry-run", "--date", "2026-03-05"]
    )
    assert result.exit_code == 0, result.output
    assert "40 would be invoiced" in result.output and "nothing was written" in result.output
    assert snapshot() == before
    dry = run_billing(day=BILLING_DAY, dry_run=True)
    assert snapshot() == before
    real = run_billing(day=BILLING_DAY)
    assert (dry.invoiced, dry.totals) == (real.invoiced, real.totals)
    totals = db.session.scalar(select(func.sum(Document.total)))
    assert real.totals == {"USD": Decimal(totals)}
    assert f"USD {real.totals['USD']:f}" in result.output


def test_the_jobs_page_runs_billing_in_chunks(app, as_admin, many, monkeypatch):
    monkeypatch.setitem(app.config, "BILLING_CHUNK_SIZE", 15)
    monkeypatch.setattr(billing_run, "local_date", lambda account, now: BILLING_DAY)
    response = as_admin.post("/jobs/billing-dry-run", {}, token_from="/jobs/")
    assert response.status_code in (302, 303)
    dry = db.session.scalar(select(Job).where(Job.kind == "billing_dry_run"))
    assert dry.status == JobStatus.DONE, dry.error
    page = as_admin.get(f"/jobs/{dry.id}").get_data(as_text=True)
    assert "Dry run, nothing was written" in page and "40 would be invoiced" in page
    assert count(Document) == 0

    as_admin.post("/jobs/billing-run", {}, token_from="/jobs/")
    run = db.session.scalar(select(Job).where(Job.kind == "billing_run"))
    assert run.status == JobStatus.DONE, run.error
    assert (run.outcome["invoiced"], run.outcome["chunks"]) == (40, 3)
    page = as_admin.get(f"/jobs/{run.id}").get_data(as_text=True)
    assert "40 invoiced, 0 statements, 0 failed." in page and "3 of 3 chunks done." in page
    chunks = db.session.scalars(select(Job).where(Job.kind == "billing_chunk")).all()
    assert [chunk.status for chunk in chunks] == [JobStatus.DONE] * 3
    assert "chunk 1 of 3" not in as_admin.get("/jobs/").get_data(as_text=True)
    assert count(Document) == 40


def test_a_chunk_whose_worker_died_is_run_again_by_the_recovery(app, admin, many):
    due = [[account_id, BILLING_DAY.isoformat()] for account_id in many[:10]]
    job = records.create(admin, "billing_chunk", "Billing run: chunk 1 of 1", params={"due": due})
    job.status, job.attempts = JobStatus.RUNNING, 1
    job.heartbeat_at = datetime(2026, 1, 1)  # its worker stopped beating long ago
    db.session.commit()
    assert records.recover_stale() == (1, 0)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == JobStatus.DONE and job.outcome["invoiced"] == 10
    assert count(Document) == 10
