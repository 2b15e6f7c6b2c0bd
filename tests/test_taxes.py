"""Configuration -> Taxes: list, create, edit, deactivate, validated and scoped to the owner."""

import html
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Status, Tax
from portal.taxes.service import taxes_on

URL = "/configuration/taxes/"


def tax_form(**changes):
    """A valid tax form."""
    data = {
        "name": "GST",
        "rate": "7.5",
        "fixed_amount": "0.25",
        "priority": "2",
        "status": "active",
    }
    data.update(changes)
    return data


def text(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def test_admin_creates_a_tax_exactly(as_admin):
    response = as_admin.post(URL + "new", tax_form(), token_from=URL)
    assert response.status_code == 303
    tax = db.session.scalar(select(Tax))
    assert (tax.rate, tax.fixed_amount, tax.priority) == (Decimal("7.5"), Decimal("0.25"), 2)
    assert tax.reseller_id is None
    assert "GST" in text(as_admin.get(URL))
    assert "GST (7.5% + 0.25)" in text(as_admin.get("/accounts/new"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "This field is required"),
        ({"name": "x" * 101}, "longer than 100 characters"),
        ({"rate": "101"}, "at most 100"),
        ({"rate": "-1"}, "Must not be negative"),
        ({"rate": "abc"}, "Enter a number"),
        ({"rate": "Infinity"}, "Enter a number"),
        ({"rate": "1.1234567"}, "5 decimal places"),
        ({"fixed_amount": "-0.01"}, "Must not be negative"),
        ({"priority": "0"}, "between 1 and 100"),
        ({"priority": "first"}, "Not a valid integer"),
        ({"status": "archived"}, "Not a valid choice"),
    ],
)
def test_bad_tax_input_is_refused(as_admin, changes, message):
    response = as_admin.post(URL + "new", tax_form(**changes), token_from=URL)
    assert response.status_code == 422
    assert message in text(response)
    assert db.session.scalar(select(Tax)) is None


def test_edit_a_tax(as_admin, vat):
    url = f"{URL}{vat.id}/edit"
    page = text(as_admin.get(url))
    assert 'value="20"' in page and 'value="0.1"' in page
    response = as_admin.post(
        url, tax_form(name="VAT", rate="21", fixed_amount="0", priority="1"), token_from=url
    )
    assert response.status_code == 303
    db.session.refresh(vat)
    assert (vat.rate, vat.fixed_amount) == (Decimal("21"), Decimal("0"))
    response = as_admin.post(url, tax_form(rate="200"), token_from=url)
    assert response.status_code == 422
    db.session.refresh(vat)
    assert vat.rate == Decimal("21")


def test_deactivated_tax_disappears_from_the_create_form(as_admin, vat):
    assert "VAT (20% + 0.1)" in text(as_admin.get("/accounts/new"))
    response = as_admin.post(f"{URL}{vat.id}/status", {"status": "inactive"}, token_from=URL)
    assert response.status_code == 303
    assert db.session.get(Tax, vat.id).status == Status.INACTIVE
    assert "VAT (20%" not in text(as_admin.get("/accounts/new"))
    assert "VAT" in text(as_admin.get(URL))  # still listed, to reactivate


def test_reseller_sees_only_its_taxes(user, reseller, vat):
    user.login(reseller.account_number)
    assert "VAT" not in text(user.get(URL))
    for path in ("/edit",):
        assert user.get(f"{URL}{vat.id}{path}").status_code == 404
    response = user.post(f"{URL}{vat.id}/status", {"status": "inactive"}, token_from=URL)
    assert response.status_code == 404
    assert db.session.get(Tax, vat.id).status == Status.ACTIVE
    user.post(URL + "new", tax_form(name="Reseller tax"), token_from=URL)
    assert (
        db.session.scalar(select(Tax).where(Tax.name == "Reseller tax")).reseller_id == reseller.id
    )
    form = text(user.get("/accounts/new"))
    assert "Reseller tax (7.5% + 0.25)" in form and "VAT (" not in form


def test_customers_cannot_manage_taxes(user, customer, vat):
    user.login(customer.account_number)
    assert user.get(URL).status_code == 403
    assert user.get(f"{URL}{vat.id}/edit").status_code == 403


def test_tax_rounds_at_the_currencys_minor_unit(app, vat):
    # 20 % of 0.33 is 0.066, plus 0.1 fixed = 0.166: a cent in USD, a fils in BHD.
    assert taxes_on(Decimal("0.33"), [vat], "USD").total == Decimal("0.17")
    assert taxes_on(Decimal("0.33"), [vat], "BHD").total == Decimal("0.166")
    assert taxes_on(Decimal("0.33"), [vat], "JPY").total == Decimal("0")


def test_deactivating_a_tax_asks_first(as_admin, vat):
    page = text(as_admin.get(URL))
    form = re.search(rf'<form method="post" action="{URL}{vat.id}/status"[^>]*>', page).group(0)
    assert 'hx-confirm="Deactivate tax VAT? It can no longer be chosen for accounts."' in form
