"""A customer in a real browser: throttled login message, and the SIP password reset via htmx."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.models import Role
from tests.conftest import PASSWORD, make_account, make_sip_device

CUSTOMER_NUMBER = "1000000004"


def log_in(page: Page, live_server, password: str) -> None:
    """Submit the login form."""
    page.goto(live_server("/login"))
    page.get_by_label("Account number or e-mail", exact=True).fill(CUSTOMER_NUMBER)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.browser
def test_customer_resets_a_sip_password_in_place(page: Page, live_server):
    with live_server.app.app_context():
        customer = make_account(Role.CUSTOMER, CUSTOMER_NUMBER, first_name="Grace")
        device = make_sip_device(customer, CUSTOMER_NUMBER, "OldSipSecret0001")
        device_id = device.id
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)

    log_in(page, live_server, PASSWORD)
    expect(page).to_have_url(live_server("/my/"))
    page.wait_for_load_state("load")  # htmx has set up the page: the reset goes through it
    row = page.locator(f"#sip-device-{device_id}")
    expect(row.locator(".sip-password")).to_have_text("OldSipSecret0001")

    with page.expect_response(re.compile(r"/reset-password$")) as reset:
        row.get_by_role("button", name="Reset SIP password").click()
    assert reset.value.status == 200
    assert "<html" not in reset.value.text(), "the reset answered a whole page, not the row"
    expect(row.locator(".sip-password")).to_have_text(re.compile(r"^[A-Za-z0-9]{16}$"))
    expect(row.locator(".sip-password")).not_to_have_text("OldSipSecret0001")
    expect(row.get_by_text("New password")).to_be_visible()
    expect(page).to_have_url(live_server("/my/"))
    assert dialogs and "Reset the SIP password" in dialogs[0]


@pytest.mark.browser
def test_throttled_login_shows_its_message(page: Page, live_server):
    with live_server.app.app_context():
        make_account(Role.CUSTOMER, CUSTOMER_NUMBER)
    for _ in range(5):
        log_in(page, live_server, "Wrong-passw0rd")
        expect(page.get_by_text("Unknown account or wrong password.")).to_be_visible()
    log_in(page, live_server, PASSWORD)
    expect(page.get_by_role("alert")).to_have_text(
        "Too many failed attempts. Try again in 15 minutes."
    )
    expect(page).to_have_url(live_server("/login"))
