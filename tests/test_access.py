"""Access matrix: every route of the app x every role, generated from the URL map."""

import io
from datetime import date

import pytest

from portal.api.openapi import OPERATIONS
from portal.apikeys.service import create_key
from portal.billing.service import add_payment
from portal.extensions import db
from portal.models import Job, JobFile, Product, Rate, Role, SipDevice, Subscription
from tests.conftest import Browser, make_account, make_test_app

OK, LOGIN, FORBIDDEN, NOT_FOUND = "ok", "login", 403, 404
ROLES = ("anonymous", "customer", "reseller", "subadmin", "admin")


def expect(anonymous=LOGIN, customer=FORBIDDEN, reseller=OK, subadmin=OK, admin=OK) -> dict:
    """Expected outcome per role (defaults: managers reach the view)."""
    return {
        "anonymous": anonymous,
        "customer": customer,
        "reseller": reseller,
        "subadmin": subadmin,
        "admin": admin,
    }


PUBLIC = expect(anonymous=OK, customer=OK)
LOGGED_IN = expect(customer=OK)
MANAGERS = expect()
STAFF = expect(reseller=FORBIDDEN)
ADMIN = expect(reseller=FORBIDDEN, subadmin=FORBIDDEN)
CUSTOMERS = expect(customer=OK, reseller=FORBIDDEN, subadmin=FORBIDDEN, admin=FORBIDDEN)
# A record owned by the admins: a reseller may not know it exists.
ADMINS_RECORD = expect(reseller=NOT_FOUND)
RESELLERS = expect(customer=FORBIDDEN, reseller=OK, subadmin=FORBIDDEN, admin=FORBIDDEN)
# Customers see their portal; a reseller is sent on to its My account page.
OWN_MONEY = expect(customer=OK, reseller=OK, subadmin=FORBIDDEN, admin=FORBIDDEN)
ISSUERS = expect(customer=FORBIDDEN, reseller=OK, subadmin=FORBIDDEN, admin=OK)
# Only an issuer's own logo, and none stored in the matrix's world: not found for them.
OWN_LOGO = expect(customer=FORBIDDEN, reseller=NOT_FOUND, subadmin=FORBIDDEN, admin=NOT_FOUND)
# The softswitch API takes bearer keys only: a browser session is no key, whoever logged in.
API_KEY_ONLY = expect(401, 401, 401, 401, 401)
NO_SUCH_ROW = expect(reseller=NOT_FOUND, subadmin=NOT_FOUND, admin=NOT_FOUND)

