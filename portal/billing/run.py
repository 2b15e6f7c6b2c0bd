"""The billing run: on each account's local billing date, once, in chunks: postpaid accounts
get an invoice, prepaid ones a statement (a receipt) of their calls and the calls' taxes."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select

from portal.billing import chunk, subscriptions
from portal.billing.drafts import ChunkResult, documented_kinds, start_of_local_day
from portal.billing.service import Posted
from portal.bulkrows import among
from portal.extensions import db
from portal.models import Account, AccountType, BillingSchedule, Document, LedgerEntry, Role
from portal.rules.times import named_zone

PLAN_BATCH = 5000


@dataclass
class RunReport:
    """What a billing run did (or, dry, would do)."""

    examined: int = 0
    invoiced: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    mail_ids: list[int] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)
    chunks: int = 0
    chunks_failed: int = 0
    statements: int = 0  # prepaid statements (receipts)
    subscription_charges: int = 0  # subscription periods charged

    def add(self, result: ChunkResult) -> None:
        """Count a chunk's invoices, statements, failures, mail and totals."""
        self.chunks += 1
        self.invoiced += result.invoiced
        self.statements += result.statements
        self.failed.extend(result.failed)
        self.mail_ids.extend(result.mail_ids)
        for currency, total in result.totals.items():
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + total

    def summary(self) -> dict:
        """What a billing run's job page shows."""
        return {
            "examined": self.examined,
            "invoiced": self.invoiced,
            "statements": self.statements,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "failures": self.failed[:100],
            "chunks": self.chunks,
            "chunks_failed": self.chunks_failed,
        }

    def close(self) -> "RunReport":
        """What was examined and neither documented nor failed was not due."""
        self.skipped = self.examined - self.invoiced - self.statements - len(self.failed)
        return self


