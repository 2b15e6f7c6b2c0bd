"""A reseller's own account (money, documents, ledger, profile, password) and invoice profiles."""

import html
import io
from datetime import datetime
from decimal import Decimal

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from portal import MIGRATIONS_DIR
from portal.billing.run import run_billing
from portal.billing.service import add_charge, add_payment
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    AuditEntry,
    BillingSchedule,
    Document,
    DocumentKind,
    InvoiceProfile,
    OutboxMessage,
)
from portal.models.profile import LOGO_MAX_BYTES
from portal.settings.service import get_setting
from tests.conftest import PASSWORD, Browser, make_test_app, throwaway_database

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NEW_PASSWORD = "N3w-horse-battery"
PROFILE = {
    "company_name": "Acme A Telecom Ltd",
    "address": "1 Reseller Row\nSpringfield",
    "tax_number": "GB-A-123",
    "email": "billing@acme-a.example",
}


def body(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def logged_in(app, account: Account) -> Browser:
    """A browser logged in as `account`."""
    browser = Browser(app.test_client())
    assert browser.login(account.account_number).status_code == 303
    return browser


def save_profile(browser: Browser, logo: bytes | None = None, **changes):
    """Post the invoice profile form (with a logo file when given)."""
    data = {**PROFILE, **changes}
    if logo is not None:
        data["logo"] = (io.BytesIO(logo), "logo.png")
    return browser.post("/my/invoice-profile", data, token_from="/my/invoice-profile")


def fresh(model, key):
    """The row as stored now."""
    db.session.expire_all()
    return db.session.get(model, key)


# --- The reseller's own account -----------------------------------------------------------------


def test_a_reseller_sees_its_own_money_and_documents(app, admin, tenants):
    reseller_a = tenants["a"]
    own = add_payment(admin, reseller_a, "25", "Top-up by the operator").document
    customers = add_payment(reseller_a, tenants["a_customer"], "7").document
    other = add_payment(admin, tenants["b"], "99").document
    browser = logged_in(app, reseller_a)

    response = browser.get("/my/account")
    page = body(response)
    assert response.status_code == 200
    assert 'id="money-panel"' in page  # the money panel of an account page, reused
    assert 'id="balance">USD\xa025.00<' in page
    assert 'id="available">USD\xa025.00<' in page
    assert f'href="/documents/{own.id}"' in page and "Top-up by the operator" in page
    # Its customers' documents and another reseller's are not its own money.
    assert f'href="/documents/{customers.id}"' not in page
    assert f'href="/documents/{other.id}"' not in page
    # Nobody posts to their own account: the panel has no payment or charge form.
    assert "payment-amount" not in page and "charge-amount" not in page
    links = ("/my/account/profile", "/my/invoice-profile", "/my/account/ledger", "/api-keys/")
    for link in (*links, "/my/account/calls"):
        assert f'href="{link}"' in page
    assert "Change password" in page and "Where you are logged in" in page

    assert browser.get(f"/documents/{own.id}").status_code == 200
    assert browser.get(f"/documents/{other.id}").status_code == 404


def test_my_portal_sends_a_reseller_to_its_own_account(app, tenants):
    response = logged_in(app, tenants["a"]).get("/my/")
    assert response.status_code == 303 and response.headers["Location"] == "/my/account"


def test_a_postpaid_resellers_available_funds_are_its_credit_left(app, admin, tenants):
    reseller_a = tenants["a"]
    reseller_a.account_type = AccountType.POSTPAID
    reseller_a.credit_limit = Decimal(100)
    db.session.commit()
    add_charge(admin, reseller_a, "30", "Monthly platform fee")
    page = body(logged_in(app, reseller_a).get("/my/account"))
    assert 'id="balance">USD\xa030.00<' in page  # owed
    assert 'id="available">USD\xa070.00<' in page
    assert "credit limit USD\xa0100.00" in page


def test_a_sub_reseller_reads_what_its_parent_issued_it_and_nothing_else(app, admin, tenants):
    parent, sub = tenants["a"], tenants["a1"]
    issued_by_parent = add_payment(parent, sub, "5").document
    parents_own = add_payment(admin, parent, "5").document
    foreign_customer = add_payment(admin, tenants["b_customer"], "5").document
    browser = logged_in(app, sub)
    page = body(browser.get("/my/account"))
    assert f'href="/documents/{issued_by_parent.id}"' in page
    assert "Billed by</dt><dd>Reseller A" in page
    assert browser.get(f"/documents/{issued_by_parent.id}").status_code == 200
    for document in (parents_own, foreign_customer):
        assert browser.get(f"/documents/{document.id}").status_code == 404
    # The parent reads it too (its sub-reseller is in its subtree); a sibling tenant does not.
    assert logged_in(app, parent).get(f"/documents/{issued_by_parent.id}").status_code == 200
    assert logged_in(app, tenants["b"]).get(f"/documents/{issued_by_parent.id}").status_code == 404


def test_the_ledger_is_paged_newest_first(app, admin, tenants, monkeypatch):
    monkeypatch.setattr("portal.listing.PAGE_SIZES", (2, 50))
    for amount in ("1", "2", "3"):
        add_payment(admin, tenants["a"], amount, f"Payment {amount}")
    add_payment(admin, tenants["b"], "4", "Payment of B")
    browser = logged_in(app, tenants["a"])
    first = body(browser.get("/my/account/ledger?per_page=2"))
    assert "Payment 3" in first and "Payment 2" in first and "Payment 1" not in first
    assert "Payment of B" not in first and "3 entries" in first
    older = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = body(browser.get(older.replace("&amp;", "&")))
    assert "Payment 1" in second and "Payment 2" not in second and 'rel="next"' not in second
    assert browser.get("/my/account/ledger?after=x").status_code == 404


def test_staff_and_parents_see_the_same_money_panel_on_a_resellers_page(as_admin, app, tenants):
    add_payment(tenants["a"], tenants["a1"], "12")
    for browser, reseller in (
        (as_admin, tenants["a"]),
        (logged_in(app, tenants["a"]), tenants["a1"]),
    ):
        page = body(browser.get(f"/accounts/{reseller.id}"))
        assert 'id="money-panel"' in page and 'name="payment-amount"' in page
        assert 'id="available">' in page
    assert 'id="balance">USD\xa012.00<' in page


def test_a_reseller_cannot_post_money_to_itself(app, tenants):
    browser = logged_in(app, tenants["a"])
    own = tenants["a"].id
    for kind in ("payments", "charges"):
        prefix = kind[:-1]
        data = {f"{prefix}-amount": "5", f"{prefix}-description": ""}
        response = browser.post(f"/accounts/{own}/{kind}", data, token_from="/my/account")
        assert response.status_code == 404
    assert browser.get(f"/accounts/{own}").status_code == 404
    assert fresh(Account, own).balance == 0


def test_a_reseller_edits_its_own_profile(app, tenants):
    browser = logged_in(app, tenants["a"])
    data = {
        "first_name": "Alice",
        "last_name": "Reseller",
        "company": "  Acme A  ",
        "telephone": "+12125550100",
        "email": "alice@acme-a.example",
        "low_balance_alert": "5",
    }
    response = browser.post("/my/account/profile", data, token_from="/my/account/profile")
    assert response.status_code == 303
    assert response.headers["Location"] == "/my/account/profile"
    saved = fresh(Account, tenants["a"].id)
    assert (saved.first_name, saved.company, saved.email) == (
        "Alice",
        "Acme A",
        "alice@acme-a.example",
    )
    assert saved.low_balance_alert == Decimal(5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"company": "x" * 121}, "At most 120 characters."),
        ({"first_name": "x" * 81}, "At most 80 characters."),
        ({"email": "not-an-address"}, "@-sign"),
        ({"low_balance_alert": "lots"}, "Enter a number, e.g. 10.50."),
    ],
)
def test_bad_profile_values_are_field_errors(app, tenants, changes, message):
    browser = logged_in(app, tenants["a"])
    data = {"first_name": "Alice", "company": "Acme A", **changes}
    response = browser.post("/my/account/profile", data, token_from="/my/account/profile")
    assert response.status_code == 422
    assert message in body(response)
    assert fresh(Account, tenants["a"].id).company == ""


