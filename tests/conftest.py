"""Fixtures: a migrated throwaway database (SQLite, PostgreSQL, MariaDB), app, client, users."""

import asyncio
import email
import email.policy
import os
import re
import secrets
import socket
import threading
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
import pymysql
import pytest
import redis
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from flask_migrate import upgrade
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import text
from sqlalchemy.engine import make_url

from portal import MIGRATIONS_DIR, create_app
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    BillingSchedule,
    Rate,
    RateGroup,
    Role,
    SipDevice,
    Status,
    Tax,
)
from portal.passwords import hash_password

PASSWORD = "Corr3ct-horse"


def _postgres_admin_url(url: str) -> str:
    """A libpq URL for the server of `url` (psycopg, no SQLAlchemy driver suffix)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def _throwaway_mariadb(url: str):
    """A new database on the MariaDB server of `url` (utf8mb4, binary collation), dropped after."""
    name = f"portal_test_{secrets.token_hex(4)}"
    parsed = make_url(url)
    server = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "root",
        "password": parsed.password or "",
        "autocommit": True,
    }
    with pymysql.connect(**server) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin")
    try:
        yield (
            parsed.set(drivername="mysql+pymysql", database=name).render_as_string(
                hide_password=False
            )
        )
    finally:
        with pymysql.connect(**server) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@contextmanager
def throwaway_database(directory: Path):
    """A database of our own: a SQLite file in `directory`, or, when DATABASE_URL names a
    PostgreSQL or MariaDB server, a new database there, dropped (with its connections) after."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("mysql", "mariadb")):
        with _throwaway_mariadb(url) as mariadb_url:
            yield mariadb_url
        return
    if not url.startswith("postgres"):
        yield "sqlite:///" + str(directory / "test.sqlite3")
        return
    name = f"portal_test_{secrets.token_hex(4)}"
    server = _postgres_admin_url(url)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """Our own database for the session: a temporary SQLite file, or a new PostgreSQL one."""
    with throwaway_database(tmp_path_factory.mktemp("db")) as url:
        yield url


def make_test_app(database_url: str, **overrides):
    """An app on the test database, with a fast hash method (scrypt is tested on its own)."""
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "SECRET_KEY": "test-secret",
        # Jobs run as they are queued, in the test's process (a real consumer: tests/e2e).
        "JOBS_IMMEDIATE": True,
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture(scope="session")
def _migrated(database_url):
    """Apply the real migrations once per session (the schema under test is the migrated one)."""
    app = make_test_app(database_url)
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR)
        db.engine.dispose()


def _empty_all_tables() -> None:
    """Delete every row, breaking the accounts <-> rate_groups and reseller cycles first."""
    db.session.execute(text("UPDATE accounts SET rate_group_id = NULL, reseller_id = NULL"))
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production."""

    # Without this, requests reuse the test's app context: one `g` (Flask-Login's cached user,
    # Flask-WTF's token) and one session for every client, which hides real behaviour.
    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()  # the test's own objects reload what the request committed
        return response


@pytest.fixture
def app(database_url, _migrated):
    """The app inside an app context; every table is emptied after the test."""
    app = make_test_app(database_url)
    app.test_client_class = IsolatedClient
    with app.app_context():
        try:
            yield app
        finally:
            db.session.rollback()
            _empty_all_tables()
            db.session.remove()
            for engine in db.engines.values():  # the call API's pool too (portal.CALLS_BIND)
                engine.dispose()


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


def make_account(role: Role, number: str, *, email=None, reseller=None, **fields) -> Account:
    """Insert an account of `role` with the shared test password."""
    account = Account(
        account_number=number,
        role=role,
        email=email,
        reseller_id=reseller.id if reseller else None,
        password_hash=hash_password(PASSWORD),
        first_name=fields.pop("first_name", role.label),
        status=fields.pop("status", Status.ACTIVE),
        **fields,
    )
    db.session.add(account)
    db.session.commit()
    return account


@pytest.fixture
def admin(app):
    """An administrator."""
    return make_account(Role.ADMIN, "1000000001", email="admin@example.com")


@pytest.fixture
def subadmin(app):
    """A sub-admin."""
    return make_account(Role.SUBADMIN, "1000000002", email="sub@example.com")


@pytest.fixture
def reseller(app):
    """A reseller with its own rate group."""
    account = make_account(Role.RESELLER, "1000000003", email="reseller@example.com")
    db.session.add(RateGroup(name="Reseller plan", status=Status.ACTIVE, reseller_id=account.id))
    db.session.commit()
    return account


@pytest.fixture
def customer(app, default_rate_group):
    """A customer of the admins."""
    return make_account(
        Role.CUSTOMER,
        "1000000004",
        email="customer@example.com",
        rate_group_id=default_rate_group.id,
    )


@pytest.fixture
def default_rate_group(app):
    """The admins' active "Default" rate group."""
    group = RateGroup(name="Default", status=Status.ACTIVE, reseller_id=None)
    db.session.add(group)
    db.session.commit()
    return group


