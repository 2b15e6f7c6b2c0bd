"""The SQL of the authorization hot path: Core statements built once, only the needed columns."""

import functools

from sqlalchemy import (
    DateTime,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from portal.calls.access import blocked_columns, trunk_holding, trunks
from portal.models import (
    Account,
    AccountType,
    Call,
    CallCharge,
    Product,
    Rate,
    RateGroup,
    Role,
    SipDevice,
    Status,
    Subscription,
    Tax,
    account_taxes,
)
from portal.models.account import Money, MoneyList
from portal.rawsql import Prepared
from portal.tariffs.service import longest_prefix

# Plain tables, not ORM entities: an authorization runs several times a second per channel,
# and ORM objects (identity map, refresh, flush) cost several times the SQL itself.
accounts = Account.__table__
groups = RateGroup.__table__
rates = Rate.__table__
devices = SipDevice.__table__
calls = Call.__table__
charges = CallCharge.__table__
taxes = Tax.__table__


def caller_condition(role: Role):
    """Accounts an API key's owner of `role` may authorize calls for, soft-deleted included."""
    # Binds: owner_id, subtree_low, subtree_high (caller_binds). The tenant rules of
    # visible_accounts() without its deleted filter: a softswitch must hear
    # ACCOUNT_INACTIVE_DELETED for a deleted account, not AUTHENTICATION_FAIL.
    if role == Role.ADMIN:
        return true()
    if role == Role.SUBADMIN:
        # Two comparisons, not IN: an IN list is an expanding bind, which Prepared refuses.
        return or_(accounts.c.role == Role.CUSTOMER, accounts.c.role == Role.RESELLER)
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


# The longest-prefix rate, as columns: binds group_id, prefix_0 ... (prefix_binds).
RATE_COLUMNS = (
    rates.c.prefix,
    rates.c.destination,
    rates.c.connect_cost,
    rates.c.cost_per_minute,
    rates.c.initial_increment,
    rates.c.increment,
)
RATE = Prepared(longest_prefix(*RATE_COLUMNS, fixed=True))

# The account's own rate for the number as dialled (binds prefix_0 ...): the one it calls with
# unless its Number Translation changes the number, so one statement finds account and rate.
_dialled_rate = rates.alias("dialled_rate")
_best_rate = (
    longest_prefix(rates.c.id, group_id=accounts.c.rate_group_id, fixed=True)
    .correlate(accounts)
    .scalar_subquery()
)


# The account's percentage tax rates, as one column of the account's row: a prepaid call's
# debit carries them, so its funds check and reservation count them (portal.rules.calls).
# Every assigned tax counts, as on invoices and receipts; a fixed amount is per document.
class _joined_with_commas(FunctionElement):
    """string_agg(x, ','), or group_concat: aggregate_strings without a post-compiled bind."""

    # Prepared runs the compiled string as it is, so the separator is written into the SQL.
    type = String()
    inherit_cache = True


@compiles(_joined_with_commas)
def _joined_standard(element, compiler, **kw):
    return f"string_agg({compiler.process(element.clauses, **kw)}, ',')"


@compiles(_joined_with_commas, "sqlite")
def _joined_sqlite(element, compiler, **kw):
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"


@compiles(_joined_with_commas, "mysql")
@compiles(_joined_with_commas, "mariadb")
def _joined_mysql(element, compiler, **kw):
    return f"group_concat({compiler.process(element.clauses, **kw)} SEPARATOR ',')"


_tax_rates = type_coerce(
    select(_joined_with_commas(cast(taxes.c.rate, String)))
    .select_from(account_taxes.join(taxes, taxes.c.id == account_taxes.c.tax_id))
    .where(account_taxes.c.account_id == accounts.c.id, taxes.c.rate != 0)
    .correlate(accounts)
    .scalar_subquery(),
    MoneyList(),
)


def _caller_columns() -> list:
    """The columns of an account that the checks of portal.calls.checks.decide read."""
    return [
        accounts.c.id,
        accounts.c.account_number,
        accounts.c.tenant_path,
        accounts.c.status,
        accounts.c.deleted_at,
        accounts.c.expiry_date,
        accounts.c.number_translation,
        accounts.c.max_channels,
        accounts.c.first_used,
        accounts.c.account_type,
        accounts.c.currency,
        accounts.c.balance,
        accounts.c.credit_limit,
        accounts.c.live_calls,
        accounts.c.reserved,
        _tax_rates.label("tax_rates"),
        groups.c.id.label("group_id"),
        groups.c.name.label("group_name"),
        groups.c.status.label("group_status"),
        *(_dialled_rate.c[column.name].label(f"rate_{column.name}") for column in RATE_COLUMNS),
        *blocked_columns(accounts, groups),
    ]


def _with_group_and_rate():
    """accounts joined to their rate group and their rate for the number (binds prefix_0 ...)."""
    return accounts.outerjoin(groups, groups.c.id == accounts.c.rate_group_id).outerjoin(
        _dialled_rate, _dialled_rate.c.id == _best_rate
    )


# Whether the caller has a free-minute bundle at all, and its timezone (a bundle's periods are
# local): one indexed probe, so only an account with a bundle pays for looking one up
# (portal.calls.bundles.find). Not read for the resellers above: only the caller's own
# bundles count.
_has_bundle = (
    select(Subscription.id)
    .join(Product, Product.id == Subscription.product_id)
    .where(Subscription.account_id == accounts.c.id, Product.free_minutes > 0)
    .correlate(accounts)
    .exists()
)
BUNDLE_COLUMNS = (accounts.c.timezone, _has_bundle.label("has_bundle"))


@functools.cache
def chain_query(depth: int) -> Prepared:
    """The `depth` resellers above a customer (binds level_1 ...), each with its own rate."""
    # A reseller is checked as its customer is: its rate group (assigned by its parent), its
    # rate for the number the customer's call goes to (binds prefix_0 ... of that number), its
    # funds, reservations and channels. One statement per depth: no expanding IN list.
    return Prepared(
        select(*_caller_columns())
        .select_from(_with_group_and_rate())
        .where(or_(*(accounts.c.id == bindparam(f"level_{n}") for n in range(1, depth + 1))))
    )


@functools.cache
def account_query(
    role: Role, by_sip_username: bool, with_key: bool = False, by_source_ip: bool = False
) -> Prepared:
    """The caller's account with its rate group and rate, by number or by an active SIP device."""
    # with_key: the API key's state (portal.api.keys.KEY_STATE_COLUMNS, binds key_id) in the
    # same statement; a row comes back whenever the key exists, its account columns NULL if
    # no account matched. by_source_ip: by the IP trunk holding the address (binds
    # source_key), with the trunk's tech_prefix.
    joined = _with_group_and_rate()
    columns = [*_caller_columns(), *BUNDLE_COLUMNS]
    if by_source_ip:
        joined = trunks.join(joined, trunks.c.account_id == accounts.c.id)
        found = and_(*trunk_holding(bindparam("source_key", type_=String())))
        columns.append(trunks.c.tech_prefix)
    elif by_sip_username:
        joined = devices.join(joined, devices.c.account_id == accounts.c.id)
        found = and_(
            devices.c.username == bindparam("sip_username"), devices.c.status == Status.ACTIVE
        )
    else:
        found = accounts.c.account_number == bindparam("account_number")
    if not with_key:
        return Prepared(select(*columns).select_from(joined).where(found, caller_condition(role)))
    # Imported here: portal.api's package imports this module through its views.
    from portal.api.keys import KEY_STATE_COLUMNS, KEY_STATE_FROM, KEY_STATE_WHERE

    return Prepared(
        select(*KEY_STATE_COLUMNS, *columns)
        .select_from(KEY_STATE_FROM.outerjoin(joined, and_(found, caller_condition(role))))
        .where(KEY_STATE_WHERE)
    )


# The funds a call may use: prepaid, the balance; postpaid, the credit limit minus what is owed
# (portal.models.available_funds, in SQL).
FUNDS = case(
    (accounts.c.account_type == AccountType.POSTPAID, accounts.c.credit_limit - accounts.c.balance),
    else_=accounts.c.balance,
)

# Check and reserve in one statement: the row's current counters and funds must still allow the
# call (a concurrent authorization, hang-up or payment may have changed them since they were
# read), else it changes nothing and the caller decides again. A single-row UPDATE evaluates
# its WHERE on the row as it is once locked, on PostgreSQL (READ COMMITTED re-checks a row a
# concurrent transaction changed) as on SQLite (one writer), so the check cannot go stale.
# updated_at is set to itself, else its onupdate would stamp every authorization.
RESERVE = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("account_id"),
        or_(accounts.c.max_channels == 0, accounts.c.live_calls < accounts.c.max_channels),
        FUNDS - accounts.c.reserved >= bindparam("required", type_=Money),
    )
    .values(
        live_calls=accounts.c.live_calls + 1,
        reserved=accounts.c.reserved + bindparam("reserve", type_=Money),
        first_used=func.coalesce(accounts.c.first_used, bindparam("now", type_=DateTime())),
        updated_at=accounts.c.updated_at,
    )
)