def test_posts_without_a_csrf_token_are_refused(app, tenants):
    browser = logged_in(app, tenants["a"])
    assert browser.client.post("/my/account/profile", data={"company": "X"}).status_code == 400
    assert browser.client.post("/my/invoice-profile", data=PROFILE).status_code == 400
    assert fresh(Account, tenants["a"].id).company == ""
    assert fresh(InvoiceProfile, tenants["a"].id) is None


def test_a_resellers_password_change_ends_its_other_sessions(app, tenants):
    here, there = logged_in(app, tenants["a"]), logged_in(app, tenants["a"])
    data = {"old_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}
    response = here.post("/my/account", data, token_from="/my/account")
    assert response.status_code == 303 and response.headers["Location"] == "/my/account"
    assert "Your other sessions were logged out." in body(here.get("/my/account"))
    assert there.get("/my/account").status_code == 302
    wrong = here.post("/my/account", data, token_from="/my/account")
    assert wrong.status_code == 422 and "The current password is not correct." in body(wrong)


# --- Invoice profiles ---------------------------------------------------------------------------


def test_a_resellers_profile_heads_its_customers_documents_only(app, admin, tenants):
    reseller_a = tenants["a"]
    browser = logged_in(app, reseller_a)
    assert save_profile(browser, logo=PNG).status_code == 303
    row = fresh(InvoiceProfile, reseller_a.id)
    assert (row.company_name, row.tax_number, row.logo_type) == (
        "Acme A Telecom Ltd",
        "GB-A-123",
        "image/png",
    )

    customers = add_payment(reseller_a, tenants["a_customer"], "10").document
    own = add_payment(admin, reseller_a, "10").document  # issued by the operator
    sub_customers = add_payment(admin, tenants["a1_customer"], "10").document  # issued by A1
    foreign = add_payment(admin, tenants["b_customer"], "10").document
    admins = add_payment(admin, tenants["a"], "1").document

    # The customer itself reads its receipt with its reseller's profile and logo.
    customer = logged_in(app, tenants["a_customer"])
    page = body(customer.get(f"/documents/{customers.id}"))
    assert "Acme A Telecom Ltd" in page and "1 Reseller Row, Springfield" in page
    assert "Tax number GB-A-123" in page and "billing@acme-a.example" in page
    logo_url = f"/documents/{customers.id}/logo"
    assert f'src="{logo_url}"' in page
    logo = customer.get(logo_url)
    assert logo.status_code == 200 and logo.data == PNG
    assert logo.mimetype == "image/png"
    assert logo.headers["X-Content-Type-Options"] == "nosniff"

    # Nobody else's documents show it: not the operator's, not a sub-reseller's customers'.
    as_admin = logged_in(app, admin)
    for document in (own, sub_customers, foreign, admins):
        page = body(as_admin.get(f"/documents/{document.id}"))
        assert "Acme A Telecom Ltd" not in page and "GB-A-123" not in page
        assert as_admin.get(f"/documents/{document.id}/logo").status_code == 404
    assert "Reseller A1" in body(as_admin.get(f"/documents/{sub_customers.id}"))

    # Whoever may not read the document gets no logo through it either.
    outsider = logged_in(app, tenants["b_customer"])
    assert outsider.get(logo_url).status_code == 404
    assert logged_in(app, tenants["b"]).get(logo_url).status_code == 404


def test_the_issuer_is_the_one_a_document_was_numbered_for(app, admin, tenants):
    # A reseller's own documents come from its parent: A1's from A, A's from the operator.
    save_profile(logged_in(app, tenants["a"]))
    for_a1 = add_payment(tenants["a"], tenants["a1"], "3").document
    assert for_a1.issuer_key == tenants["a"].id
    page = body(logged_in(app, tenants["a1"]).get(f"/documents/{for_a1.id}"))
    assert "Acme A Telecom Ltd" in page


def test_postpaid_resellers_are_invoiced_by_their_parent(app, admin, tenants):
    sub = tenants["a1"]
    sub.account_type = AccountType.POSTPAID
    sub.credit_limit = Decimal(50)
    sub.billing_schedule = BillingSchedule.DAILY
    db.session.commit()
    save_profile(logged_in(app, tenants["a"]))
    for entry in add_charge(tenants["a"], sub, "8", "Platform fee").entries:
        entry.created_at = datetime(2026, 3, 1, 10, 0)
    db.session.commit()
    run_billing(now_utc=datetime(2026, 3, 2, 0, 30))
    (invoice,) = db.session.scalars(
        select(Document).where(Document.account_id == sub.id, Document.kind == DocumentKind.INVOICE)
    )
    assert invoice.issuer_key == tenants["a"].id and invoice.total == Decimal(8)
    page = body(logged_in(app, sub).get(f"/documents/{invoice.id}"))
    assert "Invoice INV-000001" in page and "Acme A Telecom Ltd" in page


@pytest.mark.parametrize(
    ("changes", "logo", "field_message"),
    [
        ({"company_name": "x" * 121}, None, "At most 120 characters."),
        ({"address": "x" * 501}, None, "At most 500 characters."),
        ({"tax_number": "x" * 51}, None, "At most 50 characters."),
        ({"email": "not-an-address"}, None, "@-sign"),
        ({}, b"<svg onload='alert(1)'></svg>", "The logo must be a PNG, JPEG or GIF image."),
        ({}, b"GIF8", "The logo must be a PNG, JPEG or GIF image."),
        ({}, PNG + b"\x00" * LOGO_MAX_BYTES, "The logo may be at most 256 kB."),
    ],
)
def test_bad_invoice_profiles_are_field_errors_and_save_nothing(
    app, tenants, changes, logo, field_message
):
    browser = logged_in(app, tenants["a"])
    response = save_profile(browser, logo=logo, **changes)
    assert response.status_code == 422
    assert field_message in body(response)
    assert fresh(InvoiceProfile, tenants["a"].id) is None


def test_a_logo_is_replaced_and_removed(app, tenants):
    browser = logged_in(app, tenants["a"])
    save_profile(browser, logo=PNG)
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    assert save_profile(browser, logo=jpeg).status_code == 303
    logo = browser.get("/my/invoice-profile/logo")
    assert logo.data == jpeg and logo.mimetype == "image/jpeg"
    assert 'src="/my/invoice-profile/logo"' in body(browser.get("/my/invoice-profile"))
    assert save_profile(browser, remove_logo="y").status_code == 303
    assert browser.get("/my/invoice-profile/logo").status_code == 404
    assert fresh(InvoiceProfile, tenants["a"].id).company_name == "Acme A Telecom Ltd"
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "invoice_profile")
    ).all()
    assert [entry.changes["logo"][1] for entry in entries] == ["replaced", "replaced", "removed"]


