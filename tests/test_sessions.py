"""Login sessions end on the server: logout, password resets, deactivation, log out everywhere."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.accounts.forms import edit_form_data
from portal.auth.sessions import load_session, purge_idle_sessions
from portal.extensions import db
from portal.models import Account, LoginSession, Role, utcnow
from tests.conftest import PASSWORD, Browser, make_account

NEW_PASSWORD = "N3w-horse-battery"
COOKIES = ("session", "remember_token")


def logged_in(app, account: Account, password: str = PASSWORD) -> Browser:
    """A browser logged in as `account` with "Keep me logged in"."""
    browser = Browser(app.test_client())
    response = browser.post(
        "/login", {"identifier": account.account_number, "password": password, "remember": "y"}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return browser


def copies(browser: Browser) -> dict[str, Browser]:
    """Other browsers, each holding a copy of one of `browser`'s cookies (a stolen cookie)."""
    copied = {}
    for name in COOKIES:
        other = Browser(browser.client.application.test_client())
        other.client.set_cookie(name, browser.client.get_cookie(name).value)
        copied[name] = other
    return copied


def home_of(account: Account) -> str:
    """The page each role lands on."""
    return "/my/" if account.role == Role.CUSTOMER else "/dashboard/"


def opens(browser: Browser, account: Account) -> bool:
    """True when the browser is let in to the account's own page."""
    status = browser.get(home_of(account)).status_code
    assert status in (200, 302)
    return status == 200


def assert_all_open(browsers, account: Account) -> None:
    """Every browser (the original and the copies) is logged in."""
    for browser in browsers:
        assert opens(browser, account)


def assert_all_closed(browsers, account: Account) -> None:
    """None of the browsers is let in any more."""
    for browser in browsers:
        assert not opens(browser, account)


def edit_payload(account: Account, **changes) -> dict:
    """The account's edit form as a browser submits it unchanged, with `changes`."""
    data = {}
    for name, value in edit_form_data(account).items():
        if isinstance(value, bool):
            if value:
                data[name] = "y"
        elif value is not None:
            data[name] = value if isinstance(value, list) else str(value)
    data["password"] = ""
    return {**data, **changes}


@pytest.fixture
def victim(customer):
    """The customer, with what the edit form requires (a PIN and a billing day)."""
    customer.pin, customer.billing_day = "123456", 1
    db.session.commit()
    return customer


def test_logout_ends_the_session_and_its_copied_cookies(app, victim):
    browser = logged_in(app, victim)
    copied = copies(browser)
    assert_all_open([browser, *copied.values()], victim)
    assert browser.post("/logout", {}, token_from="/my/").status_code == 303
    assert_all_closed([browser, *copied.values()], victim)
    assert db.session.scalars(select(LoginSession)).all() == []


def test_logout_leaves_the_other_browsers_logged_in(app, victim):
    here, there = logged_in(app, victim), logged_in(app, victim)
    here.post("/logout", {}, token_from="/my/")
    assert not opens(here, victim)
    assert_all_open([there, *copies(there).values()], victim)


def test_a_reset_by_an_admin_ends_every_session(app, victim, admin):
    browsers = [logged_in(app, victim), logged_in(app, victim)]
    copied = [c for b in browsers for c in copies(b).values()]
    staff = logged_in(app, admin)
    url = f"/accounts/{victim.id}/edit"
    response = staff.post(url, edit_payload(victim, password=NEW_PASSWORD), token_from=url)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert_all_closed(browsers + copied, victim)
    assert opens(staff, admin)  # the admin's own session stays
    assert logged_in(app, victim, NEW_PASSWORD)


def test_an_edit_without_a_new_password_ends_nothing(app, victim, admin):
    browser = logged_in(app, victim)
    staff = logged_in(app, admin)
    url = f"/accounts/{victim.id}/edit"
    assert staff.post(url, edit_payload(victim, company="Initech"), token_from=url).status_code == (
        303
    )
    assert_all_open([browser, *copies(browser).values()], victim)