@pytest.fixture
def vat(app):
    """An active admin tax: 20 % + 0.10."""
    tax = Tax(name="VAT", rate=Decimal("20"), fixed_amount=Decimal("0.1"), priority=1)
    db.session.add(tax)
    db.session.commit()
    return tax


def csrf_from(html: str) -> str:
    """The CSRF token rendered in a page."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


class Browser:
    """A test client that logs in and posts forms with the page's CSRF token, like a user."""

    def __init__(self, client):
        self.client = client

    def login(self, identifier: str, password: str = PASSWORD):
        """Log in through the login form."""
        return self.post("/login", {"identifier": identifier, "password": password})

    def get(self, url: str, **kwargs):
        """GET a page."""
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict, token_from: str | None = None, **kwargs):
        """POST `data` with the CSRF token of the page at `token_from` (default: the login page)."""
        # The same client address for both requests (strong session protection binds to it).
        environ = {k: v for k, v in kwargs.items() if k == "environ_base"}
        page = self.client.get(token_from or "/login", **environ)
        data = {**data, "csrf_token": csrf_from(page.get_data(as_text=True))}
        return self.client.post(url, data=data, **kwargs)


def in_threads(app, work, jobs: list) -> list[BaseException]:
    """Run `work(job)` for each job at once, each in its own thread and app context."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def worker(job):
        try:
            with app.app_context():
                start.wait()
                work(job)
        except BaseException as error:  # reported to the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.fixture
def user(client):
    """A browser-like client helper."""
    return Browser(client)


@pytest.fixture
def as_admin(user, admin):
    """A client logged in as the administrator."""
    response = user.login(admin.account_number)
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    return user


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tenants(app, default_rate_group):
    """Two resellers (A with a sub-reseller A1), each with a customer, rate group and tax."""
    from portal.models import Rate, SipDevice

    world = {}
    for name, parent in (("a", None), ("b", None), ("a1", "a")):
        owner = world.get(parent)
        number = {"a": "2000000001", "b": "2000000002", "a1": "2000000003"}[name]
        reseller = make_account(
            Role.RESELLER,
            number,
            email=f"reseller-{name}@example.com",
            reseller=owner,
            tenant_path=owner.subtree_path if owner else "",
            first_name=f"Reseller {name.upper()}",
        )
        group = RateGroup(name=f"Plan {name.upper()}", reseller_id=reseller.id)
        tax = Tax(name=f"Tax {name.upper()}", rate=Decimal(5), priority=1, reseller_id=reseller.id)
        db.session.add_all([group, tax])
        db.session.commit()
        db.session.add(Rate(rate_group_id=group.id, prefix="44", destination="UK"))
        customer = make_account(
            Role.CUSTOMER,
            number.replace("2", "3", 1),
            email=f"customer-{name}@example.com",
            reseller=reseller,
            tenant_path=reseller.subtree_path,
            rate_group_id=group.id,
            first_name=f"Customer{name.upper()}",
        )
        db.session.add(
            SipDevice(account_id=customer.id, username=customer.account_number, password="sip1")
        )
        db.session.commit()
        world[name] = reseller
        world[f"{name}_customer"] = customer
        world[f"{name}_group"] = group
        world[f"{name}_tax"] = tax
    return world


@pytest.fixture
def tenants_calling(tenants):
    """`tenants` whose resellers may carry calls: each has a rate group from its parent."""
    # A reseller's customer calls only if every reseller up its chain has a rate for the
    # number (the cost chain): A and B get the admins' "Wholesale" (UK free), A1 gets its
    # parent's Plan A (UK free). Free rates: no funds needed at any level.
    wholesale = RateGroup(name="Wholesale", status=Status.ACTIVE, reseller_id=None)
    db.session.add(wholesale)
    db.session.commit()
    db.session.add(Rate(rate_group_id=wholesale.id, prefix="44", destination="UK"))
    for name in ("a", "b"):
        tenants[name].rate_group_id = wholesale.id
    tenants["a1"].rate_group_id = tenants["a_group"].id
    db.session.commit()
    tenants["wholesale_group"] = wholesale
    return tenants


# Captured before _no_redis_by_default removes REDIS_URL from the tests' environment.
TEST_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def _no_redis_by_default(monkeypatch):
    """Jobs queue in SQLite unless a test asks for Redis itself."""
    monkeypatch.delenv("REDIS_URL", raising=False)


@pytest.fixture
def redis_url():
    """The Redis server a test runs against; the test fails when it is not running."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {TEST_REDIS_URL}: {error}", pytrace=False)
    finally:
        client.close()
    return TEST_REDIS_URL


