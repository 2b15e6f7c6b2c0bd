"""What a user does in the e2e tests, step by step: create accounts, find fields, download files."""

import csv
import io
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, Login, Session, nav

DOWNLOAD_TIMEOUT_MS = 15_000  # from the click to the first byte; a 5xx never gets there
ACCOUNT_PAGE = re.compile(r"/accounts/\d+$")
# The list buttons that open each kind's create form, and the list they sit on.
CREATE_FROM = {
    "customer": ("Customers", "Create Customer"),
    "reseller": ("Resellers", "Create Reseller"),
    "subadmin": ("Admins", "Create Sub-admin"),
    "admin": ("Admins", "Create Admin"),
}


def field(page: Page, label: str):
    """The form control labelled exactly `label`."""
    return page.get_by_label(label, exact=True)


def main(page: Page):
    """The page's main content (flash messages, headings, tables)."""
    return page.locator("main")


def digits(text: str) -> str:
    """The digits of `text`: amounts compared whatever the format ("£16.95", "16.95 GBP")."""
    return re.sub(r"\D", "", text)


def open_create_form(browse: Session, page: Page, kind: str) -> None:
    """From the navigation: the list of `kind`, then its create button; the form is checked."""
    list_link, button = CREATE_FROM[kind]
    nav(page, list_link)
    browse.check(page, list_link)
    main(page).get_by_role("link", name=button, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(button)
    browse.check(page, button)


def create_account(
    browse: Session, creator: Login, kind: str, first_name: str, email: str, **choices
) -> tuple[Login, str]:
    """Create an account as `creator` does in the browser: its login and the account page URL.

    `choices` are extra form fields by label: text is typed, a `("select", label)` pair chosen.
    """
    page = browse.page(creator)
    page.goto(browse.portal("/dashboard/"))
    browse.check(page, "Dashboard")
    open_create_form(browse, page, kind)
    number = field(page, "Account Number").input_value()
    field(page, "First Name").fill(first_name)
    field(page, "Last Name").fill("Tester")
    field(page, "Email Address").fill(email)
    for label, value in choices.items():
        label = label.replace("_", " ")
        if isinstance(value, tuple):
            field(page, label).select_option(label=value[1])
        elif isinstance(value, bool):
            field(page, label).set_checked(value)
        else:
            field(page, label).fill(str(value))
    rate_group = field(page, "Rate Group")
    if rate_group.count() and not rate_group.input_value():
        rate_group.select_option(index=1)  # the first rate group offered
    page.get_by_role("button", name="Save").click()
    refused = main(page).get_by_text("nothing was saved")
    expect(page.locator("#new-password").or_(refused)).to_be_visible()
    errors = page.locator(".field.has-error").all_inner_texts()
    assert not errors, f"creating a {kind} was refused: {errors}"
    expect(page).to_have_url(ACCOUNT_PAGE)
    expect(main(page)).to_contain_text(f"Account {number} created.")
    password = page.locator("#new-password").inner_text()
    browse.check(page, f"the new {kind}'s page")
    url = page.url
    page.context.close()
    browse.contexts.remove(page.context)
    return Login(kind, number, password), url


def account_of(browse: Session, creator: Login, kind: str) -> Login:
    """This module's account of `kind`, created by `creator` through the UI the first time."""
    key = f"{creator.identifier}:{kind}"
    if key not in browse.portal.accounts:
        login, _url = create_account(
            browse, creator, kind, kind.capitalize(), f"{kind}.of.{creator.label}@example.com"
        )
        browse.portal.accounts[key] = login
    return browse.portal.accounts[key]


def download(page: Page, link_name: str, tmp_path: Path) -> Path:
    """Click the link (or form button) named `link_name`; wait for the whole file it gets."""
    with page.expect_download(timeout=DOWNLOAD_TIMEOUT_MS) as info:
        link = page.get_by_role("link", name=link_name)
        link.or_(page.get_by_role("button", name=link_name)).first.click()
    failure = info.value.failure()
    assert failure is None, f"the download of {link_name!r} failed: {failure}"
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def read_csv(path: Path) -> list[dict]:
    """The rows of a downloaded CSV file, by column name."""
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    """Write `rows` as a CSV file the import pages take."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def rate_group_id(page: Page, name: str) -> str:
    """The id of the rate group `name`, from its link on the Rate Groups page."""
    href = main(page).get_by_role("link", name=name, exact=True).get_attribute("href")
    return re.search(r"/(\d+)$", href.rstrip("/")).group(1)


def open_document(browse: Session, page: Page, number: str, kind: str, line: str = "") -> None:
    """Open the newest document whose number starts with `number`, then its print view."""
    main(page).get_by_role("link", name=re.compile(rf"^{number}")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(kind)
    if line:
        expect(main(page)).to_contain_text(line)
    browse.check(page, kind)
    # Printed, the page is the document alone: no navigation.
    page.emulate_media(media="print")
    expect(page.locator("header nav")).to_be_hidden()
    page.emulate_media(media="screen")


def add_rate(page: Page, prefix: str, destination: str, cost_per_minute: str) -> None:
    """Add a rate by hand on the rate group page that is open."""
    field(page, "Prefix").fill(prefix)
    field(page, "Destination").fill(destination)
    field(page, "Cost per minute").fill(cost_per_minute)
    page.get_by_role("button", name="Add rate").click()
    expect(main(page)).to_contain_text(f'Rate for prefix "{prefix}" added.')


def create_api_key(page: Page, name: str) -> str:
    """Create an API key named `name` through the API keys page: its secret, shown once."""
    nav(page, "API keys")
    field(page, "Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-api-key")
    expect(key).to_have_text(re.compile(r"^vbp_"))
    return key.inner_text()


def add_money(page: Page, kind: str, amount: str, description: str = "") -> None:
    """Post a payment or a charge through the Money panel (an htmx swap of the panel)."""
    label = "Add payment / refill" if kind == "payment" else "Add charge"
    wait_for_htmx(page, "#money-panel form")
    form = page.locator("#money-panel form", has=page.get_by_role("heading", name=label))
    form.get_by_label("Amount").fill(amount)
    form.get_by_label("Description").fill(description)
    form.get_by_role("button", name=label).click()


def uk_caller(browse: Session, page: Page, email: str) -> Login:
    """A postpaid customer of the admins on Default, where the UK (44) costs 0.60 a minute."""
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    main(page).get_by_role("link", name="Default", exact=True).click()
    browse.check(page, "Rate group Default")
    add_rate(page, "44", "United Kingdom", "0.60")
    caller, _url = create_account(
        browse,
        ADMIN,
        "customer",
        "Caller",
        email,
        Rate_Group=("select", "Default (USD)"),
        Account_Type=("select", "Postpaid"),
        Credit_Limit="100",
    )
    return caller


def api_call(page: Page, url, key: str, body: dict, seconds: int | None) -> dict:
    """Authorize a call through the softswitch API and, if allowed and `seconds` given, end it."""
    headers = {"Authorization": f"Bearer {key}"}
    answer = page.request.post(url("/api/v1/calls/authorize"), data=body, headers=headers)
    assert answer.ok, answer.text()
    if seconds is not None and answer.json()["allowed"]:
        ended = page.request.post(
            url(f"/api/v1/calls/{body['call_id']}/end"),
            data={"duration_seconds": seconds},
            headers=headers,
        )
        assert ended.ok, ended.text()
    return answer.json()
