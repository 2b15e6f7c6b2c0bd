"""Rate groups (tariffs) that customers are rated with."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.account import Status, _enum, utcnow


class RateGroup(db.Model):
    """A named tariff, owned by the admins (reseller_id NULL) or by one reseller."""

    __tablename__ = "rate_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
