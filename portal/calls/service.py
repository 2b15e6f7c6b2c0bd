"""Call authorization with credit reservations, rating at hang-up, and the reaper."""

from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import mail
from portal.billing.service import Posted, check_low_balance, post
from portal.calls import statements
from portal.calls.checks import (
    Decision,
    callers,
    decide,
    find_account,
    lock_account,
    rate_dict,
)
from portal.extensions import db
from portal.models import Account, Call, CallStatus, EntryKind, utcnow
from portal.rules.calls import call_cost
from portal.transactions import ValidationFailed, transaction
from portal.writers import one_writer


class CallIdTaken(ValidationFailed):
    """The call id belongs to a call of an account the caller may not see."""


class CallEnded(ValidationFailed):
    """The call id belongs to a call that has already ended (or was reaped)."""


def authorize(
    owner,
    call_id,
    destination,
    account_number=None,
    sip_username=None,
    dry_run=False,
    explain=False,
) -> Decision:
    """Decide a call; when allowed, reserve the cost of its longest possible duration."""
    decision = Decision()
    if dry_run:
        try:
            connection = db.session.connection()
            account = find_account(connection, owner, account_number, sip_username)
            decide(connection, account, destination, decision, lock=None, explain=explain)
            return decision
        finally:
            db.session.rollback()
    # Checked out before the writer lock: waiting for the pool while holding the lock could
    # deadlock with threads that hold connections and wait for the lock.
    connection = db.session.connection()
    try:
        with one_writer() as writer, transaction():
            account = find_account(connection, owner, account_number, sip_username)
            decide(connection, account, destination, decision, lock=writer, explain=explain)
            writer.acquire()  # a refusal writes too (decide took it if it locked the account)
            _record(connection, call_id, account, sip_username, destination, decision)
    except IntegrityError:
        # The call id's UNIQUE constraint: a retried (or concurrent) request for a call already
        # decided gets the stored answer and changes nothing. No look-up first: retries are rare.
        existing = _existing(owner, call_id)
        if existing is None:
            raise
        if existing.status in (CallStatus.ENDED, CallStatus.REAPED):
            raise CallEnded({"call_id": "This call has already ended."}) from None
        return _replay(existing)
    return decision


def _existing(owner, call_id: str) -> Call | None:
    """The call already recorded under `call_id`, or None; CallIdTaken if another tenant's."""
    call = db.session.scalar(select(Call).where(Call.call_id == call_id))
    if call is None or call.account_id is None:
        return call
    visible = db.session.scalar(
        callers(owner).with_only_columns(Account.id).where(Account.id == call.account_id)
    )
    if visible is None:
        raise CallIdTaken({"call_id": "This call id is already taken."})
    return call


def _record(connection, call_id, account, sip_username, destination, decision: Decision) -> None:
    """Insert the call row of a decision: a live call holding its reservation, or a refusal."""
    values = {
        "call_id": call_id,
        "account_id": account.id if account else None,
        "sip_username": sip_username or "",
        "destination": destination,
        "translated_destination": decision.translated_destination,
        "status": CallStatus.LIVE if decision.allowed else CallStatus.REFUSED,
        "cause": decision.cause,
        "started_at": utcnow(),
    }
    rate = decision.rate_row
    if rate is not None:  # kept with refusals too, so a retry replays the same answer
        values.update(
            rate_prefix=rate.prefix,
            rate_destination=rate.destination,
            connect_cost=rate.connect_cost,
            cost_per_minute=rate.cost_per_minute,
            initial_increment=rate.initial_increment,
            increment=rate.increment,
        )
    if decision.allowed:
        values.update(
            max_duration_seconds=decision.max_duration_seconds,
            reserved=call_cost(rate, decision.max_duration_seconds),
        )
        if account.first_used is None:
            connection.execute(
                statements.FIRST_USED, {"account_id": account.id, "now": values["started_at"]}
            )
    connection.execute(statements.INSERT_CALL, values)


def _replay(call: Call) -> Decision:
    """The decision stored with a call."""
    decision = Decision(
        allowed=call.status != CallStatus.REFUSED,
        cause=call.cause,
        translated_destination=call.translated_destination,
        max_duration_seconds=call.max_duration_seconds,
    )
    if call.rate_prefix is not None:
        decision.rate = rate_dict(_CallRate(call))
    return decision


class _CallRate:
    """The rate a call was authorized with, as stored on the call."""

    def __init__(self, call: Call):
        self.prefix = call.rate_prefix
        self.destination = call.rate_destination
        self.connect_cost = call.connect_cost
        self.cost_per_minute = call.cost_per_minute
        self.initial_increment = call.initial_increment
        self.increment = call.increment


def end_call(
    call: Call, duration_seconds: int, hangup_cause: str, status=CallStatus.ENDED
) -> Posted:
    """Rate a live call, post its one usage entry and free its reservation; again: no change."""
    posted = Posted()
    if call.status != CallStatus.LIVE:
        return posted
    with transaction():
        account = db.session.get(Account, call.account_id)
        lock_account(account)
        db.session.refresh(call)
        if call.status != CallStatus.LIVE:  # ended by a concurrent request meanwhile
            return posted
        # The softswitch cuts the call at max_duration; never bill past what was reserved.
        seconds = max(0, min(duration_seconds, call.max_duration_seconds))
        cost = call_cost(_CallRate(call), seconds)
        if cost > 0:
            posted.entries.append(
                post(
                    account,
                    EntryKind.USAGE,
                    cost,
                    f"Call to {call.translated_destination} ({seconds} s)",
                )
            )
        call.status = status
        call.ended_at = utcnow()
        call.duration_seconds = seconds
        call.hangup_cause = hangup_cause[:40]
        call.cost = cost
        call.reserved = Decimal(0)
        check_low_balance(account, posted)
    mail.deliver_now(posted.mail)
    return posted


def reap(now=None, grace_seconds: int | None = None) -> int:
    """Close live calls older than their max duration plus a grace, billed for the max duration."""
    now = now or utcnow()
    grace = timedelta(
        seconds=grace_seconds
        if grace_seconds is not None
        else current_app.config["CALL_REAP_GRACE_SECONDS"]
    )
    reaped = 0
    stale = list(
        db.session.scalars(
            select(Call).where(Call.status == CallStatus.LIVE).order_by(Call.id).limit(10000)
        )
    )
    for call in stale:
        if call.started_at + timedelta(seconds=call.max_duration_seconds) + grace < now:
            end_call(call, call.max_duration_seconds, "REAPED", CallStatus.REAPED)
            reaped += 1
    return reaped
