"""Add and remove blocked prefixes (of accounts and rate groups) and IP trunks, audited."""

import re

from sqlalchemy import select

from portal import audit
from portal.access.locking import trunk_ranges_locked
from portal.extensions import db
from portal.models import (
    Account,
    AccountBlockedPrefix,
    IpTrunk,
    RateGroup,
    RateGroupBlockedPrefix,
    Status,
)
from portal.rules.addresses import network_range, parse_network
from portal.rules.rating import MAX_PREFIX_LENGTH
from portal.security import visible_accounts
from portal.transactions import ValidationFailed, transaction

PREFIX = re.compile(rf"[0-9]{{1,{MAX_PREFIX_LENGTH}}}")
TECH_PREFIX = re.compile(r"[0-9]{0,16}")
PREFIX_MESSAGE = f"Digits only, 1 to {MAX_PREFIX_LENGTH}."
DUPLICATE_PREFIX = "This prefix is already blocked."
NETWORK_MESSAGE = "An IPv4 or IPv6 address or CIDR range, such as 203.0.113.7 or 203.0.113.0/24."


def _prefix(value) -> str:
    """A blocked prefix as entered (spaces around it dropped); ValidationFailed if not digits."""
    prefix = value.strip() if isinstance(value, str) else ""
    if not PREFIX.fullmatch(prefix):
        raise ValidationFailed({"prefix": PREFIX_MESSAGE})
    return prefix


def account_blocked_prefixes(account: Account) -> list[AccountBlockedPrefix]:
    """An account's blocked prefixes, in prefix order."""
    return list(
        db.session.scalars(
            select(AccountBlockedPrefix)
            .where(AccountBlockedPrefix.account_id == account.id)
            .order_by(AccountBlockedPrefix.prefix)
        )
    )


def group_blocked_prefixes(group: RateGroup) -> list[RateGroupBlockedPrefix]:
    """A rate group's blocked prefixes, in prefix order."""
    return list(
        db.session.scalars(
            select(RateGroupBlockedPrefix)
            .where(RateGroupBlockedPrefix.rate_group_id == group.id)
            .order_by(RateGroupBlockedPrefix.prefix)
        )
    )


def block_account_prefix(actor: Account | None, account: Account, value) -> AccountBlockedPrefix:
    """Refuse the account's calls to numbers starting with a prefix (DESTINATION_BLOCKED)."""
    prefix = _prefix(value)
    taken = select(AccountBlockedPrefix.id).where(
        AccountBlockedPrefix.account_id == account.id, AccountBlockedPrefix.prefix == prefix
    )
    if db.session.scalar(taken) is not None:
        raise ValidationFailed({"prefix": DUPLICATE_PREFIX})
    with transaction([("account_blocked_prefixes", "prefix", DUPLICATE_PREFIX)]):
        blocked = AccountBlockedPrefix(account_id=account.id, prefix=prefix)
        db.session.add(blocked)
        db.session.flush()
        _audit_account(actor, "update", account, {"blocked prefix": [None, prefix]})
    return blocked


def unblock_account_prefix(actor: Account | None, blocked: AccountBlockedPrefix) -> None:
    """Allow the account's calls to a blocked prefix again."""
    with transaction():
        _audit_account(actor, "update", blocked.account, {"blocked prefix": [blocked.prefix, None]})
        db.session.delete(blocked)


def block_group_prefix(actor: Account | None, group: RateGroup, value) -> RateGroupBlockedPrefix:
    """Refuse calls of every account of a rate group to numbers starting with a prefix."""
    prefix = _prefix(value)
    taken = select(RateGroupBlockedPrefix.id).where(
        RateGroupBlockedPrefix.rate_group_id == group.id, RateGroupBlockedPrefix.prefix == prefix
    )
    if db.session.scalar(taken) is not None:
        raise ValidationFailed({"prefix": DUPLICATE_PREFIX})
    with transaction([("rate_group_blocked_prefixes", "prefix", DUPLICATE_PREFIX)]):
        blocked = RateGroupBlockedPrefix(rate_group_id=group.id, prefix=prefix)
        db.session.add(blocked)
        db.session.flush()
        audit.record(
            actor, "update", "rate_group", group, changes={"blocked prefix": [None, prefix]}
        )
    return blocked


