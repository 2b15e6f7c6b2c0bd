"""Payments allocated to invoices: receipts, statuses and amounts due, credit, the ledger agrees."""

import html
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from portal import mail
from portal.billing import service
from portal.billing.queries import activity
from portal.billing.run import run_billing
from portal.billing.service import (
    add_charge,
    add_payment,
    credits,
    post,
    settle,
    unapplied_payments,
)
from portal.extensions import db
from portal.models import (
    Account,
    Allocation,
    Document,
    DocumentKind,
    DocumentStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
)
from portal.transactions import transaction
from tests.conftest import Browser, in_threads, make_account


def invoice_after_charge(admin, account, amount: str, month: int) -> Document:
    """A charge on the 1st of `month` (2026), invoiced on the 5th: the new invoice."""
    for entry in add_charge(admin, account, amount).entries:
        entry.created_at = datetime(2026, month, 1, 8, 0)
    db.session.commit()
    assert run_billing(day=date(2026, month, 5)).invoiced == 1
    return db.session.scalars(
        select(Document)
        .where(Document.account_id == account.id, Document.kind == DocumentKind.INVOICE)
        .order_by(Document.id.desc())
    ).first()


def pairs(account_id: int) -> list[tuple[str, str, Decimal]]:
    """(receipt, invoice, amount) of the account's allocations, in the order they were made."""
    receipt, invoice = db.aliased(Document), db.aliased(Document)
    rows = db.session.execute(
        select(receipt.number, invoice.number, Allocation.amount)
        .join(LedgerEntry, Allocation.payment_entry_id == LedgerEntry.id)
        .join(receipt, LedgerEntry.document_id == receipt.id)
        .join(invoice, Allocation.document_id == invoice.id)
        .where(LedgerEntry.account_id == account_id)
        .order_by(Allocation.id)
    )
    return [(f"R-{r:06d}", f"INV-{i:06d}", amount) for r, i, amount in rows]


def state(*invoices: Document) -> list[tuple[DocumentStatus, Decimal, Decimal]]:
    """(status, paid, due) of each invoice, read again."""
    for invoice in invoices:
        db.session.refresh(invoice)
    return [(i.status, i.amount_paid, i.balance_due) for i in invoices]


def check_books(account_id: int) -> None:
    """Every allocation within its payment and invoice; the ledger equals the documents."""
    db.session.expire_all()
    over_payment = db.session.execute(
        select(LedgerEntry.id)
        .join(Allocation, Allocation.payment_entry_id == LedgerEntry.id)
        .group_by(LedgerEntry.id, LedgerEntry.amount)
        .having(func.sum(Allocation.amount) > -LedgerEntry.amount)
    ).all()
    over_invoice = db.session.execute(
        select(Document.id)
        .join(Allocation, Allocation.document_id == Document.id)
        .group_by(Document.id, Document.total)
        .having(func.sum(Allocation.amount) > Document.total)
    ).all()
    assert (over_payment, over_invoice) == ([], [])
    account = db.session.get(Account, account_id)
    entries = list(
        db.session.scalars(select(LedgerEntry).where(LedgerEntry.account_id == account_id))
    )
    assert account.balance == sum((entry.amount for entry in entries), Decimal(0))
    documents = list(db.session.scalars(select(Document).where(Document.account_id == account_id)))
    for document in documents:  # each document's total is the ledger movement it lists
        listed = [entry.amount for entry in entries if entry.document_id == document.id]
        sign = -1 if document.kind == DocumentKind.RECEIPT else 1  # postpaid: a payment is < 0
        assert document.total == sign * sum(listed, Decimal(0))
    unbilled = sum((e.amount for e in entries if e.document_id is None), Decimal(0))
    owed = sum((d.balance_due for d in documents if d.kind == DocumentKind.INVOICE), Decimal(0))
    # Owed = what the invoices still ask for, minus the credit of payments not allocated yet.
    assert account.balance - unbilled == owed - unapplied_payments(account)


