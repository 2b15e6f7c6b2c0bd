"""One chunk of a billing run: about 1,000 accounts documented set-based in one transaction.

Postpaid accounts get an invoice, prepaid ones their periodic statement (a receipt).
"""

import random
import time
from collections import defaultdict
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, IntegrityError

from portal.billing import invoice_mail
from portal.billing.drafts import (
    ROUNDING_TEXT,
    ChunkResult,
    Draft,
    EntriesChanged,
    drafts,
    undocumented,
)
from portal.billing.service import credits, reserve_numbers, settle
from portal.bulkrows import among, insert_rows, update_rows
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Document,
    DocumentKind,
    DocumentLine,
    EntryKind,
    LedgerEntry,
    utcnow,
)
from portal.transactions import lost_to_a_deadlock, transaction

# Tries after a lost race with another run (or a late entry) before the chunk fails.
RETRIES = 2
# Tries after InnoDB rolled the chunk back to break a deadlock with another consumer's chunk.
DEADLOCK_RETRIES = 10


def preview(due: list[tuple[int, date]]) -> ChunkResult:
    """What billing these accounts would invoice (count, totals per currency); writes nothing."""
    result = ChunkResult()
    result.count(drafts(due, result))
    db.session.rollback()
    return result


def bill(due: list[tuple[int, date]]) -> ChunkResult:
    """Invoice (or give a statement to) these (account id, billing date) pairs in one go."""
    races = deadlocks = 0
    while True:
        try:
            return _bill_once(due)
        except (IntegrityError, EntriesChanged):
            # Another run billed some of these accounts meanwhile (its invoice took their
            # billing date first), or an entry came late: rolled back; read again, bill the rest.
            races += 1
            if races > RETRIES:
                raise
        except DBAPIError as error:
            if not lost_to_a_deadlock(error):  # MariaDB: another chunk's locks; bill again
                raise
            db.session.rollback()
            deadlocks += 1
            if deadlocks > DEADLOCK_RETRIES:
                raise
            # Two consumers' chunks retried at once would meet again in step: a random pause.
            time.sleep(random.uniform(0, 0.05 * deadlocks))


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
    connection = db.session.connection()
    invoices = insert_rows(
        connection,
        Document.__table__,
        [
            {
                "kind": draft.kind,
                "issuer_key": draft.account.reseller_id or 0,
                "number": -draft.account.id,
                "account_id": draft.account.id,
                "issued_at": now,
                "billing_date": draft.billing_date,
                # A statement is paid from the funds already: nothing falls due.
                "due_date": draft.billing_date + due_days
                if draft.kind == DocumentKind.INVOICE
                else None,
                "currency": draft.account.currency,
                "subtotal": draft.subtotal,
                "tax_total": draft.tax_total,
                "total": draft.total,
            }
            for draft in made
        ],
        returning=("account_id", "id"),
    )
    # Each new invoice by its account: one per account, so no order needs keeping.
    ids = dict(invoices)
    for draft in made:
        draft.document_id = ids[draft.account.id]
    insert_rows(
        connection,
        DocumentLine.__table__,
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
    invoice_mail.queue_mail(made, now, result)


def _mark_entries(made: list[Draft]) -> None:
    """The documented entries get their document (one UPDATE ... FROM documents)."""
    types = {
        draft.account.id: AccountType.PREPAID
        if draft.kind == DocumentKind.RECEIPT
        else AccountType.POSTPAID
        for draft in made
    }
    condition = undocumented(((draft.account.id, draft.cutoff) for draft in made), types)
    marked = db.session.execute(
        update(LedgerEntry)
        .where(
            condition,
            Document.account_id == LedgerEntry.account_id,
            # By primary key: MariaDB locks the documents its UPDATE reads, and reading them by
            # account could wait on (and deadlock with) another chunk's new documents.
            among(Document.id, [draft.document_id for draft in made]),
            Document.kind.in_((DocumentKind.INVOICE, DocumentKind.RECEIPT)),
            Document.number < 0,  # only this transaction's documents are still unnumbered
        )
        .values(document_id=Document.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if marked != sum(draft.entry_count for draft in made):
        # A late commit of an entry before a cut-off: the totals would not match the ledger.
        raise EntriesChanged(f"{marked} entries marked, {sum(d.entry_count for d in made)} read")


def _post_effects(made: list[Draft], now: datetime) -> None:
    """Rounding and tax entries, and the balances they move (owed goes up, funds go down)."""
    entries = []
    for draft in made:
        if draft.rounding:
            entries.append((draft, EntryKind.ROUNDING, draft.sign * draft.rounding, ROUNDING_TEXT))
        for name, amount, _ in draft.posted_taxes:
            entries.append((draft, EntryKind.TAX, draft.sign * amount, name))
    connection = db.session.connection()
    if entries:
        insert_rows(
            connection,
            LedgerEntry.__table__,
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
    moved = [
        {"id": draft.account.id, "balance": draft.balance_effect}
        for draft in made
        if draft.balance_effect
    ]
    update_rows(connection, Account.__table__, "id", moved, added=frozenset({"balance"}))


def _apply_credit(made: list[Draft]) -> None:
    """Credit (payments not yet allocated) pays the new invoices: found for the chunk at once."""
    by_account = {d.account.id: d for d in made if d.kind == DocumentKind.INVOICE}
    if not by_account:
        return
    for account_id, credit in credits(list(by_account)).items():
        # The few accounts with credit go through the payment code itself (allocations).
        invoice = db.session.get(Document, by_account[account_id].document_id)
        left = settle(invoice, credit)
        by_account[account_id].amount_paid = credit - left
    db.session.flush()


def _number(made: list[Draft]) -> None:
    """Reserve each issuer's block of numbers per kind (in order: no deadlock) and apply it."""
    by_issuer: dict[tuple[int, DocumentKind], list[Draft]] = defaultdict(list)
    for draft in made:
        by_issuer[(draft.account.reseller_id or 0, draft.kind)].append(draft)
    for issuer, kind in sorted(by_issuer):
        block = by_issuer[(issuer, kind)]
        first = reserve_numbers(issuer, kind, len(block))
        for offset, draft in enumerate(block):
            draft.number = first + offset
    numbers = [{"id": draft.document_id, "number": draft.number} for draft in made]
    update_rows(db.session.connection(), Document.__table__, "id", numbers)
