"""Who calls the API (its key, the key's account loaded once per request); how times are written."""

import base64
from datetime import UTC, datetime

from flask import g, request

from portal.api.errors import ApiError
from portal.apikeys.service import WRONG_ADDRESS, authenticate
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


def required_key(authorization: str) -> str:
    """The presented key (see presented_key); a 401 if there is none."""
    key = presented_key(authorization)
    if not key:
        raise ApiError(401, "Send an API key: Authorization: Bearer <key>.")
    return key


def presented_key(authorization: str) -> str:
    """The key from `Authorization: Bearer`, or Basic auth's password (mod_xml_curl)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def key_refused(why: str) -> ApiError:
    """The error for a key that may not be used: 403 from a wrong address, else 401."""
    return ApiError(403 if why == WRONG_ADDRESS else 401, why)


def authenticate_request() -> None:
    """The request's key must be valid: g.api_owner is its owner; else a 401 or 403."""
    key = required_key(request.headers.get("Authorization", ""))
    owner, why = authenticate(key, request.remote_addr or "")
    if owner is None:
        raise key_refused(why)
    g.api_owner = owner
