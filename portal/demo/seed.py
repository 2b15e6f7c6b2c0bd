"""`flask demo seed`: 60 days of a believable VoIP business, made through the portal's services."""

import csv
import heapq
import io
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from flask import current_app
from sqlalchemy import event, exists, select

from portal.access.service import add_trunk, block_group_prefix
from portal.accounts.bulk import import_accounts
from portal.accounts.service import create_account, create_admin
from portal.background import records
from portal.billing.profile import save_invoice_profile
from portal.billing.run import run_billing
from portal.billing.service import add_payment
from portal.calls.engine import authorize_call
from portal.calls.service import end_call
from portal.demo import data
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Call,
    CallStatus,
    Document,
    DocumentKind,
    RateGroup,
    Role,
    Tax,
)
from portal.products.service import create_product
from portal.products.subscriptions import subscribe
from portal.rules.currency import round_money
from portal.rules.rating import RateRow
from portal.settings.service import get_setting
from portal.tariffs.service import create_rate_group, import_rates
from portal.taxes.service import create_tax
from portal.transactions import ValidationFailed

SEED = 20261202
DAYS = 60
# US dollars are worth this much of each currency (rates are never converted at call time:
# each rate group is priced in its own currency from these).
EXCHANGE = {
    "USD": Decimal(1),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "AUD": Decimal("1.52"),
}
KNOWN_PBX = "203.0.113.10/32"  # the demo customer's office PBX (a documentation address)
HANGUPS = [("NO_ANSWER", 15), ("USER_BUSY", 7), ("CALL_REJECTED", 3)]
# Hours of a local day calls start in, by weight: office hours, a lunch dip, a quiet night.
HOURS = [1, 1, 1, 1, 1, 2, 4, 10, 18, 22, 22, 18, 12, 16, 20, 20, 18, 14, 10, 8, 6, 4, 3, 2]


class DemoRefused(Exception):
    """The database already holds accounts: the demo fills only an empty one."""


@dataclass(frozen=True)
class Login:
    """A login the seed prints: who, and how."""

    role: str
    identifier: str
    password: str
    name: str


LOGINS = {
    "admin": Login("admin", "admin@demo.example.com", "Demo-admin-2026", "Bluewave Telecom"),
    "reseller": Login("reseller", "reseller@demo.example.com", "Demo-reseller-2026", ""),
    "subreseller": Login("sub-reseller", "partner@demo.example.com", "Demo-partner-2026", ""),
    "customer": Login("customer", "customer@demo.example.com", "Demo-customer-2026", ""),
}


@dataclass
class Caller:
    """A customer as the simulation sees it: how often it calls, where, and how it pays."""

    account_id: int
    number: str
    currency: str
    prepaid: bool
    calls_per_day: float
    dial_prefix: str  # "00" when its translation rule strips it, else ""
    sip_username: str | None
    habit: str  # "good", "late" or "never": how it pays invoices, how it tops up
    topup: Decimal
    trunk: str | None = None  # the address of its office's IP trunk


@dataclass
class Summary:
    """What the seed made, for the command's output."""

    accounts: int = 0
    calls: int = 0
    refused: int = 0
    payments: int = 0
    subscriptions: int = 0
    billing_runs: int = 0
    logins: list[Login] = field(default_factory=list)


def seed(now: datetime | None = None, echo: Callable[[str], None] = lambda _text: None) -> Summary:
    """Fill an empty database with the demo business, up to `now` (naive UTC); DemoRefused."""
    if db.session.scalar(select(exists().where(Account.id.is_not(None)))):
        raise DemoRefused(
            "This database already has accounts: the demo fills only an empty one. "
            "Delete instance/demo.sqlite3 (make demo-reset) to start again."
        )
    now = now or datetime.now(UTC).replace(tzinfo=None)
    # Mail waits in the outbox (the demo's consumer has no server to send it to).
    current_app.config["MAIL_SEND_AT_ONCE"] = False
    started = time.perf_counter()
    business = Business(random.Random(SEED), now)
    first = business.first_day
    with _unsynced_commits():
        with time_machine.travel(first - timedelta(hours=12), tick=False):
            business.found()
        echo(
            f"Set up {business.summary.accounts} accounts in {time.perf_counter() - started:.0f} s;"
            f" simulating {DAYS} days of calls."
        )
        business.simulate()
    return business.summary