def make_sip_device(account: Account, username: str, password: str) -> SipDevice:
    """Insert a SIP device of `account`."""
    device = SipDevice(
        account_id=account.id,
        username=username,
        password=password,
        caller_id_name=account.first_name,
        caller_id_number=account.account_number,
    )
    db.session.add(device)
    db.session.commit()
    return device


@pytest.fixture
def customer_device(customer):
    """The customer's SIP device."""
    return make_sip_device(customer, customer.account_number, "OldSipSecret0001")


@pytest.fixture
def other_customer(app, default_rate_group):
    """A second customer of the admins, with a SIP device of its own."""
    account = make_account(
        Role.CUSTOMER,
        "1000000005",
        email="other@example.com",
        first_name="Other",
        rate_group_id=default_rate_group.id,
    )
    make_sip_device(account, account.account_number, "OtherSipSecret01")
    return account


@pytest.fixture
def as_customer(user, customer):
    """A client logged in as the customer."""
    response = user.login(customer.account_number)
    assert response.status_code in (302, 303), response.get_data(as_text=True)
    return user


@pytest.fixture
def postpaid_customer(app, default_rate_group, vat):
    """A postpaid customer of the admins: billed monthly on the 5th (UTC), VAT, credit 100."""
    account = make_account(
        Role.CUSTOMER,
        "1000000006",
        email="postpaid@example.com",
        first_name="Paula",
        rate_group_id=default_rate_group.id,
        account_type=AccountType.POSTPAID,
        credit_limit=Decimal(100),
        billing_schedule=BillingSchedule.MONTHLY,
        billing_day=5,
    )
    account.taxes.append(vat)
    db.session.commit()
    return account


class Inbox:
    """An SMTP handler keeping what it accepts; `refuse` gets a 550, `shut_down_at` a 421."""

    def __init__(self):
        self.envelopes = []
        self.refuse: set[str] = set()
        self.shut_down_at: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """Accept a recipient unless it is to be refused."""
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        if address in self.shut_down_at:
            return "421 4.3.2 Service shutting down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        """Keep the message."""
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list:
        """The accepted messages, parsed (recipients in `envelope_to`)."""
        parsed = []
        for envelope in list(self.envelopes):
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            message.envelope_to = list(envelope.rcpt_tos)
            parsed.append(message)
        return parsed


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HeldInbox(Inbox):
    """An SMTP handler that takes a message's text, then holds its answer until released."""

    def __init__(self):
        super().__init__()
        self.arrived = threading.Event()  # a message's text was received
        self.released = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        """Keep the text, answer nothing until released (a sender stuck mid-send), then 451."""
        self.envelopes.append(envelope)
        self.arrived.set()
        while not self.released.is_set():
            await asyncio.sleep(0.05)
        return "451 4.3.0 Try again later"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on loopback, the app's MAIL_SERVER; down until started."""

    def __init__(self, app=None, inbox: Inbox | None = None):
        self.port = free_port()
        self.inbox = inbox or Inbox()
        self.controller = None
        if app is not None:
            app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=self.port, MAIL_TIMEOUT=5)

    def start(self, **smtp_options) -> None:
        """Start listening on the port the app already points at (options: aiosmtpd's SMTP)."""
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **smtp_options
        )
        self.controller.start()

    def stop(self) -> None:
        """Stop listening (the port is closed again)."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_down(app):
    """The app's mail server address, with nothing listening there (connection refused)."""
    server = SmtpServer(app)
    yield server
    server.stop()


@pytest.fixture
def smtp_server(smtp_down):
    """A running SMTP server the app sends to; `.inbox` holds what arrived."""
    smtp_down.start()
    return smtp_down


@pytest.fixture
def smtp_holding():
    """A running SMTP server (not the app's) holding each message's answer until `released`."""
    server = SmtpServer(inbox=HeldInbox())
    server.start()
    yield server
    server.inbox.released.set()
    server.stop()


# --- Calls: the softswitch API (issue 6) ---


