"""Free-minute bundles in calls: the bundle a call draws on, its reservation and its draw."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import (
    Date,
    Integer,
    and_,
    bindparam,
    case,
    exists,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite

from portal.calls import statements
from portal.calls.rawsql import Prepared
from portal.extensions import db
from portal.models import (
    BundleUsage,
    CallStatus,
    Product,
    ProductPeriod,
    ProductPrefix,
    Status,
    Subscription,
    utcnow,
)
from portal.rules.subscriptions import period_bounds
from portal.rules.times import local_day
from portal.tariffs.service import prefix_binds

subscriptions = Subscription.__table__
products = Product.__table__
product_prefixes = ProductPrefix.__table__
usage = BundleUsage.__table__
calls = statements.calls

# The period row a subscription's bundle draws on today: the day (daily), the month (monthly),
# or the whole subscription (one-time), as portal.rules.subscriptions.period_bounds cuts them.
_PERIOD_START = case(
    (products.c.period == ProductPeriod.DAILY, bindparam("day", type_=Date)),
    (products.c.period == ProductPeriod.MONTHLY, bindparam("month_start", type_=Date)),
    else_=subscriptions.c.start_date,
)

# The account's running bundles with a prefix of the number (binds account_id, day,
# month_start, prefix_0 ...), each with its period's row if it has one yet. A subscription
# runs from its start date to its end date (inclusive), local days of the account.
CANDIDATES = Prepared(
    select(
        subscriptions.c.id.label("subscription_id"),
        subscriptions.c.start_date,
        products.c.name,
        products.c.period,
        products.c.free_minutes,
        product_prefixes.c.prefix,
        usage.c.id.label("usage_id"),
        usage.c.used_seconds,
        usage.c.reserved_seconds,
    )
    .select_from(
        subscriptions.join(products, products.c.id == subscriptions.c.product_id)
        .join(product_prefixes, product_prefixes.c.product_id == products.c.id)
        .outerjoin(
            usage,
            and_(
                usage.c.subscription_id == subscriptions.c.id,
                usage.c.period_start == _PERIOD_START,
            ),
        )
    )
    .where(
        subscriptions.c.account_id == bindparam("account_id", type_=Integer),
        subscriptions.c.start_date <= bindparam("day", type_=Date),
        or_(
            subscriptions.c.end_date.is_(None),
            subscriptions.c.end_date >= bindparam("day", type_=Date),
        ),
        products.c.status == Status.ACTIVE,
        products.c.free_minutes > 0,
        product_prefixes.c.prefix.in_(
            [bindparam(name, type_=product_prefixes.c.prefix.type) for name in prefix_binds("")]
        ),
    )
)


@dataclass
class BundleDraw:
    """The bundle a call draws on: its period, what is left of it, and what the call holds."""

    subscription_id: int
    product: str
    prefix: str
    period_start: date
    limit_seconds: int
    used_seconds: int
    reserved_seconds: int  # held by live calls
    usage_id: int | None  # None until the period's first bundled call writes its row
    seconds: int = 0  # what this call holds (service._record, once the duration is known)
    usable: Decimal = Decimal(0)  # the caller's funds as read (RESERVE's re-check)
    figures: dict = field(default_factory=dict)  # the explain check's, completed later

    @property
    def available(self) -> int:
        """Seconds of the period not used nor held by live calls."""
        return max(0, self.limit_seconds - self.used_seconds - self.reserved_seconds)


def find(connection, account_id: int, timezone: str, number: str, now=None) -> BundleDraw | None:
    """The bundle a call to `number` draws on now, or None if no running bundle covers it."""
    # Of several bundles covering the number, the longest prefix first, then the oldest
    # subscription (lowest id); one used up gives way to the next with seconds left. None
    # left anywhere: the first one, with nothing available (explain shows it).
    day = local_day(now or utcnow(), timezone)
    binds = {"account_id": account_id, "day": day, "month_start": day.replace(day=1)}
    binds.update(prefix_binds(number))
    rows = CANDIDATES.all(connection, binds)
    if not rows:
        return None
    rows.sort(key=lambda row: (-len(row.prefix), row.subscription_id))
    draws = [_draw(row, day) for row in rows]
    return next((draw for draw in draws if draw.available > 0), draws[0])


def _draw(row, day: date) -> BundleDraw:
    """A candidate row as a draw."""
    return BundleDraw(
        subscription_id=row.subscription_id,
        product=row.name,
        prefix=row.prefix,
        period_start=period_bounds(row.period, day, row.start_date)[0],
        limit_seconds=row.free_minutes * 60,
        used_seconds=row.used_seconds or 0,
        reserved_seconds=row.reserved_seconds or 0,
        usage_id=row.usage_id,
    )


def explained(draw: BundleDraw) -> dict:
    """The figures of the "bundle" check of ?explain=1 (`reserved_for_call` added later)."""
    draw.figures = {
        "subscription_id": draw.subscription_id,
        "product": draw.product,
        "prefix": draw.prefix,
        "period_start": draw.period_start.isoformat(),
        "free_seconds_per_period": draw.limit_seconds,
        "used_seconds": draw.used_seconds,
        "reserved_by_live_calls": draw.reserved_seconds,
        "remaining_seconds": draw.available,
        "reserved_for_call": 0,
    }
    return draw.figures


# The period's row, written by its first bundled call; a concurrent first call's row wins.
_NEW_PERIOD_VALUES = {
    "subscription_id": bindparam("subscription_id", type_=Integer),
    "period_start": bindparam("period_start", type_=Date),
    "used_seconds": 0,
    "reserved_seconds": 0,
}
NEW_PERIOD = {
    "postgresql": Prepared(
        postgresql.insert(usage).values(**_NEW_PERIOD_VALUES).on_conflict_do_nothing()
    ),
    "sqlite": Prepared(sqlite.insert(usage).values(**_NEW_PERIOD_VALUES).on_conflict_do_nothing()),
    # MariaDB has no DO NOTHING (and INSERT IGNORE would hide other errors): a no-op update.
    "mysql": Prepared(
        mysql.insert(usage)
        .values(**_NEW_PERIOD_VALUES)
        .on_duplicate_key_update(used_seconds=usage.c.used_seconds)
    ),
}
NEW_PERIOD["mariadb"] = NEW_PERIOD["mysql"]  # a mariadb:// URL's dialect, the same statement

_THE_PERIOD = and_(
    usage.c.subscription_id == bindparam("subscription_id", type_=Integer),
    usage.c.period_start == bindparam("period_start", type_=Date),
)

# Hold seconds of the period as funds are held: only while used + held + these stay within
# the bundle, checked on the row as it is once locked (as statements.RESERVE), else nothing.
RESERVE = Prepared(
    update(usage)
    .where(
        _THE_PERIOD,
        usage.c.used_seconds + usage.c.reserved_seconds + bindparam("seconds", type_=Integer)
        <= bindparam("limit", type_=Integer),
    )
    .values(reserved_seconds=usage.c.reserved_seconds + bindparam("seconds", type_=Integer))
)

# A live call drawing on a bundle: statements.INSERT_CALL with its period row and its seconds.
INSERT_CALL = Prepared(
    insert(calls).values(
        account_id=bindparam("call_account_id"),
        bundle_usage_id=select(usage.c.id).where(_THE_PERIOD).scalar_subquery(),
        bundle_reserved_seconds=bindparam("seconds", type_=Integer),
        **{name: bindparam(f"call_{name}") for name in statements.CALL_COLUMNS},
    )
)


def _reserve_hold_and_insert(async_commit: bool):
    """PostgreSQL: the funds, the bundle's seconds and the call's INSERT as one statement."""
    # One round trip in autocommit, as statements.RESERVE_AND_INSERT. Data-modifying parts
    # of a WITH all run to the end, so neither may change anything unless both can: the
    # period's row is locked and checked first (FOR UPDATE re-checks it once locked, as an
    # UPDATE does), the funds reserved only if it passed, its seconds held only if they were.
    # Locks: the period's row, then the account's, the order every write takes them in.
    seconds = bindparam("seconds", type_=Integer)
    period = (
        select(usage.c.id)
        .where(
            _THE_PERIOD,
            usage.c.used_seconds + usage.c.reserved_seconds + seconds
            <= bindparam("limit", type_=Integer),
        )
        .with_for_update()
        .cte("bundle_period")
    )
    funds = (
        statements.RESERVE.where(exists(select(period.c.id)))
        .returning(statements.accounts.c.id)
        .cte("reserved_funds")
    )
    held = (
        update(usage)
        .where(usage.c.id == select(period.c.id).scalar_subquery(), exists(select(funds.c.id)))
        .values(reserved_seconds=usage.c.reserved_seconds + seconds)
        .returning(usage.c.id)
        .cte("held_seconds")
    )
    query = select(funds.c.id, held.c.id, seconds, *statements.call_values()).select_from(
        funds.join(held, true())
    )
    if async_commit:
        query = query.join(statements.ASYNC_COMMIT, true())
    columns = ["account_id", "bundle_usage_id", "bundle_reserved_seconds"]
    return (
        insert(calls)
        .from_select([*columns, *statements.CALL_COLUMNS], query, include_defaults=False)
        .returning(calls.c.id)
    )


# By CALLS_ASYNC_COMMIT, as statements.RESERVE_AND_INSERT.
RESERVE_HOLD_AND_INSERT = {flag: Prepared(_reserve_hold_and_insert(flag)) for flag in (True, False)}


def binds(draw: BundleDraw) -> dict:
    """The binds of RESERVE, NEW_PERIOD and INSERT_CALL for `draw`."""
    return {
        "subscription_id": draw.subscription_id,
        "period_start": draw.period_start,
        "seconds": draw.seconds,
        "limit": draw.limit_seconds,
    }


def open_period(connection, draw: BundleDraw, bundle_binds: dict) -> None:
    """Write the period's row if the call found none (before the call's INSERT names it)."""
    if draw.usage_id is None:
        NEW_PERIOD[connection.dialect.name].rowcount(connection, bundle_binds)


def hold(connection, bundle_binds: dict) -> bool:
    """Hold the call's seconds in its bundle period; False if they are no longer there."""
    # In the caller's transaction, before any account's funds (the order hang-ups lock in).
    return RESERVE.rowcount(connection, bundle_binds) == 1


