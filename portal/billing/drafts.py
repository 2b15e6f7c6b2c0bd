"""A billing chunk's reading side: the due accounts' unbilled sums and taxes, as invoice drafts."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import and_, func, or_, select

from portal.billing.service import _tax_lines
from portal.bulkrows import among
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Document,
    DocumentKind,
    EntryKind,
    LedgerEntry,
    Tax,
    account_taxes,
)
from portal.rules.currency import round_money
from portal.rules.money import MAX_MONEY
from portal.rules.times import named_zone

BILLED_KINDS = (EntryKind.CHARGE, EntryKind.USAGE, EntryKind.ADJUSTMENT)
ROUNDING_TEXT = "Rounding to the currency's minor unit"
# What a chunk reads of each account: enough to invoice it, mail it and sign the mail.
ACCOUNT_COLUMNS = (
    Account.id,
    Account.account_number,
    Account.reseller_id,
    Account.currency,
    Account.timezone,
    Account.email,
    Account.first_name,
    Account.last_name,
    Account.company,
    Account.balance,
)


class EntriesChanged(Exception):
    """Entries moved between reading and marking them: the chunk rolls back and runs again."""


def start_of_local_day(account, day: date) -> datetime:
    """Local midnight starting `day`, as naive UTC (the cut-off of what an invoice covers)."""
    zone = named_zone(account.timezone)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def display_name(row) -> str:
    """First and last name, or the company, or the number (as Account.name)."""
    full = f"{row.first_name} {row.last_name}".strip()
    return full or row.company or row.account_number


@dataclass
class Draft:
    """An invoice computed in Python, not yet written."""

    account: object  # a row of ACCOUNT_COLUMNS
    billing_date: date
    cutoff: datetime
    items: list[tuple[str, Decimal, bool]]
    taxes: list[tuple[str, Decimal, bool]]
    rounding: Decimal
    entry_count: int
    document_id: int = 0
    number: int = 0
    amount_paid: Decimal = Decimal(0)

    @property
    def subtotal(self) -> Decimal:
        """The sum of the (rounded) item lines."""
        return sum((amount for _, amount, _ in self.items), Decimal(0))

    @property
    def tax_total(self) -> Decimal:
        """The sum of the tax lines."""
        return sum((amount for _, amount, _ in self.taxes), Decimal(0))

    @property
    def total(self) -> Decimal:
        """Items and taxes."""
        return self.subtotal + self.tax_total

    @property
    def balance_effect(self) -> Decimal:
        """How much the invoice adds to what is owed beyond its entries: rounding and taxes."""
        return self.rounding + self.tax_total


@dataclass
class ChunkResult:
    """What one chunk did (or, in a dry run, would do)."""

    examined: int = 0
    invoiced: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    mail_ids: list[int] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)

    def count(self, drafts: list[Draft]) -> None:
        """Add the drafts to the invoice count and the totals per currency."""
        self.invoiced += len(drafts)
        for draft in drafts:
            currency = draft.account.currency
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + draft.total


def unbilled(drafts_by_cutoff: dict[datetime, list[int]]):
    """SQL condition: unbilled entries of these accounts made before each one's cut-off."""
    return and_(
        or_(
            *(
                and_(among(LedgerEntry.account_id, ids), LedgerEntry.created_at < cutoff)
                for cutoff, ids in drafts_by_cutoff.items()
            )
        ),
        LedgerEntry.document_id.is_(None),
        LedgerEntry.kind.in_(BILLED_KINDS),
    )


def by_cutoff(pairs) -> dict[datetime, list[int]]:
    """Account ids grouped by their cut-off (few groups: accounts share zones and dates)."""
    groups: dict[datetime, list[int]] = defaultdict(list)
    for account_id, cutoff in pairs:
        groups[cutoff].append(account_id)
    return groups


def _taxes_of(account_ids: list[int]) -> dict[int, list]:
    """Each account's taxes, read once for the chunk."""
    rows = db.session.execute(
        select(account_taxes.c.account_id, Tax.name, Tax.rate, Tax.fixed_amount, Tax.priority)
        .join(Tax, Tax.id == account_taxes.c.tax_id)
        .where(among(account_taxes.c.account_id, account_ids))
    )
    taxes: dict[int, list] = defaultdict(list)
    for row in rows:
        taxes[row.account_id].append(row)
    return taxes


