"""The customer's own pages: dashboard, SIP password reset, profile and password change."""

import re
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.billing.service import add_charge
from portal.extensions import db
from portal.models import Account, AccountSearchToken, AccountType, Call, CallStatus, SipDevice
from portal.rules.email_address import normalize_email
from tests.conftest import PASSWORD, Browser

NEW_PASSWORD = "N3w-horse-battery"
PROFILE = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "telephone": "(212) 555-0100",
    "email": " Ada@Example.COM ",
    "low_balance_alert": "12.5",
    "email_alerts": "y",
}


def fresh(model, id_):
    """The row as stored now, not as this session remembers it."""
    db.session.expire_all()
    return db.session.get(model, id_)


def device_of(account: Account) -> SipDevice:
    """The account's only SIP device, as stored now."""
    db.session.expire_all()
    return db.session.scalar(select(SipDevice).where(SipDevice.account_id == account.id))


def test_dashboard_shows_only_the_customers_own_account(
    as_customer, customer, customer_device, other_customer
):
    customer.balance = Decimal("42.5")
    db.session.commit()
    response = as_customer.get("/my/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Account {customer.account_number}" in html
    assert customer.name in html
    assert "Balance</dt><dd>USD\xa042.50" in html
    assert "Available funds</dt><dd>USD\xa042.50" in html
    assert "Prepaid" in html and "Credit Limit" not in html
    assert "Rate Group</dt><dd>Default" in html
    assert customer_device.username in html and "OldSipSecret0001" in html
    assert "Reset SIP password" in html
    assert other_customer.account_number not in html and "OtherSipSecret01" not in html


def test_dashboard_shows_postpaid_credit_and_expiry(as_customer, customer):
    customer.account_type = AccountType.POSTPAID
    customer.credit_limit = Decimal("100")
    customer.balance = Decimal("30.25")
    customer.expiry_date = customer.created_at.replace(year=2031, month=5, day=17)
    db.session.commit()
    html = as_customer.get("/my/").get_data(as_text=True)
    assert "Postpaid" in html
    assert "Credit Limit</dt><dd>USD\xa0100.00" in html
    assert "Available funds</dt><dd>USD\xa069.75" in html
    assert "Expiry Date</dt><dd>17 May 2031" in html


def test_reset_sip_password_without_javascript(
    as_customer, customer, customer_device, other_customer
):
    url = f"/my/sip-devices/{customer_device.id}/reset-password"
    response = as_customer.post(url, {}, token_from="/my/")
    assert response.status_code == 303 and response.headers["Location"] == "/my/"
    new_password = device_of(customer).password
    assert new_password != "OldSipSecret0001" and re.fullmatch(r"[A-Za-z0-9]{16}", new_password)
    assert device_of(other_customer).password == "OtherSipSecret01"
    html = as_customer.get("/my/").get_data(as_text=True)
    assert f"The SIP password of {customer_device.username} was reset." in html
    assert new_password in html


def test_reset_sip_password_with_htmx_swaps_the_row(as_customer, customer, customer_device):
    url = f"/my/sip-devices/{customer_device.id}/reset-password"
    response = as_customer.post(url, {}, token_from="/my/", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert html.lstrip().startswith("{#") is False and "<html" not in html
    assert f'<tr id="sip-device-{customer_device.id}">' in html
    assert device_of(customer).password in html and "New password" in html


def test_another_customers_device_is_not_found(as_customer, customer_device, other_customer):
    other_device = device_of(other_customer)
    for device_id in (other_device.id, 999999):
        url = f"/my/sip-devices/{device_id}/reset-password"
        assert as_customer.post(url, {}, token_from="/my/").status_code == 404
    assert device_of(other_customer).password == "OtherSipSecret01"


def test_sip_reset_needs_csrf(as_customer, customer, customer_device):
    url = f"/my/sip-devices/{customer_device.id}/reset-password"
    assert as_customer.client.post(url).status_code == 400
    assert device_of(customer).password == "OldSipSecret0001"


@pytest.mark.parametrize("role_fixture", ["admin", "subadmin", "reseller"])
@pytest.mark.parametrize("url", ["/my/", "/my/profile", "/my/password"])
def test_managers_cannot_open_customer_pages(request, user, role_fixture, url):
    account = request.getfixturevalue(role_fixture)
    user.login(account.account_number)
    response = user.get(url)
    if role_fixture == "reseller" and url == "/my/":
        # A reseller has an account of its own: its My account page, not the customer portal.
        assert response.status_code == 303 and response.headers["Location"] == "/my/account"
    else:
        assert response.status_code == 403


def test_manager_cannot_reset_a_customers_sip_password(as_admin, customer, customer_device):
    url = f"/my/sip-devices/{customer_device.id}/reset-password"
    assert as_admin.post(url, {}, token_from="/accounts/").status_code == 403
    assert device_of(customer).password == "OldSipSecret0001"


@pytest.mark.parametrize(
    "url", ["/accounts/", "/accounts/new", "/tariff/rate-groups/", "/configuration/taxes/"]
)
def test_customer_cannot_open_manager_pages(as_customer, url):
    assert as_customer.get(url).status_code == 403


def test_profile_shows_current_values(as_customer, customer):
    customer.telephone = "+12125550100"
    customer.low_balance_alert = Decimal("7.50000")
    db.session.commit()
    html = as_customer.get("/my/profile").get_data(as_text=True)
    assert 'value="+12125550100"' in html and 'value="7.5"' in html
    assert 'value="customer@example.com"' in html


def test_profile_saves_normalised_values(as_customer, customer):
    response = as_customer.post("/my/profile", PROFILE, token_from="/my/profile")
    assert response.status_code == 303 and response.headers["Location"] == "/my/profile"
    account = fresh(Account, customer.id)
    assert (account.first_name, account.last_name) == ("Ada", "Lovelace")
    assert account.telephone == "+12125550100"
    assert account.email == "ada@example.com"
    assert account.low_balance_alert == Decimal("12.5") and account.email_alerts
    # The staff search finds the account by its new name and e-mail.
    tokens = set(
        db.session.scalars(
            select(AccountSearchToken.token).where(AccountSearchToken.account_id == customer.id)
        )
    )
    assert {"ada", "lovelace", "ada@example.com"} <= tokens and "customer@example.com" not in tokens
    assert "Your profile was saved." in as_customer.get("/my/profile").get_data(as_text=True)
    # The new e-mail is now a login.
    as_customer.post("/logout", {}, token_from="/my/")
    assert as_customer.login("ada@example.com").status_code == 303


def test_profile_reads_a_national_number_in_the_accounts_country(as_customer, customer):
    customer.country = "GB"
    db.session.commit()
    data = {**PROFILE, "telephone": "020 7946 0958"}
    assert as_customer.post("/my/profile", data, token_from="/my/profile").status_code == 303
    assert fresh(Account, customer.id).telephone == "+442079460958"


def test_profile_may_clear_the_email_when_alerts_are_off(as_customer, customer):
    data = {**PROFILE, "email": "", "email_alerts": ""}
    del data["email_alerts"]
    assert as_customer.post("/my/profile", data, token_from="/my/profile").status_code == 303
    account = fresh(Account, customer.id)
    assert account.email is None and not account.email_alerts


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"telephone": "12ab"}, "telephone", "Enter a valid telephone number"),
        ({"telephone": "+1 212 555"}, "telephone", "not valid for its country"),
        ({"email": "not-an-email"}, "email", "An email address must have an @-sign."),
        ({"email": "OTHER@example.com"}, "email", "Another account already uses this e-mail"),
        ({"email": ""}, "email", "E-mail alerts need an e-mail address."),
        ({"low_balance_alert": "-5"}, "low_balance_alert", "Must not be negative."),
        ({"low_balance_alert": "ten"}, "low_balance_alert", "Enter a number, e.g. 10.50."),
        ({"low_balance_alert": "0.125"}, "low_balance_alert", "USD amounts have at most 2 decimal"),
        ({"first_name": "x" * 81}, "first_name", "At most 80 characters."),
    ],
)
def test_profile_errors_are_on_their_field_and_save_nothing(
    as_customer, customer, other_customer, changes, field, message
):
    before = fresh(Account, customer.id)
    saved = (before.first_name, before.telephone, before.email, before.low_balance_alert)
    response = as_customer.post("/my/profile", {**PROFILE, **changes}, token_from="/my/profile")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    block = re.search(rf'id="field-{field}">(.*?)</div>', html, re.S)
    assert block and message in block.group(1), html
    after = fresh(Account, customer.id)
    assert (after.first_name, after.telephone, after.email, after.low_balance_alert) == saved