RESERVE_ROWS = Prepared(RESERVE)

# A hang-up (or the reaper) gives the call's channel and reservation back.
RELEASE = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(
        live_calls=accounts.c.live_calls - 1,
        reserved=accounts.c.reserved - bindparam("release", type_=Money),
        updated_at=accounts.c.updated_at,
    )
)

# The columns of a call row that _record() fills.
CALL_COLUMNS = (
    "call_id",
    "sip_username",
    "source_ip",
    "destination",
    "translated_destination",
    "status",
    "cause",
    "started_at",
    "rate_prefix",
    "rate_destination",
    "connect_cost",
    "cost_per_minute",
    "initial_increment",
    "increment",
    "max_duration_seconds",
    "reserved",
    "hangup_cause",
)


# A call row: binds call_account_id and call_<column> for each of CALL_COLUMNS.
INSERT_CALL = Prepared(
    insert(calls).values(
        account_id=bindparam("call_account_id"),
        **{name: bindparam(f"call_{name}") for name in CALL_COLUMNS},
    )
)


# A reseller level's share of a live call: binds call_call_id and charge_<column>.
CHARGE_COLUMNS = (
    "account_id",
    "level",
    "rate_prefix",
    "connect_cost",
    "cost_per_minute",
    "initial_increment",
    "increment",
    "reserved",
)
INSERT_CHARGE = Prepared(
    insert(charges).from_select(
        ["call_id", *CHARGE_COLUMNS],
        select(
            calls.c.id,
            *(bindparam(f"charge_{name}", type_=charges.c[name].type) for name in CHARGE_COLUMNS),
        ).where(calls.c.call_id == bindparam("call_call_id", type_=calls.c.call_id.type)),
        include_defaults=False,
    )
)


