"""Create Customer Account: field rules, partials, CSRF, list, show, edit, deactivate, delete."""

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.accounts import service, validation
from portal.extensions import db
from portal.models import (
    Account,
    AccountSearchToken,
    AccountType,
    RateGroup,
    Role,
    SipDevice,
    Status,
    account_taxes,
    utcnow,
)
from portal.settings.service import save_settings
from tests.conftest import Browser, make_account

FORM = "/accounts/new"


@pytest.fixture
def payload(default_rate_group, vat):
    """A complete, valid Create Customer form."""
    return {
        "account_number": "4444444444",
        "password": "Secret123x",
        "pin": "123456",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "ACME Telecom",
        "telephone": "020 7946 0958",
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
        "currency": "USD",
        "account_type": "postpaid",
        "credit_limit": "100.5",
        "tax_ids": [str(vat.id)],
        "low_balance_alert": "5",
        "email_alerts": "y",
        "email": "Ann.Lee@Example.com",
    }


def customers() -> list[Account]:
    """Every customer row, deleted ones included."""
    return list(db.session.scalars(select(Account).where(Account.role == Role.CUSTOMER)))


def body(response) -> str:
    """The response text."""
    return response.get_data(as_text=True)


def create(user, data, **kwargs):
    """Submit the create form like a browser."""
    return user.post(FORM, data, token_from=FORM, **kwargs)


LABELS = [
    "Account Number",
    "Password",
    "Pin",
    "First Name",
    "Last Name",
    "Company",
    "Telephone",
    "Country",
    "Timezone",
    "Status",
    "Max Channels",
    "Number Translation",
    "First Used",
    "Expiry Date",
    "Valid Days",
    "Create SIP Device",
    "Rate Group",
    "Billing Schedule",
    "Billing Day",
    "Currency",
    "Account Type",
    "Credit Limit",
    "Tax",
    "Low Balance Alert",
    "Enable Email Alerts?",
    "Email Address",
]


def test_form_has_every_field_in_the_described_order(as_admin, default_rate_group, vat):
    assert as_admin.get(FORM).status_code == 200
    # Billing Day and Credit Limit are conditional: a re-rendered monthly postpaid form shows both.
    response = create(as_admin, {"billing_schedule": "monthly", "account_type": "postpaid"})
    html = body(response)
    labels = re.findall(r"<label[^>]*>\s*(?:<input[^>]*>)?\s*([^<]+?)\s*</label>", html)
    positions = [labels.index(label) for label in LABELS]
    assert positions == sorted(positions), labels


def test_form_is_prefilled_with_generated_secrets(as_admin, default_rate_group):
    html = body(as_admin.get(FORM))
    number = re.search(r'id="account_number"[^>]*value="(\d+)"', html).group(1)
    pin = re.search(r'id="pin"[^>]*value="(\d+)"', html).group(1)
    password = re.search(r'id="password"[^>]*value="([^"]+)"', html).group(1)
    assert len(number) == 10 and number[0] != "0"
    assert len(pin) == 6
    assert len(password) >= 12
    # The only rate group is chosen already, so the form is usable at once.
    assert re.search(rf'<option selected value="{default_rate_group.id}">Default', html)


