"""Audit log: every create, update, (de)activation and delete is recorded; admins read it."""

import html
import json
import re
from datetime import datetime

from sqlalchemy import select

from portal import audit
from portal.extensions import db
from portal.models import AuditEntry
from portal.templating import datetime_text
from tests.conftest import Browser

FORM = "/accounts/new"


def entries() -> list[AuditEntry]:
    """Every audit entry, oldest first."""
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def customer_form(group_id: int, **changes) -> dict:
    """A valid create-customer form."""
    data = {
        "account_number": "7000000001",
        "password": "Secret123x",
        "pin": "123456",
        "first_name": "Ann",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": "0",
        "valid_days": "30",
        "rate_group_id": str(group_id),
        "billing_schedule": "daily",
        "currency": "USD",
        "account_type": "prepaid",
    }
    data.update(changes)
    return data


def test_account_lifecycle_is_recorded_without_passwords(as_admin, admin, default_rate_group):
    as_admin.post(FORM, customer_form(default_rate_group.id), token_from=FORM)
    (created,) = entries()
    assert (created.action, created.entity_type, created.entity_label) == (
        "create",
        "customer",
        "7000000001",
    )
    assert created.actor_id == admin.id and admin.account_number in created.actor_label
    assert created.changes["first_name"] == [None, "Ann"]
    assert created.account_id is not None
    account_id = created.account_id

    url = f"/accounts/{account_id}/edit"
    data = customer_form(default_rate_group.id, first_name="Anne", password="N3w-secret!")
    assert as_admin.post(url, data, token_from=url).status_code == 303
    as_admin.post(
        f"/accounts/{account_id}/status", {"status": "inactive"}, token_from="/dashboard/"
    )
    as_admin.post(f"/accounts/{account_id}/delete", {}, token_from="/dashboard/")

    actions = [(e.action, e.account_id) for e in entries()]
    assert actions == [
        ("create", account_id),
        ("update", account_id),
        ("deactivate", account_id),
        ("delete", account_id),
    ]
    update = entries()[1]
    assert update.changes["first_name"] == ["Ann", "Anne"]
    assert update.changes["password"] == ["hidden", "changed"]
    assert set(update.changes) == {"first_name", "password"}  # only what changed
    everything = json.dumps([e.changes for e in entries()])
    for secret in ("Secret123x", "N3w-secret!", "123456"):
        assert secret not in everything


def test_a_refused_change_records_nothing(as_admin, default_rate_group):
    response = as_admin.post(FORM, customer_form(default_rate_group.id, pin="x"), token_from=FORM)
    assert response.status_code == 422
    assert entries() == []


def test_rate_groups_rates_taxes_and_settings_are_recorded(as_admin, default_rate_group, vat):
    group_url = f"/tariff/rate-groups/{default_rate_group.id}"
    as_admin.post(
        f"{group_url}/edit",
        {"name": "Basic", "currency": "USD", "status": "active"},
        token_from=group_url,
    )
    rate = {
        "prefix": "44",
        "destination": "UK",
        "connect_cost": "0",
        "cost_per_minute": "0.02",
        "initial_increment": "60",
        "increment": "60",
    }
    as_admin.post(f"{group_url}/rates", rate, token_from=group_url)
    as_admin.post(f"{group_url}/status", {"status": "inactive"}, token_from=group_url)
    tax_url = f"/configuration/taxes/{vat.id}/edit"
    as_admin.post(
        tax_url,
        {"name": "VAT", "rate": "21", "fixed_amount": "0.1", "priority": "1", "status": "active"},
        token_from=tax_url,
    )
    from portal.settings.service import get_settings

    settings = {k: str(v) for k, v in get_settings().items() if not isinstance(v, bool)}
    settings["pin_length"] = "8"
    as_admin.post("/configuration/", settings, token_from="/configuration/")

    summary = [(e.action, e.entity_type, e.changes) for e in entries()]
    assert summary[0] == ("update", "rate_group", {"name": ["Default", "Basic"]})
    assert summary[1][:2] == ("update", "rate_group") and "rate 44" in summary[1][2]
    assert summary[2] == ("deactivate", "rate_group", {"status": ["active", "inactive"]})
    assert summary[3] == ("update", "tax", {"rate": ["20", "21"]})
    assert summary[4][:2] == ("update", "setting")
    assert summary[4][2]["pin_length"] == [6, 8]


def test_admins_read_the_log_filtered_by_account(as_admin, admin, default_rate_group):
    for number in ("7000000001", "7000000002"):
        data = customer_form(default_rate_group.id, account_number=number, first_name=f"N{number}")
        as_admin.post(FORM, data, token_from=FORM)
    page = html.unescape(as_admin.get("/audit/").get_data(as_text=True))
    assert "customer 7000000001" in page and "customer 7000000002" in page
    page = html.unescape(as_admin.get("/audit/?account=7000000002").get_data(as_text=True))
    assert "customer 7000000002" in page and "customer 7000000001" not in page
    page = html.unescape(as_admin.get("/audit/?account=9999999999").get_data(as_text=True))
    assert "No account has the number 9999999999" in page


def test_only_admins_read_the_log(app, subadmin, reseller, customer):
    for account in (subadmin, reseller, customer):
        user = Browser(app.test_client())
        user.login(account.account_number)
        assert user.get("/audit/").status_code == 403


def test_the_log_shows_changes_in_words_not_python_values(as_admin, default_rate_group, vat):
    data = customer_form(default_rate_group.id, tax_ids=[str(vat.id)])
    as_admin.post(FORM, data, token_from=FORM)
    page = html.unescape(as_admin.get("/audit/").get_data(as_text=True))
    changes = re.search(r'<td class="changes">(.*?)</td>', page, re.S).group(1)
    text = " ".join(re.sub(r"<[^>]+>", " ", changes).split())
    assert "email alerts : none → No" in text
    assert "taxes : none → VAT" in text
    for repr_ in ("False", "True", "None", "['VAT']", "[]"):
        assert repr_ not in text, text


def test_times_in_the_log_are_shown_in_the_readers_timezone(as_admin, admin, customer):
    admin.timezone = "Asia/Kolkata"
    moment = datetime(2026, 3, 29, 0, 30)
    change = [None, audit.readable(moment)]
    audit.record(admin, "update", "customer", customer, changes={"expiry_date": change})
    db.session.commit()
    (entry,) = entries()
    assert entry.changes["expiry_date"][1] == "2026-03-29T00:30Z"  # stored in UTC, marked so
    page = html.unescape(as_admin.get("/audit/").get_data(as_text=True))
    shown = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "expiry date : none → 29 Mar 2026, 06:00:00" in shown
    assert "2026-03-29T00:30Z" not in page
    assert datetime_text(entry.created_at, "Asia/Kolkata") in page
    assert "Times are in Asia/Kolkata." in page
