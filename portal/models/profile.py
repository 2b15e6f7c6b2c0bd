"""Invoice profiles: who an issuer of receipts and invoices is, as its documents show it."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from portal.extensions import db
from portal.models.account import utcnow

# The largest logo accepted (a BLOB of this length is a MEDIUMBLOB on MariaDB, not a 64 kB BLOB).
LOGO_MAX_BYTES = 256 * 1024


class InvoiceProfile(db.Model):
    """One issuer's company name, address, tax number, e-mail and optional logo."""

    __tablename__ = "invoice_profiles"

    # The issuer as documents and document_sequences key it: 0 for the operator (the admins),
    # else the reseller's id. The operator's text lives in the global configuration (company_*
    # settings, edited there as before); its row holds only the logo, which no setting can hold.
    issuer_key: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # The reseller itself (NULL: the operator), so the database keeps the key pointing at one.
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), unique=True)
    company_name: Mapped[str] = mapped_column(String(120), default="")
    address: Mapped[str] = mapped_column(String(500), default="")
    tax_number: Mapped[str] = mapped_column(String(50), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    # A PNG, JPEG or GIF checked by its first bytes; loaded only when it is served.
    logo: Mapped[bytes | None] = deferred(mapped_column(LargeBinary(LOGO_MAX_BYTES)))
    logo_type: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("issuer_key = COALESCE(reseller_id, 0)", name="issuer"),)
