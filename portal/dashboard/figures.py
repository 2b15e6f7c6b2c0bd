"""What the dashboards show, each figure scoped to the viewer: rollup sums and indexed counts."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, case, func, select

from portal.calls.rollups import ENDED, OPERATOR
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Call,
    CallRollup,
    CallStatus,
    Document,
    DocumentKind,
    Role,
    Status,
)
from portal.rules.times import zone
from portal.security import STAFF, visible_accounts

DAYS = 30  # the charts' window: today (UTC) and the 29 days before
TOP = 10  # destinations, low-balance accounts and overdue invoices listed
ZERO = Decimal(0)


@dataclass
class Day:
    """One UTC day of a tenant's ended calls."""

    day: date
    calls: int = 0
    answered: int = 0
    seconds: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)

    @property
    def minutes(self) -> Decimal:
        """Seconds as minutes, to one decimal."""
        return (Decimal(self.seconds) / 60).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class Destination:
    """A destination's calls, minutes and revenue over the window."""

    prefix: str
    name: str
    calls: int
    seconds: int
    currency: str = ""
    revenue: Decimal = ZERO

    @property
    def minutes(self) -> Decimal:
        """Seconds as minutes, to one decimal."""
        return (Decimal(self.seconds) / 60).quantize(Decimal("0.1"))


def tenant_key(user: Account) -> int | None:
    """Whose rollups the viewer reads: the operator's (staff), its own (a reseller), or none."""
    if user.role in STAFF:
        return OPERATOR
    if user.role == Role.RESELLER:
        return user.id
    return None


def today_utc() -> date:
    """Today's UTC date: the rollups' days are UTC days."""
    return datetime.now(UTC).date()


def call_days(user: Account, today: date) -> list[Day]:
    """Each day of the window, oldest first: calls, answered, seconds and revenue per currency."""
    since = today - timedelta(days=DAYS - 1)
    days = {since + timedelta(days=offset): None for offset in range(DAYS)}
    result = {day: Day(day) for day in days}
    key = tenant_key(user)
    rows = db.session.execute(
        select(
            CallRollup.day,
            CallRollup.currency,
            func.sum(CallRollup.calls),
            func.sum(CallRollup.answered),
            func.sum(CallRollup.seconds),
            func.sum(CallRollup.revenue),
        )
        .where(CallRollup.tenant_key == key, CallRollup.day >= since, CallRollup.day <= today)
        .group_by(CallRollup.day, CallRollup.currency)
    )
    for day, currency, calls, answered, seconds, revenue in rows:
        figures = result[day]
        figures.calls += int(calls)
        figures.answered += int(answered)
        figures.seconds += int(seconds)
        figures.revenue[currency] = _money(revenue)
    return list(result.values())


def _money(value) -> Decimal:
    """A SUM of money (ExactMoney reads back as Decimal on every backend); 0 for no rows."""
    return ZERO if value is None else Decimal(value)


def currencies(days: list[Day]) -> list[str]:
    """The currencies revenue came in, sorted."""
    return sorted({currency for day in days for currency in day.revenue})


def top_destinations(user: Account, today: date) -> tuple[list[Destination], list[Destination]]:
    """The window's top destinations by minutes, and by revenue (the top of each currency)."""
    since = today - timedelta(days=DAYS - 1)
    window = (
        CallRollup.tenant_key == tenant_key(user),
        CallRollup.day >= since,
        CallRollup.day <= today,
    )
    seconds = func.sum(CallRollup.seconds)
    by_minutes = [
        Destination(prefix, name, int(calls), int(total))
        for prefix, name, calls, total in db.session.execute(
            select(
                CallRollup.rate_prefix,
                CallRollup.rate_destination,
                func.sum(CallRollup.calls),
                seconds,
            )
            .where(*window)
            .group_by(CallRollup.rate_prefix, CallRollup.rate_destination)
            .order_by(seconds.desc(), CallRollup.rate_prefix)
            .limit(TOP)
        )
    ]
    revenue = func.sum(CallRollup.revenue)
    rows = db.session.execute(
        select(
            CallRollup.currency,
            CallRollup.rate_prefix,
            CallRollup.rate_destination,
            func.sum(CallRollup.calls),
            func.sum(CallRollup.seconds),
            revenue,
        )
        .where(*window)
        .group_by(CallRollup.currency, CallRollup.rate_prefix, CallRollup.rate_destination)
        .order_by(CallRollup.currency, revenue.desc(), CallRollup.rate_prefix)
    )
    by_revenue, taken = [], defaultdict(int)
    for currency, prefix, name, calls, total, amount in rows:
        if taken[currency] < TOP:
            taken[currency] += 1
            by_revenue.append(
                Destination(prefix, name, int(calls), int(total), currency, _money(amount))
            )
    return by_minutes, by_revenue


