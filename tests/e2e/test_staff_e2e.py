"""Admin and sub-admin on the real server: accounts, bulk, tariffs, taxes, settings, keys, money."""

import datetime
import re

from playwright.sync_api import expect

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, Login, nav
from tests.e2e.steps import (
    ACCOUNT_PAGE,
    account_of,
    add_money,
    add_rate,
    create_account,
    create_api_key,
    digits,
    download,
    field,
    main,
    open_create_form,
    open_document,
    rate_group_id,
    read_csv,
    write_csv,
)

MARKUP_NAME = "Quinn<script>alert(1)</script>"


def test_admin_creates_edits_and_finds_a_customer(browse, portal):
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    open_create_form(browse, page, "customer")

    # The form's htmx toggles: Billing Day follows the schedule, Credit Limit the account type,
    # Expiry Date the valid days, and Regenerate draws a new account number.
    wait_for_htmx(page, "select[name=billing_schedule]")
    field(page, "Billing Schedule").select_option(label="Daily")
    expect(field(page, "Billing Day")).to_be_hidden()
    field(page, "Billing Schedule").select_option(label="Monthly")
    expect(field(page, "Billing Day")).to_be_visible()
    field(page, "Account Type").select_option(label="Postpaid")
    expect(field(page, "Credit Limit")).to_be_visible()
    field(page, "Credit Limit").fill("250")
    old_expiry = field(page, "Expiry Date").input_value()
    field(page, "Valid Days").fill("30")
    expect(field(page, "Expiry Date")).not_to_have_value(old_expiry)
    number = field(page, "Account Number")
    old_number = number.input_value()
    page.locator(".with-action", has=page.locator("#slot-account_number")).get_by_role(
        "button", name="Regenerate"
    ).click()
    expect(number).not_to_have_value(old_number)
    expect(number).to_have_value(re.compile(r"^[1-9]\d{9}$"))
    new_number = number.input_value()
    for secret in ("password", "pin"):
        control = field(page, secret.capitalize())
        old_secret = control.input_value()
        page.locator(".with-action", has=page.locator(f"#slot-{secret}")).get_by_role(
            "button", name="Regenerate"
        ).click()
        expect(field(page, secret.capitalize())).not_to_have_value(old_secret)

    # Choosing the owner swaps in its rate groups: the reseller has none of its own yet.
    rate_groups = field(page, "Rate Group").locator("option")
    expect(rate_groups.filter(has_text="Default")).to_have_count(1)
    field(page, "Reseller").select_option(label=f"Reseller Tester ({reseller.identifier})")
    expect(rate_groups.filter(has_text="Default")).to_have_count(0)
    field(page, "Reseller").select_option(index=0)
    expect(rate_groups.filter(has_text="Default")).to_have_count(1)
    field(page, "Rate Group").select_option(label="Default (USD)")

    # A bad e-mail is refused on its field; then the account is saved.
    field(page, "First Name").fill("Quinn")
    field(page, "Last Name").fill("Lovelace")
    field(page, "Email Address").fill("not an address")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text("nothing was saved")
    browse.check(page, "Create Customer with errors")
    field(page, "Email Address").fill("quinn@example.com")
    field(page, "First Name").fill(MARKUP_NAME)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(ACCOUNT_PAGE)
    expect(main(page)).to_contain_text(f"Account {new_number} created.")
    # The markup in the name is shown as text, never run.
    expect(main(page)).to_contain_text(f"{MARKUP_NAME} Lovelace")
    expect(main(page).locator("script")).to_have_count(0)
    browse.check(page, "Customer page")

    # Edit: the change is on the account page.
    main(page).get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Edit account {new_number}")
    browse.check(page, "Edit account")
    field(page, "Company").fill("Lovelace Telecom")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text("Account saved.")
    expect(main(page)).to_contain_text("Lovelace Telecom")
    browse.check(page, "Customer page after edit")

    # Search as you type: the table alone is swapped, the address bar follows.
    nav(page, "Customers")
    expect(page).to_have_url(portal("/accounts/"))
    wait_for_htmx(page, "input[name=q]")
    with page.expect_response(lambda r: "q=lovel" in r.url) as search:
        page.get_by_role("searchbox", name="Search accounts").fill("lovel")
    assert "<html" not in search.value.text(), "the search answered a whole page"
    rows = page.locator("#accounts-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(new_number)
    expect(page).to_have_url(re.compile(r"[?&]q=lovel"))
    browse.check(page, "Customers, searched")


def test_admin_creates_a_reseller_a_sub_admin_and_an_admin(browse, portal):
    for kind, heading in (
        ("reseller", "Reseller"),
        ("subadmin", "Sub-admin"),
        ("admin", "Admin"),
    ):
        login, url = create_account(browse, ADMIN, kind, f"New {kind}", f"new.{kind}@example.com")
        page = browse.page(ADMIN)
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_contain_text(
            f"{heading} {login.identifier}"
        )
        browse.check(page, f"{kind} page")
    # Each one logs in with the password shown once.
    for kind in ("reseller", "subadmin"):
        page = browse.page(account_of(browse, ADMIN, kind))
        page.goto(portal("/dashboard/"))
        expect(page.locator("header")).to_contain_text("Log out")
        browse.check(page, f"Dashboard of the {kind}")
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    nav(page, "Admins")
    expect(page.locator("#accounts-table")).to_contain_text("new.subadmin@example.com")
    expect(page.locator("#accounts-table")).to_contain_text("new.admin@example.com")
    browse.check(page, "Admins and sub-admins")
    nav(page, "Resellers")
    expect(page.locator("#accounts-table")).to_contain_text("new.reseller@example.com")
    browse.check(page, "Resellers")


def test_admin_mass_creates_and_imports_customers(browse, portal, tmp_path):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    nav(page, "Customers")
    browse.check(page, "Customers")
    main(page).get_by_role("link", name="Mass create").click()
    expect(page.get_by_role("heading", name="Mass create customers")).to_be_visible()
    browse.check(page, "Mass create")
    wait_for_htmx(page, "select[name=account_type]")
    field(page, "Account Type").select_option(label="Postpaid")
    expect(field(page, "Credit Limit")).to_be_visible()
    field(page, "Number of accounts").fill("4")
    page.get_by_role("button", name="Create accounts").click()
    expect(page.get_by_role("heading", name="4 customers created")).to_be_visible()
    expect(page.locator("#credentials tbody tr")).to_have_count(4)
    browse.check(page, "Mass create credentials")
    credentials = read_csv(download(page, "Download credentials CSV", tmp_path))
    assert len(credentials) == 4
    first = credentials[0]
    assert re.fullmatch(r"[1-9]\d{9}", first["account_number"]) and first["password"]

    # The customer import: two new customers of the "Default" rate group from a CSV file.
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    group_id = rate_group_id(page, "Default")
    nav(page, "Customers")
    main(page).get_by_role("link", name="Import CSV").click()
    expect(page.get_by_role("heading", name="Import customers (CSV)")).to_be_visible()
    browse.check(page, "Import customers")
    rows = [
        {"first_name": "Imported", "last_name": name, "email": f"{name}@example.com"}
        for name in ("One", "Two")
    ]
    for row in rows:
        row["rate_group_id"] = group_id
    upload = write_csv(tmp_path / "new.csv", rows, list(rows[0]))
    field(page, "CSV file").set_input_files(upload)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="2 customers imported")).to_be_visible()
    browse.check(page, "Import credentials")
    imported = read_csv(download(page, "Download credentials CSV", tmp_path))
    assert len(imported) == 2

    # The first mass-created customer logs in with the downloaded password.
    login = Login("customer", first["account_number"], first["password"])
    customer_page = browse.page(login)
    customer_page.goto(portal("/my/"))
    expect(customer_page.get_by_role("heading", level=1)).to_contain_text(first["account_number"])
    browse.check(customer_page, "My account (mass-created)")


