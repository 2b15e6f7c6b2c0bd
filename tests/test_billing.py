"""Money: ledger postings through the account page, receipts, numbering, invoices, billing run."""

import html
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from portal.billing import drafts as billing_drafts
from portal.billing import run as billing_run
from portal.billing.run import run_billing
from portal.billing.service import add_charge, add_payment, post
from portal.config import load_config
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    AuditEntry,
    BillingSchedule,
    Document,
    DocumentKind,
    DocumentStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
    Role,
    Status,
    utcnow,
)
from portal.transactions import transaction
from tests.conftest import Browser, in_threads, make_account

HX = {"HX-Request": "true"}


def body(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def post_money(user, account, kind: str, amount: str, description: str = "", **kwargs):
    """Submit the payment ("payments") or charge ("charges") form of the account page."""
    prefix = {"payments": "payment", "charges": "charge"}[kind]
    data = {f"{prefix}-amount": amount, f"{prefix}-description": description}
    page = f"/accounts/{account.id}"
    return user.post(f"{page}/{kind}", data, token_from=page, **kwargs)


def ledger_sum(account_id: int) -> Decimal:
    """SUM of the account's ledger amounts."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == account_id
        )
    )
    return Decimal(total)


def balance_of(account_id: int) -> Decimal:
    """The stored balance, checked against the ledger (they must always agree)."""
    db.session.expire_all()
    balance = db.session.get(Account, account_id).balance
    assert balance == ledger_sum(account_id)
    return balance


def count(model, *where) -> int:
    """How many rows of `model` match."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def documents_of(account_id: int, kind: DocumentKind | None = None) -> list[Document]:
    """The account's receipts and invoices, oldest first."""
    query = select(Document).where(Document.account_id == account_id).order_by(Document.id)
    if kind is not None:
        query = query.where(Document.kind == kind)
    return list(db.session.scalars(query))


def charge_at(actor, account, amount: str, when: datetime, description: str = "") -> None:
    """A charge as if it had been posted at `when` (naive UTC)."""
    for entry in add_charge(actor, account, amount, description).entries:
        entry.created_at = when
    db.session.commit()


def postpaid(number: str, rate_group, tax=None, **fields) -> Account:
    """Another postpaid customer of the admins (monthly on the 5th, UTC unless told)."""
    fields = {
        "account_type": AccountType.POSTPAID,
        "credit_limit": Decimal(100),
        "billing_schedule": BillingSchedule.MONTHLY,
        "billing_day": 5,
        "rate_group_id": rate_group.id,
        "email": f"{number}@example.com",
        **fields,
    }
    account = make_account(Role.CUSTOMER, number, **fields)
    if tax is not None:
        account.taxes.append(tax)
        db.session.commit()
    return account


# --- Ledger through the account page ------------------------------------------------------------


def test_payments_and_charges_move_a_prepaid_balance_exactly(as_admin, customer):
    response = post_money(as_admin, customer, "payments", "0.1", "Top-up")
    assert response.status_code == 303
    assert balance_of(customer.id) == Decimal("0.1")
    assert post_money(as_admin, customer, "payments", "0.2").status_code == 303
    assert balance_of(customer.id) == Decimal("0.3")  # not 0.30000000000000004
    assert post_money(as_admin, customer, "charges", "0.05", "Setup fee").status_code == 303
    assert balance_of(customer.id) == Decimal("0.25")
    page = body(as_admin.get(f"/accounts/{customer.id}"))
    assert '<dd id="balance">USD\xa00.25</dd>' in page
    assert page.count("Charge recorded. R-000003 issued.") == 1  # flashed once, not twice
    assert "Top-up" in page and "Setup fee" in page
    kinds = db.session.scalars(
        select(LedgerEntry.kind).where(LedgerEntry.account_id == customer.id)
    ).all()
    assert sorted(kinds) == [EntryKind.CHARGE, EntryKind.PAYMENT, EntryKind.PAYMENT]


def test_postpaid_balance_is_what_is_owed(as_admin, postpaid_customer):
    post_money(as_admin, postpaid_customer, "charges", "30")
    assert balance_of(postpaid_customer.id) == Decimal(30)  # owed; taxed later on the invoice
    post_money(as_admin, postpaid_customer, "payments", "12.5")
    assert balance_of(postpaid_customer.id) == Decimal("17.5")
    account = db.session.get(Account, postpaid_customer.id)
    assert account.available_funds == Decimal("82.5")  # credit limit 100 - owed 17.5
    (receipt,) = documents_of(account.id)  # the payment's receipt; the invoice comes later
    assert (receipt.kind, receipt.total, receipt.status) == (
        DocumentKind.RECEIPT,
        Decimal("12.5"),
        DocumentStatus.PAID,
    )
    page = body(as_admin.get(f"/accounts/{account.id}"))
    assert '<dd id="available">USD\xa082.50</dd>' in page


def test_htmx_post_answers_with_the_refreshed_money_panel(as_admin, customer):
    response = post_money(as_admin, customer, "payments", "7.25", headers=HX)
    assert response.status_code == 200
    text = body(response)
    assert '<section id="money-panel"' in text and "<html" not in text
    assert '<dd id="balance">USD\xa07.25</dd>' in text
    # The account summary above the panel is swapped in the same answer (out of band).
    assert '<dl class="facts" id="summary-money" hx-swap-oob="true">' in text
    assert '<dd id="summary-balance">USD\xa07.25</dd>' in text
    assert '<dd id="summary-available">USD\xa07.25</dd>' in text
    # Receipts list their total and what was paid, each with its currency.
    assert text.count('<td class="num">USD\xa07.25</td>') == 2
    assert "Payment recorded. R-000001 issued." in text
    # The notice was not also flashed: the next full page does not repeat it.
    assert "Payment recorded" not in body(as_admin.get(f"/accounts/{customer.id}"))


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Must be more than 0."),
        ("0.00", "Must be more than 0."),
        ("-5", "Must not be negative."),
        ("abc", "Enter a number, e.g. 10.50."),
        ("1.234", "USD amounts have at most 2 decimal places."),
        ("", "Enter an amount."),
    ],
)
@pytest.mark.parametrize("kind", ["payments", "charges"])
def test_bad_amounts_are_field_errors_and_change_nothing(as_admin, customer, kind, amount, message):
    post_money(as_admin, customer, "payments", "10")
    before = (count(LedgerEntry), count(Document), count(OutboxMessage), count(AuditEntry))
    response = post_money(as_admin, customer, kind, amount)
    assert response.status_code == 422
    text = body(response)
    assert message in text
    assert "<html" in text and "Add payment / refill" in text  # the whole page without htmx
    assert balance_of(customer.id) == Decimal(10)
    assert (count(LedgerEntry), count(Document), count(OutboxMessage), count(AuditEntry)) == before
    fragment = post_money(as_admin, customer, kind, amount, headers=HX)
    assert fragment.status_code == 422 and message in body(fragment)
    assert "<html" not in body(fragment)