def live_calls(user: Account) -> int:
    """Calls in progress now in the viewer's scope."""
    if user.role in STAFF:
        return db.session.scalar(
            select(func.count()).select_from(Call).where(Call.status == CallStatus.LIVE)
        )
    # A reseller's own counter holds every live call of its subtree (the cost chain reserves
    # a channel at each level), kept in the same statements as the calls.
    return db.session.scalar(select(Account.live_calls).where(Account.id == user.id)) or 0


def _funds():
    """SQL: an account's available funds (prepaid: the balance; postpaid: limit minus owed)."""
    return case(
        (Account.account_type == AccountType.POSTPAID, Account.credit_limit - Account.balance),
        else_=Account.balance,
    )


def _low():
    """SQL: 1 for a customer or reseller at or below its low balance alert amount, else 0."""
    return case(
        (
            and_(
                Account.role.in_((Role.CUSTOMER, Role.RESELLER)),
                _funds() <= Account.low_balance_alert,
            ),
            1,
        ),
        else_=0,
    )


def account_counts(user: Account) -> tuple[dict[Role, dict[Status, int]], int]:
    """The viewer's accounts by role and status, and how many are low on funds: one pass."""
    # One scan of the caller's accounts for both figures (the admins': every account), not an
    # IN list of their ids, which on SQLite built a temporary index of every id first.
    rows = db.session.execute(
        visible_accounts(user)
        .where(Account.id != user.id)
        .with_only_columns(Account.role, Account.status, func.count(), func.sum(_low()))
        .group_by(Account.role, Account.status)
    )
    counts: dict[Role, dict[Status, int]] = {}
    low = 0
    for role, status, number, low_here in rows:
        counts.setdefault(role, {})[status] = number
        low += int(low_here or 0)
    return counts, low


def low_balance(user: Account) -> list[Account]:
    """The first customers and resellers of the viewer at or below their alert amount."""
    query = visible_accounts(user).where(Account.id != user.id, _low() == 1)
    return list(db.session.scalars(query.order_by(Account.id).limit(TOP)))


def overdue_invoices(user: Account, today: date) -> tuple[dict[str, tuple], list[Document]]:
    """Unpaid invoices past their due date in the viewer's scope: (count, due) per currency."""
    # The invoices drive the query (few are overdue), each checked against the caller's
    # accounts by primary key; an IN list of those ids would read every visible account.
    visible = (
        visible_accounts(user)
        .where(Account.id != user.id, Account.id == Document.account_id)
        .exists()
    )
    query = select(Document).where(
        Document.kind == DocumentKind.INVOICE,
        Document.due_date < today,
        Document.total > Document.allocated,
        visible,
    )
    due = Document.total - Document.allocated
    totals = {
        currency: (int(count), _money(amount))
        for currency, count, amount in db.session.execute(
            query.with_only_columns(Document.currency, func.count(), func.sum(due))
            .group_by(Document.currency)
            .order_by(Document.currency)
        )
    }
    listed = list(db.session.scalars(query.order_by(Document.due_date, Document.id).limit(TOP)))
    return totals, listed


@dataclass(frozen=True)
class Usage:
    """A customer's ended calls since the start of its month (in its own timezone)."""

    since: datetime
    calls: int
    seconds: int
    cost: Decimal

    @property
    def minutes(self) -> Decimal:
        """Seconds as minutes, to one decimal."""
        return (Decimal(self.seconds) / 60).quantize(Decimal("0.1"))


def month_usage(account: Account, now: datetime | None = None) -> Usage:
    """The account's calls, minutes and cost since the 1st of this month, in its timezone."""
    local = (now or datetime.now(UTC)).astimezone(zone(account.timezone))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since = first.astimezone(UTC).replace(tzinfo=None)
    calls, seconds, cost = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Call.duration_seconds), 0),
            func.sum(Call.cost),
        ).where(
            Call.account_id == account.id,
            Call.status.in_(ENDED),
            Call.started_at >= since,
        )
    ).one()
    return Usage(first, int(calls), int(seconds), _money(cost))
