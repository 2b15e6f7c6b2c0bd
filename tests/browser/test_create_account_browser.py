"""A real browser creates a customer: htmx toggles, regenerate, save, escaping, live search."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.extensions import db
from portal.models import Role
from tests.conftest import PASSWORD, make_account, wait_for_htmx

FIRST_NAME = "Quinn<script>alert(1)</script>"
SEARCH = "quin"  # a prefix of the first name, typed in the accounts search box


def field(page: Page, label: str):
    """The form control labelled exactly `label`."""
    return page.get_by_label(label, exact=True)


@pytest.mark.browser
def test_admin_creates_postpaid_customer_in_the_browser(page: Page, live_server):
    with live_server.app.app_context():
        make_account(Role.CUSTOMER, "1999999999", first_name="Decoy", last_name="Other")
        db.session.remove()
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)

    # Log in through the form.
    page.goto(live_server("/login"))
    field(page, "Account number or e-mail").fill(live_server.admin_number)
    field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live_server("/dashboard/"))

    # Open the form from the navigation bar: monthly and prepaid by default.
    page.locator("header nav").get_by_role("link", name="Create Customer").click()
    expect(page).to_have_url(live_server("/accounts/new"))
    expect(page.get_by_role("heading", name="Create Customer Account")).to_be_visible()
    expect(field(page, "Billing Schedule")).to_have_value("monthly")
    expect(field(page, "Account Type")).to_have_value("prepaid")
    expect(field(page, "Billing Day")).to_be_visible()
    expect(field(page, "Credit Limit")).to_be_hidden()

    # Billing Day follows the schedule, Credit Limit follows the account type (htmx partials).
    field(page, "Billing Schedule").select_option(label="Daily")
    expect(field(page, "Billing Day")).to_be_hidden()
    field(page, "Billing Schedule").select_option(label="Monthly")
    expect(field(page, "Billing Day")).to_be_visible()
    field(page, "Account Type").select_option(label="Postpaid")
    expect(field(page, "Credit Limit")).to_be_visible()
    field(page, "Account Type").select_option(label="Prepaid")
    expect(field(page, "Credit Limit")).to_be_hidden()
    field(page, "Account Type").select_option(label="Postpaid")
    expect(field(page, "Credit Limit")).to_be_visible()

    field(page, "First Name").fill(FIRST_NAME)
    field(page, "Last Name").fill("Lovelace")
    field(page, "Company").fill("Example Telecom")
    field(page, "Billing Day").fill("15")
    field(page, "Credit Limit").fill("250.5")
    field(page, "Email Address").fill("quinn@example.com")

    # Regenerate swaps in a new account number.
    number_input = field(page, "Account Number")
    old_number = number_input.input_value()
    assert re.fullmatch(r"[1-9]\d{9}", old_number), old_number
    page.locator(".with-action", has=page.locator("#slot-account_number")).get_by_role(
        "button", name="Regenerate"
    ).click()
    expect(number_input).not_to_have_value(old_number)
    expect(number_input).to_have_value(re.compile(r"^[1-9]\d{9}$"))
    number = number_input.input_value()
    expect(field(page, "Rate Group")).to_have_value(re.compile(r"^\d+$"))

    # Save: the new account's page, with the one-time portal password.
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(re.escape(live_server("/accounts/")) + r"\d+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Customer {number}")
    expect(page.get_by_text(f"Account {number} created.")).to_be_visible()
    expect(page.get_by_text("Portal password")).to_be_visible()
    expect(page.locator("#new-password")).to_have_text(re.compile(r"^\S{8,}$"))
    # The markup in the name is shown as text, never run.
    expect(page.locator("main")).to_contain_text(f"{FIRST_NAME} Lovelace")
    expect(page.locator("main")).to_contain_text("Monthly, day 15")
    expect(page.locator("main")).to_contain_text("USD 250.50")
    expect(page.locator("main script")).to_have_count(0)
    assert dialogs == []

    # Live search on the accounts list: the htmx request replaces the table only.
    page.locator("header nav").get_by_role("link", name="Customers", exact=True).click()
    expect(page).to_have_url(live_server("/accounts/"))
    rows = page.locator("#accounts-table tbody tr")
    expect(rows.filter(has_text="Decoy")).to_have_count(1)
    wait_for_htmx(page, "input[name=q]")
    with page.expect_response(
        lambda response: (
            "q=" + SEARCH in response.url and response.request.headers.get("hx-request") == "true"
        )
    ) as search:
        page.get_by_role("searchbox", name="Search accounts").fill(SEARCH)
    assert search.value.status == 200
    assert "<html" not in search.value.text(), "the search answered a whole page, not the table"
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(number)
    expect(rows.first).to_contain_text(FIRST_NAME)
    expect(page).to_have_url(re.compile(r"[?&]q=" + SEARCH))
    expect(page.locator("main script")).to_have_count(0)
    assert dialogs == []
