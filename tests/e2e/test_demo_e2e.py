"""`make demo`'s seed on the real server: its data obeys the ledger, and each role sees figures."""

import re
import subprocess
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.demo.seed import LOGINS
from portal.extensions import db
from portal.models import Account, Call, Document, DocumentKind, LedgerEntry, Role
from tests.conftest import ROOT, free_port, make_test_app, throwaway_database
from tests.e2e.conftest import Login, Portal
from tests.e2e.steps import main
from tests.servers import BIN, portal_env

ADMIN, RESELLER, PARTNER, CUSTOMER = (
    Login(login.role, login.identifier, login.password) for login in LOGINS.values()
)


def seed_command(env: dict) -> subprocess.CompletedProcess:
    """`flask demo seed`, as `make demo` runs it."""
    return subprocess.run(
        [str(BIN / "flask"), "--app", "app", "demo", "seed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def portal(tmp_path_factory, chromium_executable):
    """The portal on a database the demo seed filled, served as `make demo` serves it."""
    directory = tmp_path_factory.mktemp("demo")
    logs = directory / "logs"
    logs.mkdir()
    with throwaway_database(directory) as database_url:
        env = portal_env(database_url, "unused@example.com", "Unused-passw0rd")
        portal = Portal(free_port(), env, logs)
        portal.flask("db", "upgrade")
        seeded = seed_command(env)
        assert seeded.returncode == 0, seeded.stderr
        portal.seed_output = seeded.stdout
        portal.database_url = database_url
        portal.start()
        try:
            yield portal
        finally:
            portal.stop()


@pytest.fixture(scope="module")
def demo_app(portal):
    """The app on the demo's database, to read what the seed wrote."""
    app = make_test_app(portal.database_url)
    with app.app_context():
        yield app
        db.session.remove()


def test_the_seed_prints_one_login_per_role(portal):
    for login in LOGINS.values():
        assert re.search(
            rf"{login.role}\s+{re.escape(login.identifier)}\s+{login.password}", portal.seed_output
        )


def test_every_balance_is_its_ledger_and_numbers_have_no_gaps(demo_app):
    accounts = db.session.scalars(select(Account)).all()
    assert len([a for a in accounts if a.role == Role.CUSTOMER]) >= 200
    ledger = dict(
        db.session.execute(
            select(LedgerEntry.account_id, func.sum(LedgerEntry.amount)).group_by(
                LedgerEntry.account_id
            )
        ).all()
    )
    for account in accounts:
        assert account.balance == Decimal(ledger.get(account.id, 0)), account.account_number
        # Nothing is left reserved: every call the seed started has ended.
        assert (account.live_calls, account.reserved) == (0, 0), account.account_number
    documents = db.session.scalars(select(Document)).all()
    kinds = {document.kind for document in documents}
    assert kinds == {DocumentKind.INVOICE, DocumentKind.RECEIPT}
    numbers: dict[tuple, list[int]] = {}
    for document in documents:
        numbers.setdefault((document.issuer_key, document.kind), []).append(document.number)
        moved = db.session.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.document_id == document.id)
        )
        assert abs(Decimal(moved)) == document.total, document.id
    assert len(numbers) > 2  # the operator and resellers each number their own documents
    for key, issued in numbers.items():
        assert sorted(issued) == list(range(1, len(issued) + 1)), key


def test_each_account_sits_in_its_owners_tenant(demo_app):
    accounts = {account.id: account for account in db.session.scalars(select(Account))}
    resellers = [a for a in accounts.values() if a.role == Role.RESELLER]
    assert len(resellers) == 4 and any(r.reseller_id for r in resellers)  # one sub-reseller
    for account in accounts.values():
        owner = accounts.get(account.reseller_id)
        expected = owner.subtree_path if owner else ""
        assert account.tenant_path == expected, account.account_number
        if owner and account.rate_group is not None:
            assert account.rate_group.reseller_id == owner.id
    calls = db.session.execute(select(Call.status, func.count()).group_by(Call.status)).all()
    assert dict(calls).get("ended", 0) > 1000


def test_the_seed_refuses_a_second_run_and_changes_nothing(portal, demo_app):
    before = db.session.scalar(select(func.count()).select_from(LedgerEntry))
    again = seed_command(portal.env)
    assert again.returncode != 0
    assert "already has accounts" in again.stderr
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == before


def _figure(page, name: str) -> int:
    """A dashboard tile's number."""
    return int(page.locator(f'[data-figure="{name}"]').inner_text().replace(",", ""))


@pytest.mark.parametrize("login", [ADMIN, RESELLER, PARTNER], ids=lambda login: login.label)
def test_each_manager_dashboard_shows_figures_and_charts(browse, portal, login):
    page = browse.page(login)
    page.goto(portal("/dashboard/"))
    assert _figure(page, "calls") > 0
    expect(page.locator("canvas[data-drawn]").first).to_be_attached()
    browse.check(page, f"Demo dashboard of the {login.label}")
    page.goto(portal("/calls/"))
    expect(main(page).locator("tbody tr").first).to_be_visible()
    browse.check(page, f"Demo calls of the {login.label}")


def test_the_customer_sees_its_calls_and_invoices(browse, portal):
    page = browse.page(CUSTOMER)
    page.goto(portal("/my/"))
    assert _figure(page, "month-calls") > 0
    browse.check(page, "Demo customer dashboard")
    page.goto(portal("/my/documents"))
    expect(main(page).get_by_text("Invoice").first).to_be_visible()
    browse.check(page, "Demo customer documents")


def test_the_access_matrix_holds_for_the_demo_users(browse, portal, demo_app):
    accounts = db.session.scalars(select(Account)).all()
    by_email = {account.email: account for account in accounts}
    northwind = by_email[RESELLER.identifier]
    partner = by_email[PARTNER.identifier]
    known = by_email[CUSTOMER.identifier]
    northwind_direct = next(
        a for a in accounts if a.reseller_id == northwind.id and a.id != partner.id
    )
    partners_customer = next(a for a in accounts if a.reseller_id == partner.id)
    rows = [
        # (who, the accounts it sees, the accounts it does not)
        (ADMIN, [known, northwind_direct, partners_customer], []),
        (RESELLER, [northwind_direct, partners_customer], [known]),
        (PARTNER, [partners_customer], [known, northwind_direct]),
    ]
    for login, visible, hidden in rows:
        page = browse.page(login)
        page.goto(portal("/"))
        browse.check(page, f"Demo landing page of the {login.label}")
        for account in visible:
            assert page.request.get(portal(f"/accounts/{account.id}")).status == 200
        for account in hidden:
            assert page.request.get(portal(f"/accounts/{account.id}")).status == 404
    page = browse.page(CUSTOMER)
    page.goto(portal("/"))
    browse.check(page, "Demo landing page of the customer")
    assert page.request.get(portal(f"/accounts/{known.id}")).status == 403
    assert page.request.get(portal("/dashboard/")).status == 403
