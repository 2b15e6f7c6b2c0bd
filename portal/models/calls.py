"""The real-time side: API keys for the softswitch, and calls with their credit reservations."""

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.account import Money, _enum, utcnow


class ApiKey(db.Model):
    """A bearer key; it acts with the role and tenant of the account that created it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters, shown in lists and used to find the key; the rest is only hashed.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # SHA-256 of the whole key: keys are 256-bit random, so a slow password hash adds nothing
    # but latency to every call authorization.
    key_hash: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    allowed_ips: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    owner = relationship("Account", foreign_keys=[owner_id])


class CallStatus(enum.StrEnum):
    """Where a call is: holding a reservation, or rated and closed."""

    LIVE = "live"
    ENDED = "ended"
    REAPED = "reaped"
    REFUSED = "refused"


class Call(db.Model):
    """One authorization asked by the softswitch, and, once allowed, the call it became."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    sip_username: Mapped[str] = mapped_column(String(64), default="")
    source_ip: Mapped[str] = mapped_column(String(45), default="")  # an IP trunk's call
    destination: Mapped[str] = mapped_column(String(64))
    translated_destination: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[CallStatus] = mapped_column(_enum(CallStatus))
    cause: Mapped[str] = mapped_column(String(40), default="")
    rate_prefix: Mapped[str | None] = mapped_column(String(32))
    rate_destination: Mapped[str] = mapped_column(String(100), default="")
    connect_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    cost_per_minute: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    initial_increment: Mapped[int] = mapped_column(default=0)
    increment: Mapped[int] = mapped_column(default=1)
    max_duration_seconds: Mapped[int] = mapped_column(default=0)
    # Counted against available funds while the call is live, so parallel calls cannot overdraw.
    reserved: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None]
    hangup_cause: Mapped[str] = mapped_column(String(40), default="")
    cost: Mapped[Decimal | None] = mapped_column(Money)
    # A call to a destination of one of its account's free-minute bundles: the bundle period
    # it draws on, the seconds it holds there while live, and the seconds it got free once
    # ended (costing nothing; `cost` rates only the rest). Server defaults: the hot path's
    # INSERT of a call without a bundle leaves them out.
    bundle_usage_id: Mapped[int | None] = mapped_column(ForeignKey("bundle_usage.id"))
    bundle_reserved_seconds: Mapped[int] = mapped_column(server_default="0")
    free_seconds: Mapped[int] = mapped_column(server_default="0")
    # Billed at its hang-up without an authorization (portal.calls.unrecorded): for review.
    unauthorized: Mapped[bool] = mapped_column(server_default=false())

    __table_args__ = (
        # The reaper's "live calls, oldest first"; the account's counters serve authorization.
        Index("ix_calls_status", "status", "id"),
        Index("ix_calls_account", "account_id", "id"),
        # The Calls page: a window of start times, paged by (started_at, id), totalled from
        # the index alone (it carries every column the totals read).
        Index(
            "ix_calls_started",
            "started_at",
            "id",
            "status",
            "account_id",
            "duration_seconds",
            "cost",
        ),
    )


class CallCharge(db.Model):
    """What one reseller up a customer's chain pays its parent for a call (level 1 = its own)."""

    # The call row holds the customer's rate, reservation and cost (level 0); each reseller
    # above it is rated at its own rate group, so its margin on the call is the cost of the
    # level below minus its own.
    __tablename__ = "call_charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    level: Mapped[int]
    rate_prefix: Mapped[str] = mapped_column(String(32))
    connect_cost: Mapped[Decimal] = mapped_column(Money)
    cost_per_minute: Mapped[Decimal] = mapped_column(Money)
    initial_increment: Mapped[int]
    increment: Mapped[int]
    # The level's own reservation while the call is live; 0 once released at the end.
    reserved: Mapped[Decimal] = mapped_column(Money)
    cost: Mapped[Decimal | None] = mapped_column(Money)

    __table_args__ = (UniqueConstraint("call_id", "level", name="uq_call_charges_call_level"),)


class CallRollup(db.Model):
    """One day's ended calls to one destination, as one tenant receives them, in one currency."""

    # Kept at hang-up (portal.calls.rollups) so dashboards sum a few rows per day instead of
    # scanning calls. A call counts once for every account that is paid for it: its
    # customer's owner (the admins, tenant 0, or a reseller) and every reseller above; the
    # revenue is what the level below paid that tenant, in the payer's currency.
    __tablename__ = "call_rollups"

    id: Mapped[int] = mapped_column(primary_key=True)
    # 0: the operator (the admins' view); otherwise the reseller's account id.
    tenant_key: Mapped[int]
    # The UTC day the call started.
    day: Mapped[date]
    currency: Mapped[str] = mapped_column(String(3))
    # The customer's rate (level 0) names the destination; '' when none was matched.
    rate_prefix: Mapped[str] = mapped_column(String(32))
    rate_destination: Mapped[str] = mapped_column(String(100))
    calls: Mapped[int] = mapped_column(default=0)
    answered: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))

    __table_args__ = (
        UniqueConstraint(
            "tenant_key",
            "day",
            "currency",
            "rate_prefix",
            "rate_destination",
            name="uq_call_rollups_key",
        ),
    )


class IdempotencyRecord(db.Model):
    """The stored answer to an API request sent with an Idempotency-Key, for its retries."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Keys are per caller: the account whose API key sent the request.
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    # The answer without its one-time secrets (passwords are never stored in plain text).
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("owner_id", "key", name="uq_idempotency_owner_key"),)
