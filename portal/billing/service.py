"""Money operations: ledger postings, payments and charges, receipts, numbering, low balance."""

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal import audit, mail
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentSequence,
    DocumentStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
)
from portal.rules.currency import minor_units, parse_money, quantum, round_money
from portal.rules.money import MAX_MONEY
from portal.rules.tax import tax_lines
from portal.transactions import ValidationFailed, transaction

# Kinds that raise what a customer owes (postpaid) or lower its funds (prepaid).
DEBITS = (EntryKind.CHARGE, EntryKind.USAGE, EntryKind.TAX)


@dataclass
class Posted:
    """What a money operation did: its ledger entries, its document, the mail it queued."""

    entries: list[LedgerEntry] = field(default_factory=list)
    document: Document | None = None
    mail: list[OutboxMessage] = field(default_factory=list)


def clean_amount(value, currency: str, field_name: str = "amount") -> Decimal:
    """A positive amount within the precision of `currency`, or ValidationFailed on `field_name`."""
    amount, error = parse_money(value, currency)
    if error is None and amount == 0:
        error = "Must be more than 0."
    if error:
        raise ValidationFailed({field_name: error})
    return amount


def effect(account: Account, kind: EntryKind, amount: Decimal) -> Decimal:
    """The signed change of `account.balance` for an entry of `kind` and positive `amount`."""
    # Prepaid balance = funds (payments add); postpaid balance = amount owed (payments subtract).
    # An adjustment is a credit in the customer's favour when positive, like a payment.
    credit = kind in (EntryKind.PAYMENT, EntryKind.ADJUSTMENT)
    prepaid = account.account_type == AccountType.PREPAID
    return amount if credit == prepaid else -amount


def _check_range(balance: Decimal) -> None:
    """Refuse a posting that would take the balance past what a money column holds."""
    # Checked before the UPDATE (PostgreSQL would fail on NUMERIC overflow) and after it, on
    # the locked row (a concurrent posting may have moved the balance meanwhile).
    if abs(balance) > MAX_MONEY:
        raise ValidationFailed({"amount": "The balance would pass the largest amount stored."})


def post(account: Account, kind: EntryKind, amount: Decimal, description: str, author=None):
    """Add a ledger entry and move the balance atomically (inside the caller's transaction)."""
    return post_delta(account, kind, effect(account, kind, amount), description, author)


def post_delta(account: Account, kind: EntryKind, delta: Decimal, description: str, author=None):
    """Add a ledger entry moving the balance by the signed `delta` (in the caller's transaction)."""
    _check_range(account.balance + delta)
    # One UPDATE ... SET balance = balance + delta: it locks the row until commit, so concurrent
    # postings queue up instead of overwriting each other's read-modify-write.
    db.session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(balance=Account.balance + delta)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(account)  # the row is ours now: read its fresh balance and flags
    _check_range(account.balance)
    entry = LedgerEntry(
        account_id=account.id,
        kind=kind,
        amount=delta,
        currency=account.currency,
        description=description[:200],
        author_id=author.id if author else None,
    )
    db.session.add(entry)
    return entry


def issuer_key(account: Account) -> int:
    """Whose numbering a document of `account` uses: its reseller's, or the admins' (0)."""
    return account.reseller_id or 0


def next_number(issuer: int, kind: DocumentKind) -> int:
    """Take the next document number (the row stays locked until commit: no gaps, no repeats)."""
    return reserve_numbers(issuer, kind, 1)


def reserve_numbers(issuer: int, kind: DocumentKind, count: int) -> int:
    """Take `count` numbers in a row, return the first (locked until commit; rollback frees)."""
    taken = db.session.execute(
        update(DocumentSequence)
        .where(DocumentSequence.issuer_key == issuer, DocumentSequence.kind == kind)
        .values(next_number=DocumentSequence.next_number + count)
        .returning(DocumentSequence.next_number)
        .execution_options(synchronize_session=False)
    ).scalar()
    if taken is not None:
        return taken - count
    first = DocumentSequence(issuer_key=issuer, kind=kind, next_number=1 + count)
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.add(first)  # SQLite writers are serialised: no one can insert meanwhile
        db.session.flush()
        return 1
    try:
        with db.session.begin_nested():
            db.session.add(first)
        return 1
    except IntegrityError:  # another transaction created the sequence first: take from it
        return reserve_numbers(issuer, kind, count)


def issue(
    kind: DocumentKind,
    account: Account,
    lines: list[tuple[str, Decimal, bool]],
    *,
    status: DocumentStatus,
    amount_paid: Decimal = Decimal(0),
    billing_date=None,
    due_date=None,
) -> Document:
    """Create a numbered document with its (description, amount, is_tax) lines."""
    # Every line at the currency's minor unit, half-up; the totals are sums of printed lines.
    lines = [(d, round_money(a, account.currency), t) for d, a, t in lines]
    subtotal = sum((amount for _, amount, is_tax in lines if not is_tax), Decimal(0))
    tax_total = sum((amount for _, amount, is_tax in lines if is_tax), Decimal(0))
    issuer = issuer_key(account)
    document = Document(
        kind=kind,
        issuer_key=issuer,
        number=next_number(issuer, kind),
        account_id=account.id,
        currency=account.currency,
        subtotal=subtotal,
        tax_total=tax_total,
        total=subtotal + tax_total,
        amount_paid=amount_paid,
        status=status,
        billing_date=billing_date,
        due_date=due_date,
        lines=[
            DocumentLine(position=i, description=d[:200], amount=a, is_tax=t)
            for i, (d, a, t) in enumerate(lines, start=1)
        ],
    )
    db.session.add(document)
    db.session.flush()
    return document


