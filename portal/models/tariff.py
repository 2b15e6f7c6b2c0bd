"""Rate groups (tariffs) and their rates, which customers are rated with."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.account import Money, Status, _enum, utcnow


class RateGroup(db.Model):
    """A named tariff in one currency, owned by the admins (reseller_id NULL) or by one reseller."""

    __tablename__ = "rate_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    reseller: Mapped["Account | None"] = relationship(foreign_keys=[reseller_id])  # noqa: F821


class Rate(db.Model):
    """The price of calls to numbers starting with `prefix` ('' matches any number)."""

    __tablename__ = "rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    rate_group_id: Mapped[int] = mapped_column(ForeignKey("rate_groups.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(100), default="")
    connect_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    cost_per_minute: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    initial_increment: Mapped[int] = mapped_column(default=60)
    increment: Mapped[int] = mapped_column(default=60)

    # The UNIQUE index is also the lookup index: (group, prefix) equality for longest-prefix match.
    __table_args__ = (UniqueConstraint("rate_group_id", "prefix"),)
