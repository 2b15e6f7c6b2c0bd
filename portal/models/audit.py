"""The audit log: who changed what, when, with the old and new values."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.account import utcnow


class AuditEntry(db.Model):
    """One create, update, (de)activation or delete of an account, rate group, tax or setting."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # A snapshot, so the entry still reads right after the actor is renamed or deleted.
    actor_label: Mapped[str] = mapped_column(String(120), default="system")
    action: Mapped[str] = mapped_column(String(20))
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(64))
    entity_label: Mapped[str] = mapped_column(String(200), default="")
    # The account the entry concerns (for filtering by account); NULL for settings and tariffs.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_audit_entries_account", "account_id", "id"),
        Index("ix_audit_entries_created", "created_at"),
    )
