"""API keys: made by admins, shown once, stored as a SHA-256, revocable, optionally IP-bound."""

import hashlib
import ipaddress
import secrets

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal import audit
from portal.extensions import db
from portal.models import Account, ApiKey, utcnow
from portal.transactions import ValidationFailed, transaction


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


def authenticate(key: str, client_ip: str) -> tuple[Account | None, str]:
    """The account a presented key acts as, or (None, why not)."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "vbp":
        return None, "Malformed API key."
    row = db.session.scalar(
        select(ApiKey).options(joinedload(ApiKey.owner)).where(ApiKey.prefix == parts[1])
    )
    if row is None or not secrets.compare_digest(row.key_hash, _digest(key)):
        return None, "Unknown API key."
    if row.revoked_at is not None:
        return None, "This API key was revoked."
    networks = parse_networks(row.allowed_ips)
    if networks and not _address_in(client_ip, networks):
        return None, WRONG_ADDRESS
    owner = row.owner
    if owner is None or not owner.is_active:
        return None, "The account of this API key is not active."
    return owner, ""
