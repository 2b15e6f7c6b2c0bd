"""Receipts and invoices as PDF: the print view's content, downloads scoped, mailed attached."""

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from portal import mail as portal_mail
from portal.billing.run import run_billing
from portal.billing.service import add_payment
from portal.billing.usage import OTHER_USAGE, group_usage
from portal.extensions import db
from portal.models import (
    AccountType,
    BillingSchedule,
    Document,
    DocumentKind,
    InvoiceProfile,
    OutboxMessage,
    Rate,
)
from tests.conftest import make_caller

UK = "447911123456"  # call_rates' 44 "UK": 0.60 a minute, whole minutes
LONDON = "442079460958"  # 4420 "UK London": 0.10 + 0.60 a minute, 30 s then 6 s
# The smallest valid PNG (1x1), as an issuer's logo.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def pdf_text(content: bytes) -> str:
    """The text of every page of a PDF (and a check that it is one, whole)."""
    assert content.startswith(b"%PDF-")
    assert content.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(content))
    # Babel puts a no-break space between the currency code and the amount.
    return "\n".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")


def _call(api, account, call_id: str, destination: str, seconds: int) -> None:
    granted = api.authorize(
        call_id=call_id, account=account.account_number, destination=destination
    )
    assert granted.json["allowed"] is True, granted.json
    assert api.end(call_id, seconds).status_code == 200


@pytest.fixture
def invoiced(api, call_rates, vat):
    """A postpaid customer billed daily with three calls to two destinations, invoiced."""
    account = make_caller(
        "5000000401",
        call_rates,
        email="paula@example.com",
        first_name="Paula",
        account_type=AccountType.POSTPAID,
        credit_limit=Decimal(100),
        billing_schedule=BillingSchedule.DAILY,
    )
    account.taxes.append(vat)
    db.session.commit()
    _call(api, account, "c1", UK, 61)  # 2 minutes: 1.20
    _call(api, account, "c2", UK, 30)  # 1 minute: 0.60
    _call(api, account, "c3", LONDON, 36)  # 0.10 + 36 s at 0.60: 0.46
    report = run_billing(day=date.today() + timedelta(days=1))
    assert report.invoiced == 1 and report.failed == []
    invoice = db.session.scalar(select(Document).where(Document.account_id == account.id))
    return invoice


# --- Usage by destination: the lines add up to what the document bills ---------------------


def test_usage_lines_add_up_to_the_calls_line_whatever_the_groups_leave():
    rows = [("UK", "44", 2, 91, Decimal("1.80")), ("UK London", "4420", 1, 36, Decimal("0.46"))]
    usage = group_usage(rows, Decimal("2.26"), 3, "USD")
    assert [(line.description, line.calls, line.minutes, line.amount) for line in usage.lines] == [
        ("UK", 2, Decimal("1.52"), Decimal("1.80")),
        ("UK London", 1, Decimal("0.60"), Decimal("0.46")),
    ]
    # Costs rated in 5 decimals before rounding (0.12345 + 0.12345): each group is rounded
    # half-up, and what they leave of the billed line is shown, never dropped.
    old = [("UK", "44", 2, 120, Decimal("0.2469"))]
    usage = group_usage(old, Decimal("0.25"), 2, "USD")
    assert [(line.description, line.amount) for line in usage.lines] == [
        ("UK", Decimal("0.25")),
    ]
    usage = group_usage([("UK", "44", 1, 60, Decimal("0.60"))], Decimal("1.20"), 2, "USD")
    assert usage.lines[-1].description == OTHER_USAGE
    assert (usage.lines[-1].calls, usage.lines[-1].amount) == (1, Decimal("0.60"))
    assert sum(line.amount for line in usage.lines) == usage.total == Decimal("1.20")
    # JPY: no minor unit.
    usage = group_usage([("JP", "81", 3, 90, Decimal("13.5"))], Decimal(14), 3, "JPY")
    assert [line.amount for line in usage.lines] == [Decimal(14)]


# --- The print view and the PDF --------------------------------------------------------------


