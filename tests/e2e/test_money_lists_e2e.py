"""Invoices, Payments and the Mail outbox on the real server: admin, customer and reseller."""

import datetime
import re
import subprocess

from playwright.sync_api import expect

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, in_menu, nav
from tests.e2e.steps import account_of, create_account, field, main
from tests.servers import BIN, ROOT

PHONE = 390
# What only the database can make happen quickly: an invoice whose due date has passed, and a
# mail the server gave up on. Run as a separate process on the portal's own database.
AGE_THE_BOOKS = """
from portal import create_app
from portal.extensions import db
from sqlalchemy import text
app = create_app()
with app.app_context():
    db.session.execute(text("UPDATE documents SET due_date = :past WHERE kind = 'invoice'"),
                       {"past": "2020-01-31"})
    first = db.session.execute(text("SELECT MIN(id) FROM outbox")).scalar()
    db.session.execute(
        text("UPDATE outbox SET failed_at = created_at, last_error = :error WHERE id = :id"),
        {"error": "550 mailbox unavailable", "id": first},
    )
    db.session.commit()
"""


def age_the_books(portal) -> None:
    """Make every invoice overdue and the oldest mail failed, in the portal's database."""
    subprocess.run(
        [str(BIN / "python"), "-c", AGE_THE_BOOKS],
        cwd=ROOT,
        env=portal.env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def add_money(page, kind: str, amount: str, description: str) -> None:
    """Post a payment or a charge through the Money panel (an htmx swap of the panel)."""
    label = "Add payment / refill" if kind == "payment" else "Add charge"
    wait_for_htmx(page, "#money-panel form")
    form = page.locator("#money-panel form", has=page.get_by_role("heading", name=label))
    form.get_by_label("Amount").fill(amount)
    form.get_by_label("Description").fill(description)
    form.get_by_role("button", name=label).click()
    # The swapped-in panel lists the new entry: the next post goes to the new panel.
    expect(page.locator("#money-panel #ledger-list")).to_contain_text(description)


def test_admin_filters_overdue_invoices_sees_payments_and_retries_a_failed_mail(browse, portal):
    customer, url = create_account(
        browse,
        ADMIN,
        "customer",
        "Olga",
        "olga@example.com",
        Billing_Schedule=("select", "Daily"),
        Account_Type=("select", "Postpaid"),
        Credit_Limit="100",
    )
    page = browse.page(ADMIN)
    page.goto(url)
    add_money(page, "charge", "12.50", "Line rental")
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    assert "1 invoiced" in portal.flask("billing", "run", "--date", tomorrow.isoformat())
    page.reload()
    add_money(page, "payment", "2.50", "Bank transfer")
    age_the_books(portal)

    # Invoices: filtered to the overdue ones; the customer's, partly paid, with its totals.
    nav(page, "Invoices")
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoices")
    browse.check(page, "Invoices")
    field(page, "Status").select_option(label="Overdue")
    main(page).get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=overdue"))
    row = page.locator("#invoices tbody tr", has_text=customer.identifier)
    expect(row).to_contain_text("Overdue")
    expect(row).to_contain_text("Partly paid")
    expect(page.locator("#totals")).to_contain_text("10.00")  # 12.50 less 2.50 paid
    browse.check(page, "Invoices, overdue")
    # A bad date is the field's error, not a server error.
    page.goto(portal("/invoices/?date_from=2026-02-31"))
    expect(page.locator("#field-date_from .error")).to_be_visible()
    browse.check(page, "Invoices, bad filter")

    # Payments: the payment with its receipt; sorted by amount with a click.
    nav(page, "Payments")
    browse.check(page, "Payments")
    payment = page.locator("#payments tbody tr", has_text=customer.identifier)
    expect(payment).to_contain_text("Bank transfer")
    expect(payment.get_by_role("link", name=re.compile(r"^R-"))).to_be_visible()
    main(page).get_by_role("link", name="Amount").click()
    expect(page).to_have_url(re.compile(r"sort=-amount"))
    browse.check(page, "Payments by amount")

    # Outbox: the failed mail with its error, retried; sent and waiting mail listed too.
    nav(page, "Mail outbox")
    browse.check(page, "Mail outbox")
    main(page).get_by_role("link", name=re.compile(r"^Failed \(1\)")).click()
    failed = page.locator("#outbox-messages tbody tr").first
    expect(failed).to_contain_text("550 mailbox unavailable")
    failed.get_by_role("button", name="Retry now").click()
    expect(main(page)).to_contain_text("The mail to")
    browse.check(page, "Mail outbox after a retry")
    page.goto(portal("/outbox/?state=failed"))
    expect(main(page)).to_contain_text("No failed messages")
    browse.check(page, "Mail outbox, failed only")


def test_customer_sees_its_invoices_and_pages_its_ledger_on_a_phone(browse, portal):
    customer, url = create_account(browse, ADMIN, "customer", "Cleo", "cleo@example.com")
    admin_page = browse.page(ADMIN)
    admin_page.goto(url)
    for amount in ("3", "1", "2"):
        add_money(admin_page, "payment", amount, f"Top-up {amount}")
    page = browse.page(customer, width=PHONE)
    page.goto(portal("/my/"))
    browse.check(page, "My account with paged lists")
    ledger = page.locator("#ledger-list")
    expect(ledger).to_contain_text("3 entries")
    # Sorting replaces just the ledger (htmx) and the address follows it.
    wait_for_htmx(page, "#ledger-list th a")
    ledger.get_by_role("link", name=re.compile("Effect on balance")).click()
    expect(page).to_have_url(re.compile(r"/my/account/ledger\?sort=-amount"))
    expect(ledger.locator("th[aria-sort=descending]")).to_have_count(1)
    amounts = ledger.locator("tbody tr td.num").all_inner_texts()
    assert [re.sub(r"\D", "", a) for a in amounts] == ["300", "200", "100"]
    # The page size choice works without JavaScript's help: a plain GET form.
    ledger.get_by_label("Per page").select_option("25")
    ledger.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"per_page=25"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ledger")
    browse.check(page, "My ledger")
    in_menu(page, page.locator("header").get_by_role("link", name="Payments", exact=True)).click()
    expect(page.locator("#totals")).to_contain_text("6.00")
    expect(main(page).get_by_role("textbox", name="Account number")).to_have_count(0)
    browse.check(page, "My payments")
    nav(page, "Invoices")
    expect(main(page)).to_contain_text("No invoices match.")
    browse.check(page, "My invoices")


def test_a_reseller_sees_only_its_subtree(browse, portal):
    reseller = account_of(browse, ADMIN, "reseller")
    # Its own rate group first: a reseller's customer is on one of its plans.
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard of the reseller")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups of the reseller")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group (reseller)")
    field(page, "Name").fill("Reseller Plan")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Reseller Plan" created.')
    browse.check(page, "Rate group of the reseller")
    own_customer, own_url = create_account(browse, reseller, "customer", "Rita", "rita@example.com")
    other, other_url = create_account(browse, ADMIN, "customer", "Otto", "otto@example.com")
    admin_page = browse.page(ADMIN)
    admin_page.goto(other_url)
    add_money(admin_page, "payment", "9", "Not the reseller's")
    page.goto(own_url)
    add_money(page, "payment", "4", "Rita pays")
    nav(page, "Payments")
    browse.check(page, "Payments of a reseller")
    expect(main(page)).to_contain_text(own_customer.identifier)
    expect(main(page)).not_to_contain_text(other.identifier)
    expect(main(page)).not_to_contain_text("Not the reseller's")
    # Filtering by another tenant's account shows nothing of it.
    page.goto(portal(f"/payments/?account={other.identifier}"))
    expect(main(page)).to_contain_text("No payments match.")
    browse.check(page, "Payments of a reseller, another tenant's account")
    nav(page, "Invoices")
    browse.check(page, "Invoices of a reseller")
    expect(main(page)).not_to_contain_text(other.identifier)
