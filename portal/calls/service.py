"""Call authorization with credit reservations, rating at hang-up, and the reaper."""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select, update

from portal import mail
from portal.billing.service import Posted, check_low_balance, post
from portal.extensions import db
from portal.models import Account, Call, CallStatus, EntryKind, RateGroup, SipDevice, Status, utcnow
from portal.rules.calls import call_cost, max_duration, minimum_to_call
from portal.rules.translation import parse_rules, translate
from portal.security import visible_accounts
from portal.tariffs.service import lookup_rate
from portal.transactions import transaction

AUTHENTICATION_FAIL = "AUTHENTICATION_FAIL"
ACCOUNT_INACTIVE_DELETED = "ACCOUNT_INACTIVE_DELETED"
ACCOUNT_EXPIRE = "ACCOUNT_EXPIRE"
ORIGINATION_RATE_NOT_FOUND = "ORIGINATION_RATE_NOT_FOUND"
NO_SUFFICIENT_FUND = "NO_SUFFICIENT_FUND"
CHANNEL_LIMIT = "CHANNEL_LIMIT"


@dataclass
class Decision:
    """The answer to one authorization, with every check for ?explain=1."""

    allowed: bool = False
    cause: str = ""
    translated_destination: str = ""
    rate: dict | None = None
    max_duration_seconds: int = 0
    checks: list[dict] = field(default_factory=list)
    call: Call | None = None
    rate_row: object = None

    def check(self, name: str, passed: bool, cause: str, **figures) -> bool:
        """Record a check; a failing one sets the cause."""
        self.checks.append({"check": name, "passed": passed, **figures})
        if not passed:
            self.cause = cause
        return passed

    def answer(self, explain: bool) -> dict:
        """The JSON the softswitch gets."""
        body = {
            "allowed": self.allowed,
            "cause": self.cause or "OK",
            "translated_destination": self.translated_destination,
            "rate": self.rate,
            "max_duration_seconds": self.max_duration_seconds,
        }
        if explain:
            body["checks"] = self.checks
        return body


def _rate_dict(rate) -> dict:
    """A rate as JSON."""
    return {
        "prefix": rate.prefix,
        "destination": rate.destination,
        "connect_cost": str(rate.connect_cost),
        "cost_per_minute": str(rate.cost_per_minute),
        "initial_increment": rate.initial_increment,
        "increment": rate.increment,
    }


def _find_account(owner: Account, account_number: str | None, sip_username: str | None):
    """The caller's account by number, or by an active SIP device's username."""
    accounts = visible_accounts(owner)
    if sip_username:
        device = db.session.scalar(
            select(SipDevice).where(
                SipDevice.username == sip_username,
                SipDevice.status == Status.ACTIVE,
                SipDevice.account_id.in_(accounts.with_only_columns(Account.id)),
            )
        )
        return db.session.get(Account, device.account_id) if device else None
    return db.session.scalar(accounts.where(Account.account_number == account_number))


def live_usage(account_id: int) -> tuple[int, Decimal]:
    """(live calls, their reserved credit) of an account."""
    count, reserved = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Call.reserved), 0)).where(
            Call.account_id == account_id, Call.status == CallStatus.LIVE
        )
    ).one()
    return count, Decimal(reserved)


def _lock(account: Account) -> None:
    """Take the account's row lock (a no-op UPDATE) so its authorizations run one at a time."""
    db.session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(balance=Account.balance)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(account)


def decide(owner, account, destination: str, decision: Decision, lock: bool) -> None:
    """Run the checks of domain-rules.md in order; fill `decision` (no writes but the lock)."""
    if not decision.check("authentication", account is not None, AUTHENTICATION_FAIL):
        return
    if lock:
        _lock(account)
    decision.check(
        "account_active",
        account.status == Status.ACTIVE and account.deleted_at is None,
        ACCOUNT_INACTIVE_DELETED,
        status=account.status.value,
        deleted=account.deleted_at is not None,
    ) and decision.check(
        "not_expired",
        not account.is_expired,
        ACCOUNT_EXPIRE,
        expiry_date=account.expiry_date.isoformat() if account.expiry_date else None,
    )
    if decision.cause:
        return
    group = db.session.get(RateGroup, account.rate_group_id) if account.rate_group_id else None
    if not decision.check(
        "rate_group",
        group is not None and group.status == Status.ACTIVE,
        ORIGINATION_RATE_NOT_FOUND,
        rate_group=group.name if group else None,
    ):
        return
    translated = translate(destination, parse_rules(account.number_translation))
    decision.translated_destination = translated
    rate = lookup_rate(group.id, translated)
    if not decision.check(
        "rate",
        rate is not None,
        ORIGINATION_RATE_NOT_FOUND,
        translated_destination=translated,
        rate=_rate_dict(rate) if rate else None,
    ):
        return
    decision.rate = _rate_dict(rate)
    live_calls, reserved = live_usage(account.id)
    funds = account.available_funds - reserved
    needed = minimum_to_call(rate)
    if not decision.check(
        "funds",
        funds >= needed,
        NO_SUFFICIENT_FUND,
        available_funds=str(account.available_funds),
        reserved_by_live_calls=str(reserved),
        usable=str(funds),
        needed_to_start=str(needed),
    ):
        return
    limit = account.max_channels
    if not decision.check(
        "channels",
        limit == 0 or live_calls < limit,
        CHANNEL_LIMIT,
        live_calls=live_calls,
        max_channels=limit,
    ):
        return
    decision.allowed = True
    cap = current_app.config["CALL_RESERVE_SECONDS"]
    decision.max_duration_seconds = max_duration(rate, funds, cap)
    decision.rate_row = rate


def authorize(
    owner, call_id, destination, account_number=None, sip_username=None, dry_run=False
) -> Decision:
    """Decide a call; when allowed, reserve the cost of its longest possible duration."""
    existing = db.session.scalar(select(Call).where(Call.call_id == call_id))
    if existing is not None and not dry_run:
        return _replay(existing)  # a retried request gets the same answer and changes nothing
    decision = Decision()
    with transaction([("call_id", "call_id", "This call id was already authorized.")]):
        account = _find_account(owner, account_number, sip_username)
        decide(owner, account, destination, decision, lock=not dry_run)
        if dry_run:
            db.session.rollback()
            return decision
        call = Call(
            call_id=call_id,
            account_id=account.id if account else None,
            sip_username=sip_username or "",
            destination=destination,
            translated_destination=decision.translated_destination,
            status=CallStatus.LIVE if decision.allowed else CallStatus.REFUSED,
            cause=decision.cause,
        )
        if decision.allowed:
            rate = decision.rate_row
            call.rate_prefix = rate.prefix
            call.rate_destination = rate.destination
            call.connect_cost = rate.connect_cost
            call.cost_per_minute = rate.cost_per_minute
            call.initial_increment = rate.initial_increment
            call.increment = rate.increment
            call.max_duration_seconds = decision.max_duration_seconds
            call.reserved = call_cost(rate, decision.max_duration_seconds)
            if account.first_used is None:
                account.first_used = utcnow()
        db.session.add(call)
        decision.call = call
    return decision


def _replay(call: Call) -> Decision:
    """The decision stored with a call."""
    decision = Decision(
        allowed=call.status != CallStatus.REFUSED,
        cause=call.cause,
        translated_destination=call.translated_destination,
        max_duration_seconds=call.max_duration_seconds,
        call=call,
    )
    if call.rate_prefix is not None:
        decision.rate = _rate_dict(_CallRate(call))
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
        _lock(account)
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