@pytest.mark.parametrize(
    ("currency", "good", "bad", "message"),
    [
        ("BHD", "1.234", "1.2345", "BHD amounts have at most 3 decimal places."),
        ("KWD", "0.005", "0.0051", "KWD amounts have at most 3 decimal places."),
        ("JPY", "1500", "1500.5", "JPY amounts are whole numbers."),
        ("USD", "0.01", "0.001", "USD amounts have at most 2 decimal places."),
    ],
)
def test_amount_precision_follows_the_currency(as_admin, app, currency, good, bad, message):
    account = make_account(Role.CUSTOMER, "1000000007", currency=currency)
    assert post_money(as_admin, account, "payments", good).status_code == 303
    assert balance_of(account.id) == Decimal(good)
    refused = post_money(as_admin, account, "payments", bad)
    assert refused.status_code == 422 and message in body(refused)
    assert balance_of(account.id) == Decimal(good)
    assert count(LedgerEntry, LedgerEntry.account_id == account.id) == 1


@pytest.mark.parametrize(
    "target", ["portal.mail.queue", "portal.billing.service.issue", "portal.audit.record"]
)
def test_a_failure_inside_the_operation_changes_nothing(
    as_admin, customer, vat, monkeypatch, target
):
    customer.taxes.append(vat)
    db.session.commit()
    post_money(as_admin, customer, "payments", "50")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(target, broken)
    before = (count(LedgerEntry), count(Document), count(OutboxMessage), count(AuditEntry))
    for kind in ("charges", "payments"):
        with pytest.raises(RuntimeError, match="disk full"):
            post_money(as_admin, customer, kind, "10")
    assert balance_of(customer.id) == Decimal(50)
    assert (count(LedgerEntry), count(Document), count(OutboxMessage), count(AuditEntry)) == before
    monkeypatch.undo()
    # The receipt numbers the failed operations took were rolled back with them: no gap.
    post_money(as_admin, customer, "charges", "10")
    numbers = [document.number for document in documents_of(customer.id)]
    assert numbers == [1, 2]
    assert balance_of(customer.id) == Decimal("37.90")  # 50 - 10 - VAT (2 + 0.10)


