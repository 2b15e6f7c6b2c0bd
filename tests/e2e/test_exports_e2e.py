"""Downloads on the real server: the customer and rate CSV exports arrive whole and re-import."""

from playwright.sync_api import expect

from portal.accounts.account_csv import COLUMNS
from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import (
    create_account,
    download,
    field,
    main,
    read_csv,
    write_csv,
)

MASS_CREATED = 30
RATES = 1200  # more than one streamed chunk (500 rows) and one database batch (1,000)


def test_customers_export_arrives_whole_and_reimports(browse, portal, tmp_path):
    known, _url = create_account(
        browse, ADMIN, "customer", "Known", "known@example.com", Company="Known & Co, Ltd"
    )
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    nav(page, "Customers")
    browse.check(page, "Customers")
    main(page).get_by_role("link", name="Mass create").click()
    browse.check(page, "Mass create")
    field(page, "Number of accounts").fill(str(MASS_CREATED))
    page.get_by_role("button", name="Create accounts").click()
    expect(page.get_by_role("heading", name=f"{MASS_CREATED} customers created")).to_be_visible()
    browse.check(page, "Mass create credentials")

    nav(page, "Customers")
    browse.check(page, "Customers")
    exported = download(page, "Export CSV", tmp_path)
    rows = read_csv(exported)
    assert exported.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert len(rows) == MASS_CREATED + 1
    (row,) = [row for row in rows if row["account_number"] == known.identifier]
    assert (row["first_name"], row["last_name"], row["email"]) == (
        "Known",
        "Tester",
        "known@example.com",
    )
    assert row["company"] == "Known & Co, Ltd" and row["create_sip_device"] == "yes"

    # The same file goes back in through the import page; the numbers and e-mails are taken,
    # so they are left empty (new numbers are drawn) and the e-mails made new.
    for row in rows:
        row["account_number"] = ""
        row["email"] = "copy." + row["email"] if row["email"] else ""
    upload = write_csv(tmp_path / "reimport.csv", rows, COLUMNS)
    main(page).get_by_role("link", name="Import CSV").click()
    browse.check(page, "Import customers")
    field(page, "CSV file").set_input_files(upload)
    page.get_by_role("button", name="Import").click()
    expect(
        page.get_by_role("heading", name=f"{MASS_CREATED + 1} customers imported")
    ).to_be_visible()
    browse.check(page, "Import credentials")
    nav(page, "Customers")
    page.get_by_role("searchbox", name="Search accounts").fill("copy.known")
    expect(page.locator("#accounts-table tbody tr")).to_have_count(1)
    expect(page.locator("#accounts-table")).to_contain_text("Known & Co, Ltd")
    browse.check(page, "Customers, searched")


def test_rate_group_export_arrives_whole_and_reimports(browse, portal, tmp_path):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    main(page).get_by_role("link", name="Default", exact=True).click()
    browse.check(page, "Rate group Default")
    rates = [
        {
            "prefix": str(440000 + n),
            "destination": f"Destination, {n}",
            "connect_cost": "0.01",
            "cost_per_minute": "0.12345",
            "initial_increment": "30",
            "increment": "6",
        }
        for n in range(RATES)
    ]
    field(page, "CSV file").set_input_files(
        write_csv(tmp_path / "rates.csv", rates, list(rates[0]))
    )
    page.get_by_role("button", name="Import").click()
    expect(main(page)).to_contain_text(f"Imported {RATES} rates")
    browse.check(page, "Rate group Default after an import")

    exported = read_csv(download(page, "Export CSV", tmp_path))
    assert len(exported) == RATES
    known = {row["prefix"]: row for row in exported}["440777"]
    assert known["destination"] == "Destination, 777"
    assert known["cost_per_minute"].rstrip("0") == "0.12345"
    assert (known["initial_increment"], known["increment"]) == ("30", "6")

    # Into a new rate group, through its import form.
    nav(page, "Tariff · Rate Groups")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group")
    field(page, "Name").fill("Copy of Default")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Copy of Default" created.')
    field(page, "CSV file").set_input_files(
        write_csv(tmp_path / "copy.csv", exported, list(exported[0]))
    )
    page.get_by_role("button", name="Import").click()
    expect(main(page)).to_contain_text(f"Imported {RATES} rates into “Copy of Default”.")
    browse.check(page, "Rate group Copy of Default")
