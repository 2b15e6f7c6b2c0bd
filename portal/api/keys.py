"""API keys: made by admins, shown once, stored as a SHA-256, revocable, optionally IP-bound."""

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update

from portal import audit
from portal.extensions import db
from portal.models import Account, ApiKey, Role, Status, utcnow
from portal.transactions import ValidationFailed, transaction

# How stale last_used_at may get: it is written at most once per interval, not on every call.
LAST_USED_INTERVAL = timedelta(minutes=1)


def _digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_networks(text: str) -> list:
    """Comma-separated addresses or CIDR networks; ValueError names a bad one."""
    networks = []
    for item in (part.strip() for part in (text or "").split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as error:
                raise ValueError(f'"{item}" is not an IP address or network.') from error
    return networks


def create_key(actor: Account, name: str, allowed_ips: str) -> tuple[ApiKey, str]:
    """A new key for `actor`'s role and tenant: (row, the key itself, shown once)."""
    errors = {}
    name = (name or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "Give the key a name of 1 to 100 characters."
    try:
        parse_networks(allowed_ips)
    except ValueError as error:
        errors["allowed_ips"] = str(error)
    if errors:
        raise ValidationFailed(errors)
    prefix = secrets.token_hex(6)
    key = f"vbp_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=_digest(key),
        owner_id=actor.id,
        allowed_ips=(allowed_ips or "").strip(),
    )
    with transaction():
        db.session.add(row)
        db.session.flush()
        audit.record(actor, "create", "api_key", row, changes={"name": [None, name]})
    return row, key


def revoke_key(actor: Account, row: ApiKey) -> None:
    """Stop a key from working, at once (revoking it again changes nothing)."""
    if row.revoked_at is not None:
        return
    with transaction():
        row.revoked_at = utcnow()
        audit.record(actor, "deactivate", "api_key", row, changes={"revoked": [None, "yes"]})


WRONG_ADDRESS = "This API key may not be used from this address."


def _address_in(client_ip: str, networks: list) -> bool:
    """True if `client_ip` is in one of `networks` (an unparsable address is in none)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """The account a key acts as: what tenancy needs of it (see portal.security)."""

    id: int
    role: Role
    tenant_path: str

    @property
    def subtree_path(self) -> str:
        """The tenant_path prefix of every account below this one."""
        return f"{self.tenant_path}{self.id}/"


_keys, _owners = ApiKey.__table__, Account.__table__
# Built once: the key and its owner in one statement, only the columns authentication needs.
_KEY_WITH_OWNER = (
    select(
        _keys.c.id,
        _keys.c.key_hash,
        _keys.c.revoked_at,
        _keys.c.allowed_ips,
        _keys.c.last_used_at,
        _owners.c.id.label("owner_id"),
        _owners.c.role,
        _owners.c.tenant_path,
        _owners.c.status,
        _owners.c.deleted_at,
    )
    .join(_owners, _owners.c.id == _keys.c.owner_id)
    .where(_keys.c.prefix == bindparam("prefix"))
)
# The condition repeats the staleness test, so concurrent requests write it once.
_TOUCH_KEY = (
    update(_keys)
    .where(
        _keys.c.id == bindparam("key_id"),
        or_(_keys.c.last_used_at.is_(None), _keys.c.last_used_at < bindparam("stale_before")),
    )
    .values(last_used_at=bindparam("now"))
)


def authenticate(key: str, client_ip: str) -> tuple[KeyOwner | None, str]:
    """The account a presented key acts as, or (None, why not); notes when the key was used."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "vbp":
        return None, "Malformed API key."
    connection = db.session.connection()
    row = connection.execute(_KEY_WITH_OWNER, {"prefix": parts[1]}).first()
    if row is None or not secrets.compare_digest(row.key_hash, _digest(key)):
        return None, "Unknown API key."
    if row.revoked_at is not None:
        return None, "This API key was revoked."
    networks = parse_networks(row.allowed_ips)
    if networks and not _address_in(client_ip, networks):
        return None, WRONG_ADDRESS
    if row.status != Status.ACTIVE or row.deleted_at is not None:
        return None, "The account of this API key is not active."
    _note_use(row.id, row.last_used_at)
    return KeyOwner(row.owner_id, row.role, row.tenant_path), ""


def _note_use(key_id: int, last_used_at: datetime | None) -> None:
    """Set the key's last_used_at if it is older than LAST_USED_INTERVAL (its own commit)."""
    now = utcnow()
    stale_before = now - LAST_USED_INTERVAL
    if last_used_at is not None and last_used_at >= stale_before:
        return
    db.session.connection().execute(
        _TOUCH_KEY, {"key_id": key_id, "stale_before": stale_before, "now": now}
    )
    db.session.commit()