def test_a_post_without_a_description_field_is_recorded(as_admin, customer):
    page = f"/accounts/{customer.id}"
    for kind in ("payment", "charge"):
        response = as_admin.post(f"{page}/{kind}s", {f"{kind}-amount": "5"}, token_from=page)
        assert response.status_code == 303
    receipts = documents_of(customer.id)
    assert [receipt.lines[0].description for receipt in receipts] == ["Payment", "Charge"]
    assert balance_of(customer.id) == Decimal(0)


def test_staff_and_own_account_have_no_money_forms(as_admin, admin, subadmin):
    for account in (admin, subadmin):
        assert post_money(as_admin, account, "payments", "5").status_code == 404
    assert count(LedgerEntry) == 0


def test_a_reseller_posts_only_inside_its_subtree(app, tenants):
    user = Browser(app.test_client())
    user.login(tenants["a"].account_number)
    assert post_money(user, tenants["a1_customer"], "payments", "5").status_code == 303
    assert post_money(user, tenants["b_customer"], "payments", "5").status_code == 404
    assert post_money(user, tenants["a"], "payments", "5").status_code == 404  # not itself
    assert balance_of(tenants["a1_customer"].id) == Decimal(5)
    assert balance_of(tenants["b_customer"].id) == Decimal(0)


# --- Concurrency ---------------------------------------------------------------------------------


def test_concurrent_postings_on_one_account_end_with_the_exact_sum(app, admin, customer):
    admin_id, customer_id = admin.id, customer.id
    db.session.commit()  # the test's session holds nothing while the threads write

    def work(job):
        kind, amount = job
        actor = db.session.get(Account, admin_id)
        account = db.session.get(Account, customer_id)
        operation = add_payment if kind == "payment" else add_charge
        operation(actor, account, amount, f"{kind} {amount}")

    jobs = [("payment", "0.10")] * 15 + [("charge", "0.01")] * 5
    assert in_threads(app, work, jobs) == []
    assert balance_of(customer_id) == Decimal("1.45")  # 15 x 0.10 - 5 x 0.01
    assert count(LedgerEntry, LedgerEntry.account_id == customer_id) == 20
    numbers = sorted(document.number for document in documents_of(customer_id))
    assert numbers == list(range(1, 21))  # one receipt each: no repeats, no gaps
    assert count(OutboxMessage, OutboxMessage.kind == "receipt") == 20


def test_concurrent_first_receipts_of_one_issuer_share_its_numbering(app, admin):
    accounts = [make_account(Role.CUSTOMER, f"10000001{i:02d}") for i in range(12)]
    admin_id, ids = admin.id, [account.id for account in accounts]
    db.session.commit()

    def work(account_id):
        add_payment(db.session.get(Account, admin_id), db.session.get(Account, account_id), "1")

    assert in_threads(app, work, ids) == []
    numbers = sorted(db.session.scalars(select(Document.number)))
    assert numbers == list(range(1, 13))
    for account_id in ids:
        assert balance_of(account_id) == Decimal(1)


# --- Receipts ------------------------------------------------------------------------------------


def test_prepaid_charge_gives_a_receipt_with_tax_lines_at_once(as_admin, customer, vat):
    customer.taxes.append(vat)
    db.session.commit()
    post_money(as_admin, customer, "payments", "50")
    response = post_money(as_admin, customer, "charges", "10", "Number porting")
    assert response.status_code == 303
    assert balance_of(customer.id) == Decimal("37.90")
    payment_receipt, charge_receipt = documents_of(customer.id, DocumentKind.RECEIPT)
    assert payment_receipt.total == Decimal(50)
    assert [(line.description, line.amount, line.is_tax) for line in charge_receipt.lines] == [
        ("Number porting", Decimal(10), False),
        ("VAT (20% + 0.1)", Decimal("2.10"), True),
    ]
    assert (charge_receipt.subtotal, charge_receipt.tax_total) == (Decimal(10), Decimal("2.10"))
    assert charge_receipt.total == Decimal("12.10")
    assert charge_receipt.status == DocumentStatus.PAID
    entries = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.document_id == charge_receipt.id)
    ).all()
    assert sorted(entry.amount for entry in entries) == [Decimal("-10"), Decimal("-2.10")]

    page = as_admin.get(f"/documents/{charge_receipt.id}")
    text = body(page)
    assert page.status_code == 200
    assert "Receipt R-000002" in text and "Number porting" in text
    assert "VAT (20% + 0.1)" in text and "2.10" in text and "12.10" in text
    assert "Bill to:" in text and customer.account_number in text
    # Printable: the stylesheet hides the navigation and the print button on paper.
    assert 'href="/static/css/portal.css?v=' in text and 'class="no-print"' in text
    css = as_admin.get("/static/css/portal.css").get_data(as_text=True)
    assert "@media print" in css and ".no-print" in css


