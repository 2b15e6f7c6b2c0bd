"""The checks of a call authorization, in the order of domain-rules.md, with their figures."""

from dataclasses import dataclass, field
from decimal import Decimal

from flask import current_app
from sqlalchemy import Connection, Row, Select, select

from portal.calls import bundles, statements
from portal.calls.access import check_blocked
from portal.models import Account, AccountType, Status, available_funds, is_expired
from portal.rules.bundles import bundled_duration
from portal.rules.calls import charged_cost, max_duration, minimum_to_call
from portal.rules.rating import RateRow
from portal.rules.translation import parse_rules, translate
from portal.tariffs.service import prefix_binds

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
    needed: Decimal = Decimal(0)  # funds needed to start the call
    # A prepaid call's percentage tax rates: its debit, and so its reservation, carries them.
    tax_rates: tuple[Decimal, ...] = ()
    key_last_used: object = None  # when the API key was last used, as read with the account
    # The resellers up the caller's chain, its own reseller first: each reserves its own cost.
    levels: list["Level"] = field(default_factory=list)
    refused_by: dict | None = None  # the account whose check refused (explain only)
    # The caller's free-minute bundle the call draws on first (portal.calls.bundles), or None.
    bundle: "bundles.BundleDraw | None" = None

    def check(self, name: str, passed: bool, cause: str, figures: dict | bool = False) -> bool:
        """Record a check (with its figures when explaining); the first failure sets the cause."""
        if figures:  # False when not explaining
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
            if self.refused_by is not None:
                body["refused_by"] = self.refused_by
        return body


@dataclass
class Level:
    """A reseller above the caller that passed its checks: its share of the call."""

    account_id: int
    level: int  # 1: the caller's own reseller, 2: that reseller's parent, ...
    currency: str
    rate_row: RateRow
    needed: Decimal
    tax_rates: tuple[Decimal, ...]


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
    connection: Connection,
    owner,
    account_number: str | None,
    sip_username: str | None,
    destination: str,
    key_id: int | None = None,
) -> Row | None:
    """The caller's account with its group and its rate for `destination` as dialled."""
    # By number, or by an active SIP device. With key_id, the key's state comes in the same
    # row (portal.calls.statements.account_query), its account columns NULL if none matched.
    query = statements.account_query(owner.role, sip_username is not None, key_id is not None)
    binds = statements.caller_binds(owner)
    binds.update(prefix_binds(destination))
    if key_id is not None:
        binds["key_id"] = key_id
    if sip_username is not None:
        binds["sip_username"] = sip_username
    else:
        binds["account_number"] = account_number
    return query.first(connection, binds)


def dialled_rate(account: Row) -> RateRow | None:
    """The rate found with the account for the number as dialled, or None."""
    if account.rate_prefix is None:
        return None
    return RateRow(
        account.rate_prefix,
        account.rate_destination,
        account.rate_connect_cost,
        account.rate_cost_per_minute,
        account.rate_initial_increment,
        account.rate_increment,
    )


def decide(
    connection: Connection,
    account: Row | None,
    destination: str,
    decision: Decision,
    explain=False,
) -> None:
    """Run the checks of domain-rules.md in order and fill `decision` (reads only)."""
    # Without explain the first failure ends the checks; with it, every check that can still
    # be evaluated runs too, for its figures. The answer itself only follows the checks up to
    # the first failure, so explain never changes it. The figures are only worked out
    # (`explain and {...}`) when they are shown: the softswitch's answer never carries them.
    if not decision.check(
        "authentication",
        account is not None,
        AUTHENTICATION_FAIL,
        explain and {"account": account.account_number if account else None},
    ):
        return
    # An inactive (or deleted) reseller above the account stops its whole subtree: decide_all
    # runs this check at every level and names the reseller that refused.
    decision.check(
        "account_active",
        account.status == Status.ACTIVE and account.deleted_at is None,
        ACCOUNT_INACTIVE_DELETED,
        explain and {"status": account.status.value, "deleted": account.deleted_at is not None},
    )
    expiry = account.expiry_date
    decision.check(
        "not_expired",
        not is_expired(expiry),
        ACCOUNT_EXPIRE,
        explain and {"expiry_date": expiry.isoformat() if expiry else None},
    )
    if decision.cause and not explain:
        return
    decision.check(
        "rate_group",
        account.group_id is not None and account.group_status == Status.ACTIVE,
        ORIGINATION_RATE_NOT_FOUND,
        explain and {"rate_group": account.group_name},
    )
    rate = None
    if account.group_id is not None and (explain or not decision.cause):
        translated = translate(destination, parse_rules(account.number_translation))
        if translated == destination:
            rate = dialled_rate(account)
        else:  # Number Translation changed the number: its own look-up
            binds = {"group_id": account.group_id, **prefix_binds(translated)}
            rate = statements.RATE.first(connection, binds)
        if not decision.cause:
            decision.translated_destination = translated
        shown = rate_dict(rate) if rate is not None else None
        decision.check(
            "rate",
            rate is not None,
            ORIGINATION_RATE_NOT_FOUND,
            explain and {"translated_destination": translated, "rate": shown},
        )
        if rate is not None and not decision.cause:
            decision.rate, decision.rate_row = shown, rate
    if explain or not decision.cause:
        check_blocked(connection, account, destination, decision, explain)
    if decision.cause and not explain:
        return
    draw = None if rate is None else _bundle(connection, account, translated, decision, explain)
    free = draw.available if draw is not None else 0
    # The counters and funds as read: RESERVE re-checks them on the row when it writes.
    live_calls, reserved = account.live_calls, account.reserved
    funds = available_funds(account.account_type, account.balance, account.credit_limit)
    usable = funds - reserved
    # Postpaid usage is taxed on the invoice; a prepaid call's debit carries its taxes.
    tax_rates = account.tax_rates if account.account_type == AccountType.PREPAID else ()
    decision.tax_rates = tax_rates
    if rate is not None:
        needed = minimum_to_call(rate, account.currency, tax_rates)
        decision.needed = needed
        # A call the bundle covers needs no funds to start: its first seconds cost nothing.
        decision.check(
            "funds",
            usable >= needed or free > 0,
            NO_SUFFICIENT_FUND,
            explain
            and {
                "available_funds": str(funds),
                "reserved_by_live_calls": str(reserved),
                "usable": str(usable),
                "needed_to_start": str(needed),
                "tax_rates_percent": [f"{percent.normalize():f}" for percent in tax_rates],
                "tax_in_needed": str(needed - charged_cost(rate, 1, account.currency)),
            },
        )
    limit = account.max_channels
    decision.check(
        "channels",
        limit == 0 or live_calls < limit,
        CHANNEL_LIMIT,
        explain and {"live_calls": live_calls, "max_channels": limit},
    )
    if decision.cause:
        return
    decision.allowed = True
    cap = current_app.config["CALL_RESERVE_SECONDS"]
    if free > 0:
        free, paid = bundled_duration(rate, usable, cap, free, account.currency, tax_rates)
        decision.max_duration_seconds = free + paid
        draw.usable = usable
        draw.figures["reserved_for_call"] = free
        decision.bundle = draw
        return
    decision.max_duration_seconds = max_duration(rate, usable, cap, account.currency, tax_rates)