# (endpoint, method) -> [(url, expectations)]; ids are filled in from the world fixture.
MATRIX = {
    ("static", "GET"): [("/static/css/portal.css", PUBLIC)],
    ("auth.login", "GET"): [("/login", PUBLIC)],
    ("auth.login", "POST"): [("/login", PUBLIC)],
    ("auth.logout", "POST"): [("/logout", LOGGED_IN)],
    ("auth.logout_everywhere", "POST"): [("/logout/everywhere", LOGGED_IN)],
    ("auth.home", "GET"): [("/", LOGGED_IN)],
    ("dashboard.index", "GET"): [("/dashboard/", MANAGERS)],
    ("dashboard.figures", "GET"): [("/dashboard/figures.json", MANAGERS)],
    ("accounts.index", "GET"): [("/accounts/", MANAGERS)],
    ("accounts.resellers", "GET"): [("/accounts/resellers/", MANAGERS)],
    ("accounts.staff", "GET"): [("/accounts/staff/", ADMIN)],
    ("accounts.new", "GET"): [
        ("/accounts/new", MANAGERS),
        ("/accounts/new/reseller", MANAGERS),
        ("/accounts/new/subadmin", ADMIN),
        ("/accounts/new/admin", ADMIN),
    ],
    ("accounts.new", "POST"): [
        ("/accounts/new", MANAGERS),
        ("/accounts/new/reseller", MANAGERS),
        ("/accounts/new/subadmin", ADMIN),
        ("/accounts/new/admin", ADMIN),
    ],
    ("accounts.show", "GET"): [
        ("/accounts/{customer}", ADMINS_RECORD),
        ("/accounts/{admin}", expect(reseller=NOT_FOUND, subadmin=NOT_FOUND)),
    ],
    ("accounts.edit", "GET"): [("/accounts/{customer}/edit", ADMINS_RECORD)],
    ("accounts.edit", "POST"): [("/accounts/{customer}/edit", ADMINS_RECORD)],
    ("accounts.change_status", "POST"): [("/accounts/{customer}/status", ADMINS_RECORD)],
    ("accounts.delete", "POST"): [
        ("/accounts/{customer}/delete", ADMINS_RECORD),
        # Sub-admins do not manage staff, themselves included; an admin may delete a sub-admin.
        ("/accounts/{subadmin}/delete", expect(reseller=NOT_FOUND, subadmin=NOT_FOUND)),
    ],
    # Moving: a customer or reseller the caller manages (staff, or a reseller in its subtree).
    ("accounts.move", "GET"): [
        ("/accounts/{customer}/move", ADMINS_RECORD),
        ("/accounts/{subadmin}/move", expect(reseller=NOT_FOUND, subadmin=NOT_FOUND, admin=404)),
    ],
    ("accounts.move", "POST"): [("/accounts/{customer}/move", ADMINS_RECORD)],
    ("accounts.move_choices", "GET"): [
        ("/accounts/{customer}/move/choices?reseller_id={reseller}", ADMINS_RECORD)
    ],
    ("accounts.mass_create_page", "GET"): [("/accounts/mass-create", MANAGERS)],
    ("accounts.mass_create_page", "POST"): [("/accounts/mass-create", MANAGERS)],
    ("accounts.import_csv", "GET"): [("/accounts/import", MANAGERS)],
    ("accounts.import_csv", "POST"): [("/accounts/import", MANAGERS)],
    ("accounts.export_csv", "GET"): [("/accounts/export.csv", MANAGERS)],
    ("accounts.start_export", "POST"): [("/accounts/export", MANAGERS)],
    ("accounts.owner_partial", "GET"): [("/accounts/partials/owner?reseller_id={reseller}", STAFF)],
    ("accounts.billing_day_partial", "GET"): [("/accounts/partials/billing-day", MANAGERS)],
    ("accounts.credit_limit_partial", "GET"): [("/accounts/partials/credit-limit", MANAGERS)],
    ("accounts.expiry_partial", "GET"): [("/accounts/partials/expiry?valid_days=3", MANAGERS)],
    ("accounts.generate", "GET"): [("/accounts/partials/generate/pin", MANAGERS)],
    ("tariffs.index", "GET"): [("/tariff/rate-groups/", MANAGERS)],
    ("tariffs.new", "GET"): [("/tariff/rate-groups/new", MANAGERS)],
    ("tariffs.new", "POST"): [("/tariff/rate-groups/new", MANAGERS)],
    ("tariffs.show", "GET"): [("/tariff/rate-groups/{group}", ADMINS_RECORD)],
    ("tariffs.edit", "GET"): [("/tariff/rate-groups/{group}/edit", ADMINS_RECORD)],
    ("tariffs.edit", "POST"): [("/tariff/rate-groups/{group}/edit", ADMINS_RECORD)],
    ("tariffs.change_status", "POST"): [("/tariff/rate-groups/{group}/status", ADMINS_RECORD)],
    ("tariffs.add", "POST"): [("/tariff/rate-groups/{group}/rates", ADMINS_RECORD)],
    # Blocked prefixes and IP trunks: the account's or rate group's managers; a blocked
    # prefix or trunk that is not the account's is not found for anyone.
    ("access.block_prefix", "POST"): [("/accounts/{customer}/blocked-prefixes", ADMINS_RECORD)],
    ("access.unblock_prefix", "POST"): [
        ("/accounts/{customer}/blocked-prefixes/2147483647/delete", NO_SUCH_ROW)
    ],
    ("access.add_ip_trunk", "POST"): [("/accounts/{customer}/ip-trunks", ADMINS_RECORD)],
    ("access.delete_ip_trunk", "POST"): [
        ("/accounts/{customer}/ip-trunks/2147483647/delete", NO_SUCH_ROW)
    ],
    ("access.block_group", "POST"): [
        ("/tariff/rate-groups/{group}/blocked-prefixes", ADMINS_RECORD)
    ],
    ("access.unblock_group", "POST"): [
        ("/tariff/rate-groups/{group}/blocked-prefixes/2147483647/delete", NO_SUCH_ROW)
    ],
    ("tariffs.edit_rate", "GET"): [
        ("/tariff/rate-groups/{group}/rates/{rate}/edit", ADMINS_RECORD)
    ],
    ("tariffs.edit_rate", "POST"): [
        ("/tariff/rate-groups/{group}/rates/{rate}/edit", ADMINS_RECORD)
    ],
    ("tariffs.remove_rate", "POST"): [
        ("/tariff/rate-groups/{group}/rates/{rate}/delete", ADMINS_RECORD)
    ],
    ("tariffs.import_csv", "POST"): [("/tariff/rate-groups/{group}/import", ADMINS_RECORD)],
    ("tariffs.export_csv", "GET"): [("/tariff/rate-groups/{group}/export.csv", ADMINS_RECORD)],
    ("tariffs.start_export", "POST"): [("/tariff/rate-groups/{group}/export", ADMINS_RECORD)],
    ("tariffs.lookup", "GET"): [("/tariff/rate-groups/{group}/lookup?number=44", ADMINS_RECORD)],
    ("taxes.index", "GET"): [("/configuration/taxes/", MANAGERS)],
    ("products.index", "GET"): [("/configuration/products/", MANAGERS)],
    ("products.new", "GET"): [("/configuration/products/new", MANAGERS)],
    ("products.new", "POST"): [("/configuration/products/new", MANAGERS)],
    ("products.edit", "GET"): [("/configuration/products/{product}/edit", ADMINS_RECORD)],
    ("products.edit", "POST"): [("/configuration/products/{product}/edit", ADMINS_RECORD)],
    ("products.import_csv", "POST"): [
        ("/configuration/products/{product}/prefixes", ADMINS_RECORD)
    ],
    ("products.change_status", "POST"): [
        ("/configuration/products/{product}/status", ADMINS_RECORD)
    ],
    ("products.subscribe_account", "POST"): [
        ("/configuration/products/subscribe/{customer}", ADMINS_RECORD)
    ],
    ("products.cancel_subscription", "POST"): [
        ("/configuration/products/subscriptions/{customer}/{subscription}/cancel", ADMINS_RECORD)
    ],
    ("taxes.new", "GET"): [("/configuration/taxes/new", MANAGERS)],
    ("taxes.new", "POST"): [("/configuration/taxes/new", MANAGERS)],
    ("taxes.edit", "GET"): [("/configuration/taxes/{tax}/edit", ADMINS_RECORD)],
    ("taxes.edit", "POST"): [("/configuration/taxes/{tax}/edit", ADMINS_RECORD)],
    ("taxes.change_status", "POST"): [("/configuration/taxes/{tax}/status", ADMINS_RECORD)],
    ("settings.edit", "GET"): [("/configuration/", ADMIN)],
    ("settings.edit", "POST"): [("/configuration/", ADMIN)],
    ("auditlog.index", "GET"): [("/audit/", ADMIN)],
    # The operator's mail: the staff's, all of it (a reseller's customers' mail included).
    ("outbox.index", "GET"): [("/outbox/", STAFF)],
    ("outbox.retry", "POST"): [("/outbox/{message}/retry", STAFF)],
    ("billing.payment", "POST"): [("/accounts/{customer}/payments", ADMINS_RECORD)],
    ("billing.charge", "POST"): [("/accounts/{customer}/charges", ADMINS_RECORD)],
    # A receipt of the admins' customer: the customer itself may read it, a reseller may not.
    ("billing.document", "GET"): [
        ("/documents/{document}", expect(customer=OK, reseller=NOT_FOUND))
    ],
    ("billing.document_pdf", "GET"): [
        ("/documents/{document}.pdf", expect(customer=OK, reseller=NOT_FOUND))
    ],
    ("accounts.reset_device_password", "POST"): [
        ("/accounts/{customer}/sip-devices/{device}/reset-password", ADMINS_RECORD),
        # The device of another account through this account's URL: not found for anyone.
        (
            "/accounts/{customer}/sip-devices/{other_device}/reset-password",
            expect(reseller=NOT_FOUND, subadmin=NOT_FOUND, admin=NOT_FOUND),
        ),
    ],
    ("apikeys.index", "GET"): [("/api-keys/", MANAGERS)],
    ("apikeys.index", "POST"): [("/api-keys/", MANAGERS)],
    ("apikeys.reference", "GET"): [("/api-keys/reference", MANAGERS)],
    # Each manager sees its own keys only (admins: every key).
    ("apikeys.revoke", "POST"): [
        ("/api-keys/{api_key}/revoke", expect(reseller=NOT_FOUND, subadmin=NOT_FOUND))
    ],
    # Every role has a Calls page (its own calls for a customer); live calls are staff's.
    ("calls.index", "GET"): [("/calls/", LOGGED_IN)],
    ("calls.export", "POST"): [("/calls/export", LOGGED_IN)],
    ("calls.export_csv", "GET"): [("/calls/export.csv", CUSTOMERS)],
    ("calls.live", "GET"): [("/calls/live", STAFF)],
    ("calls.test_call", "GET"): [
        ("/accounts/{customer}/test-call", ADMINS_RECORD),
        ("/accounts/{customer}/test-call?destination=4420", ADMINS_RECORD),
    ],
    ("jobs.index", "GET"): [("/jobs/", MANAGERS)],
    ("jobs.show", "GET"): [("/jobs/{job}", ADMINS_RECORD)],
    ("jobs.progress", "GET"): [("/jobs/{job}/progress", ADMINS_RECORD)],
    ("jobs.download", "GET"): [("/jobs/{job}/download", ADMINS_RECORD)],
    # The new passwords: for the one who started the job only, not even another staff member.
    ("jobs.credentials", "POST"): [
        ("/jobs/{job}/credentials", expect(reseller=NOT_FOUND, subadmin=NOT_FOUND))
    ],
    ("jobs.billing_run", "POST"): [("/jobs/billing-run", ADMIN)],
    ("jobs.billing_dry_run", "POST"): [("/jobs/billing-dry-run", ADMIN)],
    ("softswitch.calls_authorize", "POST"): [("/api/v1/calls/authorize", API_KEY_ONLY)],
    ("softswitch.calls_end", "POST"): [("/api/v1/calls/call-1/end", API_KEY_ONLY)],
    ("softswitch.freeswitch_directory", "POST"): [("/api/v1/freeswitch/directory", API_KEY_ONLY)],
    ("softswitch.freeswitch_dialplan", "POST"): [("/api/v1/freeswitch/dialplan", API_KEY_ONLY)],
    ("softswitch.freeswitch_cdr", "POST"): [("/api/v1/freeswitch/cdr", API_KEY_ONLY)],
    ("api.openapi_document", "GET"): [("/api/v1/openapi.json", PUBLIC)],
    ("api.create_account_api", "POST"): [("/api/v1/accounts", API_KEY_ONLY)],
    ("api.list_accounts", "GET"): [("/api/v1/accounts", API_KEY_ONLY)],
    ("api.mass_create_api", "POST"): [("/api/v1/accounts/mass-create", API_KEY_ONLY)],
    ("api.get_account", "GET"): [("/api/v1/accounts/{customer}", API_KEY_ONLY)],
    ("api.update_account_api", "PATCH"): [("/api/v1/accounts/{customer}", API_KEY_ONLY)],
    ("api.delete_account", "DELETE"): [("/api/v1/accounts/{customer}", API_KEY_ONLY)],
    ("api.deactivate_account", "POST"): [("/api/v1/accounts/{customer}/deactivate", API_KEY_ONLY)],
    ("api.activate_account", "POST"): [("/api/v1/accounts/{customer}/activate", API_KEY_ONLY)],
    ("api.move_account_api", "POST"): [("/api/v1/accounts/{customer}/move", API_KEY_ONLY)],
    ("api.post_payment", "POST"): [("/api/v1/accounts/{customer}/payments", API_KEY_ONLY)],
    ("api.post_charge", "POST"): [("/api/v1/accounts/{customer}/charges", API_KEY_ONLY)],
    ("api.get_job", "GET"): [("/api/v1/jobs/{job}", API_KEY_ONLY)],
    ("api.take_job_credentials", "POST"): [("/api/v1/jobs/{job}/credentials", API_KEY_ONLY)],
    ("api.list_rate_groups", "GET"): [("/api/v1/rate-groups", API_KEY_ONLY)],
    ("api.list_taxes", "GET"): [("/api/v1/taxes", API_KEY_ONLY)],
    ("api.list_account_blocked_prefixes", "GET"): [
        ("/api/v1/accounts/{customer}/blocked-prefixes", API_KEY_ONLY)
    ],
    ("api.add_account_blocked_prefix", "POST"): [
        ("/api/v1/accounts/{customer}/blocked-prefixes", API_KEY_ONLY)
    ],
    ("api.delete_account_blocked_prefix", "DELETE"): [
        ("/api/v1/accounts/{customer}/blocked-prefixes/1", API_KEY_ONLY)
    ],
    ("api.list_group_blocked_prefixes", "GET"): [
        ("/api/v1/rate-groups/{group}/blocked-prefixes", API_KEY_ONLY)
    ],
    ("api.add_group_blocked_prefix", "POST"): [
        ("/api/v1/rate-groups/{group}/blocked-prefixes", API_KEY_ONLY)
    ],
    ("api.delete_group_blocked_prefix", "DELETE"): [
        ("/api/v1/rate-groups/{group}/blocked-prefixes/1", API_KEY_ONLY)
    ],
    ("api.list_ip_trunks", "GET"): [("/api/v1/accounts/{customer}/ip-trunks", API_KEY_ONLY)],
    ("api.add_ip_trunk", "POST"): [("/api/v1/accounts/{customer}/ip-trunks", API_KEY_ONLY)],
    ("api.delete_ip_trunk", "DELETE"): [("/api/v1/accounts/{customer}/ip-trunks/1", API_KEY_ONLY)],
    ("api.list_products", "GET"): [("/api/v1/products", API_KEY_ONLY)],
    ("api.create_product_api", "POST"): [("/api/v1/products", API_KEY_ONLY)],
    ("api.update_product_api", "PATCH"): [("/api/v1/products/{product}", API_KEY_ONLY)],
    ("api.list_subscriptions", "GET"): [
        ("/api/v1/accounts/{customer}/subscriptions", API_KEY_ONLY)
    ],
    ("api.create_subscription", "POST"): [
        ("/api/v1/accounts/{customer}/subscriptions", API_KEY_ONLY)
    ],
    ("api.cancel_subscription", "POST"): [
        ("/api/v1/accounts/{customer}/subscriptions/{subscription}/cancel", API_KEY_ONLY)
    ],
    # The customer portal: customers only, and only ever their own account.
    ("me.dashboard", "GET"): [("/my/", OWN_MONEY)],
    ("me.profile", "GET"): [("/my/profile", CUSTOMERS)],
    ("me.profile", "POST"): [("/my/profile", CUSTOMERS)],
    ("me.password", "GET"): [("/my/password", CUSTOMERS)],
    ("me.password", "POST"): [("/my/password", CUSTOMERS)],
    # Staff and resellers: their own password and sessions.
    ("me.account", "GET"): [("/my/account", MANAGERS)],
    ("me.account", "POST"): [("/my/account", MANAGERS)],
    ("me.reset_device_password", "POST"): [
        ("/my/sip-devices/{device}/reset-password", CUSTOMERS),
        (
            "/my/sip-devices/{other_device}/reset-password",
            expect(customer=NOT_FOUND, reseller=FORBIDDEN, subadmin=FORBIDDEN, admin=FORBIDDEN),
        ),
    ],
    # A reseller's own account: its profile and full ledger.
    ("me.account_profile", "GET"): [("/my/account/profile", RESELLERS)],
    ("me.account_profile", "POST"): [("/my/account/profile", RESELLERS)],
    # The own account's paged lists: customers and resellers (staff have no money).
    ("me.ledger", "GET"): [("/my/account/ledger", OWN_MONEY)],
    ("me.documents", "GET"): [("/my/documents", OWN_MONEY)],
    ("me.calls", "GET"): [("/my/calls", OWN_MONEY)],
    # Money reports: every logged-in account, each scoped to what it may see.
    ("money.invoices_index", "GET"): [("/invoices/", LOGGED_IN)],
    ("money.payments_index", "GET"): [("/payments/", LOGGED_IN)],
    # The paged lists of a managed account: the admins' customer is not a reseller's.
    ("money.account_ledger", "GET"): [("/accounts/{customer}/ledger", ADMINS_RECORD)],
    ("money.account_documents", "GET"): [("/accounts/{customer}/documents", ADMINS_RECORD)],
    ("money.account_calls", "GET"): [("/accounts/{customer}/calls", ADMINS_RECORD)],
    ("me.resold_calls", "GET"): [("/my/account/calls", RESELLERS)],
    # The issuer's own invoice profile: a reseller's, or the operator's (admins).
    ("me.invoice_profile", "GET"): [("/my/invoice-profile", ISSUERS)],
    ("me.invoice_profile", "POST"): [("/my/invoice-profile", ISSUERS)],
    ("me.invoice_profile_logo", "GET"): [("/my/invoice-profile/logo", OWN_LOGO)],
    # A document's issuer logo: for whoever may read the document (no logo stored: 404).
    ("billing.document_logo", "GET"): [
        (
            "/documents/{document}/logo",
            expect(customer=NOT_FOUND, reseller=NOT_FOUND, subadmin=NOT_FOUND, admin=NOT_FOUND),
        )
    ],
}