@dataclass
class Plan:
    """The due accounts of a run, as chunks of (account id, billing date), and what failed."""

    examined: int = 0
    chunks: list[list[tuple[int, date]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def report(self) -> RunReport:
        """A report that starts with what planning found."""
        return RunReport(examined=self.examined, failed=list(self.failed))


def local_date(account, now_utc: datetime) -> date:
    """The calendar date in the account's timezone at `now_utc` (naive UTC)."""
    zone = named_zone(account.timezone)
    return now_utc.replace(tzinfo=UTC).astimezone(zone).date()


def is_due(account, day: date) -> bool:
    """Monthly: the billing day; daily: every day."""
    if account.billing_schedule == BillingSchedule.DAILY:
        return True
    return account.billing_day == day.day


def last_billing_date(account, today: date) -> date | None:
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


def _billed_accounts(account_type: AccountType, batch_size: int) -> Iterator[list]:
    """Customers, then resellers, of a type, active or not, deleted or not: plain rows by id."""
    # Inactive and deleted accounts still get the invoice for what they owe (a final one).
    # One role and one side of deleted_at per query: the (role, deleted_at, id) index hands
    # out the next batch directly; with role IN (...) SQLite re-read and re-sorted the rest
    # of the table for every batch (quadratic at 100,000 accounts).
    columns = (
        Account.id,
        Account.account_number,
        Account.timezone,
        Account.billing_schedule,
        Account.billing_day,
        Account.account_type,
    )
    for role in (Role.CUSTOMER, Role.RESELLER):
        for deleted in (Account.deleted_at.is_(None), Account.deleted_at.is_not(None)):
            last_id = 0
            while True:
                batch = db.session.execute(
                    select(*columns)
                    .where(
                        Account.role == role,
                        deleted,
                        Account.account_type == account_type,
                        Account.id > last_id,
                    )
                    .order_by(Account.id)
                    .limit(batch_size)
                ).all()
                if not batch:
                    break
                last_id = batch[-1].id
                yield batch


def _oldest_unbilled(account_ids: list[int], account_type: AccountType) -> dict[int, datetime]:
    """When the oldest not yet documented entry of each of these accounts was made (one query)."""
    rows = db.session.execute(
        select(LedgerEntry.account_id, func.min(LedgerEntry.created_at))
        .where(
            among(LedgerEntry.account_id, account_ids),
            LedgerEntry.document_id.is_(None),
            LedgerEntry.kind.in_(documented_kinds(account_type)),
        )
        .group_by(LedgerEntry.account_id)
    )
    return dict(rows.all())


def plan(
    now_utc: datetime | None = None, day: date | None = None, chunk_size: int | None = None
) -> Plan:
    """Which accounts are due (their billing date, in their timezone), in chunks by id."""
    now_utc = now_utc or datetime.now(UTC).replace(tzinfo=None)
    chunk_size = chunk_size or current_app.config["BILLING_CHUNK_SIZE"]
    found = Plan()
    due: list[tuple[int, date]] = []
    batches = (
        (account_type, batch)
        for account_type in (AccountType.POSTPAID, AccountType.PREPAID)
        for batch in _billed_accounts(account_type, PLAN_BATCH)
    )
    for account_type, batch in batches:
        oldest = _oldest_unbilled([account.id for account in batch], account_type)
        for account in batch:
            found.examined += 1
            try:
                billing_date = last_billing_date(account, day or local_date(account, now_utc))
                # Only accounts with something to bill before the cut-off go into a chunk.
                if (
                    billing_date is not None
                    and account.id in oldest
                    and oldest[account.id] < start_of_local_day(account, billing_date)
                ):
                    due.append((account.id, billing_date))
            except Exception as error:  # one broken account must not stop everyone's billing
                found.failed.append((account.account_number, f"{type(error).__name__}: {error}"))
    due.sort()
    found.chunks = [due[start : start + chunk_size] for start in range(0, len(due), chunk_size)]
    db.session.rollback()  # no read transaction left open while the chunks write
    return found


def run_billing(
    now_utc: datetime | None = None,
    day: date | None = None,
    chunk_size: int | None = None,
    progress: Callable[..., None] | None = None,
    threads: int = 1,
    dry_run: bool = False,
) -> RunReport:
    """Invoice postpaid, give prepaid a statement, on the latest billing date (local) or `day`."""
    now_utc = now_utc or datetime.now(UTC).replace(tzinfo=None)
    app = current_app._get_current_object()
    charged, charge_failures = (
        (0, []) if dry_run else _charge_subscriptions(app, now_utc, day, threads)
    )
    planned = plan(now_utc, day, chunk_size)
    report = planned.report()
    report.subscription_charges = charged
    work = chunk.preview if dry_run else chunk.bill

    def one_chunk(due) -> ChunkResult | str:
        with app.app_context():
            try:
                return work(due)
            except Exception as error:  # rolled back whole: the next run bills it
                return f"{type(error).__name__}: {error}"

    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        results = pool.map(one_chunk, planned.chunks)
        for index, result in enumerate(results, start=1):
            if isinstance(result, str):
                report.chunks += 1
                report.chunks_failed += 1
                report.failed.append((f"chunk {index}", result))
            else:
                report.add(result)
            if progress:
                progress(index, len(planned.chunks))
    report.close()
    report.failed.extend(charge_failures)  # after close(): they are not accounts examined
    return report


def _charge_subscriptions(app, now_utc: datetime, day: date | None, threads: int):
    """Charge every running subscription's due periods first: (periods charged, failures)."""
    # First, so that the run's own documents are made after the charges; the charges are
    # dated now, after every cut-off of this run: they go on the next invoice or statement.
    batches = subscriptions.running_batches()
    charged, failed = 0, []

    def one_batch(ids) -> subscriptions.ChargeResult | str:
        with app.app_context():
            try:
                return subscriptions.charge(ids, now_utc, day)
            except Exception as error:  # rolled back whole: the next run charges it
                return f"{type(error).__name__}: {error}"

    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        for index, result in enumerate(pool.map(one_batch, batches), start=1):
            if isinstance(result, str):
                failed.append((f"subscriptions batch {index}", result))
            else:
                charged += result.charged
                failed.extend(result.failed)
    return charged, failed


def bill_account(account, day: date) -> Posted | None:
    """Document one account's entries before local midnight of `day` (a chunk of one)."""
    result = chunk.bill([(account.id, day)])
    if result.failed:
        raise RuntimeError(result.failed[0][1])
    if not result.invoiced and not result.statements:
        return None
    document = db.session.scalar(
        select(Document).where(Document.account_id == account.id).order_by(Document.id.desc())
    )
    return Posted(document=document)