def test_each_reseller_has_its_own_logo(app, tenants):
    save_profile(logged_in(app, tenants["a"]), logo=PNG)
    other = logged_in(app, tenants["b"])
    assert other.get("/my/invoice-profile/logo").status_code == 404
    assert "Acme A Telecom Ltd" not in body(other.get("/my/invoice-profile"))


def test_the_admin_edits_the_operators_profile_in_the_global_configuration(
    app, admin, customer, tenants
):
    browser = logged_in(app, admin)
    changes = {
        "company_name": "Operator Inc",
        "address": "9 Core St",
        "tax_number": "OP-9",
        "email": "Billing@Operator.example",
    }
    assert save_profile(browser, logo=PNG, **changes).status_code == 303
    assert get_setting("company_name") == "Operator Inc"
    assert get_setting("company_email") == "billing@operator.example"
    assert fresh(InvoiceProfile, 0).logo_type == "image/png"
    # The configuration page shows the same values: one operator profile, not two.
    assert 'value="Operator Inc"' in body(browser.get("/configuration/"))

    operators = add_payment(admin, customer, "5").document
    page = body(browser.get(f"/documents/{operators.id}"))
    assert "Operator Inc" in page and "Tax number OP-9" in page
    assert f'src="/documents/{operators.id}/logo"' in page
    assert browser.get(f"/documents/{operators.id}/logo").data == PNG
    resellers = add_payment(admin, tenants["a_customer"], "5").document
    page = body(browser.get(f"/documents/{resellers.id}"))
    assert "Operator Inc" not in page and "Reseller A" in page
    assert f"/documents/{resellers.id}/logo" not in page