def _draft(account, billing_date, cutoff, sums, items, taxes) -> Draft:
    """One account's invoice: a line per charge or adjustment, calls in one line, then taxes."""
    currency = account.currency
    lines = [(text, round_money(amount, currency), False) for text, amount in items]
    calls = sums.get(EntryKind.USAGE)
    if calls:
        lines.append((f"Calls ({calls[0]})", round_money(calls[1], currency), False))
    subtotal = sum((amount for _, amount, _ in lines), Decimal(0))
    # Entries posted before amounts were rounded when posted can be finer than the minor
    # unit: one Rounding entry makes the ledger movement equal the rounded lines.
    rounding = subtotal - sum((amount for _, amount in sums.values()), Decimal(0))
    view = SimpleNamespace(currency=currency, taxes=taxes)
    tax = _tax_lines(view, subtotal) if subtotal > 0 else []
    draft = Draft(
        account=account,
        billing_date=billing_date,
        cutoff=cutoff,
        items=lines,
        taxes=tax,
        rounding=rounding,
        entry_count=sum(count for count, _ in sums.values()),
    )
    if abs(account.balance + draft.balance_effect) > MAX_MONEY:
        raise ValueError("The balance would pass the largest amount stored.")
    return draft


def drafts(due: list[tuple[int, date]], result: ChunkResult) -> list[Draft]:
    """The invoices of these (account id, billing date) pairs, read in a few queries, by id."""
    wanted = dict(due)
    result.examined += len(wanted)
    accounts = db.session.execute(
        select(*ACCOUNT_COLUMNS)
        .where(among(Account.id, wanted), Account.account_type == AccountType.POSTPAID)
        .order_by(Account.id)
    ).all()
    # Re-running a chunk (after a crash, or a second run the same day) bills nothing twice.
    invoiced = set(
        db.session.execute(
            select(Document.account_id, Document.billing_date).where(
                among(Document.account_id, wanted),
                Document.kind == DocumentKind.INVOICE,
                Document.billing_date.in_(set(wanted.values())),
            )
        ).all()
    )
    cutoffs = {}
    for account in accounts:
        billing_date = wanted[account.id]
        if (account.id, billing_date) in invoiced:
            continue
        try:
            cutoffs[account.id] = start_of_local_day(account, billing_date)
        except Exception as error:  # one broken account must not stop everyone's billing
            result.failed.append((account.account_number, f"{type(error).__name__}: {error}"))
    if not cutoffs:
        return []
    condition = unbilled(by_cutoff(cutoffs.items()))
    sums: dict[int, dict] = defaultdict(dict)
    for row in db.session.execute(
        select(
            LedgerEntry.account_id,
            LedgerEntry.kind,
            func.count(),
            func.sum(LedgerEntry.amount),
        )
        .where(condition)
        .group_by(LedgerEntry.account_id, LedgerEntry.kind)
    ):
        sums[row[0]][row[1]] = (row[2], Decimal(row[3]))
    items: dict[int, list] = defaultdict(list)
    for row in db.session.execute(
        select(
            LedgerEntry.account_id, LedgerEntry.kind, LedgerEntry.description, LedgerEntry.amount
        )
        .where(condition, LedgerEntry.kind != EntryKind.USAGE)
        .order_by(LedgerEntry.account_id, LedgerEntry.id)
    ):
        items[row.account_id].append((row.description or row.kind.label, row.amount))
    taxes = _taxes_of(list(sums))
    made = []
    for account in accounts:
        if account.id not in sums:
            continue
        try:
            made.append(
                _draft(
                    account,
                    wanted[account.id],
                    cutoffs[account.id],
                    sums[account.id],
                    items[account.id],
                    taxes[account.id],
                )
            )
        except Exception as error:
            result.failed.append((account.account_number, f"{type(error).__name__}: {error}"))
    return made
