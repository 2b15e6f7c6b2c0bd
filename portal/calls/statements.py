"""The SQL of the authorization hot path: Core statements built once, only the needed columns."""

import functools

from sqlalchemy import Select, and_, bindparam, func, insert, select, true, update

from portal.models import Account, Call, CallStatus, Rate, RateGroup, Role, SipDevice, Status
from portal.tariffs.service import longest_prefix

# Plain tables, not ORM entities: an authorization runs several times a second per channel,
# and ORM objects (identity map, refresh, flush) cost several times the SQL itself.
accounts = Account.__table__
groups = RateGroup.__table__
rates = Rate.__table__
devices = SipDevice.__table__
calls = Call.__table__


def caller_condition(role: Role):
    """Accounts an API key's owner of `role` may authorize calls for, soft-deleted included."""
    # Binds: owner_id, subtree_low, subtree_high (caller_binds). The tenant rules of
    # visible_accounts() without its deleted filter: a softswitch must hear
    # ACCOUNT_INACTIVE_DELETED for a deleted account, not AUTHENTICATION_FAIL.
    if role == Role.ADMIN:
        return true()
    if role == Role.SUBADMIN:
        return accounts.c.role.in_((Role.CUSTOMER, Role.RESELLER))
    if role == Role.RESELLER:
        # The indexed range of portal.security.in_subtree().
        return and_(
            accounts.c.tenant_path >= bindparam("subtree_low"),
            accounts.c.tenant_path < bindparam("subtree_high"),
        )
    return accounts.c.id == bindparam("owner_id")


def caller_binds(owner) -> dict:
    """The values caller_condition() binds, for `owner` (an Account or a KeyOwner)."""
    if owner.role == Role.RESELLER:
        path = owner.subtree_path
        return {"subtree_low": path, "subtree_high": path[:-1] + "0"}
    if owner.role == Role.CUSTOMER:
        return {"owner_id": owner.id}
    return {}


@functools.cache
def account_query(role: Role, by_sip_username: bool) -> Select:
    """The caller's account with its rate group, by number or by an active SIP device."""
    joined = accounts.outerjoin(groups, groups.c.id == accounts.c.rate_group_id)
    query = select(
        accounts.c.id,
        accounts.c.account_number,
        accounts.c.status,
        accounts.c.deleted_at,
        accounts.c.expiry_date,
        accounts.c.number_translation,
        accounts.c.max_channels,
        accounts.c.first_used,
        accounts.c.account_type,
        accounts.c.balance,
        accounts.c.credit_limit,
        groups.c.id.label("group_id"),
        groups.c.name.label("group_name"),
        groups.c.status.label("group_status"),
    )
    if by_sip_username:
        query = query.select_from(
            joined.join(devices, devices.c.account_id == accounts.c.id)
        ).where(devices.c.username == bindparam("sip_username"), devices.c.status == Status.ACTIVE)
    else:
        query = query.select_from(joined).where(
            accounts.c.account_number == bindparam("account_number")
        )
    return query.where(caller_condition(role))


# The longest-prefix rate, as columns: binds group_id, prefixes.
RATE = longest_prefix(
    rates.c.prefix,
    rates.c.destination,
    rates.c.connect_cost,
    rates.c.cost_per_minute,
    rates.c.initial_increment,
    rates.c.increment,
)

# The account's row lock (a no-op UPDATE) that reads the funds as they are once it is held:
# on PostgreSQL a waiting UPDATE re-reads the row a concurrent authorization just committed.
# updated_at is set to itself, else its onupdate would stamp every authorization.
LOCK = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(balance=accounts.c.balance, updated_at=accounts.c.updated_at)
    .returning(accounts.c.account_type, accounts.c.balance, accounts.c.credit_limit)
)

# (live calls, their reserved credit): a statement of its own, run after LOCK.
LIVE_USAGE = select(func.count(), func.coalesce(func.sum(calls.c.reserved), 0)).where(
    calls.c.account_id == bindparam("account_id"), calls.c.status == CallStatus.LIVE
)

INSERT_CALL = insert(calls)

FIRST_USED = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"), accounts.c.first_used.is_(None))
    .values(first_used=bindparam("now"))
)
