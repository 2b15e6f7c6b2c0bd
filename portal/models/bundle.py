"""What each period of a free-minute bundle has given away, and holds for live calls."""

from datetime import date

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db


class BundleUsage(db.Model):
    """One subscription's free seconds drawn (and held by live calls) in one of its periods."""

    # Created on a period's first bundled call; a live call holds seconds in `reserved_seconds`
    # (one conditional UPDATE keeps used + reserved within the bundle), its hang-up moves what
    # it used to `used_seconds`. A new period is a new row: bundles reset by themselves.
    __tablename__ = "bundle_usage"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    # The first local day of the period (portal.rules.subscriptions.period_bounds).
    period_start: Mapped[date]
    used_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    reserved_seconds: Mapped[int] = mapped_column(default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("subscription_id", "period_start", name="uq_bundle_usage_period"),
    )
