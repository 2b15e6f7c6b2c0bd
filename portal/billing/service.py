"""Money operations: ledger postings, payments and their allocations, receipts, low balance."""

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit, mail
from portal.bulkrows import among
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Allocation,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentSequence,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
)
from portal.rules.allocation import pair_oldest_first
from portal.rules.currency import minor_units, parse_money, quantum, round_money
from portal.rules.money import MAX_MONEY
from portal.rules.tax import tax_lines
from portal.transactions import ValidationFailed, transaction

# Kinds that raise what a customer owes (postpaid) or lower its funds (prepaid).
DEBITS = (EntryKind.CHARGE, EntryKind.USAGE, EntryKind.TAX, EntryKind.SUBSCRIPTION)


@dataclass
class Posted:
    """What a money operation did: entries, document, allocations to invoices, mail queued."""

    entries: list[LedgerEntry] = field(default_factory=list)
    document: Document | None = None
    allocations: list[Allocation] = field(default_factory=list)
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
    sequence = (DocumentSequence.issuer_key == issuer, DocumentSequence.kind == kind)
    advance = (
        update(DocumentSequence)
        .where(*sequence)
        .values(next_number=DocumentSequence.next_number + count)
        .execution_options(synchronize_session=False)
    )
    if db.session.get_bind().dialect.update_returning:
        taken = db.session.execute(advance.returning(DocumentSequence.next_number)).scalar()
        if taken is not None:
            return taken - count
    else:
        # No UPDATE ... RETURNING (MariaDB): the row is locked by reading it, then moved on.
        first_free = db.session.scalar(
            select(DocumentSequence.next_number).where(*sequence).with_for_update()
        )
        if first_free is not None:
            db.session.execute(advance)
            return first_free
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
    billing_date=None,
    due_date=None,
) -> Document:
    """Create a numbered document with its (description, amount, is_tax) lines (a receipt: paid)."""
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


def _lock(account_id: int) -> None:
    """Hold the account's row until commit: its allocations are made one transaction at a time."""
    # A payment takes it with its balance UPDATE already; the billing run locks it first too.
    # Without it two transactions could both read the same rest of a payment and spend it twice.
    db.session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


def _unallocated(account_id: int) -> list[tuple[int, Decimal]]:
    """(entry id, rest) of the account's payments not fully allocated, oldest first."""
    used = (
        select(func.coalesce(func.sum(Allocation.amount), 0))
        .where(Allocation.payment_entry_id == LedgerEntry.id)
        .scalar_subquery()
    )
    rest = -LedgerEntry.amount - used  # postpaid payments are negative entries
    return list(
        db.session.execute(
            select(LedgerEntry.id, rest)
            .where(
                LedgerEntry.account_id == account_id,
                LedgerEntry.kind == EntryKind.PAYMENT,
                rest > 0,
            )
            .order_by(LedgerEntry.id)
        ).all()
    )


def _open_invoices(account: Account) -> list[tuple[int, Decimal]]:
    """(invoice id, amount due) of the account's invoices not paid yet, oldest first."""
    due = Document.total - Document.allocated
    return list(
        db.session.execute(
            select(Document.id, due)
            .where(
                Document.account_id == account.id,
                Document.kind == DocumentKind.INVOICE,
                # Less than one minor unit cannot be paid: such a rest counts as paid.
                due >= quantum(account.currency),
            )
            .order_by(Document.id)
        ).all()
    )


def _allocate(pairs: list[tuple[int, int, Decimal]]) -> list[Allocation]:
    """Write the (payment entry, invoice, amount) allocations, in the caller's transaction."""
    allocations = [
        Allocation(payment_entry_id=entry, document_id=invoice, amount=amount)
        for entry, invoice, amount in pairs
    ]
    db.session.add_all(allocations)
    db.session.flush()
    # An invoice already loaded reads its paid amount and allocations again when next used.
    for invoice_id in {allocation.document_id for allocation in allocations}:
        invoice = db.session.identity_map.get(Session.identity_key(Document, invoice_id))
        if invoice is not None:
            db.session.expire(invoice, ["allocated", "allocations"])
    return allocations


def allocate_payments(account: Account) -> list[Allocation]:
    """Allocate the account's unallocated payments to its open invoices, both oldest first."""
    _lock(account.id)
    return _allocate(pair_oldest_first(_unallocated(account.id), _open_invoices(account)))


def settle(document: Document, amount: Decimal) -> Decimal:
    """Allocate up to `amount` of the account's credit to invoice `document`; return the rest."""
    # The billing run calls it for a new invoice with the account's credit (unapplied_payments):
    # older invoices cannot be open while there is credit, every payment went to them first.
    _lock(document.account_id)
    due = document.total - db.session.scalar(
        select(func.coalesce(func.sum(Allocation.amount), 0)).where(
            Allocation.document_id == document.id
        )
    )
    # Never below 0: a credit invoice (total <= 0) takes nothing.
    wanted = max(min(amount, due), Decimal(0))
    if wanted < quantum(document.currency):
        return amount
    pairs = pair_oldest_first(_unallocated(document.account_id), [(document.id, wanted)])
    _allocate(pairs)
    return amount - sum((applied for _, _, applied in pairs), Decimal(0))


def unapplied_payments(account: Account) -> Decimal:
    """Payments of a postpaid account not yet allocated to any invoice (its credit)."""
    return credits([account.id]).get(account.id, Decimal(0))


def credits(account_ids: list[int]) -> dict[int, Decimal]:
    """The credit (payments not yet allocated) of those of these accounts that have some."""
    # Two grouped queries for a whole chunk of the billing run, which then settles only these.
    paid = dict(
        db.session.execute(
            select(LedgerEntry.account_id, func.sum(-LedgerEntry.amount))
            .where(
                among(LedgerEntry.account_id, account_ids), LedgerEntry.kind == EntryKind.PAYMENT
            )
            .group_by(LedgerEntry.account_id)
        ).all()
    )
    if not paid:
        return {}
    allocated = dict(
        db.session.execute(
            select(LedgerEntry.account_id, func.sum(Allocation.amount))
            .join(Allocation, Allocation.payment_entry_id == LedgerEntry.id)
            .where(among(LedgerEntry.account_id, paid))
            .group_by(LedgerEntry.account_id)
        ).all()
    )
    left = {account: amount - allocated.get(account, 0) for account, amount in paid.items()}
    return {account: amount for account, amount in left.items() if amount > 0}


def add_payment(actor, account: Account, value, description: str = "") -> Posted:
    """Record a payment or refill with its receipt; postpaid: allocated to open invoices."""
    amount = clean_amount(value, account.currency)
    posted = Posted()
    with transaction():
        text = (description or "").strip() or "Payment"  # None when the field was not posted
        # The balance UPDATE locks the account row first: allocations follow one at a time.
        payment = post(account, EntryKind.PAYMENT, amount, text, actor)
        posted.entries.append(payment)
        posted.document = issue(DocumentKind.RECEIPT, account, [(text, amount, False)])
        payment.document_id = posted.document.id
        if account.account_type == AccountType.POSTPAID:
            posted.allocations = allocate_payments(account)  # the rest stays as credit
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
            posted.document = issue(DocumentKind.RECEIPT, account, [(text, amount, False), *taxes])
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