def test_password_change_ends_the_other_session_but_keeps_this_one(app, customer):
    here, there = Browser(app.test_client()), Browser(app.test_client())
    assert here.login(customer.account_number).status_code == 303
    assert (
        there.post(
            "/login", {"identifier": customer.account_number, "password": PASSWORD, "remember": "y"}
        ).status_code
        == 303
    )
    assert there.get("/my/").status_code == 200

    data = {
        "old_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD,
    }
    response = here.post("/my/password", data, token_from="/my/password")
    assert response.status_code == 303 and response.headers["Location"] == "/my/"
    page = here.get("/my/")
    assert page.status_code == 200
    assert "Your other sessions were logged out." in page.get_data(as_text=True)

    # The other browser is logged out, and its remember-me cookie no longer logs it back in.
    assert there.get("/my/").status_code == 302
    assert there.client.get_cookie("remember_token") is not None
    there.client.delete_cookie("session")
    assert there.get("/my/").status_code == 302

    there.client.delete_cookie("session")
    assert there.login(customer.account_number).status_code == 422
    assert there.login(customer.account_number, NEW_PASSWORD).status_code == 303


def test_password_change_renews_this_browsers_remember_me_cookie(app, customer):
    here = Browser(app.test_client())
    here.post(
        "/login", {"identifier": customer.account_number, "password": PASSWORD, "remember": "y"}
    )
    data = {
        "old_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD,
    }
    assert here.post("/my/password", data, token_from="/my/password").status_code == 303
    here.client.delete_cookie("session")  # the browser was closed; the remember cookie stays
    assert here.get("/my/").status_code == 200


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"old_password": "Wrong-passw0rd", "new_password": NEW_PASSWORD},
            "old_password",
            "The current password is not correct.",
        ),
        (
            {"new_password": "short1", "repeat_password": "short1"},
            "new_password",
            "at least 8 characters",
        ),
        (
            {"new_password": "onlyletters", "repeat_password": "onlyletters"},
            "new_password",
            "both letters and digits",
        ),
        ({"repeat_password": "N3w-horse-battery!"}, "repeat_password", "do not match"),
        ({"old_password": ""}, "old_password", "Enter your current password."),
    ],
)
def test_password_errors_are_on_their_field_and_change_nothing(app, customer, data, field, message):
    here, other = Browser(app.test_client()), Browser(app.test_client())
    for browser in (here, other):
        assert browser.login(customer.account_number).status_code == 303
    before = fresh(Account, customer.id)
    saved = before.password_hash
    form = {
        "old_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD,
        **data,
    }
    response = here.post("/my/password", form, token_from="/my/password")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    block = re.search(rf'id="field-{field}">(.*?)</div>', html, re.S)
    assert block and message in block.group(1), html
    after = fresh(Account, customer.id)
    assert after.password_hash == saved
    assert here.get("/my/").status_code == 200 and other.get("/my/").status_code == 200


