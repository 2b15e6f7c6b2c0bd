"""A billing chunk's reading side: the due accounts' unbilled sums and taxes, as drafts.

A postpaid account's draft is an invoice; a prepaid account's is its periodic statement (a
receipt): the calls and their taxes, already debited at each hang-up, and the account's fixed
taxes, which apply once per document.
"""

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

BILLED_KINDS = (
    EntryKind.CHARGE,
    EntryKind.USAGE,
    EntryKind.ADJUSTMENT,
    EntryKind.SUBSCRIPTION,
)
# What a prepaid statement lists: calls, subscriptions, credits and their taxes (one-off
# charges and payments have receipts).
STATEMENT_KINDS = (EntryKind.USAGE, EntryKind.TAX, EntryKind.SUBSCRIPTION, EntryKind.ADJUSTMENT)
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
    Account.account_type,
)


def documented_kinds(account_type: AccountType) -> tuple[EntryKind, ...]:
    """The entry kinds a billing run documents for an account of `account_type`."""
    return STATEMENT_KINDS if account_type == AccountType.PREPAID else BILLED_KINDS


def document_kind(account_type: AccountType) -> DocumentKind:
    """An invoice for a postpaid account, a statement receipt for a prepaid one."""
    return DocumentKind.RECEIPT if account_type == AccountType.PREPAID else DocumentKind.INVOICE


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
    """An invoice or a prepaid statement computed in Python, not yet written."""

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
    kind: DocumentKind = DocumentKind.INVOICE
    # The tax lines posted with the document: an invoice's all; a statement's fixed ones
    # (its call taxes were posted at each hang-up).
    new_taxes: list[tuple[str, Decimal, bool]] | None = None

    @property
    def posted_taxes(self) -> list[tuple[str, Decimal, bool]]:
        """The tax lines that become TAX entries when the document is written."""
        return self.taxes if self.new_taxes is None else self.new_taxes

    @property
    def sign(self) -> int:
        """How a debit moves the balance: postpaid owed goes up, prepaid funds go down."""
        return -1 if self.kind == DocumentKind.RECEIPT else 1

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
        """How the document moves the balance beyond its entries: rounding and posted taxes."""
        posted = sum((amount for _, amount, _ in self.posted_taxes), Decimal(0))
        return self.sign * (self.rounding + posted)


@dataclass
class ChunkResult:
    """What one chunk did (or, in a dry run, would do)."""

    examined: int = 0
    invoiced: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    mail_ids: list[int] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)  # of the invoices
    statements: int = 0  # prepaid statements (receipts)

    def count(self, drafts: list[Draft]) -> None:
        """Add the drafts to the invoice or statement count, invoices to the totals."""
        for draft in drafts:
            if draft.kind == DocumentKind.RECEIPT:
                self.statements += 1
                continue
            self.invoiced += 1
            currency = draft.account.currency
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + draft.total


def unbilled(drafts_by_cutoff: dict[datetime, list[int]], kinds=BILLED_KINDS):
    """SQL condition: unbilled entries of these kinds and accounts made before their cut-off."""
    return and_(
        or_(
            *(
                and_(among(LedgerEntry.account_id, ids), LedgerEntry.created_at < cutoff)
                for cutoff, ids in drafts_by_cutoff.items()
            )
        ),
        LedgerEntry.document_id.is_(None),
        LedgerEntry.kind.in_(kinds),
    )


