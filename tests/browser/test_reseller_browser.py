"""A reseller in a real browser: creates a customer with its own rate group, sees no one else's."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.extensions import db
from portal.models import RateGroup, Role
from tests.conftest import PASSWORD, make_account, wait_for_htmx

RESELLER = "2000000001"


@pytest.mark.browser
def test_reseller_creates_a_customer_and_cannot_see_the_admins(page: Page, live_server):
    with live_server.app.app_context():
        reseller = make_account(Role.RESELLER, RESELLER, first_name="Rita", company="Rita Telecom")
        db.session.add(RateGroup(name="Rita Gold", currency="USD", reseller_id=reseller.id))
        admins_customer = make_account(Role.CUSTOMER, "1999999999", first_name="Adminowned")
        admins_customer_id = admins_customer.id
        db.session.commit()
        db.session.remove()

    page.goto(live_server("/login"))
    page.get_by_label("Account number or e-mail", exact=True).fill(RESELLER)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live_server("/dashboard/"))
    nav = page.locator("header nav")
    expect(nav.get_by_role("link", name="Global Configuration")).to_have_count(0)
    expect(nav.get_by_role("link", name="Admins")).to_have_count(0)

    nav.get_by_role("link", name="Create Customer").click()
    expect(page.get_by_role("heading", name="Create Customer Account")).to_be_visible()
    expect(page.get_by_label("Reseller", exact=True)).to_have_count(0)  # always its own
    rate_group = page.get_by_label("Rate Group", exact=True)
    expect(rate_group.locator("option")).to_have_text(["Choose a rate group…", "Rita Gold (USD)"])
    expect(rate_group).to_have_value(re.compile(r"\d+"))  # its only USD group is preselected
    number = page.get_by_label("Account Number", exact=True).input_value()
    page.get_by_label("First Name", exact=True).fill("Resold")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Customer {number}")
    expect(page.locator("main")).to_contain_text("Belongs to reseller Rita")
    expect(page.locator("main")).to_contain_text("Rita Gold")

    nav.get_by_role("link", name="Customers", exact=True).click()
    rows = page.locator("#accounts-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Resold")
    wait_for_htmx(page, "input[name=q]")
    page.get_by_role("searchbox", name="Search accounts").fill("adminowned")
    expect(rows.first).to_contain_text("No account matches")

    response = page.goto(live_server(f"/accounts/{admins_customer_id}"))
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("Not found")