# PostgreSQL: a statement run in autocommit is its own transaction, and set_config(..., true)
# sets synchronous_commit for that transaction only: it commits without waiting for the WAL
# flush (CALLS_ASYNC_COMMIT). A later synchronous commit, of any session, flushes it too.
_ASYNC_COMMIT = select(func.set_config("synchronous_commit", "off", true()).label("setting")).cte(
    "async_commit"
)


def _call_values():
    """The bound values of a call row's CALL_COLUMNS, as call_<column>."""
    return [bindparam(f"call_{name}", type_=calls.c[name].type) for name in CALL_COLUMNS]


def _reserve_and_insert(async_commit: bool):
    """PostgreSQL: RESERVE and the live call's INSERT as one statement; no row if refused."""
    # One round trip in autocommit instead of BEGIN, UPDATE, INSERT, COMMIT. Binds: those of
    # RESERVE, and call_<column> for each of CALL_COLUMNS.
    reserved = RESERVE.returning(accounts.c.id).cte("reserved_funds")
    query = select(reserved.c.id, *_call_values()).select_from(reserved)
    if async_commit:
        query = query.join(_ASYNC_COMMIT, true())
    return (
        insert(calls)
        .from_select(["account_id", *CALL_COLUMNS], query, include_defaults=False)
        .returning(calls.c.id)
    )


def _insert_refusal(async_commit: bool):
    """PostgreSQL: a refusal's call row (binds call_account_id and those of _call_values)."""
    account_id = bindparam("call_account_id", type_=calls.c.account_id.type)
    query = select(account_id, *_call_values())
    if async_commit:
        query = query.select_from(_ASYNC_COMMIT)
    return insert(calls).from_select(["account_id", *CALL_COLUMNS], query, include_defaults=False)


# For the PostgreSQL statement of a call drawing on a bundle (portal.calls.bundles).
call_values = _call_values
ASYNC_COMMIT = _ASYNC_COMMIT

# By CALLS_ASYNC_COMMIT: the PostgreSQL statements of a live call and of a refusal.
RESERVE_AND_INSERT = {flag: Prepared(_reserve_and_insert(flag)) for flag in (True, False)}
INSERT_REFUSAL = {flag: Prepared(_insert_refusal(flag)) for flag in (True, False)}

# PostgreSQL, inside a transaction of several statements (a reseller's customer's call): that
# transaction commits without waiting for the WAL flush (CALLS_ASYNC_COMMIT).
ASYNC_COMMIT_LOCAL = Prepared(
    select(func.set_config("synchronous_commit", "off", true()).label("setting"))
)