def unblock_group_prefix(actor: Account | None, blocked: RateGroupBlockedPrefix) -> None:
    """Allow the rate group's calls to a blocked prefix again."""
    with transaction():
        audit.record(
            actor,
            "update",
            "rate_group",
            blocked.rate_group,
            changes={"blocked prefix": [blocked.prefix, None]},
        )
        db.session.delete(blocked)


def account_trunks(account: Account) -> list[IpTrunk]:
    """An account's IP trunks, in address order."""
    return list(
        db.session.scalars(
            select(IpTrunk).where(IpTrunk.account_id == account.id).order_by(IpTrunk.range_start)
        )
    )


def check_trunk(data: dict) -> tuple[dict, dict]:
    """(the trunk's column values, field errors) of an address or range and a tech prefix."""
    errors = {}
    raw = data.get("network")
    network = parse_network(raw) if isinstance(raw, str) else None
    if network is None:
        errors["network"] = NETWORK_MESSAGE
    tech_prefix = data.get("tech_prefix") or ""
    tech_prefix = tech_prefix.strip() if isinstance(tech_prefix, str) else None
    if tech_prefix is None or not TECH_PREFIX.fullmatch(tech_prefix):
        errors["tech_prefix"] = "Digits only, at most 16 (or empty)."
    if errors:
        return {}, errors
    start, end = network_range(network)
    values = {
        "network": str(network),
        "range_start": start,
        "range_end": end,
        "tech_prefix": tech_prefix,
    }
    return values, {}


def add_trunk(actor: Account | None, account: Account, data: dict) -> IpTrunk:
    """Let calls from an address or range be the account's; no address has two accounts."""
    values, errors = check_trunk(data)
    if errors:
        raise ValidationFailed(errors)
    # The overlap check and the insert under one lock: a concurrent add waits for this one.
    with trunk_ranges_locked(), transaction([("ip_trunks", "network", "Already added.")]):
        overlapping = db.session.scalar(
            select(IpTrunk)
            .where(
                IpTrunk.range_start <= values["range_end"],
                IpTrunk.range_end >= values["range_start"],
            )
            .limit(1)
        )
        if overlapping is not None:
            raise ValidationFailed({"network": _overlap_message(actor, account, overlapping)})
        trunk = IpTrunk(account_id=account.id, status=Status.ACTIVE, **values)
        db.session.add(trunk)
        db.session.flush()
        changes = {"IP trunk": [None, _trunk_text(trunk)]}
        _audit_account(actor, "update", account, changes)
    return trunk


def remove_trunk(actor: Account | None, trunk: IpTrunk) -> None:
    """Stop taking calls from an IP trunk's addresses as the account's."""
    with transaction():
        changes = {"IP trunk": [_trunk_text(trunk), None]}
        _audit_account(actor, "update", trunk.account, changes)
        db.session.delete(trunk)


def _trunk_text(trunk: IpTrunk) -> str:
    """A trunk as the audit log shows it."""
    return (
        f"{trunk.network} tech prefix {trunk.tech_prefix}" if trunk.tech_prefix else trunk.network
    )


def _overlap_message(actor: Account | None, account: Account, other: IpTrunk) -> str:
    """Which range the new one overlaps: its account only if the actor may see it."""
    if other.account_id == account.id:
        return f"Overlaps {other.network} of this account."
    if actor is not None:
        visible = db.session.scalar(visible_accounts(actor).where(Account.id == other.account_id))
        if visible is not None:
            return f"Overlaps {other.network} of account {visible.account_number}."
    return "Overlaps an address range of another account."


def _audit_account(actor: Account | None, action: str, account: Account, changes: dict) -> None:
    """An audit entry for a change of the account's calling rules."""
    audit.record(
        actor,
        action,
        account.role.value,
        account,
        label=account.account_number,
        account=account,
        changes=changes,
    )