def _bundle(connection, account: Row, number: str, decision: Decision, explain: bool):
    """The caller's bundle covering `number` (check "bundle" when explaining), or None."""
    # Only the caller's row carries has_bundle: the resellers above pay their whole cost.
    if not getattr(account, "has_bundle", False):
        return None
    draw = bundles.find(connection, account.id, account.timezone, number)
    if draw is not None:
        decision.check("bundle", True, "", explain and bundles.explained(draw))
        if explain:
            draw.figures = decision.checks[-1]  # reserved_for_call is known at the end
    return draw


def chain_ids(tenant_path: str) -> list[int]:
    """The resellers above an account, its own reseller first ("12/34/" -> [34, 12])."""
    return [int(part) for part in reversed(tenant_path.split("/")) if part]


def decide_all(
    connection: Connection,
    account: Row | None,
    destination: str,
    decision: Decision,
    explain=False,
) -> None:
    """decide() for the caller, then for every reseller up its chain (reads only)."""
    # A customer of the admins has no chain: this is decide() and nothing more. A reseller's
    # customer is allowed only if each reseller above it passes the same checks at its own
    # rate group, funds and channels; the call may last as long as the poorest level allows.
    decide(connection, account, destination, decision, explain=explain)
    if account is None or not account.tenant_path:
        if explain and not decision.allowed:
            decision.refused_by = _named(account, 0)
        return
    if explain and decision.cause:
        decision.refused_by = _named(account, 0)
    if decision.cause and not explain:
        return
    ids = chain_ids(account.tenant_path)
    called = decision.translated_destination or translate(
        destination, parse_rules(account.number_translation)
    )
    binds = prefix_binds(called)
    binds.update({f"level_{n}": account_id for n, account_id in enumerate(ids, start=1)})
    found = {row.id: row for row in statements.chain_query(len(ids)).all(connection, binds)}
    for number, reseller_id in enumerate(ids, start=1):
        # Its own Number Translation is not applied again: it pays for the number called.
        reseller = found.get(reseller_id)
        own = Decision()
        if reseller is not None:
            reseller = reseller._replace(number_translation="")
        decide(connection, reseller, called, own, explain=explain)
        for check in own.checks:
            check.update(level=number, account=reseller.account_number if reseller else None)
        decision.checks.extend(own.checks)
        if own.cause:
            if not decision.cause:
                decision.cause = own.cause
                decision.allowed = False
                decision.max_duration_seconds = 0
                if explain:
                    decision.refused_by = _named(reseller, number, reseller_id)
            if not explain:
                return
            continue
        if decision.allowed:
            decision.levels.append(
                Level(
                    reseller.id,
                    number,
                    reseller.currency,
                    own.rate_row,
                    own.needed,
                    own.tax_rates,
                )
            )
            decision.max_duration_seconds = min(
                decision.max_duration_seconds, own.max_duration_seconds
            )
    if not decision.allowed:
        decision.levels = []


def _named(account: Row | None, level: int, account_id: int | None = None) -> dict:
    """Who refused a call, for ?explain=1."""
    return {
        "level": level,
        "account": account.account_number if account is not None else None,
        "account_id": account.id if account is not None else account_id,
    }
