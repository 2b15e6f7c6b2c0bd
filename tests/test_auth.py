"""Login, logout, role gates, and that every page sits behind login."""

import re
import statistics
import time
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from portal.accounts.generated import new_password
from portal.auth.throttle import purge_ended_windows
from portal.config import load_config
from portal.extensions import db
from portal.models import Account, LoginFailureCounter, Status, utcnow
from portal.passwords import hash_generated_secret, hash_password, verify_password
from tests.conftest import PASSWORD, Browser, make_test_app

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
    home = user.get("/")
    assert home.status_code == 302 and home.headers["Location"] == "/my/"
    html = user.get("/my/").get_data(as_text=True)
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


def test_a_nul_in_the_login_form_is_a_field_error(user, admin):
    response = user.post("/login", {"identifier": "1000\x00000001", "password": "x\x00"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert html.count("Must not contain NUL characters.") == 2
    assert user.get("/accounts/").status_code == 302  # still logged out


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
    assert user.get("/my/").status_code == 200
    customer.status = Status.INACTIVE
    db.session.commit()
    assert user.get("/my/").status_code == 302


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
        if rule.rule.startswith("/api/"):  # API keys, not logins (401s: test_access.py)
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
        # The softswitch API (/api/) takes a bearer key instead of a session and CSRF token.
        expected = (401,) if url.startswith("/api/") else (400, 302)
        assert client.post(url).status_code in expected, url


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


WRONG = "Wrong-passw0rd"
THROTTLED = "Too many failed attempts. Try again in 15 minutes."


def _attempts(user, identifier: str, passwords: list[str], **kwargs) -> list[int]:
    """The status of each login attempt with `identifier`, logging out after a success."""
    statuses = []
    for password in passwords:
        response = user.post("/login", {"identifier": identifier, "password": password}, **kwargs)
        statuses.append(response.status_code)
        if response.status_code == 303:
            user.post("/logout", {}, token_from="/accounts/", **kwargs)
    return statuses


def test_sixth_failure_is_refused_even_with_the_right_password(user, customer, admin):
    assert _attempts(user, customer.account_number, [WRONG] * 5) == [422] * 5
    response = user.login(customer.account_number)
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert THROTTLED in html and "Unknown account" not in html
    assert "<h1>Log in</h1>" in html  # the login page with the error on its field
    assert 840 < int(response.headers["Retry-After"]) <= 900
    assert user.get("/accounts/").status_code == 302  # still logged out
    assert user.login(admin.account_number).status_code == 303  # other accounts unaffected


@pytest.mark.parametrize(
    ("counted_as", "spellings"),
    [
        (
            "nobody@example.com",
            ["nobody@example.com", " Nobody@Example.COM ", "NOBODY@example.com"],
        ),
        ("customer@example.com", ["customer@example.com", "Customer@Example.com "]),
        ("9999999999", ["9999999999", " 9999999999"]),
    ],
)
def test_unknown_and_known_identifiers_are_throttled_alike(user, customer, counted_as, spellings):
    identifiers = [spellings[i % len(spellings)] for i in range(6)]
    statuses = [_attempts(user, identifier, [WRONG])[0] for identifier in identifiers]
    assert statuses == [422] * 5 + [429]
    response = user.login(counted_as)
    assert response.status_code == 429 and THROTTLED in response.get_data(as_text=True)


def test_a_successful_login_does_not_count(user, customer):
    statuses = _attempts(user, customer.account_number, [WRONG] * 4 + [PASSWORD] + [WRONG])
    assert statuses == [422] * 4 + [303, 422]  # the success left room for a fifth failure
    assert user.login(customer.account_number).status_code == 429


def test_inactive_and_expired_refusals_are_not_guesses(user, customer):
    customer.expiry_date = utcnow() - timedelta(days=1)
    db.session.commit()
    assert _attempts(user, customer.account_number, [PASSWORD] * 6) == [422] * 6


def test_failures_are_limited_per_client_ip(app, user, admin, customer):
    app.config["LOGIN_LIMIT_PER_IP"] = "3 per 15 minutes"
    attacker = {"environ_base": {"REMOTE_ADDR": "203.0.113.7"}}
    for identifier in ("nobody@example.com", "9999999999", customer.account_number):
        assert _attempts(user, identifier, [WRONG], **attacker) == [422]
    # Every identifier is refused from that address, even with the right password...
    for account in (admin, customer):
        response = user.post(
            "/login", {"identifier": account.account_number, "password": PASSWORD}, **attacker
        )
        assert response.status_code == 429
        assert THROTTLED in response.get_data(as_text=True)
    # ...while other pages still open from it and the same logins work from elsewhere.
    assert user.client.get("/login", **attacker).status_code == 200
    assert _attempts(user, admin.account_number, [PASSWORD]) == [303]
    other = {"environ_base": {"REMOTE_ADDR": "198.51.100.9"}}
    assert _attempts(user, customer.account_number, [PASSWORD], **other) == [303]


def test_only_the_login_post_is_limited(app, user, admin):
    app.config["LOGIN_LIMIT_PER_IP"] = "1 per 15 minutes"
    assert _attempts(user, "nobody@example.com", [WRONG]) == [422]
    for _ in range(5):
        assert user.client.get("/login").status_code == 200
    assert user.post("/login", {"identifier": "", "password": ""}).status_code == 422
    assert user.login(admin.account_number).status_code == 429


def test_expired_account_cannot_log_in(user, customer):
    customer.expiry_date = utcnow() - timedelta(days=1)
    db.session.commit()
    response = user.login(customer.account_number)
    assert response.status_code == 422
    expired_on = customer.expiry_date.strftime("%Y-%m-%d")
    assert f"This account expired on {expired_on}." in response.get_data(as_text=True)
    assert user.get("/accounts/").status_code == 302
    customer.expiry_date = utcnow() + timedelta(days=1)
    db.session.commit()
    assert user.login(customer.account_number).status_code == 303


def test_login_limits_and_cookie_flags_come_from_the_environment(monkeypatch, tmp_path):
    for name in ("LOGIN_LIMIT_PER_ACCOUNT", "LOGIN_LIMIT_PER_IP", "SESSION_COOKIE_SECURE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REMEMBER_COOKIE_SECURE", raising=False)
    config = load_config(str(tmp_path))
    assert config["LOGIN_LIMIT_PER_ACCOUNT"] == "5 per 15 minutes"
    assert config["LOGIN_LIMIT_PER_IP"] == "30 per 15 minutes"
    assert not config["SESSION_COOKIE_SECURE"] and not config["REMEMBER_COOKIE_SECURE"]

    monkeypatch.setenv("LOGIN_LIMIT_PER_ACCOUNT", "3 per hour")
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "1")
    config = load_config(str(tmp_path))
    assert config["LOGIN_LIMIT_PER_ACCOUNT"] == "3 per hour"
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    monkeypatch.setenv("REMEMBER_COOKIE_SECURE", "0")
    assert not load_config(str(tmp_path))["REMEMBER_COOKIE_SECURE"]

    monkeypatch.setenv("LOGIN_LIMIT_PER_IP", "lots")
    with pytest.raises(ValueError, match="LOGIN_LIMIT_PER_IP"):
        load_config(str(tmp_path))


def test_remember_me_cookie_is_httponly_lax_and_secure_when_asked(app, user, admin):
    app.config["REMEMBER_COOKIE_SECURE"] = True
    response = user.post(
        "/login", {"identifier": admin.account_number, "password": PASSWORD, "remember": "y"}
    )
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "remember_token" in c]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_failed_logins_are_shared_by_every_app_on_the_database(app, database_url, customer):
    # Two apps on one database stand for two gunicorn workers (tests/e2e proves it with two).
    other_app = make_test_app(database_url)
    try:
        one, two = Browser(app.test_client()), Browser(other_app.test_client())
        statuses = [_attempts(b, customer.account_number, [WRONG])[0] for b in [one, two] * 3]
        assert statuses == [422] * 5 + [429]
        assert one.login(customer.account_number).status_code == 429
        rows = db.session.scalars(select(LoginFailureCounter)).all()
        assert sorted(row.count for row in rows) == [5, 5]  # the identifier's and the address's
        assert customer.account_number not in "".join(row.key for row in rows)  # hashed keys
    finally:
        with other_app.app_context():
            db.engine.dispose()