def test_the_invoice_page_shows_period_issuer_usage_and_amount_due(as_admin, invoiced):
    db.session.add(InvoiceProfile(issuer_key=0, reseller_id=None, logo=PNG, logo_type="image/png"))
    db.session.commit()
    page = as_admin.get(f"/documents/{invoiced.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "INV-000001" in html and "Billing period:" in html
    assert "Usage by destination" in html
    assert '<td>UK London</td><td>4420</td><td class="num">1</td>' in html
    assert '<td>UK</td><td>44</td><td class="num">2</td>' in html
    assert "Amount due" in html and f'href="/documents/{invoiced.id}.pdf"' in html
    assert f'src="/documents/{invoiced.id}/logo"' in html
    assert "Download PDF" in html


def test_the_invoice_pdf_holds_number_lines_and_total(as_admin, invoiced):
    # 2.26 of calls, VAT 20 % + 0.10: 0.45 (0.452) + 0.10.
    assert [(line.description, line.amount) for line in invoiced.lines] == [
        ("Calls (3)", Decimal("2.26")),
        ("VAT (20% + 0.1)", Decimal("0.55")),
    ]
    assert invoiced.total == Decimal("2.81")
    response = as_admin.get(f"/documents/{invoiced.id}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=INV-000001.pdf"
    text = pdf_text(response.data)
    assert "Invoice INV-000001" in text
    assert "Billing period:" in text and "Bill to: Paula" in text
    for expected in ("UK London", "4420", "USD 0.46", "UK 44 2", "USD 1.80", "Calls (3)"):
        assert expected in text, expected
    assert "USD 2.26" in text and "VAT (20% + 0.1)" in text and "USD 0.55" in text
    assert "Total USD 2.81" in text and "Amount due USD 2.81" in text


def test_the_pdf_embeds_the_issuers_profile_and_logo(as_admin, invoiced):
    db.session.add(InvoiceProfile(issuer_key=0, reseller_id=None, logo=PNG, logo_type="image/png"))
    db.session.commit()
    as_admin.post(
        "/my/invoice-profile",
        {
            "company_name": "Acme Telecom Ltd",
            "address": "1 Long Road\nLeeds",
            "tax_number": "GB123456789",
            "email": "billing@acme.example",
        },
        token_from="/my/invoice-profile",
    )
    response = as_admin.get(f"/documents/{invoiced.id}.pdf")
    text = pdf_text(response.data)
    assert "Acme Telecom Ltd" in text and "1 Long Road, Leeds" in text
    assert "Tax number GB123456789" in text
    reader = PdfReader(io.BytesIO(response.data))
    assert len(list(reader.pages[0].images)) == 1  # the logo, embedded (nothing fetched)


def test_a_receipt_renders_as_pdf(app, as_admin, customer):
    posted = add_payment(None, customer, "12.50", "Top-up by card")
    response = as_admin.get(f"/documents/{posted.document.id}.pdf")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == "attachment; filename=R-000001.pdf"
    text = pdf_text(response.data)
    assert "Receipt R-000001" in text and "Top-up by card" in text
    assert "Total USD 12.50" in text and "Usage by destination" not in text


# --- Who may download ------------------------------------------------------------------------


def test_another_tenants_document_is_not_found(client, user, tenants):
    theirs = add_payment(None, tenants["b_customer"], "5").document
    mine = add_payment(None, tenants["a_customer"], "5").document
    user.login(tenants["a"].account_number)
    assert user.get(f"/documents/{theirs.id}.pdf").status_code == 404
    assert user.get(f"/documents/{theirs.id}").status_code == 404
    assert user.get(f"/documents/{mine.id}.pdf").status_code == 200
    assert user.get("/documents/99999999.pdf").status_code == 404
    assert user.get("/documents/99999999999999999999.pdf").status_code == 404


def test_a_customer_downloads_its_own_documents_only(user, customer, other_customer):
    theirs = add_payment(None, other_customer, "5").document
    mine = add_payment(None, customer, "5").document
    user.login(customer.account_number)
    assert user.get(f"/documents/{theirs.id}.pdf").status_code == 404
    response = user.get(f"/documents/{mine.id}.pdf")
    assert response.status_code == 200 and mine.display_number in pdf_text(response.data)


def test_a_pdf_needs_a_login(client, customer):
    document = add_payment(None, customer, "5").document
    response = client.get(f"/documents/{document.id}.pdf")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- Mailed with the PDF attached -------------------------------------------------------------


def _pdf_attachment(message):
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    return attachment.get_filename(), attachment.get_content()


def test_the_invoice_mail_carries_its_pdf(app, smtp_server, invoiced):
    row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "invoice"))
    assert row.document_id == invoiced.id and row.body == ""  # the PDF is not stored
    assert portal_mail.send_pending() == (1, 0, 0)
    (message,) = smtp_server.inbox.messages()
    assert message["Subject"] == "Invoice INV-000001 for account 5000000401"
    assert "Total: USD\xa02.81" in message.get_body(("plain",)).get_content()
    filename, content = _pdf_attachment(message)
    assert filename == "INV-000001.pdf"
    text = pdf_text(content)
    assert "Invoice INV-000001" in text and "UK London" in text and "Total USD 2.81" in text


