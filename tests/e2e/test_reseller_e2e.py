"""A reseller on the real server: its own rate group, tax, customers, sub-resellers and keys."""

from playwright.sync_api import expect

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import (
    ACCOUNT_PAGE,
    account_of,
    add_money,
    add_rate,
    create_account,
    create_api_key,
    field,
    main,
    open_create_form,
)


def test_reseller_builds_its_own_business(browse, portal):
    _admins_customer, admins_customer_url = create_account(
        browse, ADMIN, "customer", "Admins", "admins.customer@example.com"
    )
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard of the reseller")
    header = page.locator("header")
    expect(header.get_by_role("link", name="Admins", exact=True)).to_have_count(0)
    expect(header.get_by_role("link", name="Global Configuration")).to_have_count(0)
    # Another tenant's record is simply not found.
    assert page.request.get(admins_customer_url).status == 404

    # Its own rate group, with a rate.
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups of the reseller")
    expect(main(page)).not_to_contain_text("Default")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group (reseller)")
    field(page, "Name").fill("Reseller Retail")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Reseller Retail" created.')
    add_rate(page, "33", "France", "0.2")
    browse.check(page, "Rate group of the reseller")

    # Its own tax.
    nav(page, "Configuration · Taxes")
    main(page).get_by_role("link", name="Create Tax").click()
    browse.check(page, "Create Tax (reseller)")
    field(page, "Name").fill("Reseller VAT")
    field(page, "Rate (%)").fill("10")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Tax "Reseller VAT" created.')
    browse.check(page, "Taxes of the reseller")

    # A customer on them: only the reseller's own rate group and tax are offered.
    open_create_form(browse, page, "customer")
    rate_groups = field(page, "Rate Group").locator("option").all_inner_texts()
    assert not any("Default" in option for option in rate_groups), rate_groups
    field(page, "Rate Group").select_option(label="Reseller Retail (USD)")
    page.get_by_label("Reseller VAT").check()
    field(page, "First Name").fill("Rita")
    field(page, "Email Address").fill("rita@example.com")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(ACCOUNT_PAGE)
    expect(main(page)).to_contain_text("Reseller VAT")
    browse.check(page, "Customer of the reseller")
    add_money(page, "payment", "30")
    expect(page.locator("#money-panel")).to_contain_text("Payment recorded.")
    wait_for_htmx(page, "form[hx-get*=test-call]")
    page.get_by_label("Dialled number").fill("33123456789")
    page.get_by_role("button", name="Explain").click()
    # The cost chain: the reseller pays for its customer's calls, and its own plan (the
    # admins' Default group) has no rate for France yet, nor has it any funds.
    result = page.locator("#test-call-result")
    expect(result).to_contain_text(f"by reseller {reseller.identifier} (1 level up)")
    browse.check(page, "A test call refused at the reseller's level")
    _admin_sells_france_to(browse, portal, reseller)
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#test-call-result")).to_contain_text("Allowed")
    browse.check(page, "Customer of the reseller after a payment and a test call")

    # Its customer list holds that customer only; search narrows it.
    nav(page, "Customers")
    table = page.locator("#accounts-table")
    expect(table).to_contain_text("rita@example.com")
    expect(table).not_to_contain_text("admins.customer@example.com")
    browse.check(page, "Customers of the reseller")
    wait_for_htmx(page, "input[name=q]")
    page.get_by_role("searchbox", name="Search accounts").fill("nobody-by-that-name")
    expect(table).to_contain_text("No account matches")
    browse.check(page, "Customers of the reseller, searched")

    # A sub-reseller, and an API key of its own.
    nav(page, "Resellers")
    browse.check(page, "Resellers of the reseller")
    main(page).get_by_role("link", name="Create Reseller").click()
    browse.check(page, "Create Reseller (reseller)")
    field(page, "First Name").fill("Sub")
    field(page, "Email Address").fill("sub.reseller@example.com")
    rate_group = field(page, "Rate Group")
    if not rate_group.input_value():
        rate_group.select_option(index=1)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(ACCOUNT_PAGE)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Reseller")
    browse.check(page, "Sub-reseller")
    create_api_key(page, "signup form")
    browse.check(page, "API keys of the reseller")


def _admin_sells_france_to(browse, portal, reseller) -> None:
    """The admin prices France in the reseller's plan and tops the reseller up, in the browser."""
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard of the admin")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups of the admin")
    main(page).get_by_role("link", name="Default", exact=True).click()
    add_rate(page, "33", "France", "0.1")
    browse.check(page, "The Default rate group with France")
    nav(page, "Resellers")
    browse.check(page, "Resellers of the admin")
    main(page).get_by_role("link", name=reseller.identifier, exact=True).click()
    browse.check(page, "The reseller's account page")
    add_money(page, "payment", "50")
    expect(page.locator("#money-panel")).to_contain_text("Payment recorded.")
    browse.check(page, "The reseller topped up by the admin")
