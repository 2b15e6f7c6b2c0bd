"""Hang-ups of calls the portal never recorded: stored, rated and billed once, for review."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from portal.calls import statements
from portal.calls.checks import (
    AUTHENTICATION_FAIL,
    ORIGINATION_RATE_NOT_FOUND,
    callers,
    chain_ids,
    dialled_rate,
    find_account,
)
from portal.calls.service import end_call
from portal.calls.trunks import find_trunk_account, trunk_caller
from portal.calls.writers import one_writer
from portal.extensions import db
from portal.models import Account, Call, CallCharge, CallStatus, utcnow
from portal.rules.addresses import source_key
from portal.rules.rating import RateRow
from portal.rules.translation import parse_rules, translate
from portal.tariffs.service import prefix_binds
from portal.transactions import transaction

# The channel a recorded call holds until its end_call() gives it back (statements.RELEASE).
_OCCUPY = (
    update(Account)
    .where(Account.id == bindparam("account_id"))
    .values(live_calls=Account.live_calls + 1, updated_at=Account.updated_at)
    .execution_options(synchronize_session=False)
)


@dataclass(frozen=True)
class Caller:
    """Who made the call: exactly one of an account number, a SIP username, a source address."""

    account_number: str | None = None
    sip_username: str | None = None
    source_ip: str | None = None


@dataclass
class _Rating:
    """What authorization would have found for the call, without refusing it."""

    account: Row | None
    translated: str
    rate: RateRow | None
    levels: list[tuple[int, int, RateRow]]  # (account id, level, rate) of each reseller above
    reason: str


def end_unrecorded(
    owner,
    call_id: str,
    destination: str,
    caller: Caller,
    duration_seconds: int,
    cause: str,
    refused: int | None = None,
) -> Call | None:
    """Store and rate a call the portal has no row of, then end it once; None if not ours."""
    # refused: the id of the call's refusal, when the switch connected it all the same (it
    # reports an answered call): replaced by the call, in the same transaction.
    # The call happened, so nothing is refused: an inactive, deleted or penniless account is
    # billed at the rate authorization would have used, for its whole duration (nothing was
    # reserved, so nothing caps it). A caller outside the key owner's accounts is stored
    # without an account (never billed to another tenant), for staff to review.
    rating = _rate(db.session.connection(), owner, destination, caller)
    try:
        _store(call_id, destination, caller, duration_seconds, cause, rating, refused)
    except IntegrityError:
        # The call id is UNIQUE: a repeated or concurrent end (or its authorization, late)
        # recorded it first; it is ended below as any recorded call, once.
        db.session.rollback()
    call = db.session.scalar(select(Call).where(Call.call_id == call_id))
    if call is None:
        return None
    if call.account_id is not None:
        visible = callers(owner).with_only_columns(Account.id).where(Account.id == call.account_id)
        if db.session.scalar(visible) is None:
            return None  # another tenant's call: not found, as /end says of it
    if call.status == CallStatus.LIVE:
        end_call(call, duration_seconds, cause)
    return call


def _rate(connection: Connection, owner, destination: str, caller: Caller) -> _Rating:
    """The caller's account, translated number, rate and reseller levels (reads only)."""
    dialled = destination
    if caller.source_ip is not None:
        source = source_key(caller.source_ip) or "-"  # "-": no trunk holds it
        account = find_trunk_account(connection, owner, source, destination)
        account, dialled = trunk_caller(connection, owner, account, destination)
    else:
        account = find_account(
            connection, owner, caller.account_number, caller.sip_username, destination
        )
    if account is None:
        return _Rating(None, destination, None, [], AUTHENTICATION_FAIL)
    translated = translate(dialled, parse_rules(account.number_translation))
    rate = None
    if account.group_id is not None:
        if translated == dialled:
            rate = dialled_rate(account)
        else:
            binds = {"group_id": account.group_id, **prefix_binds(translated)}
            rate = statements.RATE.first(connection, binds)
    levels = []
    if account.tenant_path:
        ids = chain_ids(account.tenant_path)
        binds = prefix_binds(translated)
        binds.update({f"level_{n}": account_id for n, account_id in enumerate(ids, start=1)})
        found = {row.id: row for row in statements.chain_query(len(ids)).all(connection, binds)}
        for level, reseller_id in enumerate(ids, start=1):
            reseller = found.get(reseller_id)
            # A reseller without a rate for the number has no price to pay its parent.
            level_rate = dialled_rate(reseller) if reseller is not None else None
            if level_rate is not None and reseller.group_id is not None:
                levels.append((reseller_id, level, level_rate))
    reason = "" if rate is not None else ORIGINATION_RATE_NOT_FOUND
    return _Rating(account, translated, rate, levels, reason)


def _store(
    call_id: str,
    destination: str,
    caller: Caller,
    duration_seconds: int,
    cause: str,
    rating: _Rating,
    refused: int | None = None,
) -> None:
    """Insert the call, flagged; live (holding a channel, nothing reserved) if it has a payer."""
    # Live first, then end_call(): one rating path for every call. The channel it holds is the
    # one end_call() gives back; if the process dies in between, the reaper ends it, billed
    # for the same duration (its max_duration). Without an account it is stored ended.
    now = utcnow()
    rate = rating.rate
    call = Call(
        call_id=call_id,
        account_id=rating.account.id if rating.account is not None else None,
        sip_username=caller.sip_username or "",
        source_ip=caller.source_ip or "",
        destination=destination,
        translated_destination=rating.translated,
        cause=rating.reason,
        started_at=now - timedelta(seconds=duration_seconds),
        max_duration_seconds=duration_seconds,
        reserved=Decimal(0),
        unauthorized=True,
    )
    if rate is not None:
        call.rate_prefix = rate.prefix
        call.rate_destination = rate.destination
        call.connect_cost = rate.connect_cost
        call.cost_per_minute = rate.cost_per_minute
        call.initial_increment = rate.initial_increment
        call.increment = rate.increment
    if rating.account is None:
        call.status = CallStatus.ENDED
        call.ended_at = now
        call.duration_seconds = duration_seconds
        call.hangup_cause = cause[:40]
    else:
        call.status = CallStatus.LIVE
    with one_writer() as writer, transaction():
        writer.acquire()
        if refused is not None:
            # Of concurrent ends, each deletes it (or finds it gone): the INSERT decides.
            db.session.execute(
                delete(Call)
                .where(Call.id == refused, Call.status == CallStatus.REFUSED)
                .execution_options(synchronize_session=False)
            )
        db.session.add(call)
        db.session.flush()  # a taken call id fails here, before any account is locked
        if rating.account is None:
            return
        # Bottom-up, the caller first: the order authorizations and hang-ups lock them in.
        db.session.execute(_OCCUPY, {"account_id": rating.account.id})
        for account_id, level, level_rate in rating.levels:
            db.session.add(
                CallCharge(
                    call_id=call.id,
                    account_id=account_id,
                    level=level,
                    rate_prefix=level_rate.prefix,
                    connect_cost=level_rate.connect_cost,
                    cost_per_minute=level_rate.cost_per_minute,
                    initial_increment=level_rate.initial_increment,
                    increment=level_rate.increment,
                    reserved=Decimal(0),
                )
            )
            db.session.execute(_OCCUPY, {"account_id": account_id})
