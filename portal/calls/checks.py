"""The checks of a call authorization, in the order of domain-rules.md, with their figures."""

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Connection, Row, Select, select, update

from portal.calls import statements
from portal.extensions import db
from portal.models import Account, Status, available_funds, is_expired
from portal.rules.calls import max_duration, minimum_to_call
from portal.rules.rating import candidate_prefixes
from portal.rules.translation import parse_rules, translate
from portal.writers import Writer

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
    rate_row: object = None

    def check(self, name: str, passed: bool, cause: str, **figures) -> bool:
        """Record a check; the first failing one sets the cause."""
        self.checks.append({"check": name, "passed": passed, **figures})
        if not passed and not self.cause:
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


def callers(owner) -> Select:
    """Accounts an API key's owner may authorize calls for, soft-deleted ones included."""
    return (
        select(Account)
        .where(statements.caller_condition(owner.role))
        .params(statements.caller_binds(owner))
    )


def find_account(
    connection: Connection, owner, account_number: str | None, sip_username: str | None
) -> Row | None:
    """The caller's account (with its rate group) by number, or by an active SIP device."""
    query = statements.account_query(owner.role, sip_username is not None)
    binds = statements.caller_binds(owner)
    if sip_username is not None:
        binds["sip_username"] = sip_username
    else:
        binds["account_number"] = account_number
    return connection.execute(query, binds).first()


def lock_account(account: Account) -> None:
    """Take the account's row lock (a no-op UPDATE) so its changes run one at a time."""
    # updated_at is set to itself too, else its onupdate would stamp every authorization.
    db.session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(balance=Account.balance, updated_at=Account.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(account)


def decide(
    connection: Connection,
    account: Row | None,
    destination: str,
    decision: Decision,
    lock: Writer | None,
    explain=False,
) -> None:
    """Run the checks of domain-rules.md in order and fill `decision` (no writes but the lock)."""
    # lock: None for a dry run (nothing locked or written), else the Writer to become first.
    # Without explain the first failure ends the checks; with it, every check that can still
    # be evaluated runs too, for its figures. The answer itself only follows the checks up to
    # the first failure, so explain never changes it.
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
    )
    decision.check(
        "not_expired",
        not is_expired(account.expiry_date),
        ACCOUNT_EXPIRE,
        expiry_date=account.expiry_date.isoformat() if account.expiry_date else None,
    )
    if decision.cause and not explain:
        return
    decision.check(
        "rate_group",
        account.group_id is not None and account.group_status == Status.ACTIVE,
        ORIGINATION_RATE_NOT_FOUND,
        rate_group=account.group_name,
    )
    rate = None
    if account.group_id is not None and (explain or not decision.cause):
        translated = translate(destination, parse_rules(account.number_translation))
        rate = connection.execute(
            statements.RATE,
            {"group_id": account.group_id, "prefixes": candidate_prefixes(translated)},
        ).first()
        if not decision.cause:
            decision.translated_destination = translated
        decision.check(
            "rate",
            rate is not None,
            ORIGINATION_RATE_NOT_FOUND,
            translated_destination=translated,
            rate=rate_dict(rate) if rate else None,
        )
        if rate is not None and not decision.cause:
            decision.rate, decision.rate_row = rate_dict(rate), rate
    if decision.cause and not explain:
        return
    funds_row = account
    if lock is not None:
        # Locked only now: the checks above read settled data, and the shorter the locks are
        # held, the more authorizations per second. The funds come back from the UPDATE as
        # they are once the lock is held; the live calls are read after it, in a new
        # statement, so on READ COMMITTED they include every call committed before.
        lock.acquire()
        funds_row = connection.execute(statements.LOCK, {"account_id": account.id}).one()
    live_calls, reserved = connection.execute(
        statements.LIVE_USAGE, {"account_id": account.id}
    ).one()
    funds = available_funds(funds_row.account_type, funds_row.balance, funds_row.credit_limit)
    usable = funds - reserved
    if rate is not None:
        needed = minimum_to_call(rate)
        decision.check(
            "funds",
            usable >= needed,
            NO_SUFFICIENT_FUND,
            available_funds=str(funds),
            reserved_by_live_calls=str(reserved),
            usable=str(usable),
            needed_to_start=str(needed),
        )
    limit = account.max_channels
    decision.check(
        "channels",
        limit == 0 or live_calls < limit,
        CHANNEL_LIMIT,
        live_calls=live_calls,
        max_channels=limit,
    )
    if decision.cause:
        return
    decision.allowed = True
    cap = current_app.config["CALL_RESERVE_SECONDS"]
    decision.max_duration_seconds = max_duration(rate, usable, cap)