@pytest.mark.parametrize("role_fixture", ["subadmin", "customer"])
def test_only_admins_and_resellers_have_an_invoice_profile(app, request, role_fixture):
    browser = logged_in(app, request.getfixturevalue(role_fixture))
    assert browser.get("/my/invoice-profile").status_code == 403
    assert browser.get("/my/invoice-profile/logo").status_code == 403


def test_a_resellers_customers_mail_is_signed_with_its_profile(app, admin, tenants):
    save_profile(logged_in(app, tenants["a"]))
    add_payment(admin, tenants["a_customer"], "5")
    add_payment(admin, tenants["b_customer"], "5")
    signed = {
        message.account_id: message.body.rstrip().rsplit("\n", 1)[-1]
        for message in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "receipt")
        )
    }
    assert signed == {
        tenants["a_customer"].id: "Acme A Telecom Ltd",
        tenants["b_customer"].id: "Reseller B",
    }


def test_the_database_keeps_a_profile_keyed_by_its_reseller(app, tenants):
    db.session.add(InvoiceProfile(issuer_key=tenants["b"].id, reseller_id=tenants["a"].id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_the_invoice_profiles_migration_goes_down_and_up(tmp_path):
    with throwaway_database(tmp_path) as url:
        app = make_test_app(url)
        with app.app_context():
            upgrade(directory=MIGRATIONS_DIR)
            downgrade(directory=MIGRATIONS_DIR, revision="b4c5d6e7f8a9")
            assert "invoice_profiles" not in inspect(db.engine).get_table_names()
            upgrade(directory=MIGRATIONS_DIR)
            assert "invoice_profiles" in inspect(db.engine).get_table_names()
            db.engine.dispose()
