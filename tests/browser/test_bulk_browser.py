"""A real browser mass-creates customers: htmx toggles, credentials shown once, CSV download."""

import csv
import io

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, Role
from portal.passwords import verify_password
from tests.conftest import PASSWORD, wait_for_htmx


def field(page: Page, label: str):
    """The form control labelled exactly `label`."""
    return page.get_by_label(label, exact=True)


@pytest.mark.browser
def test_admin_mass_creates_customers_and_downloads_the_credentials(page: Page, live_server):
    page.goto(live_server("/login"))
    field(page, "Account number or e-mail").fill(live_server.admin_number)
    field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live_server("/dashboard/"))

    page.locator("header nav").get_by_role("link", name="Customers", exact=True).click()
    page.get_by_role("link", name="Mass create").click()
    expect(page.get_by_role("heading", name="Mass create customers")).to_be_visible()

    # The same partials as the single form: Billing Day for monthly, Credit Limit for postpaid.
    wait_for_htmx(page, "select[name=billing_schedule]")
    field(page, "Billing Schedule").select_option(label="Daily")
    expect(field(page, "Billing Day")).to_be_hidden()
    field(page, "Billing Schedule").select_option(label="Monthly")
    expect(field(page, "Billing Day")).to_be_visible()
    field(page, "Account Type").select_option(label="Postpaid")
    expect(field(page, "Credit Limit")).to_be_visible()
    field(page, "Credit Limit").fill("25")

    # A bad count is refused on its field and creates nothing.
    field(page, "Number of accounts").fill("0")
    page.get_by_role("button", name="Create accounts").click()
    expect(page.locator("main")).to_contain_text("nothing was saved")
    field(page, "Number of accounts").fill("3")
    page.get_by_role("button", name="Create accounts").click()

    rows = page.locator("#credentials tbody tr")
    expect(rows).to_have_count(3)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download credentials CSV").click()
    text = download_info.value.path().read_text(encoding="utf-8")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == 3
    with live_server.app.app_context():
        customers = list(db.session.scalars(select(Account).where(Account.role == Role.CUSTOMER)))
        assert len(customers) == 3
        by_number = {account.account_number: account for account in customers}
        for line in lines:
            account = by_number[line["account_number"]]
            assert verify_password(account.password_hash, line["password"])
            assert account.pin == line["pin"] and str(account.credit_limit.normalize()) == "25"
        db.session.remove()

    # The credentials are not in the page the address bar now points at.
    page.reload()
    expect(page.locator("main")).not_to_contain_text(lines[0]["password"])
    with live_server.app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(Account).where(Account.role == Role.CUSTOMER)
        )
        assert count == 3
        db.session.remove()