def test_password_page_states_the_policy(as_customer):
    html = as_customer.get("/my/password").get_data(as_text=True)
    assert "At least 8 characters, letters and digits." in html


def test_customer_nav_links_its_pages(as_customer):
    html = as_customer.get("/my/profile").get_data(as_text=True)
    for url in ("/my/", "/my/profile", "/my/password"):
        assert f'href="{url}"' in html
    assert 'href="/my/profile" aria-current="page"' in html


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, (None, None)),
        ("  ", (None, None)),
        (" Ada@Example.COM ", ("ada@example.com", None)),
        ("a" * 250 + "@example.com", (None, "too long")),
        ("no-at-sign", (None, "@-sign")),
    ],
)
def test_normalize_email(raw, expected):
    value, error = normalize_email(raw)
    assert value == expected[0]
    assert (error is None) if expected[1] is None else (expected[1] in error)


def test_a_customer_in_kolkata_sees_times_shifted_and_the_zone_named(as_customer, admin, customer):
    customer.timezone = "Asia/Kolkata"
    (entry,) = add_charge(admin, customer, "2.5", "Monthly fee").entries
    entry.created_at = datetime(2026, 3, 29, 0, 30)  # stored in UTC
    db.session.add(
        Call(
            call_id="kolkata-1",
            account_id=customer.id,
            destination="442071234567",
            status=CallStatus.ENDED,
            started_at=datetime(2026, 3, 28, 19, 15),
            duration_seconds=61,
            cost=Decimal("0.10"),
        )
    )
    db.session.commit()
    page = as_customer.get("/my/").get_data(as_text=True)
    assert "29 Mar 2026, 06:00:00" in page  # the charge: 00:30 UTC + 5:30
    assert "29 Mar 2026, 00:45:00" in page  # the call: 19:15 UTC the day before + 5:30
    assert "00:30" not in page and "19:15" not in page
    assert page.count("Times are in Asia/Kolkata.") == 1


