"""Login, logout, role gates, and that every page sits behind login."""

import re

import pytest
from flask import Flask

from portal.config import load_config
from portal.extensions import db
from portal.models import Status, utcnow
from portal.passwords import hash_password
from tests.conftest import PASSWORD

PUBLIC_ENDPOINTS = {"auth.login", "static"}


def test_login_with_account_number_lands_on_the_dashboard(user, admin):
    response = user.login(admin.account_number)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    home = user.get("/")
    assert home.status_code == 302 and home.headers["Location"] == "/dashboard/"


def test_login_with_email_ignores_case(user, admin):
    assert user.login("ADMIN@Example.COM").status_code == 303


def test_customer_lands_on_its_own_page(user, customer):
    user.login(customer.account_number)
    html = user.get("/").get_data(as_text=True)
    assert f"Account {customer.account_number}" in html and "Available funds" in html


@pytest.mark.parametrize("identifier", ["1000000001", "nobody@example.com", "99"])
def test_wrong_credentials_get_one_message(user, admin, identifier):
    response = user.login(identifier, "Wrong-passw0rd")
    assert response.status_code == 422
    assert "Unknown account or wrong password." in response.get_data(as_text=True)
    assert user.get("/accounts/").status_code == 302  # still logged out


def test_empty_login_form_gets_field_errors(user):
    response = user.post("/login", {"identifier": "", "password": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter your account number or e-mail." in html and "Enter your password." in html


def test_inactive_and_deleted_accounts_cannot_log_in(user, customer, admin):
    customer.status = Status.INACTIVE
    db.session.commit()
    response = user.login(customer.account_number)
    assert "inactive" in response.get_data(as_text=True)
    admin.deleted_at = utcnow()
    db.session.commit()
    assert user.login(admin.account_number).status_code == 422


def test_a_session_ends_when_the_account_is_deactivated(user, customer):
    user.login(customer.account_number)
    assert user.get("/").status_code == 200
    customer.status = Status.INACTIVE
    db.session.commit()
    assert user.get("/").status_code == 302


def test_logout_is_a_post_with_csrf(user, admin):
    user.login(admin.account_number)
    assert user.get("/logout").status_code == 405
    assert user.client.post("/logout").status_code == 400  # no CSRF token
    assert user.post("/logout", {}, token_from="/accounts/").status_code == 303
    assert user.get("/accounts/").status_code == 302


def test_login_without_csrf_token_is_refused(client, admin):
    response = client.post(
        "/login", data={"identifier": admin.account_number, "password": PASSWORD}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "javascript:x"])
def test_login_never_redirects_off_site(user, admin, target):
    page = user.client.get(f"/login?next={target}")
    token = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)
    )
    response = user.client.post(
        f"/login?next={target}",
        data={"identifier": admin.account_number, "password": PASSWORD, "csrf_token": token[1]},
    )
    assert response.headers["Location"] == "/"


def test_login_follows_a_local_next(user, admin):
    response = user.client.get("/accounts/new")
    assert response.status_code == 302
    next_url = response.headers["Location"]
    page = user.client.get(next_url)
    token = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)
    )
    response = user.client.post(
        next_url,
        data={"identifier": admin.account_number, "password": PASSWORD, "csrf_token": token[1]},
    )
    assert response.headers["Location"] == "/accounts/new"


def _get_routes(app: Flask) -> list[str]:
    """Every GET route of the app, with sample values for its arguments."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or "GET" not in rule.methods:
            continue
        url = re.sub(r"<int:\w+>", "1", rule.rule)
        url = re.sub(r"<any\(([\w]+)[^>]*\):\w+>", r"\1", url)
        routes.append(url)
    return routes


def _post_routes(app: Flask) -> list[str]:
    """Every POST-only route of the app."""
    return [
        re.sub(r"<int:\w+>", "1", rule.rule)
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and "GET" not in rule.methods
    ]


def test_every_page_is_behind_login(app, client):
    routes = _get_routes(app)
    assert len(routes) >= 10
    for url in routes:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login"), url


def test_every_state_change_needs_login_and_csrf(app, client):
    for url in _post_routes(app):
        assert client.post(url).status_code in (400, 302), url


def test_session_cookie_is_httponly_and_lax(user, admin):
    response = user.login(admin.account_number)
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_passwords_are_hashed_with_scrypt_by_default(app, tmp_path):
    app.config["PASSWORD_HASH_METHOD"] = load_config(str(tmp_path))["PASSWORD_HASH_METHOD"]
    hashed = hash_password("Secret123x")
    assert hashed.startswith("scrypt:") and "Secret123x" not in hashed


def test_errors_are_pages_not_tracebacks(as_admin):
    response = as_admin.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)
