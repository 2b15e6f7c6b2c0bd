"""Who calls the API (the key's account, loaded once per request) and how times are written."""

from datetime import UTC, datetime

from flask import g

from portal.extensions import db
from portal.models import Account


def key_account() -> Account:
    """The account the key acts as, loaded whole (the services audit and own with it)."""
    # Authentication keeps only the key owner's tenancy columns: enough for call
    # authorization's hot path, but creating and auditing need the account itself.
    if "api_account" not in g:
        g.api_account = db.session.get(Account, g.api_owner.id)
    return g.api_account


def utc(moment: datetime | None) -> datetime | None:
    """A stored (naive UTC) time as an RFC 3339 time with its offset."""
    return moment.replace(tzinfo=UTC) if moment is not None else None
