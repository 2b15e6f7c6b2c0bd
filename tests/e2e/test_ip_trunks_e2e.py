"""IP trunks and blocked prefixes on the real server: set up in the browser, used by the API."""

from playwright.sync_api import expect

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import (
    account_of,
    add_rate,
    api_call,
    create_account,
    create_api_key,
    field,
    main,
)

LONDON = "442079460958"
MOBILE = "447911123456"


def test_an_admin_adds_a_trunk_and_a_blocked_prefix_then_the_switch_calls(browse, portal):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    key = create_api_key(page, "trunk switch")
    browse.check(page, "API keys with a new key")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    main(page).get_by_role("link", name="Default", exact=True).click()
    add_rate(page, "44", "United Kingdom", "0.60")
    browse.check(page, "Rate group with blocked prefixes")
    caller, url = create_account(
        browse,
        ADMIN,
        "customer",
        "Trunk",
        "trunk.caller@example.com",
        Rate_Group=("select", "Default (USD)"),
        Account_Type=("select", "Postpaid"),
        Credit_Limit="100",
    )
    page.goto(url)
    browse.check(page, "Account with IP trunks")

    # A /24 with no tech prefix; then an address inside it is refused on its field.
    trunks = page.locator("#ip-trunks")
    wait_for_htmx(page, "#ip-trunks form")
    field(page, "IP address or range").fill("203.0.113.0/24")
    trunks.get_by_role("button", name="Add IP trunk").click()
    expect(trunks).to_contain_text("IP trunk 203.0.113.0/24 added.")
    expect(trunks.locator("code", has_text="203.0.113.0/24")).to_be_visible()
    wait_for_htmx(page, "#ip-trunks form")
    field(page, "IP address or range").fill("203.0.113.9")
    trunks.get_by_role("button", name="Add IP trunk").click()
    expect(trunks.locator(".field.has-error")).to_contain_text(
        "Overlaps 203.0.113.0/24 of this account."
    )
    browse.check(page, "Account with an overlapping range refused")

    # UK mobiles blocked for this account.
    blocked = page.locator("#blocked-prefixes")
    wait_for_htmx(page, "#blocked-prefixes form")
    field(page, "Blocked prefix").fill("4479")
    blocked.get_by_role("button", name="Block prefix").click()
    expect(blocked.locator("code", has_text="4479")).to_be_visible()
    wait_for_htmx(page, "#blocked-prefixes form")
    field(page, "Blocked prefix").fill("4479")
    blocked.get_by_role("button", name="Block prefix").click()
    expect(blocked).to_contain_text("This prefix is already blocked.")
    browse.check(page, "Account with a blocked prefix")

    # The Test a call panel shows the new check.
    page.reload()
    field(page, "Dialled number").fill(MOBILE)
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#test-call-result")).to_contain_text("Refused: DESTINATION_BLOCKED")
    expect(page.locator("#test-call-result")).to_contain_text("blocked prefix: 4479")

    # The softswitch: calls from the range are the account's; the blocked prefix is refused.
    body = {"call_id": "trunk-1", "source_ip": "203.0.113.77", "destination": LONDON}
    allowed = api_call(page, portal, key, body, 60)
    assert allowed["allowed"] is True and allowed["rate"]["prefix"] == "44", allowed
    body = {"call_id": "trunk-2", "source_ip": "203.0.113.77", "destination": MOBILE}
    refused = api_call(page, portal, key, body, None)
    assert (refused["allowed"], refused["cause"]) == (False, "DESTINATION_BLOCKED")
    body = {"call_id": "trunk-3", "source_ip": "198.51.100.1", "destination": LONDON}
    assert api_call(page, portal, key, body, None)["cause"] == "AUTHENTICATION_FAIL"

    # The trunk's call is the account's, on the Calls page.
    nav(page, "Calls")
    expect(page.locator("#calls")).to_contain_text(caller.identifier)
    expect(page.locator("#calls")).to_contain_text(f"{LONDON} (United Kingdom)")
    browse.check(page, "Calls")


def test_a_reseller_manages_its_customers_trunks_and_its_rate_groups_blocked_prefixes(
    browse, portal
):
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups of the reseller")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group (reseller)")
    field(page, "Name").fill("Trunk Retail")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Trunk Retail" created.')
    blocked = page.locator("#blocked-prefixes")
    wait_for_htmx(page, "#blocked-prefixes form")
    field(page, "Blocked prefix").fill("900")
    blocked.get_by_role("button", name="Block prefix").click()
    expect(blocked.locator("code", has_text="900")).to_be_visible()
    browse.check(page, "Rate group of the reseller with a blocked prefix")

    customer, url = create_account(
        browse, reseller, "customer", "Trunked", "trunked.customer@example.com"
    )
    page.goto(url)
    trunks = page.locator("#ip-trunks")
    wait_for_htmx(page, "#ip-trunks form")
    field(page, "IP address or range").fill("192.0.2.0/24")
    field(page, "Tech prefix").fill("55")
    trunks.get_by_role("button", name="Add IP trunk").click()
    expect(trunks).to_contain_text("IP trunk 192.0.2.0/24 added.")
    browse.check(page, "Reseller's customer with an IP trunk")

    # The admins see whose range it is; the reseller would not see an admins' customer's.
    admin = browse.page(ADMIN)
    _admins, admins_url = create_account(
        browse, ADMIN, "customer", "Neighbour", "neighbour@example.com"
    )
    admin.goto(admins_url)
    wait_for_htmx(admin, "#ip-trunks form")
    field(admin, "IP address or range").fill("192.0.2.7")
    admin.locator("#ip-trunks").get_by_role("button", name="Add IP trunk").click()
    expect(admin.locator("#ip-trunks .field.has-error")).to_contain_text(
        f"Overlaps 192.0.2.0/24 of account {customer.identifier}."
    )
    field(admin, "IP address or range").fill("198.51.100.0/24")
    admin.locator("#ip-trunks").get_by_role("button", name="Add IP trunk").click()
    expect(admin.locator("#ip-trunks")).to_contain_text("IP trunk 198.51.100.0/24 added.")
    page.reload()
    wait_for_htmx(page, "#ip-trunks form")
    field(page, "IP address or range").fill("198.51.100.9")
    trunks.get_by_role("button", name="Add IP trunk").click()
    expect(trunks.locator(".field.has-error")).to_contain_text(
        "Overlaps an address range of another account."
    )