def test_tax_lines_round_half_up_to_the_currency(as_admin, app, vat):
    account = make_account(Role.CUSTOMER, "1000000007", currency="JPY")
    account.taxes.append(vat)
    db.session.commit()
    post_money(as_admin, account, "payments", "1000")
    post_money(as_admin, account, "charges", "2")  # 2 x 20 % + 0.1 = 0.5 -> 1 (half-up)
    receipt = documents_of(account.id)[-1]
    assert [line.amount for line in receipt.lines if line.is_tax] == [Decimal(1)]
    assert balance_of(account.id) == Decimal(997)


def test_customer_reads_its_own_receipt_but_not_anothers(app, admin, customer, other_customer):
    own = add_payment(admin, customer, "10", "Refill").document
    foreign = add_payment(admin, other_customer, "20").document
    user = Browser(app.test_client())
    user.login(customer.account_number)
    portal = body(user.get("/my/"))
    assert "R-000001" in portal and f'href="/documents/{own.id}"' in portal
    receipt = user.get(f"/documents/{own.id}")
    assert receipt.status_code == 200 and "Refill" in body(receipt)
    assert user.get(f"/documents/{foreign.id}").status_code == 404
    assert user.get("/documents/999999").status_code == 404


def test_receipt_numbers_are_per_issuer(app, admin, customer, tenants):
    for account in (customer, tenants["a_customer"], customer, tenants["b_customer"]):
        add_payment(admin, account, "1")
    add_payment(admin, tenants["a1_customer"], "1")  # a1's customers: a1's own numbering
    add_payment(admin, tenants["a1"], "1")  # the sub-reseller itself: its parent's numbering
    assert [d.number for d in documents_of(customer.id)] == [1, 2]
    assert [d.number for d in documents_of(tenants["a_customer"].id)] == [1]
    assert [d.number for d in documents_of(tenants["b_customer"].id)] == [1]
    assert [d.number for d in documents_of(tenants["a1_customer"].id)] == [1]
    assert [d.number for d in documents_of(tenants["a1"].id)] == [2]
    receipt = documents_of(tenants["a_customer"].id)[0]
    user = Browser(app.test_client())
    user.login(tenants["a"].account_number)
    page = body(user.get(f"/documents/{receipt.id}"))
    assert "Reseller A" in page  # the reseller issues its customers' documents
    assert user.get(f"/documents/{documents_of(customer.id)[0].id}").status_code == 404


def test_a_reseller_reads_its_own_receipt(app, admin, reseller):
    receipt = add_payment(admin, reseller, "25").document
    user = Browser(app.test_client())
    user.login(reseller.account_number)
    page = user.get(f"/documents/{receipt.id}")
    assert page.status_code == 200 and "Receipt R-000001" in body(page)


# --- Invoices and the billing run ----------------------------------------------------------------

MARCH_1 = datetime(2026, 3, 1, 12, 0)


def test_monthly_invoice_on_the_billing_day_only_and_once(admin, postpaid_customer):
    account_id = postpaid_customer.id
    charge_at(admin, postpaid_customer, "10", MARCH_1, "Setup fee")
    report = run_billing(now_utc=datetime(2026, 3, 4, 23, 59))
    assert (report.examined, report.invoiced, report.skipped) == (1, 0, 1)
    assert documents_of(account_id) == []

    report = run_billing(now_utc=datetime(2026, 3, 5, 0, 1))
    assert report.invoiced == 1 and report.failed == []
    (invoice,) = documents_of(account_id)
    assert invoice.kind == DocumentKind.INVOICE and invoice.display_number == "INV-000001"
    assert (invoice.billing_date, invoice.due_date) == (date(2026, 3, 5), date(2026, 3, 20))
    assert [(line.description, line.amount, line.is_tax) for line in invoice.lines] == [
        ("Setup fee", Decimal(10), False),
        ("VAT (20% + 0.1)", Decimal("2.10"), True),
    ]
    assert invoice.total == Decimal("12.10") and invoice.status == DocumentStatus.UNPAID
    assert balance_of(account_id) == Decimal("12.10")  # the VAT is owed too
    assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 0

    again = run_billing(now_utc=datetime(2026, 3, 5, 18, 0))
    assert again.invoiced == 0
    assert len(documents_of(account_id)) == 1 and balance_of(account_id) == Decimal("12.10")


