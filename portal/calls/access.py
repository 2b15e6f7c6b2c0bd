"""Blocked prefixes and IP trunks in a call authorization: their SQL and their check."""

from sqlalchemy import Connection, Row, String, bindparam, func, select

from portal.calls.rawsql import Prepared
from portal.models import AccountBlockedPrefix, IpTrunk, RateGroupBlockedPrefix, Status
from portal.rules.translation import parse_rules, translate
from portal.tariffs.service import prefix_binds

DESTINATION_BLOCKED = "DESTINATION_BLOCKED"

account_blocks = AccountBlockedPrefix.__table__
group_blocks = RateGroupBlockedPrefix.__table__
trunks = IpTrunk.__table__

# The number's candidate prefixes, as the fixed longest-prefix rate look-up binds them.
_CANDIDATES = [bindparam(name, type_=String()) for name in prefix_binds("")]


def blocked_prefix(table, owner_column, owner):
    """The longest blocked prefix of the number (binds prefix_0 ...) for `owner`, or NULL."""
    # Every candidate is a prefix of the same number, so the greatest one is the longest; each
    # is one probe of the (owner, prefix) UNIQUE index, in the statement that reads the account.
    return (
        select(func.max(table.c.prefix))
        .where(table.c[owner_column] == owner, table.c.prefix.in_(_CANDIDATES))
        .scalar_subquery()
    )


def blocked_columns(accounts, groups) -> list:
    """The account's and its rate group's blocked prefix for the number, as two columns."""
    return [
        blocked_prefix(account_blocks, "account_id", accounts.c.id)
        .correlate(accounts)
        .label("blocked_by_account"),
        blocked_prefix(group_blocks, "rate_group_id", groups.c.id)
        .correlate(groups)
        .label("blocked_by_group"),
    ]


# The same for a number Number Translation changed: binds account_id, group_id, prefix_0 ...
BLOCKED = Prepared(
    select(
        blocked_prefix(account_blocks, "account_id", bindparam("account_id")).label(
            "blocked_by_account"
        ),
        blocked_prefix(group_blocks, "rate_group_id", bindparam("group_id")).label(
            "blocked_by_group"
        ),
    )
)


def trunk_holding(source_key):
    """The conditions that find the active trunk whose range holds the address `source_key`."""
    # Ranges never overlap (portal.access.service), so the only candidate is the range with
    # the greatest start at or below the address: one probe of the UNIQUE index on the start.
    holding = (
        select(trunks.c.id)
        .where(trunks.c.range_start <= source_key)
        .order_by(trunks.c.range_start.desc())
        .limit(1)
        .scalar_subquery()
    )
    return [
        trunks.c.id == holding,
        trunks.c.range_end >= source_key,
        trunks.c.status == Status.ACTIVE,
    ]


def check_blocked(
    connection: Connection, account: Row, destination: str, decision, explain: bool
) -> None:
    """DESTINATION_BLOCKED if the translated number starts with a blocked prefix."""
    # The account's or its rate group's; each reseller level runs it with its own (decide_all).
    translated = decision.translated_destination or translate(
        destination, parse_rules(account.number_translation)
    )
    if translated == destination:  # read with the account, for the number as dialled
        by_account, by_group = account.blocked_by_account, account.blocked_by_group
    else:
        binds = {"account_id": account.id, "group_id": account.group_id, **prefix_binds(translated)}
        by_account, by_group = BLOCKED.first(connection, binds)
    blocked = by_account or by_group
    decision.check(
        "destination_allowed",
        blocked is None,
        DESTINATION_BLOCKED,
        explain
        and {
            "translated_destination": translated,
            "blocked_prefix": blocked,
            "blocked_by": "account" if by_account else ("rate group" if by_group else None),
        },
    )