def test_payments_across_three_invoices_partial_exact_and_overpaid(admin, postpaid_customer):
    account = postpaid_customer
    march = invoice_after_charge(admin, account, "10", 3)  # 12.10 with VAT (20 % + 0.10)
    april = invoice_after_charge(admin, account, "10", 4)
    may = invoice_after_charge(admin, account, "10", 5)
    unpaid = (DocumentStatus.UNPAID, Decimal(0), Decimal("12.10"))
    assert state(march, april, may) == [unpaid] * 3

    first = add_payment(admin, account, "5")  # partial
    assert first.document.kind == DocumentKind.RECEIPT
    assert first.document.display_number == "R-000001"
    assert first.entries[0].document_id == first.document.id
    assert state(march, april, may) == [
        (DocumentStatus.PARTIAL, Decimal(5), Decimal("7.10")),
        unpaid,
        unpaid,
    ]
    add_payment(admin, account, "7.10")  # exact
    add_payment(admin, account, "20")  # pays April, part of May
    assert state(march, april, may) == [
        (DocumentStatus.PAID, Decimal("12.10"), Decimal(0)),
        (DocumentStatus.PAID, Decimal("12.10"), Decimal(0)),
        (DocumentStatus.PARTIAL, Decimal("7.90"), Decimal("4.20")),
    ]
    overpaid = add_payment(admin, account, "10")  # 5.80 more than owed
    assert [(a.document_id, a.amount) for a in overpaid.allocations] == [(may.id, Decimal("4.20"))]
    assert state(may) == [(DocumentStatus.PAID, Decimal("12.10"), Decimal(0))]
    assert unapplied_payments(account) == Decimal("5.80")
    assert db.session.get(Account, account.id).balance == Decimal("-5.80")
    check_books(account.id)

    june = invoice_after_charge(admin, account, "10", 6)  # the credit goes to the next invoice
    assert state(june) == [(DocumentStatus.PARTIAL, Decimal("5.80"), Decimal("6.30"))]
    mailed = mail.text_of(
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "invoice").order_by(OutboxMessage.id)
        ).all()[-1]
    )[1]
    assert "Already paid: USD\xa05.80" in mailed and ": USD\xa06.30" in mailed
    assert unapplied_payments(account) == 0
    assert pairs(account.id) == [
        ("R-000001", march.display_number, Decimal(5)),
        ("R-000002", march.display_number, Decimal("7.10")),
        ("R-000003", april.display_number, Decimal("12.10")),
        ("R-000003", may.display_number, Decimal("7.90")),
        ("R-000004", may.display_number, Decimal("4.20")),
        ("R-000004", june.display_number, Decimal("5.80")),
    ]
    check_books(account.id)


def test_a_credit_invoice_takes_nothing(admin, postpaid_customer):
    account = postpaid_customer
    add_payment(admin, account, "20")  # in advance: all of it credit
    with transaction():  # a goodwill credit: no form posts adjustments yet
        goodwill = post(account, EntryKind.ADJUSTMENT, Decimal(5), "Goodwill credit")
    goodwill.created_at = datetime(2026, 3, 1)
    db.session.commit()
    assert run_billing(day=date(2026, 3, 5)).invoiced == 1
    credit = db.session.scalar(select(Document).where(Document.kind == DocumentKind.INVOICE))
    assert credit.total == Decimal(-5) and state(credit) == [
        (DocumentStatus.PAID, Decimal(0), Decimal(-5))
    ]
    assert settle(credit, Decimal(20)) == Decimal(20)  # asked again: still nothing
    add_payment(admin, account, "1")  # nor does a later payment go to it
    assert db.session.scalar(select(func.count()).select_from(Allocation)) == 0
    assert unapplied_payments(account) == Decimal(21)
    check_books(account.id)


def test_settle_takes_oldest_payments_first_and_stops_at_the_amount(admin, postpaid_customer):
    account = postpaid_customer
    for amount in ("3", "4", "5"):
        add_payment(admin, account, amount)
    invoice = invoice_after_charge(admin, account, "10", 3)  # 12.10: the run settles 12 of it
    assert state(invoice) == [(DocumentStatus.PARTIAL, Decimal(12), Decimal("0.10"))]
    assert [row[0] for row in pairs(account.id)] == ["R-000001", "R-000002", "R-000003"]
    check_books(account.id)


def test_credits_of_many_accounts_at_once(admin, postpaid_customer, default_rate_group):
    others = [
        make_account(
            postpaid_customer.role,
            f"10000009{n:02d}",
            rate_group_id=default_rate_group.id,
            account_type=postpaid_customer.account_type,
        )
        for n in range(2)
    ]
    invoice_after_charge(admin, postpaid_customer, "10", 3)  # 12.10
    add_payment(admin, postpaid_customer, "15")
    add_payment(admin, others[0], "4")
    ids = [postpaid_customer.id, *(other.id for other in others)]
    assert credits(ids) == {postpaid_customer.id: Decimal("2.90"), others[0].id: Decimal(4)}
    assert unapplied_payments(others[1]) == 0


def test_a_payment_failing_after_its_allocations_leaves_nothing(
    admin, postpaid_customer, monkeypatch
):
    march = invoice_after_charge(admin, postpaid_customer, "10", 3)
    before = db.session.scalar(select(func.count()).select_from(LedgerEntry))

    def audit_fails(*args, **kwargs):
        raise RuntimeError("lost connection")  # after the receipt and allocations were written

    monkeypatch.setattr(service.audit, "record", audit_fails)
    with pytest.raises(RuntimeError):
        add_payment(admin, postpaid_customer, "5")
    assert db.session.scalar(select(func.count()).select_from(Allocation)) == 0
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == before
    assert state(march) == [(DocumentStatus.UNPAID, Decimal(0), Decimal("12.10"))]
    receipts = select(func.count()).where(Document.kind == DocumentKind.RECEIPT)
    assert db.session.scalar(receipts) == 0
    monkeypatch.undo()
    assert add_payment(admin, postpaid_customer, "5").document.display_number == "R-000001"


