"""The billing run: invoice every postpaid account due on its local billing date, once."""

import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import exists, func, select

from portal import mail
from portal.billing.service import (
    Posted,
    _tax_lines,
    check_low_balance,
    issue,
    post,
    post_delta,
    settle,
    unapplied_payments,
)
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    BillingSchedule,
    Document,
    DocumentKind,
    EntryKind,
    LedgerEntry,
    Role,
    Status,
)
from portal.rules.currency import round_money
from portal.transactions import transaction

BILLED_KINDS = (EntryKind.CHARGE, EntryKind.USAGE, EntryKind.ADJUSTMENT)
ROUNDING_TEXT = "Rounding to the currency's minor unit"


@dataclass
class RunReport:
    """What a billing run did."""

    examined: int = 0
    invoiced: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    mail_ids: list[int] = field(default_factory=list)


def local_date(account: Account, now_utc: datetime) -> date:
    """The calendar date in the account's timezone at `now_utc` (naive UTC)."""
    zone = zoneinfo.ZoneInfo(account.timezone)
    return now_utc.replace(tzinfo=UTC).astimezone(zone).date()


def is_due(account: Account, day: date) -> bool:
    """Monthly: the billing day; daily: every day."""
    if account.billing_schedule == BillingSchedule.DAILY:
        return True
    return account.billing_day == day.day


def last_billing_date(account: Account, today: date) -> date | None:
    """The latest scheduled billing date on or before `today` (daily: today itself)."""
    # Catching up on the latest date, not only on the day itself: a run that did not happen
    # that day (cron down, or a 23-hour local day at the spring DST change that no fixed UTC
    # run time falls into) must not postpone the invoice by a month.
    if account.billing_schedule == BillingSchedule.DAILY:
        return today
    if not account.billing_day:
        return None
    if today.day >= account.billing_day:
        return today.replace(day=account.billing_day)
    end_of_last_month = today.replace(day=1) - timedelta(days=1)
    return end_of_last_month.replace(day=account.billing_day)  # billing days are 1..28


def start_of_local_day(account: Account, day: date) -> datetime:
    """Local midnight starting `day`, as naive UTC (the cut-off of what an invoice covers)."""
    zone = zoneinfo.ZoneInfo(account.timezone)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def _postpaid_accounts(batch_size: int) -> Iterator[list]:
    """Active postpaid customers, then resellers, by id, a batch of plain rows at a time."""
    # One role per query: with role = ?, the (role, deleted_at, id) index hands out the next
    # batch directly; with role IN (...) SQLite re-read and re-sorted the rest of the table
    # for every batch (quadratic at 100,000 accounts). Plain rows, not ORM objects: each
    # commit would otherwise expire the whole batch, and bill_account loads what it bills.
    columns = (
        Account.id,
        Account.account_number,
        Account.timezone,
        Account.billing_schedule,
        Account.billing_day,
    )
    for role in (Role.CUSTOMER, Role.RESELLER):
        last_id = 0
        while True:
            batch = db.session.execute(
                select(*columns)
                .where(
                    Account.role == role,
                    Account.deleted_at.is_(None),
                    Account.account_type == AccountType.POSTPAID,
                    Account.status == Status.ACTIVE,
                    Account.id > last_id,
                )
                .order_by(Account.id)
                .limit(batch_size)
            ).all()
            if not batch:
                break
            last_id = batch[-1].id
            yield batch


def _oldest_unbilled(account_ids: list[int]) -> dict[int, datetime]:
    """When the oldest not yet invoiced entry of each of these accounts was made (one query)."""
    rows = db.session.execute(
        select(LedgerEntry.account_id, func.min(LedgerEntry.created_at))
        .where(
            LedgerEntry.account_id.in_(account_ids),
            LedgerEntry.document_id.is_(None),
            LedgerEntry.kind.in_(BILLED_KINDS),
        )
        .group_by(LedgerEntry.account_id)
    )
    return dict(rows.all())