def _add_calls(account: Account, costs: list[str]) -> list[Call]:
    """Ended calls of `account`, one a minute from 1 March 2026, with these costs."""
    calls = [
        Call(
            call_id=f"paged-{account.id}-{index}",
            account_id=account.id,
            destination="442071234567",
            status=CallStatus.ENDED,
            started_at=datetime(2026, 3, 1, 10, index),
            duration_seconds=60 + index,
            cost=Decimal(cost),
        )
        for index, cost in enumerate(costs)
    ]
    db.session.add_all(calls)
    db.session.commit()
    return calls


def test_the_customer_portal_pages_its_ledger_documents_and_calls(
    as_customer, admin, customer, other_customer, monkeypatch
):
    monkeypatch.setattr("portal.listing.PAGE_SIZES", (2, 50))
    for amount in ("1", "2", "3"):
        add_charge(admin, customer, amount, f"Fee {amount}")
    add_charge(admin, other_customer, "9", "Not yours")
    calls = _add_calls(customer, ["0.30", "0.10", "0.20"])
    dashboard = as_customer.get("/my/").get_data(as_text=True)
    # Every list of the portal says how long it is and pages on (first page: the default 50).
    assert "3 documents" in dashboard and "3 entries" in dashboard and "3 calls" in dashboard
    assert "Not yours" not in dashboard
    ledger = as_customer.get("/my/account/ledger?per_page=2").get_data(as_text=True)
    assert "Fee 3" in ledger and "Fee 2" in ledger and "Fee 1" not in ledger
    after = re.search(r'href="([^"]*)" rel="next"', ledger).group(1).replace("&amp;", "&")
    older = as_customer.get(after).get_data(as_text=True)
    assert "Fee 1" in older and "Fee 3" not in older and "Not yours" not in older
    by_cost = as_customer.get("/my/calls?sort=cost").get_data(as_text=True)
    order = [by_cost.index(f'data-call="{calls[n].id}"') for n in (1, 2, 0)]
    assert order == sorted(order)
    # htmx swaps only the list: a fragment, not a page.
    fragment = as_customer.get("/my/documents?sort=amount", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert "<html" not in text and 'id="documents"' in text and "3 documents" in text
    assert fragment.headers["Vary"] == "HX-Request" or "HX-Request" in fragment.headers["Vary"]
    assert as_customer.get("/my/account/ledger?after=x").status_code == 404
