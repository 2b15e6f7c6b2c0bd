"""The checks of a call authorization, in the order of domain-rules.md, with their figures."""

from dataclasses import dataclass, field
from decimal import Decimal

from flask import current_app
from sqlalchemy import Select, func, select, update

from portal.extensions import db
from portal.models import Account, Call, CallStatus, RateGroup, Role, SipDevice, Status
from portal.rules.calls import max_duration, minimum_to_call
from portal.rules.translation import parse_rules, translate
from portal.security import in_subtree
from portal.tariffs.service import lookup_rate

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


def rate_dict(rate) -> dict:
    """A rate as JSON."""
    return {
        "prefix": rate.prefix,
        "destination": rate.destination,
        "connect_cost": str(rate.connect_cost),
        "cost_per_minute": str(rate.cost_per_minute),
        "initial_increment": rate.initial_increment,
        "increment": rate.increment,
    }


def callers(owner: Account) -> Select:
    """Accounts an API key's owner may authorize calls for, soft-deleted ones included."""
    # The tenant rules of visible_accounts(), without its deleted filter: a softswitch must hear
    # ACCOUNT_INACTIVE_DELETED for a deleted account, not AUTHENTICATION_FAIL.
    query = select(Account)
    if owner.role == Role.ADMIN:
        return query
    if owner.role == Role.SUBADMIN:
        return query.where(Account.role.in_((Role.CUSTOMER, Role.RESELLER)))
    if owner.role == Role.RESELLER:
        return query.where(in_subtree(owner.subtree_path))
    return query.where(Account.id == owner.id)


def find_account(owner: Account, account_number: str | None, sip_username: str | None):
    """The caller's account by number, or by an active SIP device's username."""
    accounts = callers(owner)
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


def lock_account(account: Account) -> None:
    """Take the account's row lock (a no-op UPDATE) so its authorizations run one at a time."""
    # updated_at is set to itself too, else its onupdate would stamp every authorization.
    db.session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(balance=Account.balance, updated_at=Account.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(account)


def decide(owner, account, destination: str, decision: Decision, lock: bool) -> None:
    """Run the checks of domain-rules.md in order; fill `decision` (no writes but the lock)."""
    if not decision.check(
        "authentication",
        account is not None,
        AUTHENTICATION_FAIL,
        account=account.account_number if account else None,
    ):
        return
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
        rate=rate_dict(rate) if rate else None,
    ):
        return
    decision.rate = rate_dict(rate)
    if lock:
        # Locked only now: the checks above read settled data, and the shorter the lock is
        # held, the more authorizations per second (SQLite has one writer for the whole file).
        lock_account(account)  # also reloads the balance a concurrent call may just have moved
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