def test_billing_day_starts_at_local_midnight(admin, default_rate_group, vat):
    kolkata = postpaid("1000000011", default_rate_group, vat, timezone="Asia/Kolkata")
    new_york = postpaid("1000000012", default_rate_group, vat, timezone="America/New_York")
    # Kolkata's 5 March starts at 4 March 18:30 UTC; New York's at 5 March 05:00 UTC.
    charge_at(admin, kolkata, "10", datetime(2026, 3, 4, 18, 0), "Before midnight")
    charge_at(admin, kolkata, "7", datetime(2026, 3, 4, 18, 45), "After midnight")
    charge_at(admin, new_york, "20", datetime(2026, 3, 5, 4, 59), "Before midnight")
    charge_at(admin, new_york, "9", datetime(2026, 3, 5, 5, 0), "After midnight")

    report = run_billing(now_utc=datetime(2026, 3, 4, 19, 0))
    assert (report.invoiced, report.skipped) == (1, 1)
    (invoice,) = documents_of(kolkata.id)
    assert invoice.billing_date == date(2026, 3, 5)
    assert [line.description for line in invoice.lines if not line.is_tax] == ["Before midnight"]
    assert documents_of(new_york.id) == []

    report = run_billing(now_utc=datetime(2026, 3, 5, 5, 30))
    assert report.invoiced == 1  # New York's turn; Kolkata's was already billed
    (invoice,) = documents_of(new_york.id)
    assert [line.description for line in invoice.lines if not line.is_tax] == ["Before midnight"]
    assert invoice.subtotal == Decimal(20)

    # What came after the cut-off waits for the next month's invoice.
    run_billing(now_utc=datetime(2026, 4, 5, 12, 0))
    later = documents_of(kolkata.id)[-1]
    assert later.billing_date == date(2026, 4, 5)
    assert [line.description for line in later.lines if not line.is_tax] == ["After midnight"]
    assert documents_of(new_york.id)[-1].subtotal == Decimal(9)
    for account in (kolkata, new_york):
        assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 0
        assert balance_of(account.id) == sum(d.total for d in documents_of(account.id))


def test_a_missed_billing_day_is_caught_up_at_the_next_run(admin, postpaid_customer):
    charge_at(admin, postpaid_customer, "10", MARCH_1, "Before the 5th")
    charge_at(admin, postpaid_customer, "3", datetime(2026, 3, 6, 9, 0), "After the 5th")
    report = run_billing(now_utc=datetime(2026, 3, 8, 6, 0))  # cron was down 5th to 7th
    assert report.invoiced == 1
    (invoice,) = documents_of(postpaid_customer.id)
    assert invoice.billing_date == date(2026, 3, 5)  # as of the billing day, not the run day
    assert [line.description for line in invoice.lines] == ["Before the 5th", "VAT (20% + 0.1)"]
    assert run_billing(now_utc=datetime(2026, 3, 9, 6, 0)).invoiced == 0
    run_billing(now_utc=datetime(2026, 4, 5, 6, 0))
    assert [line.description for line in documents_of(postpaid_customer.id)[-1].lines] == [
        "After the 5th",
        "VAT (20% + 0.1)",
    ]


def test_a_short_dst_day_is_not_skipped(admin, default_rate_group):
    # New York's 8 March 2026 lasts 23 hours (05:00 to 04:00 UTC): a daily run at 04:30 UTC
    # never happens on that local date, yet the account billed on the 8th gets its invoice.
    account = postpaid("1000000014", default_rate_group, timezone="America/New_York", billing_day=8)
    charge_at(admin, account, "10", MARCH_1)
    local_dates = []
    for day in range(6, 12):
        now_utc = datetime(2026, 3, day, 4, 30)
        local_dates.append(billing_run.local_date(account, now_utc).day)
        run_billing(now_utc=now_utc)
    assert 8 not in local_dates
    (invoice,) = documents_of(account.id)
    assert invoice.billing_date == date(2026, 3, 8)


