"""One chunk of a billing run: about 1,000 accounts read, taxed and invoiced set-based."""

import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from portal.billing.service import _tax_lines, reserve_numbers, settle, unapplied_payments
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
    Tax,
    account_taxes,
    available_funds,
    utcnow,
)
from portal.rules.currency import round_money
from portal.rules.money import MAX_MONEY
from portal.settings.service import get_setting
from portal.transactions import transaction

BILLED_KINDS = (EntryKind.CHARGE, EntryKind.USAGE, EntryKind.ADJUSTMENT)
ROUNDING_TEXT = "Rounding to the currency's minor unit"
RETRIES = 2
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


def _core(statement, rows: list[dict]):
    """Run a statement once per row on the session's connection (Core: no ORM bulk logic)."""
    return db.session.connection().execute(statement, rows)


class EntriesChanged(Exception):
    """Entries moved between reading and marking them: the chunk rolls back and runs again."""


def start_of_local_day(account, day: date) -> datetime:
    """Local midnight starting `day`, as naive UTC (the cut-off of what an invoice covers)."""
    zone = zoneinfo.ZoneInfo(account.timezone)
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


def _unbilled(drafts_by_cutoff: dict[datetime, list[int]]):
    """SQL condition: unbilled entries of these accounts made before each one's cut-off."""
    return and_(
        or_(
            *(
                and_(LedgerEntry.account_id.in_(ids), LedgerEntry.created_at < cutoff)
                for cutoff, ids in drafts_by_cutoff.items()
            )
        ),
        LedgerEntry.document_id.is_(None),
        LedgerEntry.kind.in_(BILLED_KINDS),
    )


