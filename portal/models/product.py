"""Products an operator sells besides minutes, and the accounts' subscriptions to them."""

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.account import Money, Status, _enum, utcnow


class ProductPeriod(enum.StrEnum):
    """How often a product's price is charged (portal.rules.subscriptions.period_bounds)."""

    MONTHLY = "monthly"
    DAILY = "daily"
    ONE_TIME = "one_time"

    @property
    def label(self) -> str:
        """Human name of the period."""
        return {"one_time": "One-time"}.get(self.value, self.value.capitalize())


class Product(db.Model):
    """A plan fee, a number's rental or a bundle, owned by the admins or by one reseller."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: the admins' product; otherwise the reseller that sells it (as rate groups, taxes).
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    period: Mapped[ProductPeriod] = mapped_column(
        _enum(ProductPeriod), default=ProductPeriod.MONTHLY
    )
    price: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    setup_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # Free minutes per period to the product's prefixes (0: no bundle).
    free_minutes: Mapped[int] = mapped_column(default=0)
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    reseller: Mapped["Account | None"] = relationship(foreign_keys=[reseller_id])  # noqa: F821
    prefixes: Mapped[list["ProductPrefix"]] = relationship(
        back_populates="product", cascade="all, delete-orphan", order_by="ProductPrefix.prefix"
    )


class ProductPrefix(db.Model):
    """A destination prefix a product's free minutes cover ('' covers every number)."""

    __tablename__ = "product_prefixes"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))

    product: Mapped[Product] = relationship(back_populates="prefixes")

    # Also the lookup index: (product, prefix) equality for the prefixes of a dialled number.
    __table_args__ = (UniqueConstraint("product_id", "prefix", name="uq_product_prefixes"),)


class Subscription(db.Model):
    """An account's subscription to a product, from `start_date` (local) until it ends."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    # Dates in the account's timezone: the first day charged, and the last one (inclusive;
    # NULL while it runs on). Cancelling sets end_date: the period's end, or the cancel day.
    start_date: Mapped[date]
    end_date: Mapped[date | None]
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped["Account"] = relationship(foreign_keys=[account_id])  # noqa: F821
    product: Mapped[Product] = relationship(lazy="joined")

    __table_args__ = (Index("ix_subscriptions_account", "account_id", "id"),)


class SubscriptionCharge(db.Model):
    """One period of a subscription charged by the billing run (never twice: UNIQUE)."""

    __tablename__ = "subscription_charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    # The first and the last day charged (local dates; a first month starts on start_date).
    period_start: Mapped[date]
    period_end: Mapped[date | None]
    amount: Mapped[Decimal] = mapped_column(Money)
    setup_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Two runs, or two app servers, racing for the same period: the second insert fails.
    __table_args__ = (
        UniqueConstraint("subscription_id", "period_start", name="uq_subscription_charges"),
    )
