"""PDF receipts and invoices on the real server: downloaded whole by the admin and the customer."""

import datetime
import io

from playwright.sync_api import expect
from pypdf import PdfReader

from tests.conftest import wait_for_htmx
from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import (
    add_rate,
    create_account,
    create_api_key,
    download,
    main,
    open_document,
)

PHONE = 390
LONDON = "442079460958"


def pdf_text(path) -> str:
    """The text of a downloaded PDF, checked to be a whole one."""
    content = path.read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF"), path
    reader = PdfReader(io.BytesIO(content))
    # Babel puts a no-break space between the currency code and the amount.
    return "\n".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")


def _call(page, portal, key: str, account: str, call_id: str, seconds: int) -> None:
    """The softswitch's authorization and hang-up of one call, through the API."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"call_id": call_id, "account": account, "destination": LONDON}
    allowed = page.request.post(portal("/api/v1/calls/authorize"), data=body, headers=headers)
    assert allowed.json()["allowed"] is True, allowed.text()
    ended = page.request.post(
        portal(f"/api/v1/calls/{call_id}/end"),
        data={"duration_seconds": seconds, "hangup_cause": "NORMAL_CLEARING"},
        headers=headers,
    )
    assert ended.status == 200, ended.text()


def test_invoice_and_receipt_pdfs_download_whole(browse, portal, tmp_path):
    # The admins' "Default" plan prices London; the softswitch's key carries the calls.
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    main(page).get_by_role("link", name="Default", exact=True).click()
    add_rate(page, "4420", "UK London", "0.6")
    browse.check(page, "Rate group page after adding a rate")
    key = create_api_key(page, "pdf-switch")
    browse.check(page, "API keys with a new key")

    customer, url = create_account(
        browse,
        ADMIN,
        "customer",
        "Petra",
        "petra@example.com",
        Rate_Group=("select", "Default (USD)"),
        Billing_Schedule=("select", "Daily"),
        Account_Type=("select", "Postpaid"),
        Credit_Limit="100",
    )
    _call(page, portal, key, customer.identifier, "pdf-e2e-1", 60)  # 0.60
    _call(page, portal, key, customer.identifier, "pdf-e2e-2", 120)  # 1.20

    # `flask billing run`, as cron runs it: tomorrow invoices today's calls.
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    output = portal.flask("billing", "run", "--date", tomorrow.isoformat())
    assert "1 invoiced" in output, output

    page.goto(url)
    open_document(browse, page, "I", "Invoice", "Usage by destination")
    expect(main(page)).to_contain_text("UK London")
    invoice = download(page, "Download PDF", tmp_path)
    assert invoice.name.startswith("INV-") and invoice.suffix == ".pdf"
    text = pdf_text(invoice)
    number = invoice.stem
    assert f"Invoice {number}" in text and "Bill to: Petra Tester" in text
    assert "UK London" in text and "4420" in text and "USD 1.80" in text
    assert "Amount due USD 1.80" in text

    # The customer, on a phone, downloads its own invoice from its portal.
    customer_page = browse.page(customer, width=PHONE)
    customer_page.goto(portal("/my/"))
    browse.check(customer_page, "My account")
    open_document(browse, customer_page, "I", "Invoice", "UK London")
    (tmp_path / "customer").mkdir()
    mine = download(customer_page, "Download PDF", tmp_path / "customer")
    assert mine.name == invoice.name and f"Invoice {number}" in pdf_text(mine)

    # A receipt (a payment) downloads too.
    page.goto(url)
    wait_for_htmx(page, "#money-panel form")
    form = page.locator(
        "#money-panel form", has=page.get_by_role("heading", name="Add payment / refill")
    )
    form.get_by_label("Amount").fill("1.80")
    form.get_by_role("button", name="Add payment / refill").click()
    expect(page.locator("#money-panel")).to_contain_text("Payment recorded.")
    open_document(browse, page, "R-", "Receipt", "Applied to invoices")
    receipt = download(page, "Download PDF", tmp_path)
    assert receipt.name.startswith("R-")
    assert f"Receipt {receipt.stem}" in pdf_text(receipt) and "USD 1.80" in pdf_text(receipt)