def test_a_reset_by_a_reseller_ends_every_session(app, tenants):
    victim, reseller = tenants["a_customer"], tenants["a"]
    victim.pin, victim.billing_day = "123456", 1
    db.session.commit()
    browser = logged_in(app, victim)
    copied = list(copies(browser).values())
    staff = logged_in(app, reseller)
    url = f"/accounts/{victim.id}/edit"
    response = staff.post(url, edit_payload(victim, password=NEW_PASSWORD), token_from=url)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert_all_closed([browser, *copied], victim)
    assert opens(staff, reseller)


def test_deactivation_ends_sessions_and_reactivation_revives_none(app, victim, admin):
    browser = logged_in(app, victim)
    copied = list(copies(browser).values())
    staff = logged_in(app, admin)
    url = f"/accounts/{victim.id}/status"
    assert staff.post(url, {"status": "inactive"}, token_from="/accounts/").status_code == 303
    assert_all_closed([browser, *copied], victim)
    assert staff.post(url, {"status": "active"}, token_from="/accounts/").status_code == 303
    assert_all_closed([browser, *copied], victim)
    assert logged_in(app, victim)  # a new login works again


def test_deactivation_through_the_edit_form_ends_sessions(app, victim, admin):
    browser = logged_in(app, victim)
    staff = logged_in(app, admin)
    url = f"/accounts/{victim.id}/edit"
    response = staff.post(url, edit_payload(victim, status="inactive"), token_from=url)
    assert response.status_code == 303
    response = staff.post(url, edit_payload(victim, status="active"), token_from=url)
    assert response.status_code == 303
    assert_all_closed([browser, *copies(browser).values()], victim)


def test_deletion_ends_every_session(app, victim, admin):
    browser = logged_in(app, victim)
    copied = list(copies(browser).values())
    staff = logged_in(app, admin)
    response = staff.post(f"/accounts/{victim.id}/delete", {}, token_from="/accounts/")
    assert response.status_code == 303
    assert_all_closed([browser, *copied], victim)
    assert db.session.scalars(select(LoginSession)).all() != []  # the admin's own


@pytest.mark.parametrize("page", ["/my/password", "/my/account"])
def test_log_out_everywhere_ends_every_session_of_the_account(app, admin, victim, page):
    account = victim if page == "/my/password" else admin
    here, there = logged_in(app, account), logged_in(app, account)
    bystander = logged_in(app, admin if account is victim else victim)
    copied = [c for b in (here, there) for c in copies(b).values()]
    html = here.get(page).get_data(as_text=True)
    assert "Log out everywhere" in html and html.count("(this browser)") == 1
    response = here.post("/logout/everywhere", {}, token_from=page)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert_all_closed([here, there, *copied], account)
    assert opens(bystander, admin if account is victim else victim)


def test_log_out_everywhere_needs_a_post_with_the_csrf_token(app, victim):
    browser = logged_in(app, victim)
    assert browser.get("/logout/everywhere").status_code == 405
    assert browser.client.post("/logout/everywhere").status_code == 400
    assert opens(browser, victim)


def test_a_session_row_holds_a_hash_and_the_browser(app, victim):
    browser = Browser(app.test_client())
    agent = "Mozilla/5.0 " + "x" * 300
    browser.post(
        "/login",
        {"identifier": victim.account_number, "password": PASSWORD},
        headers={"User-Agent": agent},
    )
    (row,) = db.session.scalars(select(LoginSession)).all()
    assert row.account_id == victim.id and row.remember is False
    assert row.user_agent == agent[:200]
    cookie = browser.client.get_cookie("session").value
    assert row.token_hash not in cookie and len(row.token_hash) == 64


def test_a_wrong_token_with_a_real_session_id_is_refused(app, victim):
    browser = logged_in(app, victim)
    (row,) = db.session.scalars(select(LoginSession)).all()
    assert load_session(f"{row.id}:not-the-token") is None
    assert load_session(f"{row.id}:") is None and load_session("x:y") is None
    assert opens(browser, victim)