def test_admin_builds_a_rate_group_and_a_tax(browse, portal, tmp_path):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group")
    field(page, "Name").fill("Retail UK")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Retail UK" created.')
    browse.check(page, "Rate group page")

    # Add a rate by hand, then import more from a file (merged).
    add_rate(page, "44", "United Kingdom", "0.6")
    browse.check(page, "Rate group page after adding a rate")
    rates = [
        {
            "prefix": f"4420{n}",
            "destination": f"London {n}",
            "connect_cost": "0",
            "cost_per_minute": "0.5",
            "initial_increment": "30",
            "increment": "6",
        }
        for n in range(5)
    ]
    upload = write_csv(tmp_path / "rates.csv", rates, list(rates[0]))
    field(page, "CSV file").set_input_files(upload)
    page.get_by_label("Add, and overwrite same prefixes").check()
    page.get_by_role("button", name="Import").click()
    expect(main(page)).to_contain_text("Imported 5 rates into “Retail UK”.")
    expect(main(page)).to_contain_text("6 rates")
    browse.check(page, "Rate group page after an import")

    # Find prefix and Test a number: fragments typed into.
    wait_for_htmx(page, "#rate-search")
    page.get_by_label("Find prefix").fill("44203")
    expect(page.locator("#rates-table tbody tr")).to_have_count(1)
    expect(page.locator("#rates-table")).to_contain_text("London 3")
    wait_for_htmx(page, "#lookup-number")
    page.get_by_label("Test a number").fill("442041234567")
    expect(page.locator("#lookup-result")).to_contain_text("London 4")
    browse.check(page, "Rate group page, searched")

    # Taxes: create one, edit it, deactivate it.
    nav(page, "Configuration · Taxes")
    browse.check(page, "Taxes")
    main(page).get_by_role("link", name="Create Tax").click()
    browse.check(page, "Create Tax")
    field(page, "Name").fill("VAT")
    field(page, "Rate (%)").fill("20")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Tax "VAT" created.')
    browse.check(page, "Taxes after creating one")
    row = main(page).get_by_role("row", name=re.compile("VAT"))
    row.get_by_role("link", name="Edit").click()
    browse.check(page, "Edit tax")
    field(page, "Fixed amount").fill("0.10")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Tax "VAT" saved.')
    main(page).get_by_role("row", name=re.compile("VAT")).get_by_role(
        "button", name="Deactivate"
    ).click()
    expect(main(page)).to_contain_text('Tax "VAT" is now inactive.')
    assert any("VAT" in question for question in browse.dialogs), browse.dialogs
    browse.check(page, "Taxes after deactivating one")


