"""A customer on a phone (390 px), on the real server: own account, receipts, profile, password."""

import re

from playwright.sync_api import expect

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, Login, in_menu, nav
from tests.e2e.steps import add_money, create_account, field, main, open_document

PHONE = 390


def test_customer_uses_their_own_pages_on_a_phone(browse, portal):
    # The admin creates the customer (with a SIP device) and records a payment: a receipt.
    customer, url = create_account(browse, ADMIN, "customer", "Ada", "ada@example.com")
    admin_page = browse.page(ADMIN)
    admin_page.goto(url)
    add_money(admin_page, "payment", "15")
    expect(admin_page.locator("#money-panel")).to_contain_text("Payment recorded.")
    browse.check(admin_page, "Customer page after a payment")

    # The customer's dashboard: balance, SIP device, receipt.
    page = browse.page(customer, width=PHONE)
    page.goto(portal("/"))
    expect(page).to_have_url(portal("/my/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(customer.identifier)
    expect(main(page)).to_contain_text("15")
    browse.check(page, "My account")
    header = page.locator("header")
    expect(header.get_by_role("link", name="Customers", exact=True)).to_have_count(0)
    assert page.request.get(portal("/accounts/")).status in (403, 404)

    # The SIP device's password is reset in place (an htmx swap of its row).
    row = page.locator("#sip-devices tbody tr").first
    old_secret = row.locator("code").inner_text()
    wait_for_htmx(page, "#sip-devices form")
    row.get_by_role("button", name="Reset SIP password").click()
    expect(page.locator("#sip-devices tbody tr").first.locator("code")).not_to_have_text(old_secret)
    browse.check(page, "My account after a SIP reset")

    # The receipt's print view.
    open_document(browse, page, "R-", "Receipt")

    # Profile: a new telephone number, saved in E.164 form.
    nav(page, "Profile")
    expect(page).to_have_url(portal("/my/profile"))
    browse.check(page, "My profile")
    field(page, "Telephone").fill("+44 20 7946 0958")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text("Your profile was saved.")
    expect(field(page, "Telephone")).to_have_value("+442079460958")
    browse.check(page, "My profile, saved")

    # Password: a wrong current one is refused on its field; then changed for real.
    nav(page, "Change password")
    browse.check(page, "Change password")
    new_password = "N3w-passw0rd-for-ada"
    field(page, "Current password").fill("wrong-password-1")
    field(page, "New password").fill(new_password)
    field(page, "Repeat new password").fill(new_password)
    main(page).get_by_role("button", name="Change password").click()
    expect(page.locator(".field.has-error")).to_have_count(1)
    browse.check(page, "Change password, refused")
    field(page, "Current password").fill(customer.password)
    field(page, "New password").fill(new_password)
    field(page, "Repeat new password").fill(new_password)
    main(page).get_by_role("button", name="Change password").click()
    expect(main(page)).to_contain_text("Your password was changed.")
    browse.check(page, "Password changed")

    # The new password logs in; the old one no longer does.
    page = browse.page(width=PHONE)
    page.goto(portal("/login"))
    field(page, "Account number or e-mail").fill(customer.identifier)
    field(page, "Password").fill(customer.password)
    page.get_by_role("button", name="Log in").click()
    expect(main(page)).to_contain_text("Unknown account or wrong password.")
    browse.check(page, "Log in, refused")
    field(page, "Password").fill(new_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(portal("/my/"))
    browse.check(page, "My account after logging in again")
    in_menu(page, page.locator("header").get_by_role("button", name="Log out")).click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(main(page)).to_contain_text("You are logged out.")
    browse.check(page, "Logged out")
    browse.portal.accounts["customer"] = Login("customer", customer.identifier, new_password)
