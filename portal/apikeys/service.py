"""API keys: made by admins, shown once, stored as a SHA-256, revocable, optionally IP-bound."""

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, or_, select, update

from portal import audit
from portal.ancestors import stopped_by
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
OWNER_INACTIVE = "The account of this API key is not active."


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


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """What never changes about a key: its row, its hash and the account it acts as."""

    key_id: int
    key_hash: str
    owner: KeyOwner
    read_at: float = 0.0  # time.monotonic() when it was read


_keys, _owners = ApiKey.__table__, Account.__table__
# Built once, only the columns needed. A key's hash and owner, and the owner's role and
# tenant_path, are set at creation and never change, so they are read once per process;
# what can change (revocation, the owner's status) is read on every request, KEY_STATE.
_KEY_IDENTITY = (
    select(
        _keys.c.id,
        _keys.c.key_hash,
        _owners.c.id.label("owner_id"),
        _owners.c.role,
        _owners.c.tenant_path,
    )
    .join(_owners, _owners.c.id == _keys.c.owner_id)
    .where(_keys.c.prefix == bindparam("prefix"))
)
# The changing state of a key, as columns any statement can join in (binds key_id).
_state_owners = _owners.alias("key_owners")
KEY_STATE_COLUMNS = (
    _keys.c.revoked_at.label("key_revoked_at"),
    _keys.c.allowed_ips.label("key_allowed_ips"),
    _keys.c.last_used_at.label("key_last_used_at"),
    _state_owners.c.status.label("key_owner_status"),
    _state_owners.c.deleted_at.label("key_owner_deleted_at"),
    _state_owners.c.tenant_path.label("key_owner_tenant_path"),
)
KEY_STATE_FROM = _keys.join(_state_owners, _state_owners.c.id == _keys.c.owner_id)
KEY_STATE_WHERE = _keys.c.id == bindparam("key_id")
_KEY_STATE = select(*KEY_STATE_COLUMNS).select_from(KEY_STATE_FROM).where(KEY_STATE_WHERE)
# The condition repeats the staleness test, so concurrent requests write it once.
_TOUCH_KEY = (
    update(_keys)
    .where(
        _keys.c.id == bindparam("key_id"),
        or_(_keys.c.last_used_at.is_(None), _keys.c.last_used_at < bindparam("stale_before")),
    )
    .values(last_used_at=bindparam("now"))
)
# Identities kept per app (a process may serve several databases, as the tests do).
_CACHE = "api_key_identities"
_CACHE_SIZE = 10_000
# A move (portal.accounts.moving) changes an owner's tenant_path: a cached identity is read
# again after this long, and at once by authenticate() when the owner's path has changed.
IDENTITY_SECONDS = 60.0


def identify(key: str) -> tuple[KeyIdentity | None, str]:
    """The identity of a presented key, or (None, why not); says nothing of revocation."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "vbp":
        return None, "Malformed API key."
    cache = current_app.extensions.setdefault(_CACHE, {})
    identity = cache.get(parts[1])
    if identity is None or time.monotonic() - identity.read_at > IDENTITY_SECONDS:
        with db.engine.connect() as connection:  # not the Session's: it would stay checked out
            row = connection.execute(_KEY_IDENTITY, {"prefix": parts[1]}).first()
        if row is None:  # never cached: a key made later in another process must be found
            return None, "Unknown API key."
        owner = KeyOwner(row.owner_id, row.role, row.tenant_path)
        identity = KeyIdentity(row.id, row.key_hash, owner, time.monotonic())
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[parts[1]] = identity
    if not secrets.compare_digest(identity.key_hash, _digest(key)):
        return None, "Unknown API key."
    return identity, ""


def refusal(state, client_ip: str, connection=None) -> str:
    """Why a key in `state` (KEY_STATE_COLUMNS; None: no such key) may not be used, or ""."""
    # With a connection, the resellers above the owner are checked too (portal.ancestors).
    if state is None:
        return "Unknown API key."
    if state.key_revoked_at is not None:
        return "This API key was revoked."
    if state.key_allowed_ips:
        networks = parse_networks(state.key_allowed_ips)
        if networks and not _address_in(client_ip, networks):
            return WRONG_ADDRESS
    if state.key_owner_status != Status.ACTIVE or state.key_owner_deleted_at is not None:
        return OWNER_INACTIVE
    if connection is not None and stopped_by(connection, state.key_owner_tenant_path):
        return OWNER_INACTIVE
    return ""


def authenticate(key: str, client_ip: str) -> tuple[KeyOwner | None, str]:
    """The account a presented key acts as, or (None, why not); notes when the key was used."""
    identity, why = identify(key)
    if identity is None:
        return None, why
    state, why = key_state(identity.key_id, client_ip)
    if why:
        return None, why
    note_use(identity.key_id, state.key_last_used_at)
    if state.key_owner_tenant_path != identity.owner.tenant_path:  # the owner was moved
        current_app.extensions.get(_CACHE, {}).pop(key.split("_")[1], None)
        owner = identity.owner
        return KeyOwner(owner.id, owner.role, state.key_owner_tenant_path), ""
    return identity.owner, ""


def key_state(key_id: int, client_ip: str):
    """(the key's state row, why it may not be used or "")."""
    connection = db.session.connection()
    state = connection.execute(_KEY_STATE, {"key_id": key_id}).first()
    return state, refusal(state, client_ip, connection)


def note_use(key_id: int, last_used_at: datetime | None) -> None:
    """Set the key's last_used_at if it is older than LAST_USED_INTERVAL (its own commit)."""
    now = utcnow()
    stale_before = now - LAST_USED_INTERVAL
    if last_used_at is not None and last_used_at >= stale_before:
        return
    db.session.connection().execute(
        _TOUCH_KEY, {"key_id": key_id, "stale_before": stale_before, "now": now}
    )
    db.session.commit()
