"""Daily call rollups: counted at hang-up, rebuilt from the calls on demand (storage mechanics)."""

import functools
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Date, and_, case, cast, delete, func, literal, select, union_all
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.models import Account, Call, CallCharge, CallRollup, CallStatus

OPERATOR = 0  # the tenant key of the admins' (and sub-admins') figures
KEY = ("tenant_key", "day", "currency", "rate_prefix", "rate_destination")
COUNTERS = ("calls", "answered", "seconds", "revenue")
ENDED = (CallStatus.ENDED, CallStatus.REAPED)


@dataclass(frozen=True)
class Receipt:
    """What one tenant received for a call: `amount` in `currency`, from the level below."""

    tenant_key: int
    currency: str
    amount: Decimal


def receipts(
    cost: Decimal, caller: Account, levels: list[tuple[int, Decimal, str]]
) -> list[Receipt]:
    """Who is paid for an ended call and how much: the caller's owner, then each reseller up."""
    # `levels` are the call's own charges (account id, cost, currency), bottom-up: the chain
    # it was authorized on, not today's tenant path, so a customer moved later does not take
    # its old calls to its new owner.
    payers = [(caller.currency, cost)] + [(currency, paid) for _id, paid, currency in levels]
    receivers = [account_id for account_id, _paid, _currency in levels] + [OPERATOR]
    return [
        Receipt(receiver, currency, amount or Decimal(0))
        for receiver, (currency, amount) in zip(receivers, payers, strict=True)
    ]


def count_call(
    call: Call, seconds: int, cost: Decimal, caller: Account, levels: list[tuple[int, Decimal, str]]
) -> None:
    """Add an ended call to the rollups of every tenant paid for it, in the hang-up transaction."""
    day = call.started_at.date()
    rows = [
        {
            "tenant_key": receipt.tenant_key,
            "day": day,
            "currency": receipt.currency,
            "rate_prefix": call.rate_prefix or "",
            "rate_destination": call.rate_destination or "",
            "calls": 1,
            "answered": 1 if seconds > 0 else 0,
            "seconds": seconds,
            "revenue": receipt.amount,
        }
        for receipt in receipts(cost, caller, levels)
    ]
    # Always in key order: two hang-ups touching the same rows lock them in the same order,
    # so they wait for each other instead of deadlocking.
    rows.sort(key=lambda row: tuple(row[name] for name in KEY))
    db.session.execute(_upsert(db.session.get_bind().dialect.name), rows)


@functools.cache
def _upsert(dialect: str):
    """INSERT a row, adding its counters to the row already there with the same key."""
    # Built once per backend and executed with the rows' values: a statement made with
    # .values(rows) was compiled again at every hang-up (most of what the rollup cost).
    table = CallRollup.__table__
    if dialect in ("mysql", "mariadb"):
        statement = mysql_insert(table)
        return statement.on_duplicate_key_update(
            {name: table.c[name] + statement.inserted[name] for name in COUNTERS}
        )
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: table.c[name] + statement.excluded[name] for name in COUNTERS},
    )


def _day(column, dialect: str):
    """The date of a stored (naive UTC) time, as the Date column stores it on this backend."""
    # SQLite keeps dates as 'YYYY-MM-DD' text; CAST(... AS DATE) there would give a number.
    return func.date(column) if dialect == "sqlite" else cast(column, Date)


def recount_query(dialect: str):
    """SELECT of the rollup rows recounted from every ended call (the columns of KEY + COUNTERS)."""
    up = aliased(CallCharge)
    charge = aliased(CallCharge)
    ended = Call.status.in_(ENDED)
    answered = case((Call.duration_seconds > 0, 1), else_=0)
    common = (
        _day(Call.started_at, dialect),
        func.coalesce(Call.rate_prefix, ""),
        Call.rate_destination,
        answered,
        func.coalesce(Call.duration_seconds, 0),
    )
    # Level 0: the caller's cost goes to its owner (the level-1 reseller, or the operator).
    callers = (
        select(func.coalesce(up.account_id, OPERATOR), Account.currency, Call.cost, *common)
        .join(Account, Account.id == Call.account_id)
        .outerjoin(up, and_(up.call_id == Call.id, up.level == 1))
        .where(ended)
    )
    # Level n: what the level-n reseller paid goes to the one above it (or the operator).
    resellers = (
        select(func.coalesce(up.account_id, OPERATOR), Account.currency, charge.cost, *common)
        .select_from(charge)
        .join(Call, Call.id == charge.call_id)
        .join(Account, Account.id == charge.account_id)
        .outerjoin(up, and_(up.call_id == charge.call_id, up.level == charge.level + 1))
        .where(ended)
    )
    rows = union_all(callers, resellers).subquery()
    tenant, currency, revenue, day, prefix, destination, answered_, seconds = rows.c
    return select(
        tenant,
        day,
        currency,
        prefix,
        destination,
        func.count(),
        func.sum(answered_),
        func.sum(seconds),
        func.coalesce(func.sum(revenue), literal(0)),
    ).group_by(tenant, day, currency, prefix, destination)


def rebuild() -> int:
    """Replace every rollup row by a recount from the calls (one transaction); the rows written."""
    dialect = db.session.get_bind().dialect.name
    table = CallRollup.__table__
    db.session.execute(delete(table))
    db.session.execute(table.insert().from_select([*KEY, *COUNTERS], recount_query(dialect)))
    written = db.session.scalar(select(func.count()).select_from(table))
    db.session.commit()
    return written