def test_prepaid_payments_are_never_allocated(admin, customer):
    posted = add_payment(admin, customer, "10")
    assert posted.allocations == [] and posted.document.status == DocumentStatus.PAID
    assert posted.document.amount_paid == Decimal(10)


def test_twenty_concurrent_payments_never_over_allocate(app, admin, postpaid_customer):
    account = postpaid_customer
    invoices = [invoice_after_charge(admin, account, "10", month) for month in (3, 4, 5)]
    admin_id, account_id = admin.id, account.id
    db.session.commit()  # the test's session holds nothing while the threads write

    def pay(_):
        actor, payer = db.session.get(Account, admin_id), db.session.get(Account, account_id)
        add_payment(actor, payer, "2")

    assert in_threads(app, pay, range(20)) == []
    # 40 paid against 36.30 owed, oldest invoices first: 3.70 left as credit.
    assert state(*invoices) == [(DocumentStatus.PAID, Decimal("12.10"), Decimal(0))] * 3
    assert unapplied_payments(account) == Decimal("3.70")
    receipts = db.session.scalars(
        select(Document.number)
        .where(Document.kind == DocumentKind.RECEIPT)
        .order_by(Document.number)
    ).all()
    assert receipts == list(range(1, 21))
    check_books(account_id)


def test_the_api_answers_with_the_receipt_and_its_allocations(rest, admin, postpaid_customer):
    march = invoice_after_charge(admin, postpaid_customer, "10", 3)
    url = f"/accounts/{postpaid_customer.id}/payments"
    answer = rest.post(url, {"amount": "15", "description": "Bank transfer"})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["document"]["kind"] == "receipt" and body["document"]["total"] == "15.00"
    assert body["allocations"] == [
        {"invoice_id": march.id, "invoice": march.display_number, "amount": "12.10"}
    ]
    assert body["balance"] == "-2.90"  # the rest is credit
    assert body["entries"][0]["kind"] == "payment"


def test_pages_and_mail_show_who_paid_what(as_admin, admin, postpaid_customer, user):
    account = postpaid_customer
    march = invoice_after_charge(admin, account, "10", 3)
    receipt = add_payment(admin, account, "15").document
    receipt_number, invoice_number = receipt.display_number, march.display_number
    money = html.unescape(as_admin.get(f"/accounts/{account.id}").get_data(as_text=True))
    assert f"Paid by {receipt_number} on " in money
    assert f"Applied to {invoice_number}; USD\xa02.90 kept as credit" in money

    page = html.unescape(as_admin.get(f"/documents/{march.id}").get_data(as_text=True))
    assert "Payments" in page and f"/documents/{receipt.id}" in page and "USD\xa012.10" in page
    page = html.unescape(as_admin.get(f"/documents/{receipt.id}").get_data(as_text=True))
    assert "Applied to invoices" in page and f"/documents/{march.id}" in page
    assert "Kept as credit for the next invoice" in page and "USD\xa02.90" in page

    mail = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.kind == "receipt").order_by(OutboxMessage.id)
    )
    assert f"Applied to invoice {invoice_number}: USD\xa012.10" in mail.body
    assert "Kept as credit for your next invoice: USD\xa02.90" in mail.body


def test_the_customer_sees_the_allocations_on_its_own_pages(client, admin, postpaid_customer):
    march = invoice_after_charge(admin, postpaid_customer, "10", 3)
    receipt = add_payment(admin, postpaid_customer, "5").document
    browser = Browser(client)
    assert browser.login(postpaid_customer.account_number).status_code in (302, 303)
    page = html.unescape(browser.get("/my/").get_data(as_text=True))
    assert f"Paid by {receipt.display_number} on " in page
    assert f"Applied to {march.display_number}" in page
    assert browser.get(f"/documents/{march.id}").status_code == 200
    other = make_account(postpaid_customer.role, "1000000999")
    foreign = add_payment(admin, other, "1").document
    assert browser.get(f"/documents/{foreign.id}").status_code == 404


def test_the_money_panel_reads_allocations_without_a_query_per_document(
    app, admin, postpaid_customer
):
    account = postpaid_customer

    def statements() -> int:
        """How many SQL statements the panel's documents and their notes take."""
        seen = []
        listen = lambda *args: seen.append(args[2])  # noqa: E731
        db.session.expire_all()
        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            with app.test_request_context("/"):  # the lists read their page from the request
                loaded = activity(db.session.get(Account, account.id))
            notes = [
                (d.status, d.amount_paid, [a.payment.document for a in d.allocations], d.applied)
                for d in loaded["documents"].rows
            ]
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
        assert notes
        return len(seen)

    invoice_after_charge(admin, account, "10", 3)
    add_payment(admin, account, "5")
    few = statements()
    for month in (4, 5, 6, 7):
        invoice_after_charge(admin, account, "10", month)
        add_payment(admin, account, "20")
    assert statements() == few
