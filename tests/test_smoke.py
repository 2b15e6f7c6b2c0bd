"""Smoke: log in and create a customer."""

from portal.extensions import db
from portal.models import Account, Role
from sqlalchemy import select


def test_admin_creates_customer(as_admin, default_rate_group, vat):
    page = as_admin.get("/accounts/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Create Customer Account" in html
    data = {
        "account_number": "4444444444",
        "password": "Secret123x",
        "pin": "123456",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "ACME",
        "telephone": "+44 20 7946 0958",
        "country": "GB",
        "timezone": "Europe/London",
        "status": "active",
        "max_channels": "2",
        "number_translation": "011/2222,+/00",
        "valid_days": "30",
        "create_sip_device": "y",
        "rate_group_id": str(default_rate_group.id),
        "billing_schedule": "monthly",
        "billing_day": "5",
        "currency": "GBP",
        "account_type": "postpaid",
        "credit_limit": "100.5",
        "tax_ids": [str(vat.id)],
        "low_balance_alert": "5",
        "email_alerts": "y",
        "email": "ann@example.com",
    }
    response = as_admin.post("/accounts/new", data, token_from="/accounts/new")
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "Secret123x" in body
    account = db.session.scalar(select(Account).where(Account.account_number == "4444444444"))
    assert account.role == Role.CUSTOMER
    assert account.telephone == "+442079460958"
    assert [t.name for t in account.taxes] == ["VAT"]
    assert account.sip_devices[0].username == "4444444444"