def _by_cutoff(pairs) -> dict[datetime, list[int]]:
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
        .where(account_taxes.c.account_id.in_(account_ids))
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
        .where(Account.id.in_(wanted), Account.account_type == AccountType.POSTPAID)
        .order_by(Account.id)
    ).all()
    # Re-running a chunk (after a crash, or a second run the same day) bills nothing twice.
    invoiced = set(
        db.session.execute(
            select(Document.account_id, Document.billing_date).where(
                Document.account_id.in_(wanted),
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
    condition = _unbilled(_by_cutoff(cutoffs.items()))
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


def preview(due: list[tuple[int, date]]) -> ChunkResult:
    """What billing these accounts would invoice (count, totals per currency); writes nothing."""
    result = ChunkResult()
    result.count(drafts(due, result))
    db.session.rollback()
    return result


def bill(due: list[tuple[int, date]]) -> ChunkResult:
    """Invoice these (account id, billing date) pairs in one transaction."""
    for _ in range(RETRIES):
        try:
            return _bill_once(due)
        except (IntegrityError, EntriesChanged):
            # Another run billed some of these accounts meanwhile (its invoice took their
            # billing date first), or an entry came late: rolled back; read again, bill the rest.
            continue
    return _bill_once(due)


def _bill_once(due: list[tuple[int, date]]) -> ChunkResult:
    """One try at billing the chunk: all of it commits, or nothing."""
    result = ChunkResult()
    with transaction():
        made = drafts(due, result)
        if made:
            _write(made, result)
        result.count(made)
    return result


def _write(made: list[Draft], result: ChunkResult) -> None:
    """Bulk inserts and updates of the drafts; the issuers' numbers last, for a short lock."""
    now = utcnow()
    due_days = timedelta(days=current_app.config["INVOICE_DUE_DAYS"])
    # Numbered at the end (a number is -account id until then: unique, never committed), so
    # the issuer's counter row stays locked only for the last statements of the chunk.
    ids = _core(
        insert(Document).returning(Document.id, sort_by_parameter_order=True),
        [
            {
                "kind": DocumentKind.INVOICE,
                "issuer_key": draft.account.reseller_id or 0,
                "number": -draft.account.id,
                "account_id": draft.account.id,
                "issued_at": now,
                "billing_date": draft.billing_date,
                "due_date": draft.billing_date + due_days,
                "currency": draft.account.currency,
                "subtotal": draft.subtotal,
                "tax_total": draft.tax_total,
                "total": draft.total,
                "amount_paid": Decimal(0),
                "status": DocumentStatus.PAID if draft.total <= 0 else DocumentStatus.UNPAID,
            }
            for draft in made
        ],
    ).scalars()
    for draft, document_id in zip(made, ids, strict=True):
        draft.document_id = document_id
    _core(
        insert(DocumentLine),
        [
            {
                "document_id": draft.document_id,
                "position": position,
                "description": text[:200],
                "amount": amount,
                "is_tax": is_tax,
            }
            for draft in made
            for position, (text, amount, is_tax) in enumerate(draft.items + draft.taxes, 1)
        ],
    )
    _mark_entries(made)
    _post_effects(made, now)
    _apply_credit(made)
    _number(made)
    _queue_mail(made, now, result)


def _mark_entries(made: list[Draft]) -> None:
    """The invoiced entries get their invoice (one UPDATE); rounding and taxes are posted."""
    own_invoice = (
        select(Document.id)
        .where(
            Document.account_id == LedgerEntry.account_id,
            Document.kind == DocumentKind.INVOICE,
            Document.number < 0,  # only this transaction's invoices are still unnumbered
        )
        .scalar_subquery()
    )
    condition = _unbilled(_by_cutoff((draft.account.id, draft.cutoff) for draft in made))
    marked = db.session.execute(
        update(LedgerEntry)
        .where(condition)
        .values(document_id=own_invoice)
        .execution_options(synchronize_session=False)
    ).rowcount
    if marked != sum(draft.entry_count for draft in made):
        # A late commit of an entry before a cut-off: the totals would not match the ledger.
        raise EntriesChanged(f"{marked} entries marked, {sum(d.entry_count for d in made)} read")


def _post_effects(made: list[Draft], now: datetime) -> None:
    """Rounding and tax entries, and the balances they move (postpaid: owed goes up)."""
    entries = []
    for draft in made:
        if draft.rounding:
            entries.append((draft, EntryKind.ROUNDING, draft.rounding, ROUNDING_TEXT))
        for name, amount, _ in draft.taxes:
            entries.append((draft, EntryKind.TAX, amount, name))
    if entries:
        _core(
            insert(LedgerEntry),
            [
                {
                    "account_id": draft.account.id,
                    "kind": kind,
                    "amount": amount,
                    "currency": draft.account.currency,
                    "description": text[:200],
                    "created_at": now,
                    "document_id": draft.document_id,
                }
                for draft, kind, amount, text in entries
            ],
        )
    moved = [draft for draft in made if draft.balance_effect]
    if moved:
        _core(
            update(Account)
            .where(Account.id == bindparam("account"))
            .values(balance=Account.balance + bindparam("delta", type_=Account.balance.type))
            .execution_options(synchronize_session=False),
            [{"account": d.account.id, "delta": d.balance_effect} for d in moved],
        )


def _apply_credit(made: list[Draft]) -> None:
    """Advance payments settle the new invoices: found for the chunk in one query."""
    by_account = {draft.account.id: draft for draft in made}
    paid = dict(
        db.session.execute(
            select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
            .where(
                LedgerEntry.account_id.in_(by_account),
                LedgerEntry.kind == EntryKind.PAYMENT,
            )
            .group_by(LedgerEntry.account_id)
        ).all()
    )
    if not paid:
        return
    applied = dict(
        db.session.execute(
            select(Document.account_id, func.sum(Document.amount_paid))
            .where(Document.account_id.in_(paid), Document.kind == DocumentKind.INVOICE)
            .group_by(Document.account_id)
        ).all()
    )
    for account_id, payments in paid.items():
        if -Decimal(payments) - Decimal(applied.get(account_id) or 0) <= 0:
            continue
        # The few accounts with credit go through the payment code itself.
        account = db.session.get(Account, account_id)
        invoice = db.session.get(Document, by_account[account_id].document_id)
        credit = unapplied_payments(account)
        if credit > 0:
            settle(invoice, credit)
        if invoice.total <= 0:
            invoice.status = DocumentStatus.PAID
        by_account[account_id].amount_paid = invoice.amount_paid
    db.session.flush()


def _number(made: list[Draft]) -> None:
    """Reserve each issuer's block of numbers (issuers in order: no deadlock) and apply it."""
    by_issuer: dict[int, list[Draft]] = defaultdict(list)
    for draft in made:
        by_issuer[draft.account.reseller_id or 0].append(draft)
    for issuer in sorted(by_issuer):
        block = by_issuer[issuer]
        first = reserve_numbers(issuer, DocumentKind.INVOICE, len(block))
        for offset, draft in enumerate(block):
            draft.number = first + offset
    _core(
        update(Document)
        .where(Document.id == bindparam("document"))
        .values(number=bindparam("new_number"))
        .execution_options(synchronize_session=False),
        [{"document": d.document_id, "new_number": d.number} for d in made],
    )


@dataclass
class _MailDocument:
    """What the invoice mail template reads of a document."""

    draft: Draft

    def __getattr__(self, name):
        return getattr(self.draft, name)

    @property
    def display_number(self) -> str:
        """INV-000042."""
        return f"INV-{self.draft.number:06d}"

    @property
    def currency(self) -> str:
        """The account's currency."""
        return self.draft.account.currency

    @property
    def due_date(self) -> date:
        """The billing date plus the payment term."""
        return self.draft.billing_date + timedelta(days=current_app.config["INVOICE_DUE_DAYS"])

    @property
    def lines(self) -> list:
        """Items, then taxes."""
        return [
            SimpleNamespace(description=text[:200], amount=amount)
            for text, amount, _ in self.draft.items + self.draft.taxes
        ]

    @property
    def balance_due(self) -> Decimal:
        """What is still to pay."""
        return self.draft.total - self.draft.amount_paid


def _render(template, **context) -> tuple[str, str]:
    """Subject and body of a mail template, split as mail.queue splits them."""
    subject, _, body = template.render(**context).partition("\n")
    return subject.removeprefix("Subject:").strip()[:200], body.lstrip("\n")


def _signers(made: list[Draft]) -> dict[int, str]:
    """Who signs each reseller's customers' mail, and the portal company (key 0)."""
    resellers = {draft.account.reseller_id for draft in made} - {None}
    names = {0: get_setting("company_name")}
    if resellers:
        for row in db.session.execute(
            select(
                Account.id,
                Account.company,
                Account.first_name,
                Account.last_name,
                Account.account_number,
            ).where(Account.id.in_(resellers))
        ):
            names[row.id] = row.company or display_name(row)
    return names


def _queue_mail(made: list[Draft], now: datetime, result: ChunkResult) -> None:
    """The invoice mails (rendered here, cheaply) and any low balance alerts, in bulk."""
    environment = current_app.jinja_env
    invoice_template = environment.get_template("mail/invoice.txt")
    signers = _signers(made)
    messages = []
    for draft in made:
        account = draft.account
        if not account.email:
            continue
        mail_account = SimpleNamespace(
            name=display_name(account), account_number=account.account_number
        )
        subject, body = _render(
            invoice_template,
            account=mail_account,
            document=_MailDocument(draft),
            company_name=signers[account.reseller_id or 0],
        )
        messages.append(("invoice", account.email, subject, body, account.id))
    messages.extend(_low_balance(made, signers, environment.get_template("mail/low_balance.txt")))
    if messages:
        result.mail_ids.extend(
            _core(
                insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True),
                [
                    {
                        "kind": kind,
                        "recipient": recipient,
                        "subject": subject,
                        "body": body,
                        "account_id": account_id,
                        "created_at": now,
                    }
                    for kind, recipient, subject, body, account_id in messages
                ],
            ).scalars()
        )


def _low_balance(made: list[Draft], signers: dict[int, str], template) -> list[tuple]:
    """One alert when the invoice's taxes bring the funds to the alert level (as after a post)."""
    rows = db.session.execute(
        select(
            Account.id,
            Account.account_number,
            Account.first_name,
            Account.last_name,
            Account.company,
            Account.email,
            Account.currency,
            Account.reseller_id,
            Account.balance,
            Account.credit_limit,
            Account.low_balance_alert,
            Account.email_alerts,
            Account.low_balance_alerted,
        ).where(Account.id.in_([draft.account.id for draft in made]))
    ).all()
    changes, messages = [], []
    for row in rows:
        available = available_funds(AccountType.POSTPAID, row.balance, row.credit_limit)
        if available > row.low_balance_alert:
            if row.low_balance_alerted:
                changes.append({"account": row.id, "alerted": False})
        elif row.email_alerts and row.email and not row.low_balance_alerted:
            changes.append({"account": row.id, "alerted": True})
            account = SimpleNamespace(
                name=display_name(row),
                account_number=row.account_number,
                currency=row.currency,
                low_balance_alert=row.low_balance_alert,
            )
            subject, body = _render(
                template,
                account=account,
                available=available,
                company_name=signers.get(row.reseller_id or 0) or signers[0],
            )
            messages.append(("low_balance", row.email, subject, body, row.id))
    if changes:
        _core(
            update(Account)
            .where(Account.id == bindparam("account"))
            .values(low_balance_alerted=bindparam("alerted"))
            .execution_options(synchronize_session=False),
            changes,
        )
    return messages