def _routes() -> set[tuple[str, str]]:
    """(endpoint, method) of every route the app serves, the WSGI lane's included."""
    app = make_test_app("sqlite://")
    routes = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    return routes | {(op.endpoint, op.method) for op in OPERATIONS}


def test_every_route_has_an_access_rule():
    missing = sorted(_routes() - MATRIX.keys())
    assert not missing, f"routes without a row in the access matrix: {missing}"
    stale = sorted(MATRIX.keys() - _routes())
    assert not stale, f"access matrix rows for routes that no longer exist: {stale}"


CASES = [
    pytest.param(method, url, role, expected[role], id=f"{method} {url} as {role}")
    for (_endpoint, method), rows in sorted(MATRIX.items())
    for url, expected in rows
    for role in ROLES
]


@pytest.fixture
def world(app, admin, subadmin, reseller, customer, default_rate_group, vat):
    """One account per role and the admins' records the matrix URLs point at."""
    rate = Rate(rate_group_id=default_rate_group.id, prefix="44", destination="UK")
    device = SipDevice(account_id=customer.id, username="1000000004", password="sip-one")
    other = make_account(Role.CUSTOMER, "1000000005")
    other_device = SipDevice(account_id=other.id, username="1000000005", password="sip-two")
    db.session.add_all([rate, device, other_device])
    db.session.commit()
    posted = add_payment(admin, customer, "10")
    api_key, _ = create_key(admin, "fs1", "")
    job = Job(kind="mass_create", label="Mass create", started_by_id=admin.id, status="done")
    db.session.add(job)
    product = Product(name="Plan", price=1)
    subscription = Subscription(account=customer, product=product, start_date=date(2026, 1, 1))
    db.session.add(subscription)
    db.session.flush()
    db.session.add_all(
        JobFile(job_id=job.id, name=name, filename="f.csv", content=content)
        for name, content in (("output", b"a,b\n"), ("credentials", b"[]"))
    )
    db.session.commit()
    return {
        "accounts": {
            "customer": customer,
            "reseller": reseller,
            "subadmin": subadmin,
            "admin": admin,
        },
        "ids": {
            "customer": customer.id,
            "admin": admin.id,
            "subadmin": subadmin.id,
            "reseller": reseller.id,
            "group": default_rate_group.id,
            "rate": rate.id,
            "tax": vat.id,
            "document": posted.document.id,
            "message": posted.mail[0].id,
            "device": device.id,
            "other_device": other_device.id,
            "api_key": api_key.id,
            "job": job.id,
            "product": product.id,
            "subscription": subscription.id,
        },
    }


@pytest.mark.parametrize(("method", "url", "role", "expected"), CASES)
def test_access(app, world, method, url, role, expected):
    browser = Browser(app.test_client())
    if role != "anonymous":
        assert browser.login(world["accounts"][role].account_number).status_code == 303
    url = url.format(**world["ids"])
    if method == "GET":
        response = browser.get(url)
    elif method in ("PATCH", "DELETE"):  # API routes only: no CSRF token involved
        response = browser.client.open(url, method=method)
    else:
        data = {"file": (io.BytesIO(b""), "empty.csv")} if url.endswith("/import") else {}
        # A valid CSRF token, so what is tested is the role gate, not the CSRF check.
        response = browser.post(url, data, token_from="/no-such-page")
    status = response.status_code
    location = response.headers.get("Location", "")
    if expected == LOGIN:
        assert status == 302 and location.startswith("/login"), (status, location)
    elif expected == OK:
        assert status not in (403, 404, 405, 500), status
        assert not (status == 302 and location.startswith("/login")), location
    else:
        assert status == expected, status
        if url.startswith("/api/"):
            assert response.is_json and response.json["error"], response.get_data(as_text=True)