def test_an_unknown_timezone_fails_only_its_account(admin, postpaid_customer, default_rate_group):
    broken = postpaid("1000000015", default_rate_group, timezone="Mars/Olympus_Mons")
    charge_at(admin, broken, "5", MARCH_1)
    charge_at(admin, postpaid_customer, "5", MARCH_1)
    report = run_billing(now_utc=datetime(2026, 3, 5, 12, 0))
    assert report.invoiced == 1
    assert [number for number, _ in report.failed] == ["1000000015"]
    assert "Mars/Olympus_Mons" in report.failed[0][1]


def test_daily_accounts_are_invoiced_every_day_they_have_entries(admin, default_rate_group):
    daily = postpaid("1000000013", default_rate_group, billing_schedule=BillingSchedule.DAILY)
    charge_at(admin, daily, "1", datetime(2026, 3, 1, 10, 0))
    charge_at(admin, daily, "2", datetime(2026, 3, 2, 10, 0))
    for day in (2, 3, 3, 4):  # the 3rd twice: nothing billed twice
        run_billing(now_utc=datetime(2026, 3, day, 0, 30))
    invoices = documents_of(daily.id)
    assert [(d.billing_date, d.total) for d in invoices] == [
        (date(2026, 3, 2), Decimal(1)),
        (date(2026, 3, 3), Decimal(2)),
    ]  # the 4th had nothing new: no empty invoice
    assert [d.number for d in invoices] == [1, 2]


def test_cli_billing_run_for_a_date(app, admin, postpaid_customer):
    charge_at(admin, postpaid_customer, "40", MARCH_1)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["billing", "run", "--date", "2026-03-04"])
    assert result.exit_code == 0, result.output
    assert "0 invoiced, 0 statements, 1 not due, 0 failed" in result.output
    result = runner.invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert result.exit_code == 0, result.output
    assert "1 invoiced" in result.output
    # No mail server is configured: the invoice mail waits in the outbox.
    assert "0 mails sent, 1 left in the outbox" in result.output
    again = runner.invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert again.exit_code == 0 and "0 invoiced" in again.output
    (invoice,) = documents_of(postpaid_customer.id)
    assert invoice.total == Decimal("48.10")
    bad = runner.invoke(args=["billing", "run", "--date", "5 March"])
    assert bad.exit_code != 0 and "Invalid value for '--date'" in bad.output


def test_invoice_numbers_have_no_gaps_or_repeats_across_runs(admin, default_rate_group):
    accounts = [
        postpaid(f"10000002{i:02d}", default_rate_group, billing_schedule=BillingSchedule.DAILY)
        for i in range(4)
    ]
    for day in range(1, 5):
        for account in accounts:
            charge_at(admin, account, "1", datetime(2026, 3, day, 8, 0))
        run_billing(now_utc=datetime(2026, 3, day + 1, 1, 0))
        run_billing(now_utc=datetime(2026, 3, day + 1, 2, 0))  # a second cron run: nothing new
    numbers = sorted(db.session.scalars(select(Document.number)))
    assert numbers == list(range(1, 17))


def test_payments_settle_invoices(as_admin, admin, postpaid_customer):
    account_id = postpaid_customer.id
    charge_at(admin, postpaid_customer, "10", MARCH_1)
    run_billing(now_utc=datetime(2026, 3, 5, 1, 0))
    (invoice,) = documents_of(account_id)
    assert invoice.status == DocumentStatus.UNPAID

    post_money(as_admin, postpaid_customer, "payments", "5")
    db.session.refresh(invoice)
    assert (invoice.status, invoice.amount_paid) == (DocumentStatus.PARTIAL, Decimal(5))
    assert "Partial" in body(as_admin.get(f"/documents/{invoice.id}"))

    post_money(as_admin, postpaid_customer, "payments", "7.10")
    db.session.refresh(invoice)
    assert (invoice.status, invoice.amount_paid) == (DocumentStatus.PAID, Decimal("12.10"))
    assert balance_of(account_id) == Decimal(0)
    page = body(as_admin.get(f"/documents/{invoice.id}"))
    assert "Status: Paid" in page.replace("<strong>", "").replace("</strong>", "")