def undocumented(pairs, types: dict[int, AccountType]):
    """SQL condition: what the documents of these (account id, cut-off) pairs list."""
    by_type: dict[AccountType, list] = defaultdict(list)
    for account_id, cutoff in pairs:
        by_type[types[account_id]].append((account_id, cutoff))
    return or_(
        *(
            unbilled(by_cutoff(found), documented_kinds(account_type))
            for account_type, found in sorted(by_type.items())
        )
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


def fixed_tax_line(tax) -> str:
    """A tax's fixed amount as a line of a prepaid statement."""
    return f"{tax.name} (fixed {tax.fixed_amount.normalize():f})"


def _statement(account, billing_date, cutoff, sums, call_taxes, taxes, items=()) -> Draft:
    """One prepaid account's statement: subscriptions and credits, calls in one line, taxes."""
    currency = account.currency
    calls = sums.get(EntryKind.USAGE)
    # Prepaid debits are negative entries; a document shows them as positive amounts.
    lines = [(text, round_money(-amount, currency), False) for text, amount in items]
    if calls:
        lines.append((f"Calls ({calls[0]})", round_money(-calls[1], currency), False))
    charged = -sum((amount for kind, (_, amount) in sums.items() if kind != EntryKind.TAX), 0)
    # Calls debited before amounts were rounded when posted: one Rounding entry evens it out.
    rounding = sum((amount for _, amount, _ in lines), Decimal(0)) - charged
    tax = [(line, round_money(-amount, currency), True) for line, amount in call_taxes]
    fixed = sorted((t for t in taxes if t.fixed_amount), key=lambda t: (t.priority, t.name))
    new = [(fixed_tax_line(t), round_money(t.fixed_amount, currency), True) for t in fixed]
    draft = Draft(
        account=account,
        billing_date=billing_date,
        cutoff=cutoff,
        items=lines,
        taxes=tax + new,
        rounding=rounding,
        entry_count=sum(count for count, _ in sums.values()),
        kind=DocumentKind.RECEIPT,
        new_taxes=new,
    )
    if abs(account.balance + draft.balance_effect) > MAX_MONEY:
        raise ValueError("The balance would pass the largest amount stored.")
    return draft


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
    """The documents of these (account id, billing date) pairs, read in a few queries, by id."""
    wanted = dict(due)
    result.examined += len(wanted)
    accounts = db.session.execute(
        select(*ACCOUNT_COLUMNS).where(among(Account.id, wanted)).order_by(Account.id)
    ).all()
    # Re-running a chunk (after a crash, or a second run the same day) bills nothing twice:
    # one invoice, or one statement, per account and billing date (a UNIQUE constraint).
    documented = set(
        db.session.execute(
            select(Document.account_id, Document.kind, Document.billing_date).where(
                among(Document.account_id, wanted),
                Document.billing_date.in_(set(wanted.values())),
            )
        ).all()
    )
    types = {account.id: account.account_type for account in accounts}
    cutoffs = {}
    for account in accounts:
        billing_date = wanted[account.id]
        if (account.id, document_kind(account.account_type), billing_date) in documented:
            continue
        try:
            cutoffs[account.id] = start_of_local_day(account, billing_date)
        except Exception as error:  # one broken account must not stop everyone's billing
            result.failed.append((account.account_number, f"{type(error).__name__}: {error}"))
    if not cutoffs:
        return []
    condition = undocumented(cutoffs.items(), types)
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
    postpaid = {i: c for i, c in cutoffs.items() if types[i] == AccountType.POSTPAID}
    prepaid = {i: c for i, c in cutoffs.items() if types[i] == AccountType.PREPAID}
    items = _items(postpaid)
    items.update(_items(prepaid, STATEMENT_KINDS, (EntryKind.USAGE, EntryKind.TAX)))
    call_taxes = _call_taxes(prepaid)
    taxes = _taxes_of(list(sums))
    made = []
    for account in accounts:
        if account.id not in sums:
            continue
        arguments = (account, wanted[account.id], cutoffs[account.id], sums[account.id])
        try:
            if account.account_type == AccountType.PREPAID:
                made.append(
                    _statement(
                        *arguments, call_taxes[account.id], taxes[account.id], items[account.id]
                    )
                )
            else:
                made.append(_draft(*arguments, items[account.id], taxes[account.id]))
        except Exception as error:
            result.failed.append((account.account_number, f"{type(error).__name__}: {error}"))
    return made


def _items(
    cutoffs: dict[int, datetime], kinds=BILLED_KINDS, summed=(EntryKind.USAGE,)
) -> dict[int, list]:
    """A document's lines of its own: each charge, subscription and credit, oldest first."""
    items: dict[int, list] = defaultdict(list)
    if not cutoffs:
        return items
    for row in db.session.execute(
        select(
            LedgerEntry.account_id, LedgerEntry.kind, LedgerEntry.description, LedgerEntry.amount
        )
        .where(unbilled(by_cutoff(cutoffs.items()), kinds), LedgerEntry.kind.not_in(summed))
        .order_by(LedgerEntry.account_id, LedgerEntry.id)
    ):
        items[row.account_id].append((row.description or row.kind.label, row.amount))
    return items


def _call_taxes(cutoffs: dict[int, datetime]) -> dict[int, list]:
    """The call taxes of prepaid accounts, summed per tax line (in the order first posted)."""
    taxes: dict[int, list] = defaultdict(list)
    if not cutoffs:
        return taxes
    line = func.coalesce(LedgerEntry.tax_line, LedgerEntry.description)
    for row in db.session.execute(
        select(LedgerEntry.account_id, line, func.sum(LedgerEntry.amount))
        .where(
            unbilled(by_cutoff(cutoffs.items()), STATEMENT_KINDS),
            LedgerEntry.kind == EntryKind.TAX,
        )
        .group_by(LedgerEntry.account_id, line)
        .order_by(LedgerEntry.account_id, func.min(LedgerEntry.id))
    ):
        taxes[row[0]].append((row[1], Decimal(row[2])))
    return taxes
