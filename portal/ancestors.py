"""A reseller that is not active stops its whole subtree: one look-up over a tenant path."""

import functools

from sqlalchemy import Connection, bindparam, or_, select

from portal.calls.rawsql import Prepared
from portal.models import Account, Status

_accounts = Account.__table__


def ancestor_ids(tenant_path: str) -> list[int]:
    """The ids of the resellers above an account, root first ("12/34/" -> [12, 34])."""
    return [int(part) for part in (tenant_path or "").split("/") if part.isdigit()]


@functools.cache
def _stopped_query(depth: int) -> Prepared:
    """The first inactive or deleted account among `depth` ids (binds ancestor_0 ...)."""
    # One statement per depth, with plain binds: a primary-key look-up of a few rows that the
    # call authorization can afford (Prepared takes no expanding IN list).
    ids = [bindparam(f"ancestor_{index}") for index in range(depth)]
    return Prepared(
        select(_accounts.c.id, _accounts.c.account_number)
        .where(
            _accounts.c.id.in_(ids),
            or_(_accounts.c.status != Status.ACTIVE, _accounts.c.deleted_at.is_not(None)),
        )
        .order_by(_accounts.c.id)
        .limit(1)
    )


def stopped_by(connection: Connection, tenant_path: str) -> str | None:
    """The account number of an inactive or deleted reseller above the account, or None."""
    # Top-level accounts (the empty path, most of them) cost nothing: no statement at all.
    ids = ancestor_ids(tenant_path)
    if not ids:
        return None
    binds = {f"ancestor_{index}": value for index, value in enumerate(ids)}
    row = _stopped_query(len(ids)).first(connection, binds)
    return row.account_number if row is not None else None
