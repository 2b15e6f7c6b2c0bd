"""Accounts of every role, their SIP devices and search tokens."""

import enum
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Table,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from portal.extensions import db


class ExactMoney(TypeDecorator):
    """NUMERIC(18, 5) of Decimals; on SQLite an integer count of 1/100000 units."""

    # SQLite keeps NUMERIC values as binary floats (15-16 significant digits): an integer
    # count of hundred-thousandths keeps every amount and every SUM exact there too.
    impl = Numeric(18, 5)
    cache_ok = True
    SCALE = 5

    def load_dialect_impl(self, dialect):
        """BIGINT units on SQLite, NUMERIC(18, 5) elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 5))

    def process_bind_param(self, value, dialect):
        """Decimal -> integer units on SQLite."""
        if value is None or dialect.name != "sqlite":
            return value
        return int(Decimal(value).scaleb(self.SCALE).to_integral_value(ROUND_HALF_EVEN))

    def process_result_value(self, value, dialect):
        """Integer units -> Decimal on SQLite."""
        if value is None or dialect.name != "sqlite":
            return value
        return Decimal(int(value)).scaleb(-self.SCALE)


Money = ExactMoney()


class MoneyList(TypeDecorator):
    """Read only: ExactMoney values joined by commas in SQL (aggregate_strings), as a tuple."""

    # The CAST to text inside the aggregate gives the stored form: integer units on SQLite,
    # the NUMERIC's digits elsewhere.
    impl = String
    cache_ok = True

    def process_result_value(self, value, dialect):
        """'2100000,50000' (SQLite) or '21.00000,0.50000' -> (Decimal('21'), Decimal('0.5'))."""
        if not value:
            return ()
        if dialect.name == "sqlite":
            return tuple(Decimal(int(item)).scaleb(-ExactMoney.SCALE) for item in value.split(","))
        return tuple(Decimal(item) for item in value.split(","))


def compare_type(_context, _inspected_column, _metadata_column, inspected_type, metadata_type):
    """Alembic: ExactMoney is the NUMERIC and a LargeBinary the BLOB the migrations create."""
    if isinstance(metadata_type, ExactMoney):
        return not isinstance(inspected_type, Numeric)
    if isinstance(metadata_type, LargeBinary):
        # MariaDB sizes a binary column by its length: LargeBinary(2 MB) is a MEDIUMBLOB there.
        return inspected_type._type_affinity is not metadata_type._type_affinity
    return None  # Alembic's own comparison for everything else


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (stored the same on every backend)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Role(enum.StrEnum):
    """Who an account is: the four roles of the portal."""

    ADMIN = "admin"
    SUBADMIN = "subadmin"
    RESELLER = "reseller"
    CUSTOMER = "customer"

    @property
    def label(self) -> str:
        """Human name of the role."""
        return {"subadmin": "Sub-admin"}.get(self.value, self.value.capitalize())


class Status(enum.StrEnum):
    """Whether an account (or a device, rate group, tax) may be used."""

    ACTIVE = "active"
    INACTIVE = "inactive"


class BillingSchedule(enum.StrEnum):
    """How often a postpaid account is invoiced."""

    DAILY = "daily"
    MONTHLY = "monthly"


class AccountType(enum.StrEnum):
    """Prepaid (balance = funds) or postpaid (balance = owed)."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


def is_expired(expiry_date: datetime | None) -> bool:
    """True once the expiry date has passed (no login, no new calls)."""
    return expiry_date is not None and expiry_date < utcnow()


def available_funds(account_type: AccountType, balance: Decimal, credit_limit: Decimal) -> Decimal:
    """Prepaid: the balance; postpaid: credit limit minus what is owed."""
    if account_type == AccountType.POSTPAID:
        return credit_limit - balance
    return balance