def test_admin_changes_the_configuration_and_reads_the_audit_log(browse, portal):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    nav(page, "Global Configuration")
    browse.check(page, "Global Configuration")
    field(page, "Valid days").fill("400")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text("Configuration saved.")
    expect(field(page, "Valid days")).to_have_value("400")
    browse.check(page, "Global Configuration saved")

    nav(page, "Audit log")
    expect(page.locator("#audit-entries")).to_contain_text("default valid days")
    browse.check(page, "Audit log")
    wait_for_htmx(page, "#audit-account")
    page.get_by_label("Account number").fill("9999999999")
    expect(page.locator("#audit-entries")).to_contain_text("No account has the number 9999999999")
    browse.check(page, "Audit log, filtered")


def test_admin_creates_and_revokes_an_api_key(browse, portal):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    key = create_api_key(page, "fs1")
    browse.check(page, "API keys with a new key")
    # The key works against the API, and is shown only once.
    answer = page.request.get(
        portal("/api/v1/accounts"), headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status == 200, answer.text()
    page.reload()
    expect(main(page)).not_to_contain_text(key)
    main(page).get_by_role("row", name=re.compile("fs1")).get_by_role(
        "button", name="Revoke"
    ).click()
    expect(main(page)).to_contain_text('API key "fs1" revoked.')
    assert any("fs1" in question for question in browse.dialogs), browse.dialogs
    browse.check(page, "API keys after revoking one")
    answer = page.request.get(
        portal("/api/v1/accounts"), headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status == 401
    main(page).get_by_role("link", name="REST API").click()
    browse.check(page, "REST API reference")


def balance_digits(page) -> str:
    """The Money panel's balance, digits only, without the zeros of its decimals."""
    return digits(page.locator("#money-panel #balance").inner_text()).rstrip("0")


def test_admin_takes_money_tests_a_call_and_prints_a_receipt(browse, portal):
    _login, url = create_account(
        browse,
        ADMIN,
        "customer",
        "Grace",
        "grace@example.com",
        Rate_Group=("select", "Default (USD)"),
    )
    page = browse.page(ADMIN)
    page.goto(url)
    browse.check(page, "Customer page")
    panel = page.locator("#money-panel")

    # The panel alone is swapped in: with the field's error, then with the new balance.
    add_money(page, "payment", "12.345")
    expect(panel.get_by_role("alert")).to_contain_text("decimal places")
    add_money(page, "payment", "20")
    expect(panel).to_contain_text("Payment recorded.")
    assert balance_digits(page) == "2"
    add_money(page, "charge", "7.50", "Number porting")
    expect(panel).to_contain_text("Charge recorded.")
    assert balance_digits(page) == "125"
    browse.check(page, "Customer page after a payment and a charge")

    # Test a call: "Default" has no rates, so the call is refused, and why is said.
    wait_for_htmx(page, "form[hx-get*=test-call]")
    page.get_by_label("Dialled number").fill("442079460958")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#test-call-result")).to_contain_text("Refused")
    browse.check(page, "Customer page, call tested")

    # SIP device: a new password, after the confirmation.
    sip_row = main(page).get_by_role("row", name=re.compile("default"))
    old_secret = sip_row.locator("code").inner_text()
    sip_row.get_by_role("button", name="Reset SIP password").click()
    expect(main(page)).to_contain_text("New SIP password set for")
    new_secret = main(page).get_by_role("row", name=re.compile("default")).locator("code")
    expect(new_secret).not_to_have_text(old_secret)
    browse.check(page, "Customer page after a SIP reset")

    # The receipt of the charge, and its print view.
    open_document(browse, page, "R-", "Receipt", "Number porting")


def test_billing_run_invoices_a_postpaid_customer(browse, portal):
    _login, url = create_account(
        browse,
        ADMIN,
        "customer",
        "Paula",
        "paula@example.com",
        Billing_Schedule=("select", "Daily"),
        Account_Type=("select", "Postpaid"),
        Credit_Limit="100",
    )
    page = browse.page(ADMIN)
    page.goto(url)
    browse.check(page, "Postpaid customer page")
    add_money(page, "charge", "7.50", "Number porting")
    expect(page.locator("#money-panel")).to_contain_text("Charge recorded.")
    assert balance_digits(page) == "75"

    # `flask billing run`, as cron runs it, on the same database: tomorrow bills today.
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    output = portal.flask("billing", "run", "--date", tomorrow.isoformat())
    assert "1 invoiced" in output, output
    page.reload()
    browse.check(page, "Postpaid customer page with an invoice")
    open_document(browse, page, "I", "Invoice", "Number porting")

    # A payment: its receipt, allocated to the invoice (partly paid, the rest still owed).
    page.goto(url)
    add_money(page, "payment", "5", "Bank transfer")
    panel = page.locator("#money-panel")
    expect(panel).to_contain_text("Payment recorded. R-")
    expect(panel).to_contain_text("Applied to INV-")
    expect(panel).to_contain_text("Partial")
    assert balance_digits(page) == "25"
    browse.check(page, "Postpaid customer page with a payment")
    open_document(browse, page, "I", "Invoice", "Paid by")
    page.goto(url)
    open_document(browse, page, "R-", "Receipt", "Applied to invoices")


def test_sub_admin_manages_customers_without_the_admin_pages(browse, portal):
    subadmin = account_of(browse, ADMIN, "subadmin")
    page = browse.page(subadmin)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard of the sub-admin")
    header = page.locator("header")
    expect(header.get_by_role("link", name="Admins", exact=True)).to_have_count(0)
    expect(header.get_by_role("link", name="Global Configuration")).to_have_count(0)
    answer = page.request.get(portal("/configuration/"))
    assert answer.status in (403, 404)
    login, url = create_account(browse, subadmin, "customer", "Sam", "sam@example.com")
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(login.identifier)
    browse.check(page, "Customer page (sub-admin)")
    nav(page, "Customers")
    expect(page.locator("#accounts-table")).to_contain_text("sam@example.com")
    browse.check(page, "Customers (sub-admin)")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups (sub-admin)")
    nav(page, "Configuration · Taxes")
    browse.check(page, "Taxes (sub-admin)")
    nav(page, "API keys")
    browse.check(page, "API keys (sub-admin)")
    nav(page, "Mail outbox")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mail outbox")
    browse.check(page, "Mail outbox (sub-admin)")


def test_a_reseller_changes_its_own_password_and_logs_out_everywhere(browse, portal):
    reseller, _url = create_account(browse, ADMIN, "reseller", "Rex", "rex@example.com")
    elsewhere = browse.page(reseller)  # another browser of the same reseller
    elsewhere.goto(portal("/dashboard/"))
    page = browse.page(reseller, width=390)
    page.goto(portal("/dashboard/"))
    nav(page, "My account")
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    expect(page.locator("#login-sessions")).to_contain_text("(this browser)")
    browse.check(page, "My account (reseller)")
    new_password = "N3w-passw0rd-for-rex"
    field(page, "Current password").fill("wrong-password-1")
    field(page, "New password").fill(new_password)
    field(page, "Repeat new password").fill(new_password)
    main(page).get_by_role("button", name="Change password").click()
    expect(page.locator(".field.has-error")).to_have_count(1)
    browse.check(page, "My account, refused")
    field(page, "Current password").fill(reseller.password)
    field(page, "New password").fill(new_password)
    field(page, "Repeat new password").fill(new_password)
    main(page).get_by_role("button", name="Change password").click()
    expect(main(page)).to_contain_text("Your password was changed.")
    browse.check(page, "My account, password changed")
    elsewhere.reload()
    expect(elsewhere).to_have_url(re.compile(r"/login"))  # the other browser was logged out
    main(page).get_by_role("button", name="Log out everywhere").click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(main(page)).to_contain_text("You are logged out on every browser and device.")
    page.goto(portal("/dashboard/"))
    expect(page).to_have_url(re.compile(r"/login"))
