"""A real browser posts a payment and a charge through the htmx money panel and opens a receipt."""

import pytest
from playwright.sync_api import Page, expect

from portal.extensions import db
from portal.models import Role
from tests.conftest import PASSWORD, make_account, wait_for_htmx


@pytest.mark.browser
def test_admin_records_money_in_place_and_prints_the_receipt(page: Page, live_server):
    with live_server.app.app_context():
        customer_id = make_account(Role.CUSTOMER, "1000000004", first_name="Grace").id
        db.session.remove()
    page.goto(live_server("/login"))
    page.get_by_label("Account number or e-mail", exact=True).fill(live_server.admin_number)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live_server("/dashboard/"))

    page.goto(live_server(f"/accounts/{customer_id}"))
    panel = page.locator("#money-panel")
    wait_for_htmx(page, "#money-panel form")

    # A refused amount: the panel is swapped in with the error (a 422 answer), nothing saved.
    panel.locator("#payment-amount").fill("12.345")
    panel.get_by_role("button", name="Add payment / refill").click()
    expect(panel.get_by_role("alert")).to_have_text("USD amounts have at most 2 decimal places.")
    expect(panel.locator("#balance")).to_have_text("USD 0.00")

    wait_for_htmx(page, "#money-panel form")
    panel.locator("#payment-amount").fill("12.50")
    panel.get_by_role("button", name="Add payment / refill").click()
    expect(panel.locator("#balance")).to_have_text("USD 12.50")
    # The account summary above the panel follows in the same swap.
    expect(page.locator("#summary-balance")).to_have_text("USD 12.50")
    expect(page.locator("#summary-available")).to_have_text("USD 12.50")
    expect(page.get_by_text("Payment recorded. R-000001 issued.")).to_have_count(1)

    wait_for_htmx(page, "#money-panel form")
    panel.locator("#charge-amount").fill("2.25")
    panel.locator("#charge-description").fill("Number porting")
    panel.get_by_role("button", name="Add charge").click()
    expect(panel.locator("#balance")).to_have_text("USD 10.25")
    expect(page.locator("#summary-balance")).to_have_text("USD 10.25")
    expect(page.get_by_text("Charge recorded. R-000002 issued.")).to_have_count(1)

    panel.locator("#documents").get_by_role("link", name="R-000002").click()
    expect(page.get_by_role("heading", name="Receipt R-000002")).to_be_visible()
    expect(page.get_by_role("cell", name="Number porting")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.locator("header nav")).to_be_hidden()