def _tax_lines(account: Account, amount: Decimal) -> list[tuple[str, Decimal, bool]]:
    """The account's taxes on `amount`, each rounded half-up once at its currency's minor unit."""
    places = minor_units(account.currency)
    return [
        (
            f"{line.name} ({line.rate.normalize():f}% + {line.fixed_amount.normalize():f})",
            line.amount,
            True,
        )
        for line in tax_lines(amount, account.taxes, places).lines
        if line.amount
    ]


def check_low_balance(account: Account, posted: Posted) -> None:
    """One mail when available funds reach the alert amount; re-armed once they rise above it."""
    available = account.available_funds
    if available > account.low_balance_alert:
        account.low_balance_alerted = False
    elif account.email_alerts and account.email and not account.low_balance_alerted:
        account.low_balance_alerted = True
        posted.mail.append(
            mail.queue("low_balance", account.email, "low_balance", account, available=available)
        )


def _open_invoices(account: Account) -> list[Document]:
    """Unpaid and partly paid invoices, oldest first."""
    return list(
        db.session.scalars(
            select(Document)
            .where(
                Document.account_id == account.id,
                Document.kind == DocumentKind.INVOICE,
                Document.status != DocumentStatus.PAID,
            )
            .order_by(Document.id)
        )
    )


def settle(document: Document, amount: Decimal) -> Decimal:
    """Apply up to `amount` to a document; return what is left."""
    # Never below 0: a credit invoice (total <= 0) takes nothing and must not turn paid negative.
    applied = max(min(amount, document.balance_due), Decimal(0))
    document.amount_paid += applied
    # Below one minor unit nothing can be paid: only invoices issued before totals were
    # rounded (13.5 JPY) leave such a rest, and it was written off (migration 9a1b2c3d4e5f).
    if document.balance_due < quantum(document.currency):
        document.status = DocumentStatus.PAID
    elif document.amount_paid > 0:
        document.status = DocumentStatus.PARTIAL
    else:
        document.status = DocumentStatus.UNPAID
    return amount - applied


def unapplied_payments(account: Account) -> Decimal:
    """Payments of a postpaid account not yet applied to any invoice."""
    paid = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.PAYMENT
        )
    )
    applied = db.session.scalar(
        select(func.coalesce(func.sum(Document.amount_paid), 0)).where(
            Document.account_id == account.id, Document.kind == DocumentKind.INVOICE
        )
    )
    return -Decimal(paid) - Decimal(applied)  # postpaid payments are negative entries


def add_payment(actor, account: Account, value, description: str = "") -> Posted:
    """Record a payment or refill: a receipt (prepaid) or settle open invoices (postpaid)."""
    amount = clean_amount(value, account.currency)
    posted = Posted()
    with transaction():
        text = (description or "").strip() or "Payment"  # None when the field was not posted
        posted.entries.append(post(account, EntryKind.PAYMENT, amount, text, actor))
        if account.account_type == AccountType.PREPAID:
            posted.document = issue(
                DocumentKind.RECEIPT,
                account,
                [(text, amount, False)],
                status=DocumentStatus.PAID,
                amount_paid=amount,
            )
            posted.entries[0].document_id = posted.document.id
        else:
            left = amount
            for invoice in _open_invoices(account):
                if left <= 0:
                    break
                left = settle(invoice, left)
        _after_posting(actor, account, posted, "payment", amount)
    return posted


def add_charge(actor, account: Account, value, description: str = "") -> Posted:
    """Record a one-off charge: taxed on a receipt at once (prepaid), else on the next invoice."""
    amount = clean_amount(value, account.currency)
    posted = Posted()
    with transaction():
        text = (description or "").strip() or "Charge"
        charge = post(account, EntryKind.CHARGE, amount, text, actor)
        posted.entries.append(charge)
        if account.account_type == AccountType.PREPAID:
            taxes = _tax_lines(account, amount)
            for name, tax, _ in taxes:
                posted.entries.append(post(account, EntryKind.TAX, tax, name, actor))
            posted.document = issue(
                DocumentKind.RECEIPT,
                account,
                [(text, amount, False), *taxes],
                status=DocumentStatus.PAID,
                amount_paid=amount + sum((t for _, t, _ in taxes), Decimal(0)),
            )
            for entry in posted.entries:
                entry.document_id = posted.document.id
        _after_posting(actor, account, posted, "charge", amount)
    return posted


def _after_posting(actor, account: Account, posted: Posted, what: str, amount: Decimal) -> None:
    """Mail the receipt, check the low balance alert, and audit the posting."""
    if posted.document is not None and account.email:
        posted.mail.append(
            mail.queue("receipt", account.email, "receipt", account, document=posted.document)
        )
    check_low_balance(account, posted)
    audit.record(
        actor,
        "update",
        account.role.value,
        account,
        label=account.account_number,
        account=account,
        changes={what: [None, f"{amount:f} {account.currency}"]},
    )
