"""Products on the real server: an admin and a reseller sell one, a customer sees it."""

from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import account_of, add_rate, create_account, field, main


def create_product(browse, page: Page, name: str, price: str, who: str) -> None:
    """Create a monthly product on the Products page."""
    nav(page, "Products")
    browse.check(page, f"Products ({who})")
    main(page).get_by_role("link", name="Create Product").click()
    browse.check(page, f"Create Product ({who})")
    field(page, "Name").fill(name)
    field(page, "Price").fill(price)
    field(page, "Setup fee").fill("0")
    field(page, "Free minutes per period").fill("100")
    field(page, "Destination prefixes").fill("44\n33")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text(f'Product "{name}" created.')
    expect(main(page)).to_contain_text(name)


def sees_its_subscription(browse, customer, name: str) -> None:
    """The customer's own page lists the subscription, read-only."""
    page = browse.page(customer)
    page.goto(browse.portal("/my/"))
    browse.check(page, f"My account with {name}")
    table = page.locator("#my-subscriptions")
    expect(table).to_contain_text(name)
    expect(main(page).get_by_role("button", name="Cancel subscription")).to_have_count(0)


def test_admin_and_reseller_sell_products_and_customers_see_them(browse, portal):
    # The admin: a product, and a customer subscribed to it on the Create Customer form.
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    create_product(browse, page, "Admin Fibre", "30", "admin")
    customer, url = create_account(
        browse,
        ADMIN,
        "customer",
        "Subscriber",
        "subscriber.admin@example.com",
        Product=("select", "Admin Fibre (USD, Monthly)"),
    )
    page.goto(url)
    browse.check(page, "Account page with a subscription")
    panel = page.locator("#subscriptions")
    expect(panel).to_contain_text("Admin Fibre")
    expect(panel).to_contain_text("Active")
    sees_its_subscription(browse, customer, "Admin Fibre")

    # The reseller: its own rate group, product and customer, subscribed on the account page.
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups (reseller)")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group (reseller)")
    field(page, "Name").fill("Resold")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Resold" created.')
    add_rate(page, "44", "UK", "0.1")
    browse.check(page, "Rate group (reseller)")
    create_product(browse, page, "Reseller Voice", "12.50", "reseller")
    expect(main(page)).not_to_contain_text("Admin Fibre")
    customer, url = create_account(
        browse, reseller, "customer", "Resold", "resold.customer@example.com"
    )
    page = browse.page(reseller)
    page.goto(url)
    browse.check(page, "Account page (reseller)")
    panel = page.locator("#subscriptions")
    expect(panel).to_contain_text("No subscriptions.")
    panel.get_by_label("Product", exact=True).select_option(label="Reseller Voice")
    panel.get_by_role("button", name="Subscribe").click()
    expect(main(page)).to_contain_text("Subscribed to “Reseller Voice”.")
    expect(page.locator("#subscriptions")).to_contain_text("Reseller Voice")
    browse.check(page, "Account page with the reseller's subscription")
    sees_its_subscription(browse, customer, "Reseller Voice")