@contextmanager
def _unsynced_commits():
    """On SQLite, commits that do not wait for the disk while the seed runs."""
    # The seed commits some 20,000 times; waiting for the disk each time would be most of its
    # minute. A seed cut short by a crash is simply run again on a new file (make demo-reset).
    engine = db.engine
    if engine.dialect.name != "sqlite":
        yield
        return

    def unsynced(dbapi_connection, _record, _proxy):
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    event.listen(engine, "checkout", unsynced)
    try:
        yield
    finally:
        event.remove(engine, "checkout", unsynced)
        db.session.remove()
        engine.dispose()  # the next connection syncs again, as the app's own


def logins() -> list[Login]:
    """The demo's logins whose accounts are in this database, with their names."""
    found = db.session.execute(
        select(Account.email, Account.company).where(
            Account.email.in_([login.identifier for login in LOGINS.values()])
        )
    ).all()
    names = dict(found)
    return [
        Login(login.role, login.identifier, login.password, login.name or names[login.identifier])
        for login in LOGINS.values()
        if login.identifier in names
    ]


class Business:
    """The operator, its resellers and customers, and the days they live through."""

    def __init__(self, rng: random.Random, now: datetime):
        self.rng = rng
        self.now = now
        self.first_day = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0)
        self.first_day = self.first_day.replace(microsecond=0)
        self.summary = Summary()
        self.callers: list[Caller] = []
        self.prefixes: dict[str, list[tuple[str, str]]] = {}  # currency -> (prefix, country code)
        self.events: list = []
        self.sequence = 0
        self.number_length = get_setting("account_number_length")
        self.numbers: set[str] = set()
        self.payers: dict[int, Caller] = {}

    # --- The company, its tariffs, resellers and customers --------------------------------

    def found(self) -> None:
        """The operator's company, taxes, rate groups, resellers and customers."""
        login = LOGINS["admin"]
        self.admin = create_admin(email=login.identifier, password=login.password)
        save_invoice_profile(
            self.admin,
            {
                "company_name": "Bluewave Telecom Ltd",
                "address": "12 Harbour Street\nBristol BS1 4QA\nUnited Kingdom",
                "tax_number": "GB 123 4567 89",
                "email": "billing@bluewave.example.com",
            },
        )
        self.summary.logins.append(login)
        taxes = {
            "GBP": [self._tax(self.admin, "VAT", "20")],
            "EUR": [self._tax(self.admin, "VAT (DE)", "19")],
            "AUD": [self._tax(self.admin, "GST", "10")],
            "USD": [self._tax(self.admin, "Regulatory recovery fee", "3.5", "0.99", 2)],
        }
        wholesale, retail = {}, {}
        for currency in EXCHANGE:
            wholesale[currency] = self._group(self.admin, f"Wholesale {currency}", currency, 1)
            retail[currency] = self._group(self.admin, f"Standard {currency}", currency, "1.8")
        business = self._group(self.admin, "Business USD (per second)", "USD", "1.5", 1)
        for (
            group
        ) in retail.values():  # retail customers reach premium and satellite numbers only by asking
            for prefix, _name, _cost in data.SPECIAL:
                block_group_prefix(self.admin, group, prefix)
        for currency in EXCHANGE:
            self.prefixes[currency] = [
                (rate.prefix, code)
                for rate, code in self._rates(currency, 1, 60)
                if not rate.destination.endswith(("Premium", "Iridium", "Inmarsat"))
            ]

        northwind = self._reseller(
            self.admin, LOGINS["reseller"], "Northwind Telecom", "USD", wholesale["USD"], "Nia"
        )
        partner_group = self._group(northwind, "Partner wholesale", "USD", "1.15")
        harbor = self._reseller(
            northwind, LOGINS["subreseller"], "Harbor Voice", "USD", partner_group, "Hank"
        )
        rheinland = self._reseller(
            self.admin, None, "Rheinland Connect", "EUR", wholesale["EUR"], "Greta"
        )
        thames = self._reseller(self.admin, None, "Thames Telecom", "GBP", wholesale["GBP"], "Tom")

        self.products: dict[tuple, list] = {}
        for owner, name, currency, price, setup, minutes, prefixes in (
            (self.admin, "Business line", "USD", "15", "25", 300, "1"),
            (self.admin, "Number rental (DID)", "USD", "3", "0", 0, ""),
            (self.admin, "Europe 200", "EUR", "9.90", "0", 200, "49\n33\n34\n39"),
            (self.admin, "UK landlines 500", "GBP", "8", "10", 500, "441\n442\n443"),
            (self.admin, "Australia 300", "AUD", "12", "0", 300, "61"),
            (northwind, "Northwind Office", "USD", "20", "30", 500, "1"),
            (rheinland, "Rufnummer (DID)", "EUR", "1.90", "0", 0, ""),
            (thames, "Thames 250", "GBP", "6", "0", 250, "44"),
        ):
            product = create_product(
                owner,
                {
                    "name": name,
                    "description": f"{minutes} free minutes a month" if minutes else "",
                    "currency": currency,
                    "period": "monthly",
                    "price": price,
                    "setup_fee": setup,
                    "free_minutes": minutes,
                    "prefixes": prefixes,
                    "status": "active",
                },
            )
            self.products.setdefault((owner.id, currency), []).append(product)
        known = self._known_customer(business, taxes["USD"])
        self.summary.accounts += 1
        self._customers(self.admin, "USD", 40, [retail["USD"], business], taxes["USD"])
        self._customers(self.admin, "EUR", 30, [retail["EUR"]], taxes["EUR"])
        self._customers(self.admin, "GBP", 25, [retail["GBP"]], taxes["GBP"])
        self._customers(self.admin, "AUD", 20, [retail["AUD"]], taxes["AUD"])
        for reseller, count, tax_rate in (
            (northwind, 30, None),
            (harbor, 15, None),
            (rheinland, 22, "19"),
            (thames, 18, "20"),
        ):
            currency = reseller.currency
            own_taxes = [self._tax(reseller, "VAT", tax_rate)] if tax_rate else []
            group = self._group(reseller, f"{reseller.company} retail", currency, "1.4")
            self._customers(reseller, currency, count, [group], own_taxes)
        self.callers.insert(0, known)
        for caller in self.callers:
            if caller.prepaid:
                self._pay(caller, caller.topup * 2, "Opening top-up")

    def _tax(self, owner, name, rate, fixed="0", priority=1) -> Tax:
        """A tax of `owner`'s."""
        return create_tax(
            owner,
            {
                "name": name,
                "rate": rate,
                "fixed_amount": fixed,
                "priority": priority,
                "status": "active",
            },
        )

    def _rates(self, currency: str, markup, increment: int):
        """(rate, country code) of every destination, priced in `currency` with `markup`."""
        factor = EXCHANGE[currency] * Decimal(markup)
        places = Decimal("0.0001")
        seen = set()
        for code, country, cost, areas, mobiles in data.DESTINATIONS:
            base = Decimal(cost) * factor
            entries = [("", country, base)]
            entries += [(area, f"{country} - {name}", base) for area, name in areas]
            entries += [(mobile, f"{country} - Mobile", base * 3) for mobile in mobiles]
            for suffix, name, price in entries:
                if code + suffix in seen:
                    continue  # an area code that is also a mobile range: the first one names it
                seen.add(code + suffix)
                yield (
                    RateRow(
                        code + suffix,
                        name,
                        Decimal(0),
                        price.quantize(places),
                        increment,
                        increment,
                    ),
                    code,
                )
        for prefix, name, cost in data.SPECIAL:
            price = (Decimal(cost) * factor).quantize(places)
            yield RateRow(prefix, name, price / 10, price, 60, 60), prefix

    def _group(self, owner, name: str, currency: str, markup, increment: int = 60) -> RateGroup:
        """A rate group of `owner`'s with every destination, priced at `markup`."""
        group = create_rate_group(owner, {"name": name, "currency": currency, "status": "active"})
        rows = [rate for rate, _code in self._rates(currency, markup, increment)]
        import_rates(owner, group, rows, replace=True)
        return group

    def _number(self) -> str:
        """A fresh account number, drawn from the demo's own random numbers."""
        while True:
            number = str(self.rng.randint(1, 9)) + "".join(
                str(self.rng.randint(0, 9)) for _ in range(self.number_length - 1)
            )
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def _reseller(self, actor, login, company, currency, group, first_name) -> Account:
        """A postpaid reseller rated at `group`, billed monthly."""
        password = login.password if login else "Demo-" + self._number()
        email = login.identifier if login else f"billing@{company.split()[0].lower()}.example.com"
        created = create_account(
            actor,
            Role.RESELLER,
            {
                "account_number": self._number(),
                "password": password,
                "first_name": first_name,
                "last_name": "Operations",
                "company": company,
                "email": email,
                "country": {"USD": "US", "EUR": "DE", "GBP": "GB"}[currency],
                "timezone": {"USD": "America/New_York", "EUR": "Europe/Berlin"}.get(
                    currency, "Europe/London"
                ),
                "status": "active",
                "max_channels": 0,
                "valid_days": 3650,
                "rate_group_id": group.id,
                "billing_schedule": "monthly",
                "billing_day": 1,
                "currency": currency,
                "account_type": "postpaid",
                "credit_limit": "20000",
                "low_balance_alert": "0",
            },
        )
        self.summary.accounts += 1
        reseller = created.account
        if login:
            self.summary.logins.append(Login(login.role, login.identifier, password, company))
        save_invoice_profile(
            reseller,
            {
                "company_name": company,
                "address": f"{self.rng.randint(2, 180)} Market Street",
                "tax_number": "",
                "email": email,
            },
        )
        # Resellers pay their invoices: they are the operator's good customers.
        self.payers[reseller.id] = Caller(
            reseller.id, reseller.account_number, currency, False, 0, "", None, "good", Decimal(0)
        )
        return reseller

    def _known_customer(self, group: RateGroup, taxes: list[Tax]) -> Caller:
        """The customer whose login the seed prints: a busy postpaid business line."""
        login = LOGINS["customer"]
        created = create_account(
            self.admin,
            Role.CUSTOMER,
            {
                "account_number": self._number(),
                "password": login.password,
                "pin": "".join(str(self.rng.randint(0, 9)) for _ in range(6)),
                "first_name": "Carmen",
                "last_name": "Diaz",
                "company": "Diaz Dental Group",
                "email": login.identifier,
                "country": "US",
                "timezone": "America/New_York",
                "status": "active",
                "max_channels": 4,
                "number_translation": "00/",
                "valid_days": 3650,
                "create_sip_device": True,
                "rate_group_id": group.id,
                "tax_ids": [tax.id for tax in taxes],
                "billing_schedule": "monthly",
                "billing_day": 1,
                "currency": "USD",
                "account_type": "postpaid",
                "credit_limit": "500",
                "low_balance_alert": "0",
            },
        )
        account = created.account
        subscribe(self.admin, account, {"product_id": self.products[(self.admin.id, "USD")][0].id})
        add_trunk(self.admin, account, {"network": KNOWN_PBX, "tech_prefix": ""})
        self.summary.logins.append(
            Login(login.role, login.identifier, login.password, "Diaz Dental Group")
        )
        caller = Caller(
            account.id,
            account.account_number,
            "USD",
            False,
            6,
            "00",
            account.account_number,
            "good",
            Decimal(0),
            KNOWN_PBX.removesuffix("/32"),
        )
        self.payers[account.id] = caller
        return caller

    def _customers(self, owner, currency: str, count: int, groups, taxes) -> None:
        """`count` customers of `owner`, imported as a CSV the way an operator would."""
        rng = self.rng
        places = data.PLACES[currency]
        rows = []
        for index in range(count):
            first, last = rng.choice(data.FIRST_NAMES), rng.choice(data.LAST_NAMES)
            business = rng.random() < 0.45
            company = f"{rng.choice(data.COMPANY_WORDS)} {rng.choice(data.COMPANY_KINDS)}"
            timezone, country = rng.choice(places)
            prepaid = rng.random() < 0.6
            number = self._number()
            row = {
                "account_number": number,
                "first_name": first,
                "last_name": last,
                "company": company if business else "",
                "country": country,
                "timezone": timezone,
                "status": "inactive" if rng.random() < 0.03 else "active",
                "max_channels": rng.choice([0, 2, 4, 10]) if business else 2,
                "number_translation": "00/" if rng.random() < 0.3 else "",
                # A few trial accounts ran out: their calls are refused after 20 days.
                "valid_days": 20 if rng.random() < 0.04 else 3650,
                "create_sip_device": "yes" if rng.random() < 0.5 else "no",
                "rate_group_id": rng.choice(groups).id,
                "billing_schedule": "daily" if rng.random() < 0.1 else "monthly",
                "billing_day": rng.choice([1, 1, 1, 5, 10, 15, 20, 25, 28]),
                "currency": currency,
                "account_type": "prepaid" if prepaid else "postpaid",
                "credit_limit": "" if prepaid else str(rng.choice([50, 100, 250, 500])),
                "tax_ids": " ".join(str(tax.id) for tax in taxes if business or prepaid),
                "low_balance_alert": "5" if prepaid else "0",
                "email_alerts": "yes" if prepaid and rng.random() < 0.4 else "no",
                "email": f"{first}.{last}.{index}@{currency.lower()}.example.com".lower()
                .replace("'", "")
                .replace("ü", "u"),
            }
            if owner.role == Role.RESELLER:
                row["reseller_id"] = ""
            rows.append(row)
        columns = list(rows[0])
        text = io.StringIO()
        writer = csv.DictWriter(text, columns)
        writer.writeheader()
        writer.writerows(rows)
        result = import_accounts(owner, text.getvalue())
        self.summary.accounts += len(result.account_ids)
        for account_id, row, credential in zip(
            result.account_ids, rows, result.credentials, strict=True
        ):
            prepaid = row["account_type"] == "prepaid"
            habit = rng.choices(["good", "late", "never"], [70, 20, 10])[0]
            caller = Caller(
                account_id,
                row["account_number"],
                currency,
                prepaid,
                rng.choices([0, 0.15, 0.4, 1.0], [20, 35, 30, 15])[0],
                "00" if row["number_translation"] else "",
                credential.sip_username,
                habit,
                Decimal(rng.choice([10, 20, 25, 50])) * EXCHANGE[currency].to_integral_value(),
            )
            self.callers.append(caller)
            self.payers[account_id] = caller
            offered = self.products.get((owner.id, currency))
            if offered and rng.random() < 0.35:
                account = db.session.get(Account, account_id)
                subscribe(owner, account, {"product_id": rng.choice(offered).id})
                self.summary.subscriptions += 1

    # --- The days: calls, top-ups, billing runs and the payments of invoices ---------------

    def _at(self, moment: datetime, kind: str, *payload) -> None:
        """Plan an event."""
        self.sequence += 1
        heapq.heappush(self.events, (moment, self.sequence, kind, payload))

    def simulate(self) -> None:
        """Live through the days in time order, up to `now`."""
        rng = self.rng
        for day in range(DAYS):
            midnight = self.first_day + timedelta(days=day)
            weekend = midnight.weekday() >= 5
            for caller in self.callers:
                expected = caller.calls_per_day * (0.35 if weekend else 1)
                calls = int(expected) + (rng.random() < expected - int(expected))
                for _ in range(calls):
                    start = midnight + timedelta(
                        hours=rng.choices(range(24), HOURS)[0], seconds=rng.randint(0, 3599)
                    )
                    self._at(start, "call", caller)
            self._at(midnight + timedelta(hours=9), "topups")
            self._at(midnight + timedelta(hours=26), "billing")
        while self.events:
            moment, _sequence, kind, payload = heapq.heappop(self.events)
            if moment >= self.now:
                continue  # the future stays empty: no call ends after the demo starts
            with time_machine.travel(moment.replace(tzinfo=UTC), tick=False):
                getattr(self, f"_on_{kind}")(*payload)

    def _destination(self, caller: Caller) -> str:
        """A number the caller dials, mostly to the countries its customers call."""
        rng = self.rng
        habits = data.CALLING_HABITS[caller.currency]
        prefixes = self.prefixes[caller.currency]
        if rng.random() < 0.85:
            code = rng.choices([code for code, _w in habits], [w for _c, w in habits])[0]
            choices = [prefix for prefix, country in prefixes if country == code]
        else:
            choices = [prefix for prefix, _country in prefixes]
        prefix = rng.choice(choices)
        digits = "".join(str(rng.randint(0, 9)) for _ in range(max(4, 11 - len(prefix))))
        return caller.dial_prefix + prefix + digits

    def _on_call(self, caller: Caller) -> None:
        """A call attempt: authorized, and when allowed, ended after its duration."""
        rng = self.rng
        self.sequence += 1
        call_id = f"demo-{self.sequence:07d}"
        # How the softswitch names the caller: its SIP device, its office's IP trunk, or its number.
        how = rng.random()
        if caller.trunk and how < 0.5:
            identity = {"source_ip": caller.trunk}
        elif caller.sip_username is not None and how < 0.8:
            identity = {"sip_username": caller.sip_username}
        else:
            identity = {"account_number": caller.number}
        destination = self._destination(caller)
        if rng.random() < 0.005:  # now and then a premium number: refused where it is blocked
            destination = (
                caller.dial_prefix + "4490" + "".join(str(rng.randint(0, 9)) for _ in range(6))
            )
        decision = authorize_call(self.admin, call_id, destination, **identity)
        self.summary.calls += 1
        if not decision.allowed:
            self.summary.refused += 1
            return
        if rng.random() < 0.25:
            cause = rng.choices([c for c, _w in HANGUPS], [w for _c, w in HANGUPS])[0]
            seconds = 0
        else:
            cause = "NORMAL_CLEARING"
            seconds = min(int(rng.lognormvariate(4.7, 0.9)) + 3, 5400)
        end = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=max(seconds, 20))
        self._at(end, "hangup", call_id, seconds, cause)

    def _on_hangup(self, call_id: str, seconds: int, cause: str) -> None:
        """The softswitch reports the end of a call: it is rated and billed."""
        call = db.session.scalar(select(Call).where(Call.call_id == call_id))
        if call is not None and call.status == CallStatus.LIVE:
            end_call(call, seconds, cause)

    def _on_topups(self) -> None:
        """Prepaid customers low on funds top up, unless they have let the account lapse."""
        funds = dict(
            db.session.execute(
                select(Account.id, Account.balance).where(
                    Account.role == Role.CUSTOMER, Account.account_type == AccountType.PREPAID
                )
            ).all()
        )
        db.session.rollback()
        for caller in self.callers:
            low = caller.prepaid and funds[caller.account_id] < caller.topup / 4
            if low and caller.habit != "never" and self.rng.random() < 0.6:
                self._pay(caller, caller.topup, "Card top-up")

    def _on_billing(self) -> None:
        """The nightly billing run, its job in the history, and when each invoice gets paid."""
        started = datetime.now(UTC).replace(tzinfo=None)
        report = run_billing()
        self.summary.billing_runs += 1
        if report.invoiced or report.statements:
            records.record_finished("billing_run", "Nightly billing run", report.summary(), started)
        invoices = db.session.scalars(
            select(Document).where(
                Document.kind == DocumentKind.INVOICE, Document.issued_at >= started
            )
        ).all()
        for invoice in invoices:
            payer = self.payers.get(invoice.account_id)
            if payer is None or payer.habit == "never" or invoice.total <= 0:
                continue
            delay = self.rng.randint(2, 9) if payer.habit == "good" else self.rng.randint(18, 40)
            self._at(started + timedelta(days=delay, hours=5), "invoice_paid", invoice.id)
        db.session.rollback()

    def _on_invoice_paid(self, invoice_id: int) -> None:
        """A customer pays an invoice in full, or, now and then, most of it."""
        invoice = db.session.get(Document, invoice_id)
        payer = self.payers[invoice.account_id]
        amount = invoice.total
        if self.rng.random() < 0.1:
            amount = round_money(amount * Decimal("0.5"), payer.currency)
        if amount > 0:
            self._pay(payer, amount, f"Bank transfer, invoice {invoice.number}")

    def _pay(self, caller: Caller, amount: Decimal, text: str) -> None:
        """A payment through the same service as the account page's form."""
        account = db.session.get(Account, caller.account_id)
        try:
            add_payment(self.admin, account, f"{amount:f}", text)
        except ValidationFailed:
            db.session.rollback()
            return
        self.summary.payments += 1
