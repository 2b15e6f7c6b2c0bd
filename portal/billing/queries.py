"""What the money panel of an account shows: its ledger, documents and calls, a page at a time."""

from datetime import date
from decimal import Decimal

from sqlalchemy import Date, Select, and_, case, func, literal, not_, or_, select, type_coerce
from sqlalchemy.orm import selectinload

from portal.billing.forms import MoneyForm
from portal.calls.queries import CALL_SORTING, account_calls
from portal.listing import Page, Sorting, paginate
from portal.models import (
    Account,
    Allocation,
    Document,
    DocumentKind,
    DocumentStatus,
    LedgerEntry,
)
from portal.models.account import Money
from portal.rules.currency import MINOR_UNITS, quantum

# What a document's allocation notes read ("Paid by R-000012", "Applied to INV-000003"), for a
# whole list in two more queries instead of some per document.
WITH_ALLOCATIONS = (
    selectinload(Document.allocations)
    .joinedload(Allocation.payment)
    .joinedload(LedgerEntry.document),
    selectinload(Document.payment_entries)
    .selectinload(LedgerEntry.allocations)
    .joinedload(Allocation.document),
)

# A receipt has no due date: it sorts before every invoice's.
NO_DUE_DATE = literal(date(1900, 1, 1), Date)

# What was allocated to each document, summed once for a whole list: a query using the
# expressions below outer-joins it (with_allocation_sums). Grouping the allocations once costs
# less than Document.allocated's subquery per row (1.5x on SQLite, 4x on PostgreSQL, measured
# at 100,000 invoices).
ALLOCATION_SUMS = (
    select(Allocation.document_id, func.sum(Allocation.amount).label("amount"))
    .group_by(Allocation.document_id)
    .subquery("allocation_sums")
)
ALLOCATED = type_coerce(func.coalesce(ALLOCATION_SUMS.c.amount, literal(0, Money)), Money)
# The paid/partial/unpaid status of Document.status, in SQL (filters and totals of a whole list).
AMOUNT_PAID = type_coerce(
    case((Document.kind == DocumentKind.RECEIPT, Document.total), else_=ALLOCATED), Money
)
BALANCE_DUE = type_coerce(Document.total - AMOUNT_PAID, Money)


def _smallest_amount():
    """SQL: the minor unit of the document's currency (0.01, or 1 JPY, 0.001 KWD...)."""
    by_places: dict[int, list[str]] = {}
    for code, places in MINOR_UNITS.items():
        by_places.setdefault(places, []).append(code)
    whens = [
        (Document.currency.in_(codes), literal(Decimal(1).scaleb(-places), Money))
        for places, codes in sorted(by_places.items())
    ]
    return case(*whens, else_=literal(quantum("USD"), Money))


# Less than one minor unit left to pay is paid, as Document.status says.
IS_PAID = or_(Document.kind == DocumentKind.RECEIPT, _smallest_amount() > BALANCE_DUE)


def status_condition(status: str, today: date):
    """SQL: documents of `status` (paid, partial, unpaid, overdue); overdue counts from `today`."""
    open_invoice = and_(Document.kind == DocumentKind.INVOICE, not_(IS_PAID))
    if status == DocumentStatus.PAID:
        return IS_PAID
    if status == DocumentStatus.PARTIAL:
        return and_(open_invoice, ALLOCATED > 0)
    if status == DocumentStatus.UNPAID:
        return and_(open_invoice, ALLOCATED <= 0)
    # Overdue: unpaid or partly paid, and the due date is before today.
    return and_(open_invoice, Document.due_date.is_not(None), Document.due_date < today)


def with_allocation_sums(query: Select) -> Select:
    """`query` of documents, able to use AMOUNT_PAID, BALANCE_DUE, IS_PAID and status_condition."""
    return query.outerjoin(ALLOCATION_SUMS, ALLOCATION_SUMS.c.document_id == Document.id)


DOCUMENT_SORTING = Sorting(
    columns={
        "number": Document.number,
        "date": Document.issued_at,
        "due": func.coalesce(Document.due_date, NO_DUE_DATE),
        "amount": Document.total,
    },
    default="-date",
    unique=Document.id,
)
LEDGER_SORTING = Sorting(
    columns={"when": LedgerEntry.created_at, "amount": LedgerEntry.amount},
    default="-when",
    unique=LedgerEntry.id,
)


def ledger_page(account: Account) -> Page:
    """The requested page of the account's ledger entries (newest first by default)."""
    query = (
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account.id)
        # Each row names its document and author: two more queries per page, not two per row.
        .options(selectinload(LedgerEntry.document), selectinload(LedgerEntry.author))
    )
    return paginate(query, LEDGER_SORTING)


def documents_page(account: Account) -> Page:
    """The requested page of the account's receipts and invoices, with how each was paid."""
    query = select(Document).where(Document.account_id == account.id).options(*WITH_ALLOCATIONS)
    return paginate(query, DOCUMENT_SORTING)


def calls_page(account: Account) -> Page:
    """The requested page of the account's calls (refused attempts left out)."""
    return paginate(account_calls(account), CALL_SORTING)


def activity(account: Account) -> dict:
    """The account's ledger entries, documents and calls: the first page of each by default."""
    return {
        "account": account,
        "ledger": ledger_page(account),
        "documents": documents_page(account),
        "calls": calls_page(account),
    }


def money_context(account: Account, payment_form=None, charge_form=None) -> dict:
    """What the money panel of an account shows: its activity and the payment and charge forms."""
    return {
        **activity(account),
        "payment_form": payment_form or MoneyForm(formdata=None, prefix="payment"),
        "charge_form": charge_form or MoneyForm(formdata=None, prefix="charge"),
    }
