"""Invoices and Payments reports: scoped to the viewer, filtered, paged, totals per currency."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Select, func, select, type_coerce
from sqlalchemy.orm import contains_eager, defer, selectinload

from portal.billing.queries import (
    AMOUNT_PAID,
    BALANCE_DUE,
    NO_DUE_DATE,
    status_condition,
    with_allocation_sums,
)
from portal.extensions import db
from portal.listing import Page, Sorting, paginate
from portal.models import Account, Document, DocumentKind, EntryKind, LedgerEntry, Role
from portal.models.account import Money
from portal.rules.times import zone
from portal.security import in_subtree, visible_accounts

PAYMENT_AMOUNT = type_coerce(func.abs(LedgerEntry.amount), Money)

INVOICE_SORTING = Sorting(
    columns={
        "number": Document.number,
        "date": func.coalesce(Document.billing_date, NO_DUE_DATE),
        "due": func.coalesce(Document.due_date, NO_DUE_DATE),
        "amount": Document.total,
        "account": Account.account_number,
    },
    default="-date",
    unique=Document.id,
)
PAYMENT_SORTING = Sorting(
    columns={
        "date": LedgerEntry.created_at,
        "amount": PAYMENT_AMOUNT,
        "account": Account.account_number,
    },
    default="-date",
    unique=LedgerEntry.id,
)


@dataclass(frozen=True)
class CurrencyTotal:
    """What a report's rows in one currency add up to."""

    currency: str
    count: int
    amount: Decimal
    paid: Decimal = Decimal(0)
    due: Decimal = Decimal(0)


@dataclass
class Report:
    """A page of a report and the totals per currency of every row its filters select."""

    page: Page
    totals: list[CurrencyTotal]


def _visible(user: Account, account_column):
    """SQL: rows of accounts `user` may see, and of `user` itself (a reseller is billed too)."""
    ids = visible_accounts(user).with_only_columns(Account.id)
    return (account_column == user.id) | account_column.in_(ids)


def find_reseller(user: Account, number: str) -> Account | None:
    """A reseller `user` may see (or `user` itself) by account number, else None."""
    query = select(Account).where(
        Account.account_number == number,
        Account.role == Role.RESELLER,
        _visible(user, Account.id),
    )
    return db.session.scalar(query)


def _account_conditions(filters: dict, reseller: Account | None) -> list:
    """SQL conditions of the filters both reports share on the account (joined as Account)."""
    conditions = []
    if filters.get("account"):
        conditions.append(Account.account_number == filters["account"])
    if reseller is not None:
        conditions.append(in_subtree(reseller.subtree_path))
    return conditions


def invoice_conditions(user: Account, filters: dict, reseller, today: date) -> list:
    """SQL conditions selecting the invoices `user` may see that match `filters`."""
    conditions = [
        Document.kind == DocumentKind.INVOICE,
        _visible(user, Document.account_id),
        *_account_conditions(filters, reseller),
    ]
    if filters.get("status"):
        conditions.append(status_condition(filters["status"], today))
    # Billing and due dates are calendar dates of the account: compared as they are.
    if filters.get("date_from"):
        conditions.append(Document.billing_date >= filters["date_from"])
    if filters.get("date_to"):
        conditions.append(Document.billing_date <= filters["date_to"])
    if filters.get("currency"):
        conditions.append(Document.currency == filters["currency"].upper())
    return conditions


def invoices(user: Account, filters: dict, reseller=None, today: date | None = None) -> Report:
    """The requested page of the invoices matching `filters`, and their totals per currency."""
    conditions = invoice_conditions(user, filters, reseller, today or date.today())
    totals_query = with_allocation_sums(
        select(
            Document.currency,
            func.count(Document.id),
            func.sum(Document.total),
            func.sum(AMOUNT_PAID),
            func.sum(BALANCE_DUE),
        ).join(Account, Document.account_id == Account.id)
    )
    totals_query = (
        totals_query.where(*conditions).group_by(Document.currency).order_by(Document.currency)
    )
    totals = [CurrencyTotal(*row) for row in db.session.execute(totals_query)]
    query = select(Document).join(Account, Document.account_id == Account.id)
    if filters.get("status"):  # the status is read from the allocations
        query = with_allocation_sums(query)
    query = (
        query.where(*conditions)
        # What was allocated is read for the page's rows only, not for every row sorted.
        .options(contains_eager(Document.account), defer(Document.allocated))
    )
    page = paginate(query, INVOICE_SORTING, total=sum(t.count for t in totals))
    if page.rows:
        # Read again with their accounts: a refresh without them would load each one alone.
        db.session.execute(
            select(Document)
            .join(Account, Document.account_id == Account.id)
            .where(Document.id.in_([document.id for document in page.rows]))
            .options(contains_eager(Document.account))
            .execution_options(populate_existing=True)
        ).all()
    return Report(page=page, totals=totals)


def local_day_start(day: date, zone_name: str) -> datetime:
    """The stored (naive UTC) time at which `day` begins in `zone_name`."""
    start = datetime.combine(day, time(0), tzinfo=zone(zone_name))
    try:
        return start.astimezone(zone("UTC")).replace(tzinfo=None)
    except OverflowError:  # the first or last day a datetime holds: the range is open there
        return datetime.min if day.year == 1 else datetime.max


def payment_conditions(user: Account, filters: dict, reseller, zone_name: str) -> list:
    """SQL conditions selecting the payments `user` may see that match `filters`."""
    conditions = [
        LedgerEntry.kind == EntryKind.PAYMENT,
        _visible(user, LedgerEntry.account_id),
        *_account_conditions(filters, reseller),
    ]
    # A payment's day is the viewer's: the day its list shows next to it.
    if filters.get("date_from"):
        conditions.append(
            LedgerEntry.created_at >= local_day_start(filters["date_from"], zone_name)
        )
    if filters.get("date_to"):
        end = filters["date_to"]
        if end < date.max:
            end_at = local_day_start(end + timedelta(days=1), zone_name)
            conditions.append(LedgerEntry.created_at < end_at)
    if filters.get("currency"):
        conditions.append(LedgerEntry.currency == filters["currency"].upper())
    return conditions


def payments(user: Account, filters: dict, reseller=None, zone_name: str = "UTC") -> Report:
    """The requested page of the payments (refills) matching `filters`, totals per currency."""
    conditions = payment_conditions(user, filters, reseller, zone_name)
    totals_query = (
        select(LedgerEntry.currency, func.count(LedgerEntry.id), func.sum(PAYMENT_AMOUNT))
        .join(Account, LedgerEntry.account_id == Account.id)
        .where(*conditions)
        .group_by(LedgerEntry.currency)
        .order_by(LedgerEntry.currency)
    )
    totals = [CurrencyTotal(*row) for row in db.session.execute(totals_query)]
    query: Select = (
        select(LedgerEntry, Account)
        .join(Account, LedgerEntry.account_id == Account.id)
        .where(*conditions)
        .options(selectinload(LedgerEntry.document))
    )
    # Rows of (payment, its account): a ledger entry has no relationship to its account.
    page = paginate(query, PAYMENT_SORTING, total=sum(t.count for t in totals), scalars=False)
    return Report(page=page, totals=totals)