class Api:
    """The softswitch's side of the API: JSON with `Authorization: Bearer <key>`."""

    def __init__(self, client, key: str):
        self.client = client
        self.key = key

    def post(self, url: str, **kwargs):
        """POST with the bearer key (unless the caller sends its own Authorization header)."""
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return self.client.post(url, headers=headers, **kwargs)

    def authorize(self, explain: bool = False, **body):
        """POST /api/v1/calls/authorize with `body` as JSON."""
        url = "/api/v1/calls/authorize" + ("?explain=1" if explain else "")
        return self.post(url, json=body)

    def end(self, call_id: str, duration_seconds, hangup_cause: str = "NORMAL_CLEARING"):
        """POST /api/v1/calls/<call_id>/end."""
        body = {"duration_seconds": duration_seconds, "hangup_cause": hangup_cause}
        return self.post(f"/api/v1/calls/{call_id}/end", json=body)

    def directory(self, user: str, domain: str = "sip.example.com", **kwargs):
        """A mod_xml_curl directory lookup, as FreeSWITCH posts it (a form)."""
        form = {"section": "directory", "tag_name": "domain", "key_name": "name"}
        form.update(key_value=domain, user=user, domain=domain, action="sip_auth")
        return self.post("/api/v1/freeswitch/directory", data=form, **kwargs)


@pytest.fixture
def api_key(admin):
    """A new API key of the administrator: the secret, as the softswitch holds it."""
    from portal.apikeys.service import create_key

    _row, key = create_key(admin, "fs1", "")
    return key


@pytest.fixture
def api(client, api_key):
    """The softswitch API with the administrator's key."""
    return Api(client, api_key)


@pytest.fixture
def call_rates(app):
    """An active rate group "Calls": UK (44) per minute, London (4420) per 6 s after 30 s."""
    from portal.models import Rate

    group = RateGroup(name="Calls", status=Status.ACTIVE)
    db.session.add(group)
    db.session.commit()
    db.session.add_all(
        [
            Rate(
                rate_group_id=group.id,
                prefix="44",
                destination="UK",
                connect_cost=Decimal(0),
                cost_per_minute=Decimal("0.6"),
                initial_increment=60,
                increment=60,
            ),
            Rate(
                rate_group_id=group.id,
                prefix="4420",
                destination="UK London",
                connect_cost=Decimal("0.1"),
                cost_per_minute=Decimal("0.6"),
                initial_increment=30,
                increment=6,
            ),
        ]
    )
    db.session.commit()
    return group


def make_caller(number: str, group: RateGroup | None, funds: str = "0", **fields) -> Account:
    """A customer in `group` whose balance comes from a real payment of `funds` (a ledger entry)."""
    from portal.billing.service import add_payment

    account = make_account(
        Role.CUSTOMER, number, rate_group_id=group.id if group else None, **fields
    )
    if Decimal(funds) > 0:
        add_payment(None, account, funds)
    return account


class Rest:
    """A machine using the REST API with one API key."""

    def __init__(self, client, key: str):
        self.client = client
        self.key = key

    def call(self, method: str, url: str, headers: dict | None = None, **kwargs):
        """Any request with the bearer key; url is relative to /api/v1."""
        headers = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        return self.client.open("/api/v1" + url, method=method, headers=headers, **kwargs)

    def get(self, url: str, **kwargs):
        """GET."""
        return self.call("GET", url, **kwargs)

    def post(self, url: str, body=None, **kwargs):
        """POST a JSON body."""
        return self.call("POST", url, json=body, **kwargs)

    def patch(self, url: str, body=None, **kwargs):
        """PATCH a JSON body."""
        return self.call("PATCH", url, json=body, **kwargs)

    def delete(self, url: str, **kwargs):
        """DELETE."""
        return self.call("DELETE", url, **kwargs)


@pytest.fixture
def rest(client, api_key):
    """The REST API with the administrator's key."""
    return Rest(client, api_key)


@pytest.fixture
def reseller_rest(client, tenants):
    """The REST API with a key of reseller A (tenants fixture)."""
    from portal.apikeys.service import create_key

    _row, key = create_key(tenants["a"], "signup", "")
    return Rest(client, key)


# --- Browsers: one headless Debian Chromium per session (tests/browser and tests/e2e) ---

# Playwright never downloads a browser here: it drives the system Chromium at CHROMIUM.
# Without it the browser tests are skipped, or fail when PORTAL_REQUIRE_BROWSER=1 (CI).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000  # generous: CI shares two cores with the database servers


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The system Chromium; skip without it, or fail when PORTAL_REQUIRE_BROWSER=1."""
    if not Path(CHROMIUM).is_file():
        reason = f"Chromium not found at {CHROMIUM}; install it with apt-get install chromium"
        if os.environ.get("PORTAL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PORTAL_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium(chromium_executable):
    """One headless Chromium for the session (a fresh context per test keeps tests apart)."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def wait_for_htmx(page, selector: str) -> None:
    """Wait until htmx has wired up `selector` (after a boosted navigation swaps the page in)."""
    # Typing before htmx processed the new element would send no request at all.
    page.wait_for_function(
        "selector => document.querySelector(selector)?.['htmx-internal-data']?.initHash",
        arg=selector,
    )