def test_an_ended_window_counts_from_one_again_and_is_purged(app, user, customer):
    assert _attempts(user, customer.account_number, [WRONG] * 5) == [422] * 5
    assert user.login(customer.account_number).status_code == 429
    for row in db.session.scalars(select(LoginFailureCounter)):
        row.window_end = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert _attempts(user, customer.account_number, [WRONG]) == [422]
    counts = db.session.scalars(select(LoginFailureCounter.count)).all()
    assert counts == [1, 1]
    db.session.execute(update(LoginFailureCounter).values(window_end=utcnow()))
    db.session.commit()
    assert purge_ended_windows() == 2
    assert db.session.scalars(select(LoginFailureCounter)).all() == []


def _scrypt_app(database_url):
    """An app with the production hash method and room for many failed logins."""
    return make_test_app(
        database_url,
        PASSWORD_HASH_METHOD="scrypt",
        LOGIN_LIMIT_PER_ACCOUNT="1000 per 15 minutes",
        LOGIN_LIMIT_PER_IP="1000 per 15 minutes",
    )


def _fast_hashed_customer(customer) -> str:
    """Give the customer a generated password with its fast hash (as mass creation does)."""
    password = new_password()
    customer.password_hash = hash_generated_secret(password)
    db.session.commit()
    return password