def test_a_payment_before_the_invoice_is_applied_to_it(as_admin, admin, postpaid_customer):
    account_id = postpaid_customer.id
    post_money(as_admin, postpaid_customer, "payments", "20")  # in advance, nothing to settle
    charge_at(admin, postpaid_customer, "10", MARCH_1)
    run_billing(now_utc=datetime(2026, 3, 5, 1, 0))
    (march,) = documents_of(account_id, DocumentKind.INVOICE)
    assert (march.status, march.amount_paid) == (DocumentStatus.PAID, Decimal("12.10"))
    charge_at(admin, postpaid_customer, "10", datetime(2026, 3, 10))
    run_billing(now_utc=datetime(2026, 4, 5, 1, 0))
    april = documents_of(account_id, DocumentKind.INVOICE)[-1]
    # The 7.90 left of the advance is applied to the next invoice.
    assert (april.status, april.amount_paid) == (DocumentStatus.PARTIAL, Decimal("7.90"))
    assert april.balance_due == Decimal("4.20")
    assert balance_of(account_id) == Decimal("4.20")


def test_a_failing_account_does_not_stop_the_run_or_leave_half_an_invoice(
    app, admin, default_rate_group, vat, monkeypatch
):
    accounts = [postpaid(f"10000003{i:02d}", default_rate_group, vat) for i in range(3)]
    broken_id = accounts[1].id
    for account in accounts:
        charge_at(admin, account, "10", MARCH_1)
    real = billing_drafts._draft

    def draft(account, *args):
        # Fails while its invoice is computed, in the chunk that bills the other two.
        if account.id == broken_id:
            raise RuntimeError("lost connection")
        return real(account, *args)

    monkeypatch.setattr(billing_drafts, "_draft", draft)
    result = app.test_cli_runner().invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert result.exit_code == 1
    assert "2 invoiced" in result.output and "1 failed" in result.output
    assert "account 1000000301: RuntimeError: lost connection" in result.output
    assert documents_of(broken_id) == []
    assert count(LedgerEntry, LedgerEntry.account_id == broken_id) == 1  # no tax entry left
    assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 1
    assert balance_of(broken_id) == Decimal(10)
    assert count(OutboxMessage, OutboxMessage.account_id == broken_id) == 0
    assert sorted(db.session.scalars(select(Document.number))) == [1, 2]  # nothing skipped

    monkeypatch.undo()
    report = run_billing(day=date(2026, 3, 5))
    assert report.invoiced == 1 and report.failed == []
    assert [d.number for d in documents_of(broken_id)] == [3]
    assert balance_of(broken_id) == Decimal("12.10")


def test_inactive_and_deleted_postpaid_accounts_get_a_final_invoice(
    admin, customer, default_rate_group, vat
):
    inactive = postpaid("1000000401", default_rate_group, vat, status=Status.INACTIVE)
    deleted = postpaid("1000000402", default_rate_group, vat, deleted_at=utcnow())
    for account in (inactive, deleted):
        charge_at(admin, account, "5", MARCH_1)
    add_payment(admin, customer, "5")  # prepaid: never invoiced (its receipt came at once)
    report = run_billing(day=date(2026, 3, 5))
    # The prepaid customer is examined for a statement too: no calls, so none.
    assert (report.examined, report.invoiced, report.statements) == (3, 2, 0)
    assert report.failed == []
    for account in (inactive, deleted):
        (invoice,) = documents_of(account.id, DocumentKind.INVOICE)
        assert invoice.total == Decimal("6.10")  # 5 + VAT 1 + 0.10
        assert balance_of(account.id) == Decimal("6.10")
    assert documents_of(customer.id, DocumentKind.INVOICE) == []
    assert count(LedgerEntry, LedgerEntry.document_id.is_(None)) == 0  # nothing left behind
    assert run_billing(day=date(2026, 3, 5)).invoiced == 0


def test_a_credit_invoice_takes_nothing_from_an_advance_payment(admin, postpaid_customer):
    account_id = postpaid_customer.id
    add_payment(admin, postpaid_customer, "20")
    with transaction():  # a goodwill credit: no form posts adjustments yet
        post(postpaid_customer, EntryKind.ADJUSTMENT, Decimal(5), "Goodwill credit")
    db.session.execute(update(LedgerEntry).values(created_at=MARCH_1))
    db.session.commit()
    run_billing(now_utc=datetime(2026, 3, 5, 1, 0))
    (credit,) = documents_of(account_id, DocumentKind.INVOICE)
    assert credit.total == Decimal(-5) and credit.status == DocumentStatus.PAID
    assert credit.amount_paid == 0  # nothing of the 20 was used up on it
    charge_at(admin, postpaid_customer, "30", datetime(2026, 3, 10))
    run_billing(now_utc=datetime(2026, 4, 5, 1, 0))
    april = documents_of(account_id, DocumentKind.INVOICE)[-1]
    assert (april.total, april.amount_paid) == (Decimal("36.10"), Decimal(20))
    assert april.status == DocumentStatus.PARTIAL
    assert balance_of(account_id) == Decimal("11.10")  # 36.10 - 20 - 5


