"""What a document shows of its calls: the billing period and the usage grouped by destination."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from portal.billing.drafts import start_of_local_day
from portal.extensions import db
from portal.models import Call, CallCharge, CallStatus, Document, EntryKind, LedgerEntry
from portal.rules.currency import round_money
from portal.rules.times import local_day

# The line that takes what the calls found for the period do not account for (see usage_of).
OTHER_USAGE = "Other usage (calls at the period's edges, or rated before amounts were rounded)"
BILLED_STATUSES = (CallStatus.ENDED, CallStatus.REAPED)


@dataclass(frozen=True)
class UsageLine:
    """Calls to one destination (rate prefix) in a billing period."""

    description: str
    prefix: str
    calls: int
    seconds: int
    amount: Decimal
    free: bool = False  # a free-minute bundle's seconds: amount 0, not in the Calls line

    @property
    def minutes(self) -> Decimal:
        """The billed duration in minutes, to the hundredth."""
        return (Decimal(self.seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Usage:
    """A document's usage by destination; `total` is its Calls line, which the lines add up to."""

    lines: list[UsageLine]
    calls: int
    total: Decimal


def billing_period(document: Document) -> tuple[date, date] | None:
    """First and last local day a run's document covers: since the previous one, or the start."""
    if document.billing_date is None:
        return None
    previous = _previous_billing_date(document)
    if previous is not None:
        first = previous
    else:
        first = local_day(document.account.created_at, document.account.timezone)
    last = document.billing_date - timedelta(days=1)
    return min(first, last), last


def _previous_billing_date(document: Document) -> date | None:
    """The billing date of the account's document of the same kind before this one."""
    return db.session.scalar(
        select(func.max(Document.billing_date)).where(
            Document.account_id == document.account_id,
            Document.kind == document.kind,
            Document.billing_date < document.billing_date,
        )
    )


def group_usage(rows, total: Decimal, calls: int, currency: str, free_rows=()) -> Usage:
    """Grouped call rows (description, prefix, calls, seconds, cost) as lines adding up to `total`.

    Each group is rounded half-up to the minor unit (calls are posted rounded, so this changes
    nothing but costs rated before that rule); whatever the groups leave of the document's own
    Calls line (`total`, what the ledger moved) becomes one Other usage line, so the lines
    always add up exactly to the amount the document bills. `free_rows` (description, prefix,
    calls, seconds) are the seconds free-minute bundles covered: one line each, at 0, after
    the billed lines (a call partly covered counts in both).
    """
    lines = [
        UsageLine(
            description or "",
            prefix or "",
            int(count),
            int(seconds or 0),
            round_money(Decimal(cost), currency),
        )
        for description, prefix, count, seconds, cost in rows
    ]
    lines.sort(key=lambda line: (-line.amount, line.prefix, line.description))
    rest = total - sum((line.amount for line in lines), Decimal(0))
    counted = sum(line.calls for line in lines)
    for description, prefix, count, seconds in sorted(free_rows, key=_by_prefix):
        name = f"{description or ''} (free minutes)"
        lines.append(UsageLine(name, prefix or "", int(count), int(seconds), Decimal(0), True))
    if rest or counted != calls:
        lines.append(UsageLine(OTHER_USAGE, "", max(calls - counted, 0), 0, rest))
    return Usage(lines=lines, calls=calls, total=total)


def _by_prefix(row) -> tuple:
    """A free row's order: by prefix, then destination."""
    return row[1] or "", row[0] or ""


def usage_of(document: Document) -> Usage | None:
    """A run's document's calls by destination (rate prefix), or None when it bills no calls.

    The ledger says what the document bills (its USAGE entries: the Calls line); the calls
    that ended in its billing period (local midnight to local midnight, as the run cut it) say
    where they went. A call ending within a moment of the cut-off can have its entry on the
    other document, which the Other usage line shows instead of hiding it.
    """
    if document.billing_date is None:
        return None
    count, amount = db.session.execute(
        select(func.count(), func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.document_id == document.id, LedgerEntry.kind == EntryKind.USAGE
        )
    ).one()
    account = document.account
    end = start_of_local_day(account, document.billing_date)
    previous = _previous_billing_date(document)
    start = start_of_local_day(account, previous) if previous is not None else None
    free_rows = _free_calls(account.id, start, end)
    if not count and not free_rows:
        return None
    # Prepaid debits are negative entries; the document shows calls as positive amounts.
    total = round_money(abs(Decimal(amount)), document.currency)
    grouped = _grouped_calls(account.id, start, end)
    return group_usage(grouped, total, count, document.currency, free_rows)


def _free_calls(account_id: int, start, end) -> list:
    """(destination, prefix, calls, free seconds) of the account's calls a bundle covered."""
    query = (
        select(Call.rate_destination, Call.rate_prefix, func.count(), func.sum(Call.free_seconds))
        .where(
            Call.account_id == account_id,
            Call.free_seconds > 0,
            Call.status.in_(BILLED_STATUSES),
            Call.ended_at < end,
        )
        .group_by(Call.rate_destination, Call.rate_prefix)
    )
    if start is not None:
        query = query.where(Call.ended_at >= start)
    return [tuple(row) for row in db.session.execute(query)]


def _grouped_calls(account_id: int, start, end) -> list:
    """(destination, prefix, calls, seconds, cost) of the account's charged calls, by group."""
    # The account's own calls (level 0), and the calls of its customers it paid for as their
    # reseller (call_charges, at its own rate and prefix).
    own = select(
        Call.rate_destination.label("description"),
        Call.rate_prefix.label("prefix"),
        # What a bundle covered has a line of its own (_free_calls).
        (Call.duration_seconds - Call.free_seconds).label("seconds"),
        Call.cost.label("cost"),
    ).where(Call.account_id == account_id, Call.cost > 0, Call.status.in_(BILLED_STATUSES))
    resold = (
        select(
            Call.rate_destination.label("description"),
            CallCharge.rate_prefix.label("prefix"),
            Call.duration_seconds.label("seconds"),
            CallCharge.cost.label("cost"),
        )
        .join(Call, Call.id == CallCharge.call_id)
        .where(
            CallCharge.account_id == account_id,
            CallCharge.cost > 0,
            Call.status.in_(BILLED_STATUSES),
        )
    )
    grouped: dict[tuple, list] = {}
    for part in (own, resold):
        part = part.where(Call.ended_at < end)
        if start is not None:
            part = part.where(Call.ended_at >= start)
        found = part.subquery()
        for description, prefix, count, seconds, cost in db.session.execute(
            select(
                found.c.description,
                found.c.prefix,
                func.count(),
                func.sum(found.c.seconds),
                func.sum(found.c.cost),
            ).group_by(found.c.description, found.c.prefix)
        ):
            sums = grouped.setdefault((description, prefix), [0, 0, Decimal(0)])
            sums[0] += count
            sums[1] += seconds or 0
            sums[2] += Decimal(cost)
    return [(*key, *sums) for key, sums in grouped.items()]
