"""The billing run's subscription charges: each running subscription once per period, in batches.

A batch of about 1,000 subscriptions is read in three queries and written in three statements
(charges, ledger entries, balances) in one transaction; UNIQUE(subscription, period start)
makes a second run, or a second app server, charge nothing twice.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.bulkrows import among, insert_rows, update_rows
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    EntryKind,
    LedgerEntry,
    Product,
    ProductPeriod,
    Subscription,
    SubscriptionCharge,
    Tax,
    account_taxes,
)
from portal.rules.currency import minor_units, round_money
from portal.rules.money import MAX_MONEY
from portal.rules.subscriptions import due_periods, period_charge
from portal.rules.tax import tax_lines
from portal.rules.times import named_zone
from portal.transactions import transaction

BATCH = 1000
RETRIES = 2


@dataclass
class ChargeResult:
    """What one batch charged: periods charged, and the subscriptions that failed."""

    charged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def running_batches(batch_size: int = BATCH) -> list[list[int]]:
    """The ids of the subscriptions not cancelled, in batches by id."""
    ids = list(
        db.session.scalars(
            select(Subscription.id)
            .where(Subscription.cancelled_at.is_(None))
            .order_by(Subscription.id)
        )
    )
    db.session.rollback()  # no read transaction left open while the batches write
    return [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]


def charge_text(product_name: str, period: ProductPeriod, first: date, last: date | None) -> str:
    """A charge's ledger description: the product and the period it pays for."""
    if last is None:
        return f"{product_name} (one-time)"
    if first == last:
        return f"{product_name}, {first.isoformat()}"
    return f"{product_name}, {first.isoformat()} to {last.isoformat()}"


def local_today(timezone: str, now_utc: datetime) -> date:
    """The calendar date in `timezone` at `now_utc` (naive UTC)."""
    return now_utc.replace(tzinfo=UTC).astimezone(named_zone(timezone)).date()


def charge(ids: list[int], now_utc: datetime, day: date | None = None) -> ChargeResult:
    """Charge the due periods of these subscriptions (retried after a lost race)."""
    for _ in range(RETRIES):
        try:
            return _charge_once(ids, now_utc, day)
        except IntegrityError:
            # Another run charged some of these periods meanwhile: read again, charge the rest.
            continue
    return _charge_once(ids, now_utc, day)


def _taxes_of(account_ids: list[int]) -> dict[int, list]:
    """Each account's taxes, read once for the batch."""
    taxes: dict[int, list] = defaultdict(list)
    if not account_ids:
        return taxes
    rows = db.session.execute(
        select(account_taxes.c.account_id, Tax.name, Tax.rate, Tax.fixed_amount, Tax.priority)
        .join(Tax, Tax.id == account_taxes.c.tax_id)
        .where(among(account_taxes.c.account_id, account_ids))
    )
    for row in rows:
        taxes[row.account_id].append(row)
    return taxes


def tax_line_name(line) -> str:
    """A tax line as a prepaid charge's receipt and statement name it."""
    return f"{line.name} ({line.rate.normalize():f}% + {line.fixed_amount.normalize():f})"


def _charge_once(ids: list[int], now_utc: datetime, day: date | None) -> ChargeResult:
    """One try at the batch: all of it commits, or nothing."""
    result = ChargeResult()
    with transaction():
        rows = db.session.execute(
            select(
                Subscription.id,
                Subscription.account_id,
                Subscription.start_date,
                Subscription.end_date,
                Product.name,
                Product.period,
                Product.price,
                Product.setup_fee,
                Account.account_number,
                Account.timezone,
                Account.account_type,
                Account.currency,
                Account.balance,
            )
            .join(Product, Product.id == Subscription.product_id)
            .join(Account, Account.id == Subscription.account_id)
            .where(
                among(Subscription.id, ids),
                Subscription.cancelled_at.is_(None),
                Account.deleted_at.is_(None),
            )
            .order_by(Subscription.id)
        ).all()
        charged = SubscriptionCharge.subscription_id
        last_charged = dict(
            db.session.execute(
                select(charged, func.max(SubscriptionCharge.period_start))
                .where(among(charged, ids))
                .group_by(charged)
            ).all()
        )
        prepaid = [r.account_id for r in rows if r.account_type == AccountType.PREPAID]
        taxes = _taxes_of(sorted(set(prepaid)))
        # Dated at the run's time: the charge goes on the document after the one this run makes.
        now = now_utc
        charges, entries = [], []
        moved: dict[int, Decimal] = defaultdict(Decimal)
        for row in rows:
            try:
                today = day or local_today(row.timezone, now_utc)
                periods = due_periods(
                    row.period, row.start_date, row.end_date, today, last_charged.get(row.id)
                )
                made = _charges_of(row, periods, row.id not in last_charged, taxes, now)
            except Exception as error:  # one broken subscription must not stop the others
                result.failed.append((row.account_number, f"{type(error).__name__}: {error}"))
                continue
            delta = sum((entry["amount"] for entry in made[1]), Decimal(0))
            if abs(row.balance + moved[row.account_id] + delta) > MAX_MONEY:
                result.failed.append(
                    (row.account_number, "The balance would pass the largest amount stored.")
                )
                continue
            charges.extend(made[0])
            entries.extend(made[1])
            moved[row.account_id] += delta
        connection = db.session.connection()
        insert_rows(connection, SubscriptionCharge.__table__, charges)
        insert_rows(connection, LedgerEntry.__table__, entries)
        update_rows(
            connection,
            Account.__table__,
            "id",
            [{"id": account_id, "balance": delta} for account_id, delta in moved.items() if delta],
            added=frozenset({"balance"}),
        )
        result.charged = len(charges)
    return result


def _charges_of(row, periods, first_ever: bool, taxes, now) -> tuple[list, list]:
    """The charge rows and ledger entries of one subscription's due periods."""
    charges, entries = [], []
    currency = row.currency
    prepaid = row.account_type == AccountType.PREPAID
    # Postpaid: what is owed goes up; prepaid: the funds go down.
    sign = -1 if prepaid else 1
    for index, (first, last) in enumerate(periods):
        amount = period_charge(row.price, row.period, first, currency)
        setup = round_money(row.setup_fee, currency) if first_ever and index == 0 else Decimal(0)
        charges.append(
            {
                "subscription_id": row.id,
                "period_start": first,
                "period_end": last,
                "amount": amount,
                "setup_fee": setup,
                "created_at": now,
            }
        )
        text = charge_text(row.name, row.period, first, last)
        lines = [(text, amount), (f"{row.name}: setup fee", setup)]
        for description, value in lines:
            if not value:
                continue
            entries.append(_entry(row, EntryKind.SUBSCRIPTION, sign * value, description, now))
            if prepaid:
                # Debited at once with its taxes, as a prepaid charge is; the periodic
                # statement lists them (the subscription line and its tax lines).
                places = minor_units(currency)
                for tax in tax_lines(value, taxes[row.account_id], places).lines:
                    if tax.amount:
                        name = tax_line_name(tax)
                        text = f"{name}: {description}"
                        entry = _entry(row, EntryKind.TAX, -tax.amount, text, now)
                        entry["tax_line"] = name[:120]
                        entries.append(entry)
    return charges, entries


def _entry(row, kind: EntryKind, amount: Decimal, description: str, now) -> dict:
    """One ledger entry row of the batch."""
    return {
        "account_id": row.account_id,
        "kind": kind,
        "amount": amount,
        "currency": row.currency,
        "description": description[:200],
        "created_at": now,
        "tax_line": None,
    }