# A hang-up (or the reaper) turns what the call held into what it used.
RELEASE = (
    update(usage)
    .where(usage.c.id == bindparam("usage_id"))
    .values(
        used_seconds=usage.c.used_seconds + bindparam("used", type_=Integer),
        reserved_seconds=usage.c.reserved_seconds - bindparam("held", type_=Integer),
    )
)


@dataclass
class BundleBalance:
    """One running bundle of an account, as its account page shows it."""

    subscription_id: int
    product: str
    prefixes: list[str]
    period_start: date
    period_end: date | None  # the day after the period's last; None: the whole subscription
    free_seconds: int
    used_seconds: int
    reserved_seconds: int

    @property
    def remaining_seconds(self) -> int:
        """Seconds left this period, live calls' holds taken off."""
        return max(0, self.free_seconds - self.used_seconds - self.reserved_seconds)

    @property
    def last_day(self) -> date | None:
        """The period's last day (None: the subscription's)."""
        return self.period_end - timedelta(days=1) if self.period_end else None

    def minutes(self, seconds: int) -> Decimal:
        """`seconds` in minutes, to the hundredth."""
        return (Decimal(seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP)


def balances(account) -> list[BundleBalance]:
    """The account's running bundles with what is left of each this period (local day)."""
    day = local_day(utcnow(), account.timezone)
    running = db.session.scalars(
        select(Subscription)
        .join(Product, Product.id == Subscription.product_id)
        .where(
            Subscription.account_id == account.id,
            Subscription.start_date <= day,
            or_(Subscription.end_date.is_(None), Subscription.end_date >= day),
            Product.status == Status.ACTIVE,
            Product.free_minutes > 0,
        )
        .order_by(Subscription.id)
    ).all()
    found = []
    for subscription in running:
        product = subscription.product
        start, end = period_bounds(product.period, day, subscription.start_date)
        row = db.session.scalar(
            select(BundleUsage).where(
                BundleUsage.subscription_id == subscription.id, BundleUsage.period_start == start
            )
        )
        found.append(
            BundleBalance(
                subscription.id,
                product.name,
                [prefix.prefix for prefix in product.prefixes],
                start,
                end,
                product.free_minutes * 60,
                row.used_seconds if row else 0,
                row.reserved_seconds if row else 0,
            )
        )
    return found


def live_holds(usage_id: int) -> int:
    """Seconds the live calls of a bundle period hold (a check for tests and repairs)."""
    return db.session.scalar(
        select(db.func.coalesce(db.func.sum(calls.c.bundle_reserved_seconds), 0)).where(
            calls.c.bundle_usage_id == usage_id, calls.c.status == CallStatus.LIVE
        )
    )