def test_the_receipt_mail_carries_its_pdf(app, smtp_server, customer):
    posted = add_payment(None, customer, "7.25", "Cash")
    (row,) = posted.mail
    assert row.document_id == posted.document.id and "R-000001" in row.body
    assert portal_mail.send_pending() == (1, 0, 0)
    (message,) = smtp_server.inbox.messages()
    filename, content = _pdf_attachment(message)
    assert filename == "R-000001.pdf"
    assert "Receipt R-000001" in pdf_text(content) and "USD 7.25" in pdf_text(content)


def test_other_mail_has_no_attachment(app, smtp_server, customer):
    portal_mail.queue("welcome", "new@example.com", "welcome", customer, password=None)
    db.session.commit()
    assert portal_mail.send_pending() == (1, 0, 0)
    (message,) = smtp_server.inbox.messages()
    assert list(message.iter_attachments()) == []


def test_a_mail_whose_pdf_fails_waits_for_a_retry(app, smtp_server, customer, monkeypatch):
    def broken(document):
        raise OSError("cannot load library 'libpango-1.0-0'")

    posted = add_payment(None, customer, "3", "Cash")
    monkeypatch.setattr(portal_mail, "_document_attachment", [broken])
    assert portal_mail.send_pending() == (0, 1, 0)
    assert smtp_server.inbox.messages() == []  # never sent without its attachment
    row = db.session.get(OutboxMessage, posted.mail[0].id)
    assert row.sent_at is None and row.attempts == 1 and row.next_attempt_at is not None
    assert "AttachmentFailed" in row.last_error and "libpango" in row.last_error
    # Repaired: the next try sends it, attached.
    monkeypatch.undo()
    row.next_attempt_at = None
    db.session.commit()
    assert portal_mail.send_pending() == (1, 0, 0)
    (message,) = smtp_server.inbox.messages()
    assert _pdf_attachment(message)[0] == "R-000001.pdf"


def test_a_statement_of_a_prepaid_account_lists_its_usage_too(as_admin, api, call_rates):
    account = make_caller(
        "5000000402", call_rates, funds="10", billing_schedule=BillingSchedule.DAILY
    )
    _call(api, account, "p1", LONDON, 30)  # 0.10 + 0.30
    assert run_billing(day=date.today() + timedelta(days=1)).statements == 1
    statement = db.session.scalar(
        select(Document)
        .where(Document.account_id == account.id, Document.kind == DocumentKind.RECEIPT)
        .order_by(Document.id.desc())
    )
    text = pdf_text(as_admin.get(f"/documents/{statement.id}.pdf").data)
    assert "UK London" in text and "4420" in text and "USD 0.40" in text


def test_a_resellers_invoice_lists_what_it_paid_for_its_customers_calls(
    client, user, api, tenants_calling
):
    world = tenants_calling
    # The admins sell the UK to reseller A at 0.60 a minute; A sells it on at 1.20.
    for group, price in ((world["wholesale_group"], "0.6"), (world["a_group"], "1.2")):
        rate = db.session.scalar(select(Rate).where(Rate.rate_group_id == group.id))
        rate.cost_per_minute = Decimal(price)
    reseller = world["a"]
    reseller.account_type = AccountType.POSTPAID
    reseller.credit_limit = Decimal(100)
    reseller.billing_schedule = BillingSchedule.DAILY
    db.session.commit()
    add_payment(None, world["a_customer"], "10")
    _call(api, world["a_customer"], "r1", UK, 120)  # A pays 1.20, its customer 2.40
    run_billing(day=date.today() + timedelta(days=1))
    invoice = db.session.scalar(
        select(Document).where(
            Document.account_id == reseller.id, Document.kind == DocumentKind.INVOICE
        )
    )
    assert [(line.description, line.amount) for line in invoice.lines][0] == (
        "Calls (1)",
        Decimal("1.20"),
    )
    user.login(reseller.account_number)
    text = pdf_text(user.get(f"/documents/{invoice.id}.pdf").data)
    # At its own rate and prefix: 2 minutes, 1.20 (its customer paid 2.40).
    assert "Usage by destination" in text and "UK 44 1 2 USD 1.20" in text
