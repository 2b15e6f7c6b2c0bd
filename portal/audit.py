"""Audit trail: who created, changed, (de)activated or deleted what, inside its transaction."""

import enum
from datetime import datetime
from decimal import Decimal

from portal.extensions import db
from portal.models import Account, AuditEntry
from portal.rules.times import utc_text

SECRET_FIELDS = {"password", "password_hash", "pin", "session_token"}


def readable(value):
    """A JSON-friendly, readable form of a column value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):  # stored UTC, marked so: the log shows it in the reader's zone
        return utc_text(value)
    if isinstance(value, list | tuple | set):
        return sorted(readable(item) for item in value)
    return str(getattr(value, "name", value))


def snapshot(obj, fields) -> dict:
    """The readable values of `fields` of `obj` now."""
    return {field: readable(getattr(obj, field)) for field in fields}


def diff(before: dict, after: dict) -> dict:
    """Fields whose value changed, as field -> [old, new]; secrets only say that they changed."""
    changes = {}
    for field, new in after.items():
        old = before.get(field)
        if old != new:
            changes[field] = ["hidden", "changed"] if field in SECRET_FIELDS else [old, new]
    return changes


def entry_values(
    actor: Account | None,
    action: str,
    entity_type: str,
    entity_id,
    *,
    changes: dict | None = None,
    label: str = "",
    account_id: int | None = None,
) -> dict:
    """The column values of an audit entry (secrets only say that they changed)."""
    if changes:
        changes = {
            field: (["hidden", "changed"] if field in SECRET_FIELDS else value)
            for field, value in changes.items()
        }
    return {
        "actor_id": actor.id if actor else None,
        "actor_label": f"{actor.account_number} {actor.name}"[:120] if actor else "system",
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "entity_label": (label or "")[:200],
        "account_id": account_id,
        "changes": changes or {},
    }


def record(
    actor: Account | None,
    action: str,
    entity_type: str,
    entity,
    *,
    changes: dict | None = None,
    label: str = "",
    account: Account | None = None,
) -> AuditEntry:
    """Add an audit entry to the current transaction: it commits or rolls back with the change."""
    entry = AuditEntry(
        **entry_values(
            actor,
            action,
            entity_type,
            getattr(entity, "id", entity),
            changes=changes,
            label=label or getattr(entity, "name", "") or "",
            account_id=account.id if account else None,
        )
    )
    db.session.add(entry)
    return entry
