"""Money: the ledger, receipts and invoices (documents), their numbering, and the mail outbox."""

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from portal.extensions import db
from portal.models.account import Money, _enum, utcnow
from portal.rules.currency import quantum


class EntryKind(enum.StrEnum):
    """What moved a balance."""

    PAYMENT = "payment"
    CHARGE = "charge"
    USAGE = "usage"
    ADJUSTMENT = "adjustment"
    TAX = "tax"
    # The difference between entries finer than the currency's minor unit (made before amounts
    # were rounded when posted) and the rounded lines of the document, or balance, they end in.
    ROUNDING = "rounding"
    # A product's periodic price or setup fee, charged by the billing run.
    SUBSCRIPTION = "subscription"

    @property
    def label(self) -> str:
        """Human name."""
        return {"payment": "Payment / refill"}.get(self.value, self.value.capitalize())


class DocumentKind(enum.StrEnum):
    """Receipts (prepaid, at once) and invoices (postpaid, on the billing day)."""

    RECEIPT = "receipt"
    INVOICE = "invoice"


class DocumentStatus(enum.StrEnum):
    """Whether a document is settled (derived: a receipt is paid, an invoice by its allocations)."""

    UNPAID = "unpaid"
    PARTIAL = "partial"
    PAID = "paid"


class LedgerEntry(db.Model):
    """One change of an account's balance; the balance is always the sum of these."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    # Signed effect on accounts.balance: prepaid balance = funds, postpaid balance = owed.
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(200), default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The receipt or invoice that lists this entry (NULL: not billed yet).
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    # A prepaid call's tax entry: the tax's statement line, e.g. "VAT (21%)", which the periodic
    # statement sums it under (its description also names the call). NULL otherwise.
    tax_line: Mapped[str | None] = mapped_column(String(120))

    author = relationship("Account", foreign_keys=[author_id])
    # Its receipt (a payment, a prepaid charge) or invoice.
    document = relationship("Document", foreign_keys=[document_id], viewonly=True)
    # A payment: the invoices it was allocated to.
    allocations: Mapped[list["Allocation"]] = relationship(
        back_populates="payment", viewonly=True, order_by="Allocation.id"
    )

    # Partial indexes: only the rows a query looks for are in them. Billing an entry sets its
    # document_id, which takes it out of the unbilled index instead of adding a new index entry,
    # and the index holds only what is still to bill however long the ledger grows.
    __table_args__ = (
        Index("ix_ledger_entries_account", "account_id", "id"),
        Index(
            "ix_ledger_entries_unbilled",
            "account_id",
            "created_at",
            postgresql_where=text("document_id IS NULL"),
            sqlite_where=text("document_id IS NULL"),
        ),
        # A receipt's payment (Document.payment_entries), found without a scan of the ledger.
        Index(
            "ix_ledger_entries_payment_document",
            "document_id",
            postgresql_where=text("kind = 'payment'"),
            sqlite_where=text("kind = 'payment'"),
        ),
    )


class Allocation(db.Model):
    """Part of a payment (a PAYMENT ledger entry) applied to an invoice: never edited."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    payment: Mapped[LedgerEntry] = relationship(back_populates="allocations", viewonly=True)
    document: Mapped["Document"] = relationship(back_populates="allocations", viewonly=True)

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        # One row per (payment, invoice); its index serves the payment side.
        UniqueConstraint("payment_entry_id", "document_id", name="uq_allocations_pair"),
        Index("ix_allocations_document", "document_id"),
    )