def _enum(enum_class):
    """Store an enum by its value in a VARCHAR (portable, migration-friendly)."""
    return db.Enum(
        enum_class,
        native_enum=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


account_taxes = Table(
    "account_taxes",
    db.metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("tax_id", ForeignKey("taxes.id", ondelete="CASCADE"), primary_key=True),
)


class Account(UserMixin, db.Model):
    """An account of any role; customers carry the billing and calling fields."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(20), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # Ancestor resellers, root first, as "12/34/" ('' when the admins own it): a reseller's
    # whole subtree is one indexed prefix range, however deep sub-resellers nest.
    tenant_path: Mapped[str] = mapped_column(String(400), default="", server_default="")
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    pin: Mapped[str | None] = mapped_column(String(12))
    first_name: Mapped[str] = mapped_column(String(80), default="")
    last_name: Mapped[str] = mapped_column(String(80), default="")
    company: Mapped[str] = mapped_column(String(120), default="")
    telephone: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2), default="US")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    max_channels: Mapped[int] = mapped_column(default=0)
    number_translation: Mapped[str] = mapped_column(String(500), default="")
    first_used: Mapped[datetime | None]
    expiry_date: Mapped[datetime | None]
    valid_days: Mapped[int] = mapped_column(default=3650)
    rate_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("rate_groups.id", use_alter=True), index=True
    )
    billing_schedule: Mapped[BillingSchedule] = mapped_column(
        _enum(BillingSchedule), default=BillingSchedule.MONTHLY
    )
    billing_day: Mapped[int | None]
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    account_type: Mapped[AccountType] = mapped_column(
        _enum(AccountType), default=AccountType.PREPAID
    )
    credit_limit: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    low_balance_alert: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # The live calls and the credit they hold, kept beside the funds so that one conditional
    # UPDATE checks and reserves at once (portal.calls); they equal the sums over live calls.
    live_calls: Mapped[int] = mapped_column(default=0, server_default="0")
    reserved: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    email_alerts: Mapped[bool] = mapped_column(default=False)
    # Set when the low balance mail went out; cleared when funds rise above the alert again.
    low_balance_alerted: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]

    rate_group: Mapped["RateGroup | None"] = relationship(  # noqa: F821
        lazy="joined", foreign_keys=[rate_group_id]
    )
    taxes: Mapped[list["Tax"]] = relationship(  # noqa: F821
        secondary=account_taxes, order_by="Tax.priority"
    )
    sip_devices: Mapped[list["SipDevice"]] = relationship(
        back_populates="account", cascade="all, delete-orphan", order_by="SipDevice.id"
    )
    reseller: Mapped["Account | None"] = relationship(remote_side=[id], foreign_keys=[reseller_id])

    # Lists filter by role/tenant and page newest first: these serve that without a sort.
    __table_args__ = (
        Index("ix_accounts_role_listing", "role", "deleted_at", "id"),
        Index("ix_accounts_reseller_listing", "reseller_id", "role", "deleted_at", "id"),
        Index("ix_accounts_tenant_path", "tenant_path", "role"),
    )

    @property
    def name(self) -> str:
        """First and last name, or the company, or the number."""
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.company or self.account_number

    # Flask-Login's id of the login this request runs under: "session row id:token", set by
    # portal.auth.sessions when a login starts or a cookie's session row is found.
    login_id = None

    def get_id(self) -> str:
        """Flask-Login session id: the login session's row id and token (see login_id)."""
        if not self.login_id:
            raise RuntimeError("no login session: log in through portal.auth.sessions")
        return self.login_id

    @property
    def subtree_path(self) -> str:
        """The tenant_path prefix of every account below this one."""
        return f"{self.tenant_path}{self.id}/"

    @property
    def is_deleted(self) -> bool:
        """True once the account was soft-deleted."""
        return self.deleted_at is not None

    @property
    def is_active(self) -> bool:
        """Flask-Login: only active, undeleted accounts may hold a session."""
        return self.status == Status.ACTIVE and not self.is_deleted

    @property
    def is_expired(self) -> bool:
        """True once the expiry date has passed (no login, no new calls)."""
        return is_expired(self.expiry_date)

    @property
    def available_funds(self) -> Decimal:
        """Prepaid: the balance; postpaid: credit limit minus what is owed."""
        return available_funds(self.account_type, self.balance, self.credit_limit)


class SipDevice(db.Model):
    """A SIP device (endpoint credentials) of an account."""

    __tablename__ = "sip_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # The softswitch needs the SIP secret itself (digest auth), so it cannot be a one-way hash.
    password: Mapped[str] = mapped_column(String(64))
    context: Mapped[str] = mapped_column(String(64), default="default")
    caller_id_name: Mapped[str] = mapped_column(String(80), default="")
    caller_id_number: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="sip_devices")


class AccountSearchToken(db.Model):
    """A lowercase word of an account's number, names, company or e-mail (indexed prefix search)."""

    __tablename__ = "account_search_tokens"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[str] = mapped_column(String(254), primary_key=True)

    __table_args__ = (Index("ix_account_search_tokens_token_account", "token", "account_id"),)
