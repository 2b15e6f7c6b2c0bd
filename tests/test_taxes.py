"""Configuration -> Taxes: list and create, validated, scoped to the owner."""

from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Tax

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


def test_admin_creates_a_tax_exactly(as_admin):
    response = as_admin.post(URL + "new", tax_form(), token_from=URL)
    assert response.status_code == 303
    tax = db.session.scalar(select(Tax))
    assert (tax.rate, tax.fixed_amount, tax.priority) == (Decimal("7.5"), Decimal("0.25"), 2)
    assert "GST" in as_admin.get(URL).get_data(as_text=True)
    assert "GST (7.5% + 0.25)" in as_admin.get("/accounts/new").get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "This field is required"),
        ({"rate": "101"}, "between 0 and 100"),
        ({"rate": "-1"}, "between 0 and 100"),
        ({"rate": "abc"}, "Not a valid decimal"),
        ({"rate": "1.1234567"}, "5 decimal places"),
        ({"fixed_amount": "-0.01"}, "between 0 and 1000000"),
        ({"priority": "0"}, "between 1 and 100"),
    ],
)
def test_bad_tax_input_is_refused(as_admin, changes, message):
    response = as_admin.post(URL + "new", tax_form(**changes), token_from=URL)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(Tax)) is None


def test_reseller_sees_only_its_taxes(user, reseller, vat):
    user.login(reseller.account_number)
    assert "VAT" not in user.get(URL).get_data(as_text=True)
    user.post(URL + "new", tax_form(name="Reseller tax"), token_from=URL)
    assert (
        db.session.scalar(select(Tax).where(Tax.name == "Reseller tax")).reseller_id == reseller.id
    )
    assert "Reseller tax" in user.get("/accounts/new").get_data(as_text=True)


def test_inactive_tax_is_not_offered(as_admin):
    as_admin.post(URL + "new", tax_form(name="Old tax", status="inactive"), token_from=URL)
    assert "Old tax (" not in as_admin.get("/accounts/new").get_data(as_text=True)
