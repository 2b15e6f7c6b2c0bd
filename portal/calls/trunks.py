"""The caller of an IP-authenticated trunk: the account whose range holds the source address."""

from sqlalchemy import Connection, Row

from portal.calls import statements
from portal.calls.checks import find_account
from portal.tariffs.service import prefix_binds


def find_trunk_account(
    connection: Connection, owner, source_key: str, destination: str, key_id: int | None = None
) -> Row | None:
    """find_account() by the active trunk holding the address, with the trunk's tech_prefix."""
    query = statements.account_query(owner.role, False, key_id is not None, by_source_ip=True)
    binds = statements.caller_binds(owner)
    binds.update(prefix_binds(destination))
    binds["source_key"] = source_key
    if key_id is not None:
        binds["key_id"] = key_id
    return query.first(connection, binds)


def trunk_caller(connection: Connection, owner, account: Row | None, destination: str):
    """(the account or None, the number it dialled) once the trunk's tech prefix is stripped."""
    # A tech prefix says which account of the trunk calls: a number without it is not the
    # account's (AUTHENTICATION_FAIL), as an unknown SIP user is not. Stripped, the number
    # changes, so the account and its rate are read again for it (only for such trunks).
    if account is None or not account.tech_prefix:
        return account, destination
    prefix = account.tech_prefix
    if not destination.startswith(prefix) or len(destination) == len(prefix):
        return None, destination
    dialled = destination[len(prefix) :]
    return find_account(connection, owner, account.account_number, None, dialled), dialled