def test_last_seen_is_written_at_most_once_a_minute(app, victim):
    browser = logged_in(app, victim)
    (row,) = db.session.scalars(select(LoginSession)).all()
    long_ago = row.created_at.replace(year=row.created_at.year - 1)
    row.last_seen_at = long_ago
    db.session.commit()
    assert opens(browser, victim)
    db.session.refresh(row)
    seen = row.last_seen_at
    assert seen > long_ago and utcnow() - seen < utcnow() - long_ago
    assert opens(browser, victim)
    db.session.refresh(row)
    assert row.last_seen_at == seen


# --- staff change their own password ------------------------------------------------------------


@pytest.fixture(params=[Role.ADMIN, Role.SUBADMIN, Role.RESELLER])
def staff(request, app):
    """An account of each staff role."""
    return make_account(request.param, "1000000009", email="staff@example.com")


def test_staff_change_their_own_password_on_my_account(app, staff):
    here, there = logged_in(app, staff), logged_in(app, staff)
    nav = here.get("/dashboard/").get_data(as_text=True)
    assert re.search(r'<a href="/my/account">My account</a>', nav)
    page = here.get("/my/account").get_data(as_text=True)
    assert "At least 8 characters, letters and digits." in page
    data = {"old_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}
    response = here.post("/my/account", data, token_from="/my/account")
    assert response.status_code == 303 and response.headers["Location"] == "/my/account"
    assert "Your password was changed." in here.get("/my/account").get_data(as_text=True)
    assert opens(here, staff)  # this browser stays in
    assert_all_closed([there, *copies(there).values()], staff)
    assert Browser(app.test_client()).login(staff.account_number).status_code == 422
    assert logged_in(app, staff, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"old_password": "Wrong-passw0rd"},
            "old_password",
            "The current password is not correct.",
        ),
        (
            {"new_password": "short1", "repeat_password": "short1"},
            "new_password",
            "at least 8 characters",
        ),
        ({"repeat_password": "N3w-horse-battery!"}, "repeat_password", "do not match"),
        ({"old_password": ""}, "old_password", "Enter your current password."),
    ],
)
def test_staff_password_errors_are_on_their_field_and_change_nothing(
    app, staff, data, field, message
):
    here, other = logged_in(app, staff), logged_in(app, staff)
    saved = staff.password_hash
    form = {
        "old_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD,
        **data,
    }
    response = here.post("/my/account", form, token_from="/my/account")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    block = re.search(rf'id="field-{field}">(.*?)</div>', html, re.S)
    assert block and message in block.group(1), html
    db.session.expire_all()
    assert db.session.get(Account, staff.id).password_hash == saved
    assert opens(here, staff) and opens(other, staff)


def test_my_account_is_for_staff_and_my_password_for_customers(app, victim, admin):
    customer_browser, admin_browser = logged_in(app, victim), logged_in(app, admin)
    assert customer_browser.get("/my/account").status_code == 403
    assert admin_browser.get("/my/password").status_code == 403
    assert Browser(app.test_client()).get("/my/account").status_code == 302


def test_sessions_idle_past_the_remember_me_lifetime_are_purged(app, victim):
    idle, active = logged_in(app, victim), logged_in(app, victim)
    old, _new = db.session.scalars(select(LoginSession).order_by(LoginSession.id)).all()
    old.last_seen_at = utcnow() - timedelta(days=366)
    db.session.commit()
    assert purge_idle_sessions() == 1
    assert not opens(idle, victim) and opens(active, victim)


def test_the_api_ends_sessions_on_a_password_reset_and_a_deactivation(app, rest, victim):
    browser = logged_in(app, victim)
    response = rest.patch(f"/accounts/{victim.id}", {"password": NEW_PASSWORD})
    assert response.status_code == 200, response.get_json()
    assert_all_closed([browser, *copies(browser).values()], victim)

    browser = logged_in(app, victim, NEW_PASSWORD)
    copied = list(copies(browser).values())
    assert rest.post(f"/accounts/{victim.id}/deactivate").status_code == 200
    assert rest.post(f"/accounts/{victim.id}/activate").status_code == 200
    assert_all_closed([browser, *copied], victim)