class Document(db.Model):
    """A receipt or an invoice, numbered per issuer (the admins or a reseller) without gaps."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DocumentKind] = mapped_column(_enum(DocumentKind))
    # 0 for the admins, else the reseller's id: a plain integer so UNIQUE works on every backend.
    issuer_key: Mapped[int] = mapped_column(default=0)
    number: Mapped[int]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The local billing date of an invoice; one invoice per account and date.
    billing_date: Mapped[date | None]
    due_date: Mapped[date | None]
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Money)
    tax_total: Mapped[Decimal] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    # What the allocations to this invoice add up to: read with the row (one indexed subquery,
    # no query per row in lists), never stored, so it cannot drift from the allocations.
    allocated: Mapped[Decimal] = column_property(
        select(func.coalesce(func.sum(Allocation.amount), 0))
        .where(Allocation.document_id == id)
        .correlate_except(Allocation)
        .scalar_subquery()
    )

    lines: Mapped[list["DocumentLine"]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="DocumentLine.position"
    )
    account = relationship("Account", foreign_keys=[account_id])
    # An invoice: the payments allocated to it, oldest first.
    allocations: Mapped[list[Allocation]] = relationship(
        back_populates="document", viewonly=True, order_by=Allocation.id
    )
    # A receipt: the payment it documents (postpaid payments are allocated to invoices).
    payment_entries: Mapped[list[LedgerEntry]] = relationship(
        primaryjoin=lambda: and_(
            LedgerEntry.document_id == Document.id, LedgerEntry.kind == EntryKind.PAYMENT
        ),
        viewonly=True,
        order_by=LedgerEntry.id,
    )

    __table_args__ = (
        UniqueConstraint("issuer_key", "kind", "number", name="uq_documents_number"),
        UniqueConstraint("account_id", "kind", "billing_date", name="uq_documents_billing_date"),
        Index("ix_documents_account", "account_id", "id"),
    )

    @property
    def display_number(self) -> str:
        """R-000042 / INV-000042."""
        prefix = "R" if self.kind == DocumentKind.RECEIPT else "INV"
        return f"{prefix}-{self.number:06d}"

    @property
    def amount_paid(self) -> Decimal:
        """A receipt: its total (settled when issued); an invoice: its allocations."""
        return self.total if self.kind == DocumentKind.RECEIPT else self.allocated

    @property
    def balance_due(self) -> Decimal:
        """What is still to pay."""
        return self.total - self.amount_paid

    @property
    def status(self) -> DocumentStatus:
        """Paid, partly paid or unpaid, from the allocations (a credit invoice is paid)."""
        # Less than one minor unit cannot be paid: only invoices issued before totals were
        # rounded (13.5 JPY) leave such a rest, and it was written off (migration 9a1b2c3d4e5f).
        if self.balance_due < quantum(self.currency):
            return DocumentStatus.PAID
        return DocumentStatus.PARTIAL if self.amount_paid > 0 else DocumentStatus.UNPAID

    @property
    def applied(self) -> list[Allocation]:
        """A payment receipt: the allocations of its payment to invoices, oldest first."""
        return [allocation for entry in self.payment_entries for allocation in entry.allocations]

    @property
    def unapplied(self) -> Decimal:
        """A payment receipt: what of its payment is not allocated yet (credit for later)."""
        paid = sum((-entry.amount for entry in self.payment_entries), Decimal(0))
        return paid - sum((allocation.amount for allocation in self.applied), Decimal(0))


class DocumentLine(db.Model):
    """A line of a document: an item (ledger entry) or a tax."""

    __tablename__ = "document_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    position: Mapped[int]
    is_tax: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Money)

    document: Mapped[Document] = relationship(back_populates="lines")

    __table_args__ = (Index("ix_document_lines_document", "document_id", "position"),)


class DocumentSequence(db.Model):
    """The next number of each issuer's receipts or invoices (locked while one is issued)."""

    __tablename__ = "document_sequences"

    issuer_key: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DocumentKind] = mapped_column(_enum(DocumentKind), primary_key=True)
    next_number: Mapped[int] = mapped_column(default=1)


class OutboxMessage(db.Model):
    """An e-mail to send; kept until the mail server accepted it, or marked failed for good."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # A document's mail queued without its text (a billing run's invoices): the sender writes
    # subject and body from the document when it sends, then keeps them here.
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    # Not tried again before this time (backoff after a failure); NULL: due at once.
    next_attempt_at: Mapped[datetime | None]
    # A sender is talking to the server about it until then; a sender killed mid-send leaves
    # the lease to expire, and the message is tried again (at least once, never lost).
    claimed_until: Mapped[datetime | None]
    # Given up (too old to retry); shown to the staff with last_error.
    failed_at: Mapped[datetime | None]
    # The text carries a password (a welcome mail): replaced by a note once the server took it.
    holds_secret: Mapped[bool] = mapped_column(default=False, server_default=false())

    account = relationship("Account", foreign_keys=[account_id])
    document = relationship("Document", foreign_keys=[document_id])

    __table_args__ = (Index("ix_outbox_due", "sent_at", "failed_at", "next_attempt_at", "id"),)
