"""Taxes applied to an account's charges: rate % plus a fixed amount."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.account import Money, Status, _enum, utcnow


class Tax(db.Model):
    """A tax, owned by the admins (reseller_id NULL) or by one reseller."""

    __tablename__ = "taxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rate: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fixed_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    priority: Mapped[int] = mapped_column(default=1)
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    reseller: Mapped["Account | None"] = relationship(foreign_keys=[reseller_id])  # noqa: F821
