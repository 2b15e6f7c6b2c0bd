"""Who may call where: blocked prefixes of accounts and rate groups, and IP-authenticated trunks."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.account import Account, Status, _enum, utcnow
from portal.models.tariff import RateGroup


class AccountBlockedPrefix(db.Model):
    """Numbers starting with `prefix` that an account may not call (DESTINATION_BLOCKED)."""

    __tablename__ = "account_blocked_prefixes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship()

    # The UNIQUE index is also the lookup index: (account, prefix) equality per candidate prefix.
    __table_args__ = (UniqueConstraint("account_id", "prefix", name="uq_account_blocked_prefixes"),)


class RateGroupBlockedPrefix(db.Model):
    """Numbers starting with `prefix` that no account of a rate group may call."""

    __tablename__ = "rate_group_blocked_prefixes"

    id: Mapped[int] = mapped_column(primary_key=True)
    rate_group_id: Mapped[int] = mapped_column(ForeignKey("rate_groups.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rate_group: Mapped[RateGroup] = relationship()

    __table_args__ = (
        UniqueConstraint("rate_group_id", "prefix", name="uq_rate_group_blocked_prefixes"),
    )


class IpTrunk(db.Model):
    """An address or CIDR range whose calls are the account's (an IP-authenticated trunk)."""

    __tablename__ = "ip_trunks"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    network: Mapped[str] = mapped_column(String(43))  # normalized: 203.0.113.0/24, 2001:db8::/48
    # The range's first and last address as 32 hex digits of the IPv6 (IPv4-mapped) address:
    # text compares as the addresses do, on every database. Ranges never overlap, so the one
    # holding an address is the one with the greatest start at or below it (the UNIQUE index).
    range_start: Mapped[str] = mapped_column(String(32), unique=True)
    range_end: Mapped[str] = mapped_column(String(32))
    # Calls from the trunk must dial this first; it is stripped before translation and rating.
    tech_prefix: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship()