def test_type_and_currency_are_locked_once_money_is_booked(as_admin, admin, customer):
    from portal.billing.service import add_payment

    add_payment(admin, customer, "50")
    url = f"/accounts/{customer.id}/edit"
    page = as_admin.get(url).get_data(as_text=True)
    assert "Edit account" in page
    data = {
        "account_number": customer.account_number,
        "pin": "123456",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": "0",
        "valid_days": str(customer.valid_days),
        "rate_group_id": str(customer.rate_group_id),
        "billing_schedule": "daily",
        "currency": "USD",
        "account_type": "postpaid",
        "email": customer.email,
    }
    response = as_admin.post(url, data, token_from=url)
    assert response.status_code == 422
    assert "Cannot be changed once money has been booked" in response.get_data(as_text=True)
    db.session.refresh(customer)
    assert customer.account_type.value == "prepaid" and customer.currency == "USD"
    assert customer.balance == Decimal("50")


def test_amounts_show_in_the_currency_s_own_decimals(app):
    money, rate = app.jinja_env.filters["money"], app.jinja_env.filters["rate"]
    assert money(Decimal("997"), "JPY") == "JPY\xa0997"
    assert money(Decimal("12.5"), "USD") == "USD\xa012.50"
    assert money(Decimal("1.234"), "BHD") == "BHD\xa01.234"
    assert money(Decimal("0.00125"), "USD") == "USD\xa00.00"  # an amount: the minor unit
    assert rate(Decimal("0.00125"), "USD") == "USD\xa00.00125"  # a rate keeps its digits
    assert money(None, "USD") == ""


def test_an_unknown_locale_is_refused_at_start_up(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_LOCALE", "xx_YY")
    with pytest.raises(ValueError, match="PORTAL_LOCALE='xx_YY' is not a locale"):
        load_config(str(tmp_path))
    monkeypatch.setenv("PORTAL_LOCALE", "de_DE")
    assert load_config(str(tmp_path))["PORTAL_LOCALE"] == "de_DE"


def test_the_locale_setting_changes_separators(app):
    app.config["PORTAL_LOCALE"] = "de_DE"
    assert app.jinja_env.filters["money"](Decimal("1234.5"), "EUR") == "1.234,50\xa0EUR"


def test_the_account_page_pages_its_ledger_and_documents(app, as_admin, admin, customer, tenants):
    """Ledger and documents of an account: totals, sorting and paging, and only its own."""
    for amount in ("3", "1", "2"):
        add_payment(admin, customer, amount, f"Top-up {amount}")
    add_payment(tenants["a"], tenants["a_customer"], "7", "Another tenant's")
    page = body(as_admin.get(f"/accounts/{customer.id}"))
    assert "3 documents" in page and "3 entries" in page and "0 calls" in page
    assert "Another tenant's" not in page
    # The lists' links replace just their list (htmx) and work as plain links too.
    assert f'hx-get="/accounts/{customer.id}/ledger?sort=-amount' in html.unescape(page)
    assert 'hx-target="#ledger-list"' in page
    by_amount = body(as_admin.get(f"/accounts/{customer.id}/ledger?sort=amount"))
    positions = [by_amount.index(f"Top-up {n}") for n in ("1", "2", "3")]
    assert positions == sorted(positions) and "Back to the account" in by_amount
    fragment = as_admin.get(
        f"/accounts/{customer.id}/documents?sort=-amount", headers={"HX-Request": "true"}
    )
    text = body(fragment)
    assert "<html" not in text and "3 documents" in text and "Back to the account" not in text
    # Another tenant's account is not found, whichever list is asked for.
    reseller = Browser(app.test_client())
    reseller.login(tenants["b"].account_number)
    for kind in ("ledger", "documents", "calls"):
        assert reseller.get(f"/accounts/{customer.id}/{kind}").status_code == 404
        assert reseller.get(f"/accounts/{tenants['a_customer'].id}/{kind}").status_code == 404
    own = reseller.get(f"/accounts/{tenants['b_customer'].id}/ledger")
    assert own.status_code == 200 and "0 entries" in body(own)