def test_a_fast_hashed_account_answers_a_wrong_password_as_slowly_as_an_unknown_one(
    app, database_url, customer
):
    # Not a benchmark: the gap was 15x (a fast hash against scrypt); equal work stays within 2x.
    _fast_hashed_customer(customer)
    slow_app = _scrypt_app(database_url)
    try:
        user = Browser(slow_app.test_client())
        user.login("0000000000", WRONG)  # warm up: the dummy hash is made once
        timings = {"known": [], "unknown": []}
        for _ in range(20):
            for kind, identifier in (("known", customer.account_number), ("unknown", "999999")):
                started = time.perf_counter()
                response = user.login(identifier, WRONG)
                timings[kind].append(time.perf_counter() - started)
                assert response.status_code == 422
        known, unknown = (statistics.median(timings[k]) for k in ("known", "unknown"))
        assert unknown / 2 < known < unknown * 2, (known, unknown)
    finally:
        with slow_app.app_context():
            db.engine.dispose()


def test_a_generated_password_is_rehashed_slowly_at_its_first_login(app, database_url, customer):
    password = _fast_hashed_customer(customer)
    slow_app = _scrypt_app(database_url)
    try:
        user = Browser(slow_app.test_client())
        assert user.login(customer.account_number, WRONG).status_code == 422
        db.session.expire_all()
        assert db.session.get(Account, customer.id).password_hash.startswith("pbkdf2:sha256:1000$")
        assert user.login(customer.account_number, password).status_code == 303
        db.session.expire_all()
        rehashed = db.session.get(Account, customer.id).password_hash
        assert rehashed.startswith("scrypt:")
        user.post("/logout", {}, token_from="/my/")
        assert user.login(customer.account_number, password).status_code == 303
        db.session.expire_all()
        assert db.session.get(Account, customer.id).password_hash == rehashed  # once only
    finally:
        with slow_app.app_context():
            db.engine.dispose()


CURRENT = {"new_password": "N3w-horse-battery", "repeat_password": "N3w-horse-battery"}


@pytest.mark.parametrize("page", ["/my/password", "/my/account"])
def test_the_current_password_check_is_throttled_like_the_login(app, user, customer, admin, page):
    account = customer if page == "/my/password" else admin
    user.login(account.account_number)
    wrong = {**CURRENT, "old_password": WRONG}
    for _ in range(5):
        assert user.post(page, wrong, token_from=page).status_code == 422
    response = user.post(page, {**CURRENT, "old_password": PASSWORD}, token_from=page)
    html = response.get_data(as_text=True)
    assert response.status_code == 429 and 840 < int(response.headers["Retry-After"]) <= 900
    block = re.search(r'id="field-old_password">(.*?)</div>', html, re.S)
    assert block and THROTTLED in block.group(1)
    db.session.expire_all()
    assert verify_password(db.session.get(Account, account.id).password_hash, PASSWORD)
    assert user.get(page).status_code == 200  # still logged in; only the check is refused


def test_wrong_current_passwords_and_failed_logins_share_the_address_limit(
    app, user, customer, admin
):
    app.config["LOGIN_LIMIT_PER_IP"] = "3 per 15 minutes"
    assert _attempts(user, "nobody@example.com", [WRONG] * 2) == [422, 422]
    user.login(customer.account_number)
    wrong = {**CURRENT, "old_password": WRONG}
    assert user.post("/my/password", wrong, token_from="/my/password").status_code == 422
    assert user.post("/my/password", wrong, token_from="/my/password").status_code == 429
    user.post("/logout", {}, token_from="/my/")
    assert user.login(admin.account_number).status_code == 429