def bill_account(account, day: date) -> Posted | None:
    """Invoice the account's unbilled entries before local midnight of `day`, in one transaction."""
    # `account`: an Account or a row with its id (the run passes plain rows).
    with transaction():
        # Lock and re-read the account first (as payments do): two overlapping runs take
        # turns, so the second sees the first's invoice; a payment cannot slip between reading
        # the unapplied credit and settling it; the low balance check sees the current balance.
        account = db.session.scalars(
            select(Account)
            .where(Account.id == account.id)
            .with_for_update(of=Account)  # not the outer-joined rate group (PostgreSQL refuses)
            .execution_options(populate_existing=True)
        ).one()
        already = db.session.scalar(
            select(
                exists().where(
                    Document.account_id == account.id,
                    Document.kind == DocumentKind.INVOICE,
                    Document.billing_date == day,
                )
            )
        )
        if already:
            return None  # re-running the same day bills nothing twice
        cutoff = start_of_local_day(account, day)
        entries = list(
            db.session.scalars(
                select(LedgerEntry)
                .where(
                    LedgerEntry.account_id == account.id,
                    LedgerEntry.document_id.is_(None),
                    LedgerEntry.kind.in_(BILLED_KINDS),
                    LedgerEntry.created_at < cutoff,
                )
                .order_by(LedgerEntry.id)
            )
        )
        if not entries:
            return None
        lines = [
            (text, round_money(amount, account.currency), t) for text, amount, t in _lines(entries)
        ]
        subtotal = sum((amount for _, amount, _ in lines), Decimal(0))
        # Entries posted before amounts were rounded when posted can be finer than the minor
        # unit: one Rounding entry makes the ledger movement equal the rounded lines.
        rounding = subtotal - sum((entry.amount for entry in entries), Decimal(0))
        if rounding:
            entries.append(post_delta(account, EntryKind.ROUNDING, rounding, ROUNDING_TEXT))
        taxes = _tax_lines(account, subtotal) if subtotal > 0 else []
        for name, amount, _ in taxes:
            entries.append(post(account, EntryKind.TAX, amount, name))
        due = day + timedelta(days=current_app.config["INVOICE_DUE_DAYS"])
        invoice = issue(
            DocumentKind.INVOICE,
            account,
            [*lines, *taxes],
            billing_date=day,
            due_date=due,
        )
        for entry in entries:
            entry.document_id = invoice.id
        credit = unapplied_payments(account)
        if credit > 0:
            settle(invoice, credit)
        posted = Posted(entries=entries, document=invoice)
        if account.email:
            posted.mail.append(
                mail.queue("invoice", account.email, "invoice", account, document=invoice)
            )
        check_low_balance(account, posted)  # the taxes just posted may cross the alert level
    return posted


def _lines(entries: list[LedgerEntry]) -> list[tuple[str, Decimal, bool]]:
    """Invoice lines: one per charge or adjustment, calls summed into one line."""
    lines = []
    usage = [entry for entry in entries if entry.kind == EntryKind.USAGE]
    for entry in entries:
        if entry.kind != EntryKind.USAGE:
            lines.append((entry.description or entry.kind.label, entry.amount, False))
    if usage:
        total = sum((entry.amount for entry in usage), Decimal(0))
        lines.append((f"Calls ({len(usage)})", total, False))
    return lines


def _postpaid_count() -> int:
    """How many accounts a run examines (for its progress)."""
    return db.session.scalar(
        select(func.count())
        .select_from(Account)
        .where(
            Account.role.in_((Role.CUSTOMER, Role.RESELLER)),
            Account.deleted_at.is_(None),
            Account.account_type == AccountType.POSTPAID,
            Account.status == Status.ACTIVE,
        )
    )


def run_billing(
    now_utc: datetime | None = None,
    day: date | None = None,
    batch_size: int = 500,
    progress: Callable[..., None] | None = None,
) -> RunReport:
    """Invoice every postpaid account on its latest billing date up to today (local) or `day`."""
    now_utc = now_utc or datetime.now(UTC).replace(tzinfo=None)
    report = RunReport()
    total = _postpaid_count() if progress else 0
    for batch in _postpaid_accounts(batch_size):
        oldest = _oldest_unbilled([account.id for account in batch])
        for account in batch:
            report.examined += 1
            number = account.account_number
            try:
                billing_date = last_billing_date(account, day or local_date(account, now_utc))
                # Only accounts with something to bill open a transaction (most have nothing).
                due = (
                    billing_date is not None
                    and account.id in oldest
                    and oldest[account.id] < start_of_local_day(account, billing_date)
                )
                posted = bill_account(account, billing_date) if due else None
            except Exception as error:  # one broken account must not stop everyone's billing
                report.failed.append((number, f"{type(error).__name__}: {error}"))
                continue
            if posted is None:
                report.skipped += 1
            else:
                report.invoiced += 1
                report.mail_ids.extend(message.id for message in posted.mail)
        if progress:
            progress(report.examined, max(total, report.examined))
    return report