def test_create_saves_every_field_in_one_go(as_admin, payload, vat):
    response = create(as_admin, payload)
    html = body(response)
    assert response.status_code == 200, html
    assert "Secret123x" in html and "Shown once" in html
    (account,) = customers()
    assert response.headers["HX-Push-Url"] == f"/accounts/{account.id}"
    assert account.account_number == "4444444444"
    assert account.password_hash != "Secret123x" and "Secret123x" not in account.password_hash
    assert account.pin == "123456"
    assert (account.first_name, account.last_name, account.company) == (
        "Ann",
        "Lee",
        "ACME Telecom",
    )
    assert account.telephone == "+442079460958"
    assert (account.country, account.timezone, account.currency) == ("GB", "Europe/London", "USD")
    assert account.status == Status.ACTIVE
    assert account.max_channels == 2
    assert account.number_translation == "011/2222,+/00"
    assert account.first_used is None
    assert abs(account.expiry_date - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert account.billing_day == 5
    assert account.account_type == AccountType.POSTPAID
    assert account.credit_limit == Decimal("100.5")
    assert account.low_balance_alert == Decimal("5")
    assert account.email_alerts is True
    assert account.email == "ann.lee@example.com"
    assert [t.id for t in account.taxes] == [vat.id]
    (device,) = account.sip_devices
    assert device.username == "4444444444" and device.context == "default"
    assert device.password not in ("", "Secret123x")
    assert device.password in html  # the SIP password is shown once too
    # The password is shown once: the account page itself never shows it.
    assert "Secret123x" not in body(as_admin.get(f"/accounts/{account.id}"))


def test_prepaid_account_stores_zero_credit_limit(as_admin, payload):
    payload.update(account_type="prepaid", credit_limit="500")
    assert create(as_admin, payload).status_code == 200
    (account,) = customers()
    assert account.account_type == AccountType.PREPAID
    assert account.credit_limit == 0


def test_daily_schedule_ignores_a_posted_billing_day(as_admin, payload):
    payload.update(billing_schedule="daily", billing_day="17")
    assert create(as_admin, payload).status_code == 200
    assert customers()[0].billing_day is None


def test_monthly_without_javascript_needs_a_billing_day(as_admin, payload):
    payload.pop("billing_day")
    response = create(as_admin, payload)
    assert response.status_code == 422
    assert "A monthly schedule needs a billing day" in body(response)
    assert customers() == []


def test_sip_device_is_optional(as_admin, payload):
    payload.pop("create_sip_device")
    assert create(as_admin, payload).status_code == 200
    assert customers()[0].sip_devices == []


BAD_INPUTS = [
    ({"account_number": "12345"}, "account_number", "exactly 10 digits"),
    ({"account_number": "12345abcde"}, "account_number", "digits only"),
    ({"account_number": "0123456789"}, "account_number", "cannot start with 0"),
    ({"account_number": ""}, "account_number", "This field is required"),
    ({"password": "short1"}, "password", "at least 8"),
    ({"password": "lettersonly"}, "password", "letters and digits"),
    ({"pin": "12ab56"}, "pin", "digits only"),
    ({"pin": "1234"}, "pin", "exactly 6"),
    ({"billing_day": "29"}, "billing_day", "from 1 to 28"),
    ({"billing_day": "0"}, "billing_day", "from 1 to 28"),
    ({"billing_day": "x"}, "billing_day", "Not a valid integer"),
    ({"max_channels": "-1"}, "max_channels", "from 0 (unlimited)"),
    ({"max_channels": "two"}, "max_channels", "Not a valid integer"),
    ({"valid_days": "0"}, "valid_days", "from 1 to 36500"),
    ({"number_translation": "011"}, "number_translation", "match/replace"),
    ({"number_translation": "011/22/33"}, "number_translation", "match/replace"),
    ({"number_translation": "abc/1"}, "number_translation", "not a valid prefix"),
    ({"email_alerts": "y", "email": ""}, "email", "E-mail alerts need an e-mail address"),
    ({"email": "not-an-email"}, "email", "must have an @-sign"),
    ({"country": "XX"}, "country", "Not a valid choice"),
    ({"currency": "ABC"}, "currency", "Not a valid choice"),
    ({"timezone": "Mars/Olympus"}, "timezone", "Not a valid choice"),
    ({"telephone": "12"}, "telephone", "valid"),
    ({"status": "deleted"}, "status", "Not a valid choice"),
    ({"rate_group_id": ""}, "rate_group_id", "Choose a rate group"),
    ({"account_type": "postpaid", "credit_limit": "-5"}, "credit_limit", "Must not be negative"),
    (
        {"account_type": "postpaid", "credit_limit": "1.123"},
        "credit_limit",
        "USD amounts have at most 2 decimal places",
    ),
    (
        {"low_balance_alert": "0.125"},
        "low_balance_alert",
        "USD amounts have at most 2 decimal places",
    ),
    ({"credit_limit": "lots"}, "credit_limit", "Not a valid decimal"),
    ({"low_balance_alert": "-1"}, "low_balance_alert", "Must not be negative"),
    ({"low_balance_alert": "1e20"}, "low_balance_alert", "Too large"),
    ({"first_name": "x" * 81}, "first_name", "At most 80"),
    ({"tax_ids": ["999999"]}, "tax_ids", "valid choice"),
    # NUL fits no database column; PostgreSQL refuses it even in the e-mail's uniqueness query.
    ({"first_name": "Ann\x00"}, "first_name", "Must not contain NUL characters."),
    ({"email": "ann\x00@example.com"}, "email", "Must not contain NUL characters."),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_INPUTS)
def test_bad_input_gets_a_field_error_and_saves_nothing(as_admin, payload, change, field, message):
    payload.update(change)
    response = create(as_admin, payload)
    html = body(response)
    assert response.status_code == 422
    block = re.search(rf'id="field-{field}".*?</div>', html, re.S)
    assert block, f"field {field} not rendered"
    assert message in block.group(0), block.group(0)
    assert customers() == []
    assert db.session.scalar(select(func.count()).select_from(SipDevice)) == 0
    assert db.session.scalar(select(func.count()).select_from(account_taxes)) == 0


def test_several_errors_are_reported_together(as_admin, payload):
    payload.update(pin="x", max_channels="many", number_translation="bad", billing_day="")
    html = body(create(as_admin, payload))
    for message in ("digits only", "Not a valid integer", "match/replace", "needs a billing day"):
        assert message in html


def test_duplicate_account_number_is_refused(as_admin, payload, customer):
    payload["account_number"] = customer.account_number
    response = create(as_admin, payload)
    assert response.status_code == 422
    assert "already in use" in body(response)
    assert customers() == [customer]


def test_duplicate_email_is_refused_whatever_the_case(as_admin, payload, customer):
    payload["email"] = "CUSTOMER@example.com"
    response = create(as_admin, payload)
    assert response.status_code == 422
    assert "Another account already uses this e-mail" in body(response)
    assert customers() == [customer]


def test_number_taken_by_a_concurrent_request_hits_the_unique_index(
    as_admin, payload, customer, monkeypatch
):
    # Validation passed (as if the other request had not committed yet): the index still refuses.
    monkeypatch.setattr(validation, "account_number_taken", lambda number: False)
    payload["account_number"] = customer.account_number
    response = create(as_admin, payload)
    assert response.status_code == 422
    assert "already in use" in body(response)
    assert customers() == [customer]
    assert db.session.scalar(select(func.count()).select_from(account_taxes)) == 0


def test_failure_creating_the_sip_device_saves_no_account(as_admin, payload, customer, monkeypatch):
    db.session.add(SipDevice(account_id=customer.id, username="4444444444", password="x1"))
    db.session.commit()
    monkeypatch.setattr(validation, "sip_username_taken", lambda username: False)
    response = create(as_admin, payload)
    assert response.status_code == 422
    assert "SIP device with this account number already exists" in body(response)
    assert customers() == [customer]
    tokens = db.session.scalar(select(func.count()).select_from(AccountSearchToken))
    assert tokens == 0


def test_names_are_rendered_escaped(as_admin, payload):
    payload.update(first_name="<script>alert(1)</script>", company="A & B <b>")
    assert create(as_admin, payload).status_code == 200
    account = customers()[0]
    assert account.first_name == "<script>alert(1)</script>"
    for page in (f"/accounts/{account.id}", "/accounts/?q=a"):
        html = body(as_admin.get(page))
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_rate_groups_of_others_and_inactive_ones_are_not_offered(as_admin, payload, reseller):
    inactive = RateGroup(name="Old plan", status=Status.INACTIVE)
    db.session.add(inactive)
    db.session.commit()
    reseller_group = db.session.scalar(
        select(RateGroup).where(RateGroup.reseller_id == reseller.id)
    )
    html = body(as_admin.get(FORM))
    assert "Old plan" not in html and "Reseller plan" not in html
    for group in (inactive, reseller_group):
        payload["rate_group_id"] = str(group.id)
        response = create(as_admin, payload)
        assert response.status_code == 422
        assert "Not a valid choice" in body(response)
    assert customers() == []


def test_rate_group_must_be_in_the_account_currency(as_admin, payload, default_rate_group):
    payload["currency"] = "EUR"
    response = create(as_admin, payload)
    assert response.status_code == 422
    assert 'Rate group "Default" is priced in USD, not EUR' in html.unescape(body(response))
    assert customers() == []


def test_service_refuses_a_foreign_rate_group_even_without_the_form(admin, reseller, payload):
    foreign = db.session.scalar(select(RateGroup).where(RateGroup.reseller_id == reseller.id))
    data = {**payload, "rate_group_id": foreign.id, "tax_ids": [], "max_channels": 0}
    data.update(valid_days=30, billing_day=5)
    with pytest.raises(service.ValidationFailed) as failed:
        service.create_customer(admin, data)
    assert "rate_group_id" in failed.value.errors


# --- htmx partials -----------------------------------------------------------------------------

HX = {"HX-Request": "true"}


def test_billing_day_partial_follows_the_schedule(as_admin):
    monthly = as_admin.get("/accounts/partials/billing-day?billing_schedule=monthly", headers=HX)
    assert monthly.status_code == 200
    assert 'name="billing_day"' in body(monthly) and "<html" not in body(monthly)
    assert "HX-Request" in monthly.headers["Vary"]
    assert 'value="1"' in body(monthly)  # switching back from Daily offers the 1st again
    kept = as_admin.get("/accounts/partials/billing-day?billing_schedule=monthly&billing_day=9")
    assert 'value="9"' in body(kept)
    daily = as_admin.get("/accounts/partials/billing-day?billing_schedule=daily", headers=HX)
    assert 'name="billing_day"' not in body(daily)


def test_credit_limit_partial_follows_the_account_type(as_admin):
    url = "/accounts/partials/credit-limit?account_type="
    postpaid = body(as_admin.get(url + "postpaid&credit_limit=12.5", headers=HX))
    assert 'name="credit_limit"' in postpaid and 'value="12.5"' in postpaid
    assert 'name="credit_limit"' not in body(as_admin.get(url + "prepaid", headers=HX))


def test_expiry_partial_shows_the_date_valid_days_give(as_admin):
    html = body(as_admin.get("/accounts/partials/expiry?valid_days=10", headers=HX))
    expiry = utcnow() + timedelta(days=10)
    assert f"{expiry.day} {expiry:%b %Y}" in html  # e.g. 11 Dec 2026


def test_regenerate_controls_follow_the_configuration(as_admin):
    save_settings({"account_number_length": 12, "pin_length": 8})
    number_html = body(as_admin.get("/accounts/partials/generate/account_number", headers=HX))
    number = re.search(r'value="(\d+)"', number_html).group(1)
    assert len(number) == 12
    pin = re.search(r'value="(\d+)"', body(as_admin.get("/accounts/partials/generate/pin"))).group(
        1
    )
    assert len(pin) == 8
    first = body(as_admin.get("/accounts/partials/generate/password"))
    second = body(as_admin.get("/accounts/partials/generate/password"))
    assert first != second
    # And the full form generates the new lengths too.
    html = body(as_admin.get(FORM))
    assert re.search(r'id="account_number"[^>]*value="\d{12}"', html)


def test_form_accepts_only_the_configured_length(as_admin, payload):
    save_settings({"account_number_length": 12, "pin_length": 6})
    response = create(as_admin, payload)
    assert "exactly 12 digits" in body(response)
    payload["account_number"] = "444444444444"
    assert create(as_admin, payload).status_code == 200


# --- CSRF and access ---------------------------------------------------------------------------


def test_post_without_csrf_token_is_refused(as_admin, payload):
    response = as_admin.client.post(FORM, data=payload)
    assert response.status_code == 400
    assert "security token" in body(response)
    assert customers() == []


def test_htmx_post_with_csrf_header_works(as_admin, payload):
    token = re.search(r'"X-CSRFToken": "([^"]+)"', body(as_admin.get(FORM))).group(1)
    response = as_admin.client.post(FORM, data=payload, headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 200
    assert len(customers()) == 1


@pytest.mark.parametrize("path", [FORM, "/accounts/", "/accounts/partials/generate/pin"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_customer_cannot_reach_the_create_form(user, customer, payload):
    user.login(customer.account_number)
    assert user.get(FORM).status_code == 403
    assert user.post(FORM, payload, token_from="/my/").status_code == 403
    assert customers() == [customer]


@pytest.mark.parametrize("role_fixture", ["admin", "subadmin", "reseller"])
def test_staff_and_resellers_can_open_the_form(request, user, role_fixture):
    account = request.getfixturevalue(role_fixture)
    user.login(account.account_number)
    assert user.get(FORM).status_code == 200


def test_reseller_creates_customers_under_itself_with_its_own_rate_group(user, reseller, payload):
    user.login(reseller.account_number)
    group = db.session.scalar(select(RateGroup).where(RateGroup.reseller_id == reseller.id))
    html = body(user.get(FORM))
    assert "Reseller plan" in html and ">Default<" not in html
    payload.update(rate_group_id=str(group.id), tax_ids=[])
    assert create(user, payload).status_code == 200
    assert customers()[0].reseller_id == reseller.id


# --- list, show, edit, deactivate, delete ------------------------------------------------------


def add_customers(actor, count: int, group, **fields) -> list[Account]:
    """Create customers through the service."""
    created = []
    for index in range(count):
        data = {
            "account_number": str(5000000000 + index),
            "password": "Passw0rd123",
            "pin": "123456",
            "first_name": fields.get("first_name", f"Name{index}"),
            "last_name": "Smith",
            "company": fields.get("company", "Globex"),
            "country": "US",
            "timezone": "UTC",
            "status": "active",
            "max_channels": 0,
            "valid_days": 365,
            "rate_group_id": group.id,
            "billing_schedule": "daily",
            "currency": "USD",
            "account_type": "prepaid",
            "email": f"user{index}@globex.example",
        }
        created.append(service.create_customer(actor, data).account)
    return created


def test_list_pages_newest_first(as_admin, admin, default_rate_group):
    add_customers(admin, 30, default_rate_group)
    first = body(as_admin.get("/accounts/"))
    assert len(re.findall(r">50000000\d\d</a>", first)) == 25
    assert "5000000029" in first and "5000000004" not in first
    next_url = re.search(r'href="([^"]*before=\d+)"', first).group(1).replace("&amp;", "&")
    second = body(as_admin.get(next_url))
    assert len(re.findall(r">50000000\d\d</a>", second)) == 5
    assert "5000000004" in second and "5000000000" in second
    assert "Next page" not in second


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("5000000002", {"5000000002"}),
        ("Name1", {"5000000001"}),
        ("smith name2", {"5000000002"}),
        ("user0@globex", {"5000000000"}),
        ("globex.example", {"5000000000", "5000000001", "5000000002"}),
        ("initech", set()),
        ("100%", set()),
        ("_", set()),
        ("\U0010ffff", set()),
    ],
)
def test_search_by_number_name_company_email(as_admin, admin, default_rate_group, query, expected):
    add_customers(admin, 3, default_rate_group)
    response = as_admin.get("/accounts/", query_string={"q": query}, headers=HX)
    html = body(response)
    assert "<html" not in html  # the htmx search gets just the table
    assert "HX-Request" in response.headers["Vary"]
    assert set(re.findall(r">(500000000\d)</a>", html)) == expected


def test_list_shows_balance_type_and_status(as_admin, admin, default_rate_group):
    (account,) = add_customers(admin, 1, default_rate_group)
    account.balance = Decimal("12.34567")
    db.session.commit()
    html = body(as_admin.get("/accounts/"))
    assert "USD\xa012.35" in html and "Prepaid" in html and "Active" in html


def test_reseller_sees_only_its_own_customers(user, admin, reseller, default_rate_group):
    (theirs,) = add_customers(admin, 1, default_rate_group, first_name="Adminowned")
    user.login(reseller.account_number)
    assert "Adminowned" not in body(user.get("/accounts/?q=adminowned"))
    assert user.get(f"/accounts/{theirs.id}").status_code == 404
    assert user.get(f"/accounts/{theirs.id}/edit").status_code == 404
    response = user.post(f"/accounts/{theirs.id}/delete", {}, token_from="/accounts/")
    assert response.status_code == 404
    assert db.session.get(Account, theirs.id).deleted_at is None


def edit_payload(account, **changes) -> dict:
    """The edit form as the browser would submit it unchanged."""
    data = {
        "account_number": account.account_number,
        "password": "",
        "pin": account.pin,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "company": account.company,
        "telephone": account.telephone or "",
        "country": account.country,
        "timezone": account.timezone,
        "status": account.status.value,
        "max_channels": str(account.max_channels),
        "number_translation": account.number_translation,
        "valid_days": str(account.valid_days),
        "rate_group_id": str(account.rate_group_id),
        "billing_schedule": account.billing_schedule.value,
        "billing_day": str(account.billing_day or ""),
        "currency": account.currency,
        "account_type": account.account_type.value,
        "credit_limit": str(account.credit_limit),
        "low_balance_alert": str(account.low_balance_alert),
        "email": account.email or "",
    }
    data.update(changes)
    return data


def test_edit_saves_and_valid_days_resets_expiry(as_admin, admin, default_rate_group):
    (account,) = add_customers(admin, 1, default_rate_group)
    old_hash, old_expiry = account.password_hash, account.expiry_date
    url = f"/accounts/{account.id}/edit"
    assert "Edit account" in body(as_admin.get(url))
    response = as_admin.post(url, edit_payload(account, company="Initech"), token_from=url)
    assert response.status_code == 303
    db.session.refresh(account)
    assert account.company == "Initech"
    assert account.password_hash == old_hash  # blank password keeps the old one
    assert account.expiry_date == old_expiry  # valid days unchanged: expiry unchanged
    # Search follows the edit.
    assert account.account_number in body(as_admin.get("/accounts/?q=initech"))

    account.expiry_date = utcnow() - timedelta(days=400)  # as if created long ago
    db.session.commit()
    changes = {"valid_days": "10", "first_used": "2020-01-01", "account_number": "9999999999"}
    as_admin.post(url, edit_payload(account, **changes), token_from=url)
    db.session.refresh(account)
    assert account.valid_days == 10
    assert abs(account.expiry_date - (utcnow() + timedelta(days=10))) < timedelta(minutes=1)
    assert account.first_used is None  # never editable
    assert account.account_number == "5000000000"  # never editable


def test_edit_with_bad_input_changes_nothing(as_admin, admin, default_rate_group):
    (account,) = add_customers(admin, 1, default_rate_group)
    url = f"/accounts/{account.id}/edit"
    data = edit_payload(account, company="Changed", billing_schedule="monthly", billing_day="31")
    response = as_admin.post(url, data, token_from=url)
    assert response.status_code == 422
    assert "from 1 to 28" in body(response)
    db.session.refresh(account)
    assert account.company == "Globex"


def test_edit_can_set_a_new_password(user, as_admin, admin, default_rate_group):
    (account,) = add_customers(admin, 1, default_rate_group)
    url = f"/accounts/{account.id}/edit"
    as_admin.post(url, edit_payload(account, password="N3w-password"), token_from=url)
    as_admin.post("/logout", {}, token_from="/accounts/")
    assert user.login(account.account_number, "N3w-password").status_code == 303


def test_deactivate_blocks_login_and_devices(user, as_admin, payload):
    create(as_admin, payload)
    (account,) = customers()
    url = f"/accounts/{account.id}/status"
    response = as_admin.post(url, {"status": "inactive"}, token_from="/accounts/")
    assert response.status_code == 303
    db.session.refresh(account)
    assert account.status == Status.INACTIVE
    assert account.sip_devices[0].status == Status.INACTIVE
    as_admin.post("/logout", {}, token_from="/accounts/")
    response = user.login(account.account_number, "Secret123x")
    assert response.status_code == 422 and "inactive" in body(response)
    assert as_admin.post(url, {"status": "bogus"}, token_from="/login").status_code in (302, 400)


def test_delete_is_soft_and_the_number_is_never_reused(as_admin, payload):
    create(as_admin, payload)
    (account,) = customers()
    response = as_admin.post(f"/accounts/{account.id}/delete", {}, token_from="/accounts/")
    assert response.status_code == 303
    assert as_admin.get(f"/accounts/{account.id}").status_code == 404
    assert account.account_number not in body(as_admin.get("/accounts/"))
    db.session.expire_all()
    assert db.session.get(Account, account.id).deleted_at is not None
    payload["email"] = "other@example.com"
    response = create(as_admin, payload)
    assert response.status_code == 422 and "already in use" in body(response)


def test_htmx_requests_get_hx_redirect_not_302(as_admin, admin, default_rate_group):
    (account,) = add_customers(admin, 1, default_rate_group)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', body(as_admin.get("/accounts/"))).group(1)
    response = as_admin.client.post(
        f"/accounts/{account.id}/status",
        data={"status": "inactive"},
        headers={**HX, "X-CSRFToken": token},
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/accounts/{account.id}"


def test_admins_open_resellers_pages_and_unknown_ids_are_404(as_admin, admin, reseller):
    assert f"Reseller {reseller.account_number}" in body(as_admin.get(f"/accounts/{reseller.id}"))
    assert as_admin.get("/accounts/999999").status_code == 404


def test_make_account_helper_is_not_visible_to_customer(user, customer):
    other = make_account(Role.CUSTOMER, "1000000009")
    user.login(customer.account_number)
    assert user.get(f"/accounts/{other.id}").status_code == 403


def test_welcome_mail_is_queued_with_the_password_only_when_asked(as_admin, payload):
    from portal.models import OutboxMessage

    payload.update(send_welcome="y")
    assert create(as_admin, payload).status_code == 200
    (message,) = db.session.scalars(select(OutboxMessage)).all()
    assert message.recipient == "ann.lee@example.com" and message.kind == "welcome"
    assert "4444444444" in message.body and "/login" in message.body
    assert "Secret123x" not in message.body
    assert message.sent_at is None  # no MAIL_SERVER in tests: it waits in the outbox

    payload.update(
        account_number="4444444445", email="bo@example.com", send_password="y", password="Other123x"
    )
    assert create(as_admin, payload).status_code == 200
    second = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == "bo@example.com")
    ).one()
    assert "Password: Other123x" in second.body


def test_welcome_mail_links_never_come_from_an_untrusted_host_header(app, client, admin, payload):
    """Host: evil.example.com does not become the login link of a genuine welcome mail."""
    from portal.models import OutboxMessage

    client.environ_base["HTTP_HOST"] = "evil.example.com"  # every request, the login too
    attacker = Browser(client)
    assert attacker.login(admin.account_number).status_code == 303
    payload.update(send_welcome="y")
    assert create(attacker, payload).status_code == 200
    message = db.session.scalars(select(OutboxMessage)).one()
    assert "evil.example.com" not in message.body
    assert "Log in at: /login" in message.body  # no PORTAL_URL: the path, not a guessed host

    # With PORTAL_URL set (make run sets it from HOST and PORT), that address.
    app.config["PORTAL_URL"] = "https://portal.example.com"
    payload.update(account_number="4444444445", email="bo@example.com")
    assert create(attacker, payload).status_code == 200
    second = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    assert "Log in at: https://portal.example.com/login" in second.body


def test_a_trusted_host_builds_the_link_and_any_other_host_is_refused(app, client, admin):
    """With TRUSTED_HOSTS, the request's host is used for links, and another Host is a 400."""
    from portal import mail

    app.config["TRUSTED_HOSTS"] = ["portal.example.com"]
    with app.test_request_context("/", headers={"Host": "portal.example.com"}):
        assert mail.login_url() == "http://portal.example.com/login"
    client.environ_base["HTTP_HOST"] = "evil.example.com"
    refused = client.get("/login")
    assert refused.status_code == 400
    assert "evil.example.com" not in refused.get_data(as_text=True)


def test_no_welcome_mail_unless_ticked(as_admin, payload):
    from portal.models import OutboxMessage

    assert create(as_admin, payload).status_code == 200
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_a_nul_in_a_search_is_a_400_not_an_error(as_admin, rest):
    for url in ("/accounts/?q=ann%00", "/accounts/?q%00=ann", "/tariff/rate-groups/?q=%00"):
        response = as_admin.get(url)
        assert response.status_code == 400, url
        assert "The request could not be understood." in body(response)
    response = rest.get("/accounts?q=ann%00")
    assert response.status_code == 400 and response.is_json


def test_create_reseller_page_highlights_resellers_and_its_errors_speak_of_resellers(as_admin):
    page = body(as_admin.get("/accounts/new/reseller"))
    current = re.findall(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>', page)
    assert current == [("/accounts/resellers/", "Resellers")]
    response = as_admin.post(
        "/accounts/new/reseller",
        {"first_name": "Rita", "rate_group_id": ""},
        token_from="/accounts/new/reseller",
    )
    html = body(response)
    assert response.status_code == 422
    assert "without one the reseller cannot make calls" in html
    assert "the customer" not in html and "to the customer" not in html


def test_create_customer_page_still_highlights_create_customer(as_admin):
    page = body(as_admin.get(FORM))
    current = re.findall(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>', page)
    assert current == [(FORM, "Create Customer")]


def test_every_described_field_has_help_tied_to_its_input(as_admin, default_rate_group, vat):
    html = body(as_admin.get(FORM))
    for field in (
        "status",
        "valid_days",
        "create_sip_device",
        "billing_schedule",
        "currency",
        "account_type",
        "email_alerts",
    ):
        tag = re.search(rf'<(?:input|select)[^>]*\bid="{field}"[^>]*>', html).group(0)
        assert f'aria-describedby="help-{field}"' in tag, tag
        assert re.search(rf'<small class="help" id="help-{field}">[^<]{{20,}}</small>', html)
    # Tax is a group of checkboxes: the group carries the description.
    group = re.search(r'<div class="field" id="field-tax_ids"[^>]*>', html).group(0)
    assert 'role="group"' in group and 'aria-describedby="help-tax_ids"' in group
    assert re.search(r'id="help-tax_ids">[^<]{20,}<', html)


def test_fields_with_errors_are_invalid_and_the_summary_takes_the_focus(as_admin, payload):
    html = body(create(as_admin, {**payload, "max_channels": "-1", "email": "not-an-address"}))
    for field in ("max_channels", "email"):
        tag = re.search(rf'<input[^>]*\bid="{field}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in tag
        assert f"error-{field}-1" in re.search(r'aria-describedby="([^"]+)"', tag).group(1)
        assert f'<p class="error" id="error-{field}-1" role="alert">' in html
    first_name = re.search(r'<input[^>]*\bid="first_name"[^>]*>', html).group(0)
    assert "aria-invalid" not in first_name
    assert re.search(r'<p class="error-summary" role="alert" tabindex="-1" autofocus>', html)


def test_no_tax_yet_links_to_the_taxes_page(as_admin, default_rate_group):
    html = body(as_admin.get(FORM))
    block = re.search(r'id="field-tax_ids".*?</p>', html, re.S).group(0)
    assert "None defined yet" in block and 'href="/configuration/taxes/"' in block


def test_deactivate_asks_for_confirmation_and_activate_does_not(as_admin, customer):
    page = body(as_admin.get(f"/accounts/{customer.id}"))
    form = re.search(rf'<form method="post" action="/accounts/{customer.id}/status"[^>]*>', page)
    assert 'hx-confirm="Deactivate account 1000000004? It can no longer log in' in form.group(0)
    customer.status = Status.INACTIVE
    db.session.commit()
    page = body(as_admin.get(f"/accounts/{customer.id}"))
    form = re.search(rf'<form method="post" action="/accounts/{customer.id}/status"[^>]*>', page)
    assert "hx-confirm" not in form.group(0)


def test_every_page_has_a_skip_link_a_main_landmark_and_a_favicon(as_admin, client):
    page = body(as_admin.get("/accounts/"))
    assert '<a class="skip-link" href="#main">Skip to main content</a>' in page
    assert '<main id="main"' in page
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page).group(1)
    response = client.get(icon)
    assert response.status_code == 200 and b"<svg" in response.get_data()
    menu = re.search(r"<details class=\"menu\">\s*<summary>Menu</summary>", page)
    assert menu, "the navigation folds into a Menu button without JavaScript"
